//! Metadata search fed by the change stream, and the decoding of that stream into namespace
//! events.
//!
//! - [`rows`]: metastore rows (dentry, inode, counter, xattr) decoded from keys and values;
//! - [`model`]: the namespace rebuilt from rows, idempotent by row version, with the
//!   directory map that turns a parent inode into a path;
//! - [`changes`]: change records turned into events (create, delete, rename, attributes,
//!   xattrs) with paths, and the merge of the shards' streams;
//! - [`query`]: the query language; [`index`]: the tantivy index and query execution;
//! - [`shards`]: calls to namenodes and shards; [`indexer`]: the service's pipeline from the
//!   shards' logs to committed index snapshots; [`service`]: the gRPC service.

pub mod changes;
pub mod error;
pub mod index;
pub mod indexer;
pub mod model;
pub mod query;
pub mod rows;
pub mod service;
pub mod shards;
pub mod tail;

pub use error::{Error, Result};

/// Where the search service listens when nothing else says.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9300";
/// The environment variable naming the search service for clients.
pub const SEARCH_ENV: &str = "ARBOR_SEARCH";
