//! libFuzzer target: see `isoforge_fuzz::fat`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| isoforge_fuzz::fat(data));
