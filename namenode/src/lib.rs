//! The namenode: stateless; runs every namespace operation as one transaction over the
//! metastore shards. Any number of namenodes run side by side and any of them serves any call.
//!
//! - [`txn`] is the transaction interface, [`keys`] the key schema.
//! - [`sharded`] implements it over the metastore shards (routing, single-shard commit,
//!   two-phase commit, id leases, formatting); [`memstore`] in memory, for unit tests.
//! - [`ops`] holds one module per namespace operation, each plain code over [`txn::Txn`].
//! - [`data`] holds the data path's rows and calls (blocks, leases, block servers) and the
//!   leader's repair loop.
//! - [`service`] serves the namenode gRPC API on top of the operations.

pub mod counters;
pub mod error;
pub mod fault;
pub mod format;
pub mod keys;
pub mod memstore;
pub mod metrics;
pub mod sharded;
pub mod txn;

pub mod attrs;
pub mod data;
pub mod deleter;
pub mod fsck;
pub mod leader;
pub mod ops;
pub mod path;
pub mod perm;
pub mod registry;
pub mod resolve;
pub mod service;
pub mod status;
pub mod sweeper;
pub mod trash;
