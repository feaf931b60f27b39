//! What the chaos tests share: the binaries under test.

use std::path::{Path, PathBuf};

pub const CHAOS: &str = env!("CARGO_BIN_EXE_tributary-chaos");

/// The node binary, built beside `tributary-chaos` by the workspace's tests.
pub fn tributary_binary() -> PathBuf {
    let binary = Path::new(CHAOS).with_file_name("tributary");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build --release -p tributary-cli`",
        binary.display()
    );
    binary
}
