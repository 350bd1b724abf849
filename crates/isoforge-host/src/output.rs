//! Atomic outputs (to be written).
