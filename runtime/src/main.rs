//! The `kefu` command.
fn main() {}
