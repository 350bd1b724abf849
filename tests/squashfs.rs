//! squashfs tests (placeholder)
