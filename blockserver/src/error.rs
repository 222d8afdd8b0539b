//! The crate's one error type, and the single place where it meets `tonic::Status` (both
//! ways), so a server error crosses the wire and comes back as the same variant.

use arbor_proto::namenode::ErrorCode;
use tonic::{Code, Status};

/// What went wrong in a block server, or in a client of block servers.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// Fewer than k shards of a block could be read (or written) intact.
    #[error("block {block_id:#x}: only {good} good shards, {needed} needed")]
    NotEnoughShards {
        block_id: u64,
        good: usize,
        needed: usize,
    },
    /// A block server could not be reached, or did not answer in time.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Stored or received bytes do not match their checksum.
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// The shard asked for is not stored.
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The object store failed.
    #[error("store: {0}")]
    Store(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// The Arbor error code that stands for this error on the wire.
    fn code(&self) -> ErrorCode {
        match self {
            Error::NotEnoughShards { .. } => ErrorCode::BlockMissing,
            Error::Unavailable(_) | Error::Store(_) => ErrorCode::Unavailable,
            Error::Corrupt(_) => ErrorCode::BlockMissing,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// Marks a corrupt-data status apart from a missing-block status: both travel as
/// BLOCK_MISSING / DATA_LOSS, the message prefix tells them apart.
const CORRUPT_PREFIX: &str = "corrupt: ";

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        let message = match &e {
            Error::Corrupt(m) => format!("{CORRUPT_PREFIX}{m}"),
            Error::Store(m) => format!("store: {m}"),
            other => other.to_string(),
        };
        let mut status = arbor_proto::error::status(e.code(), message);
        if matches!(e, Error::Store(_)) {
            // A failing store is the server's trouble, not the network's; keep the gRPC code
            // honest for generic tools while the Arbor code says "unavailable".
            status = Status::with_metadata(
                Code::Unavailable,
                status.message().to_string(),
                status.metadata().clone(),
            );
        }
        status
    }
}

impl From<Status> for Error {
    fn from(s: Status) -> Error {
        let message = s.message().to_string();
        match arbor_proto::error::code_of(&s) {
            ErrorCode::NotFound => Error::NotFound(message),
            ErrorCode::InvalidArgument => Error::InvalidArgument(message),
            ErrorCode::BlockMissing => match message.strip_prefix(CORRUPT_PREFIX) {
                Some(rest) => Error::Corrupt(rest.to_string()),
                None => Error::Corrupt(message),
            },
            ErrorCode::Unavailable => Error::Unavailable(message),
            _ => match s.code() {
                Code::DeadlineExceeded | Code::Cancelled => Error::Unavailable(message),
                _ => Error::Internal(message),
            },
        }
    }
}

impl From<object_store::Error> for Error {
    fn from(e: object_store::Error) -> Error {
        match e {
            object_store::Error::NotFound { path, .. } => Error::NotFound(path),
            other => Error::Store(other.to_string()),
        }
    }
}
