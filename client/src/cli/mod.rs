//! The `arbor` command line, built on the client library: `dfs` (HDFS-style file system
//! commands), `fsck`, `dev` (a local cluster) and `bench` (metadata benchmarks). The binary's
//! `main.rs` only parses flags and calls into these modules.
//!
//! - [`args`] parses `arbor dfs` words; [`dfs`] runs them over a [`shell::Shell`].
//! - [`ls`], [`stat`], [`count`], [`xattr`]: the report commands and their output formats.
//! - [`format`], [`names`], [`messages`]: sizes/permissions/times, uid/gid names, and the one
//!   mapping from errors to HDFS-style messages.
//! - [`chmod`], [`glob`]: mode arguments and `-find` patterns.

pub mod args;
pub mod bench;
pub mod chmod;
pub mod count;
pub mod dev;
pub mod dfs;
pub mod format;
pub mod fsck;
pub mod glob;
pub mod ls;
pub mod messages;
pub mod names;
pub mod shell;
pub mod stat;
pub mod xattr;
