//! libFuzzer target: see `isoforge_fuzz::squashfs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| isoforge_fuzz::squashfs(data));
