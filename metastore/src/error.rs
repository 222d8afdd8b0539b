//! What can go wrong inside a shard, as one enum. A transaction conflict is not an error (it is
//! an answer, see `txn::Conflict`); these are requests that are malformed, a shard that is
//! closed or stopped, and failures of the disk or the storage engine. The mapping to
//! `tonic::Status` lives in `server.rs` and nowhere else.

/// Everything a shard operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is malformed (a write without an operation, a counter field outside
    /// its row, a prepare sent to the wrong shard, ...).
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// The shard is closing or closed and accepts no more requests.
    #[error("shard is closed")]
    Closed,
    /// A write to the log or the tables failed; the shard refuses everything until it is
    /// reopened, because its memory may no longer match its disk.
    #[error("shard stopped after a failed write: {0}")]
    Failed(String),
    /// The log or a stored row does not decode.
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage engine: {0}")]
    Engine(String),
    /// Another shard could not be reached or did not answer in time.
    #[error("peer unavailable: {0}")]
    Unavailable(String),
    /// A read waited the intent timeout and more for a transaction that will write what it
    /// reads, and the transaction is still not finished (its coordinator and primary are slow or
    /// gone). Asking again later may succeed.
    #[error("read blocked by an unfinished transaction: {0}")]
    Blocked(String),
    /// A change-log record asked for is no longer kept: the log was trimmed past it. The
    /// consumer cannot catch up from the log and must rebuild from a scan of the tables.
    #[error(
        "change log trimmed: sequence {wanted} is no longer kept, the oldest sequence kept is \
         {first}; rebuild from a scan"
    )]
    Trimmed { wanted: u64, first: u64 },
    /// A background task or thread of the shard died.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Error::Engine(e.to_string())
    }
}

impl Error {
    pub(crate) fn corrupt(what: &'static str, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            what,
            detail: detail.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
