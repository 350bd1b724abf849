//! libFuzzer target: see `isoforge_fuzz::cpio`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| isoforge_fuzz::cpio(data));
