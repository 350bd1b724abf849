//! libFuzzer target: see `isoforge_fuzz::el_torito`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| isoforge_fuzz::el_torito(data));
