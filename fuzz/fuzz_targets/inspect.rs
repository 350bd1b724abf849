//! libFuzzer target: see `isoforge_fuzz::inspect`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| isoforge_fuzz::inspect(data));
