//! libFuzzer target: see `isoforge_fuzz::iso`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| isoforge_fuzz::iso(data));
