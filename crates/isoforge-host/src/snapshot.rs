//! Input snapshots (to be written).
