//! Byte maps: which structure each byte of an image belongs to (for `diff`).
