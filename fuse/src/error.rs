//! The mount's own failures (setting up and tearing down a mount); per-operation failures are
//! errnos (see `errno`).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("unknown or malformed mount option '{0}'")]
    Option(String),
    #[error("mount point {path}: {source}")]
    MountPoint {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mounting {path}: {source}")]
    Mount {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unmounting {path}: {source}")]
    Unmount {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cluster: {0}")]
    Cluster(#[from] arbor_client::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
