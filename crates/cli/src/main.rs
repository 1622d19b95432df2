//! The `jitnode` binary: wiring only.
fn main() {}
