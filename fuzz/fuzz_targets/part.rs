//! libFuzzer target: see `isoforge_fuzz::part`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| isoforge_fuzz::part(data));
