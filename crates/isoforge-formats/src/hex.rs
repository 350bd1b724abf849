//! Lower-case hex of bytes, for messages and reports (the `found` of a bad magic number, a
//! digest in `inspect`).

/// `bytes` as lower-case hex, two digits a byte, no separators.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
