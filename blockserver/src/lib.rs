//! Arbor's block server and the client side of the data path.
//!
//! A block server stores the shards of erasure-coded blocks, one object per shard, in a
//! local directory, S3 or Azure Blob (`store`, `shardfile`), and serves them over gRPC
//! (`service`, `server`, `heartbeat`). Clients and the repairing namenode use the rest:
//! `layout` (stripe geometry), `codec` (Reed-Solomon), `checksum`, `pool` (channels and
//! deadlines), `writer` (BlockWriter), `reader` (read_range, degraded reads) and `rebuild`.

pub mod block;
pub mod checksum;
pub mod codec;
pub mod error;
pub mod fetch;
pub mod heartbeat;
pub mod layout;
pub mod pool;
pub mod reader;
pub mod rebuild;
pub mod sender;
pub mod server;
pub mod service;
pub mod shardfile;
pub mod store;
pub mod writer;

pub use block::{BlockRef, ShardFailure, ShardTarget};
pub use error::Error;
pub use layout::Layout;
pub use pool::{ShardPool, delete_shards};
pub use reader::{ReadOutcome, read_range};
pub use rebuild::rebuild;
pub use server::{RunningServer, ServerConfig};
pub use writer::{BlockWriter, WrittenBlock};
