//! The components a benchmark runs, as `cargo xtask bench` builds them.

use std::path::PathBuf;

/// The bytes of `name.wasm` in the directory the variable `var` names, or else in `default`
/// (relative to the repository's root).
pub fn component(var: &str, default: &str, name: &str) -> Vec<u8> {
    let dir = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(
            std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
        )
        .join("..")
        .join(default)
    });
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask bench`", path.display()))
}
