//! The search crate's one error type. Every failure says which side it came from (a shard,
//! the index, a query) so that the service can map it to a gRPC status in one place
//! ([`Error::to_status`]).

use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The query text could not be parsed.
    #[error("bad query: {0}")]
    BadQuery(String),
    /// A shard or namenode could not be reached or answered with an error.
    #[error("{addr}: {message}")]
    Remote { addr: String, message: String },
    /// A shard no longer holds the log from where a consumer needs it: rebuild from a scan.
    #[error("shard {shard}: change log trimmed past seq {from}")]
    Trimmed { shard: u32, from: u64 },
    /// The index could not be read or written.
    #[error("index: {0}")]
    Index(String),
    /// A row or record that does not decode.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Invalid(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<tantivy::TantivyError> for Error {
    fn from(e: tantivy::TantivyError) -> Error {
        Error::Index(e.to_string())
    }
}

impl Error {
    pub fn remote(addr: &str, status: &Status) -> Error {
        Error::Remote {
            addr: addr.to_string(),
            message: format!("{:?}: {}", status.code(), status.message()),
        }
    }

    /// The gRPC status a client of the search service sees.
    pub fn to_status(&self) -> Status {
        match self {
            Error::BadQuery(_) | Error::Invalid(_) => Status::invalid_argument(self.to_string()),
            Error::Remote { .. } | Error::Trimmed { .. } => Status::unavailable(self.to_string()),
            Error::Index(_) | Error::Corrupt(_) | Error::Io(_) => {
                Status::internal(self.to_string())
            }
        }
    }
}
