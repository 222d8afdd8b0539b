//! The FUSE mount of Arbor (`arbor-mount`, run by `arbor mount`).
//!
//! - [`fs`]: the file system: each kernel request as a task making namenode calls as the
//!   caller's identity.
//! - [`inodes`]: inode number → (parent, name), for the path-based namespace calls.
//! - [`files`]: open files: readers, and one shared writer per inode.
//! - [`pages`]: which file pages the kernel may keep across opens.
//! - [`statuses`]: inode statuses kept across the kernel's invalidations after our changes.
//! - [`watch`]: changes made elsewhere, from the shards' change streams, as kernel invalidations.
//! - [`expiring`]: the bounded, timed map `statuses` and `fresh` keep their entries in.
//! - [`fresh`]: directories this mount just made, whose other names are known absent.
//! - [`attr`]: file status → kernel attributes; the local mode-bit check.
//! - [`callers`]: the request's uid/gid → an identity (with supplementary groups) → a client.
//! - [`errno`]: Arbor error codes → errno, in one place.
//! - [`metrics`]: what the mount counts for Prometheus.
//! - [`options`]: `-o` mount options.
//! - [`mount`]: mounting, serving, unmounting, background mode.

pub mod attr;
pub mod callers;
pub mod errno;
pub mod error;
pub mod expiring;
pub mod files;
pub mod fresh;
pub mod fs;
pub mod inodes;
pub mod metrics;
pub mod mount;
pub mod options;
pub mod pages;
pub mod statuses;
pub mod watch;

pub use error::MountError;
pub use mount::{MountConfig, serve, spawn_background};
pub use options::MountOptions;
