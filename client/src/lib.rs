//! The Arbor client: an async library for the namespace API of the namenodes (with failover
//! across a list of equal namenodes and exactly-once retries) and, in [`cli`], the `arbor`
//! command line built on it.
//!
//! - [`client`]: [`Client`], one method per namenode call.
//! - [`identity`]: who the client says it is ([`Identity`], `ARBOR_USER`).
//! - [`error`]: the one error type, an [`ErrorCode`] plus detail.
//! - [`paths`]: `arbor://host:port/path` URLs and textual path helpers.
//! - [`data`]: file contents: [`FileWriter`], [`FileReader`], erasure-coding policies.
//! - [`cli`]: `arbor dfs`, `arbor fsck`, `arbor dev`, `arbor bench`.

pub mod cli;
pub mod client;
pub mod data;
pub mod error;
pub mod identity;
pub mod paths;
pub mod search;
pub mod trash;

pub use arbor_proto as proto;
pub use arbor_proto::namenode::{
    ClusterInfoReply, ContentSummaryReply, DirEntry, ErrorCode, FileStatus, FsckReply,
    set_xattr_request::Flag as XattrFlag,
};
pub use arbor_proto::records::InodeKind;
pub use client::{AttrChange, Client, DEFAULT_NAMENODE, NAMENODE_ENV, Options, namenode_list};
pub use data::{FileReader, FileWriter, WriteOptions};
pub use error::{Error, Result};
pub use identity::Identity;
