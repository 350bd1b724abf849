//! Issue 7: Nix integration (placeholder, filled below).
