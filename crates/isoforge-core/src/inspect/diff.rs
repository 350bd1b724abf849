//! `isoforge diff`: every differing byte range of two images, named.
