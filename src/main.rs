//! ascend
fn main() {}
