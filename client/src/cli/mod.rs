//! The `arbor` command line, built on the client library: `dfs` (HDFS-style file system
//! commands), `fsck`, `dev` (a local cluster) and `bench` (metadata benchmarks). The binary's
//! `main.rs` only parses flags and calls into these modules.
//!
//! - [`args`] parses `arbor dfs` words; [`dfs`] runs them over a [`shell::Shell`].
//! - [`ls`], [`stat`], [`count`], [`xattr`]: the report commands and their output formats.
//! - [`format`], [`names`], [`messages`]: sizes/permissions/times, uid/gid names, and the one
//!   mapping from errors to HDFS-style messages.
//! - [`chmod`], [`glob`]: mode arguments and `-find` patterns.
//! - [`transfer`], [`cat`], [`du`], [`truncate`], [`progress`]: the data commands.
//! - [`ec`]: `arbor ec`; [`bench_data`]: `arbor bench data`.

pub mod args;
pub mod bench;
pub mod bench_data;
pub mod bench_fs;
pub mod cat;
pub mod changes;
pub mod chmod;
pub mod count;
pub mod dev;
pub mod dfs;
pub mod du;
pub mod ec;
pub mod format;
pub mod fsck;
pub mod glob;
pub mod ls;
pub mod messages;
pub mod mount;
pub mod names;
pub mod progress;
pub mod search;
pub mod shell;
pub mod stat;
pub mod transfer;
pub mod truncate;
pub mod xattr;
