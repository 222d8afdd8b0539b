//! Where the binaries under test are: `$ARBOR_BIN_DIR`, else `$CARGO_TARGET_DIR/debug`, else the
//! workspace's `target/debug`. The tests never build anything themselves, so a missing binary is
//! reported with the command that builds it instead of a confusing spawn error.

use std::path::PathBuf;

/// The shard server.
pub const METASTORE: &str = "arbor-metastore";
/// The namenode.
pub const NAMENODE: &str = "arbor-namenode";
/// The CLI.
pub const CLI: &str = "arbor";
/// The block server.
pub const BLOCKSERVER: &str = "arbor-blockserver";

/// The directory the binaries are taken from.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ARBOR_BIN_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("debug");
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("debug")
}

/// The path of binary `name`; panics with the build command when it is not there.
pub fn bin(name: &str) -> PathBuf {
    let dir = bin_dir();
    let path = dir.join(name);
    if !path.is_file() {
        panic!(
            "binary `{name}` not found in {}: run `cargo build --workspace --bins` first \
             (or point ARBOR_BIN_DIR at the directory that holds it)",
            dir.display()
        );
    }
    path
}
