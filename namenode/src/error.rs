//! The namenode's error: what went wrong with a namespace call, in terms a client can act on.
//! Each variant corresponds to one `ErrorCode` of the API; the message names the path the way
//! `hdfs dfs` users read it. Conversion to a gRPC status happens in one place,
//! `service::status_of`.

use arbor_proto::namenode::ErrorCode;

use crate::txn::TxnError;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum NnError {
    #[error("`{0}': No such file or directory")]
    NotFound(String),
    #[error("`{0}': File exists")]
    AlreadyExists(String),
    #[error("`{0}': Is not a directory")]
    NotADirectory(String),
    #[error("`{0}': Is a directory")]
    IsADirectory(String),
    #[error("`{0}': Directory is not empty")]
    NotEmpty(String),
    /// The full HDFS-style message (`Permission denied: user=…, access=…, inode=…`).
    #[error("{0}")]
    PermissionDenied(String),
    #[error("`{path}': Operation not permitted: {why}")]
    NotPermitted { path: String, why: String },
    #[error("`{path}': Invalid argument: {why}")]
    InvalidArgument { path: String, why: String },
    #[error("`{0}': File name too long")]
    NameTooLong(String),
    #[error("`{src}' to `{dst}': is a subdirectory of itself")]
    SubdirOfItself { src: String, dst: String },
    #[error("`{path}': No such attribute: {name}")]
    NoXattr { path: String, name: String },
    #[error("`{0}': Device or resource busy: conflicting updates outlasted the retry budget")]
    Busy(String),
    #[error("`{0}': Device or resource busy: the root directory cannot be removed or renamed")]
    Root(String),
    /// Another writer holds the file's lease (the full HDFS-like message).
    #[error("{0}")]
    LeaseHeld(String),
    /// The caller's lease on the file is gone.
    #[error("{0}")]
    LeaseExpired(String),
    #[error("{0}")]
    NoSpace(String),
    #[error("{0}")]
    BlockMissing(String),
    /// A transaction failure; `Conflict` makes the runner start the operation over.
    #[error(transparent)]
    Txn(#[from] TxnError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl NnError {
    pub fn invalid(path: &str, why: impl Into<String>) -> Self {
        NnError::InvalidArgument {
            path: path.to_string(),
            why: why.into(),
        }
    }

    pub fn not_permitted(path: &str, why: impl Into<String>) -> Self {
        NnError::NotPermitted {
            path: path.to_string(),
            why: why.into(),
        }
    }

    /// A read saw rows of different commits that don't fit together (say a dentry whose inode
    /// was removed since): start the operation over, as for a failed validation.
    pub fn raced(what: impl Into<String>) -> Self {
        NnError::Txn(TxnError::Conflict(what.into()))
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, NnError::Txn(TxnError::Conflict(_)))
    }

    /// The API error code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            NnError::NotFound(_) => ErrorCode::NotFound,
            NnError::AlreadyExists(_) => ErrorCode::AlreadyExists,
            NnError::NotADirectory(_) => ErrorCode::NotADirectory,
            NnError::IsADirectory(_) => ErrorCode::IsADirectory,
            NnError::NotEmpty(_) => ErrorCode::NotEmpty,
            NnError::PermissionDenied(_) => ErrorCode::PermissionDenied,
            NnError::NotPermitted { .. } => ErrorCode::NotPermitted,
            NnError::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            NnError::NameTooLong(_) => ErrorCode::NameTooLong,
            NnError::SubdirOfItself { .. } => ErrorCode::SubdirOfItself,
            NnError::NoXattr { .. } => ErrorCode::NoXattr,
            NnError::Busy(_) => ErrorCode::Busy,
            NnError::Root(_) => ErrorCode::Root,
            NnError::LeaseHeld(_) => ErrorCode::LeaseHeld,
            NnError::LeaseExpired(_) => ErrorCode::LeaseExpired,
            NnError::NoSpace(_) => ErrorCode::NoSpace,
            NnError::BlockMissing(_) => ErrorCode::BlockMissing,
            NnError::Txn(TxnError::Conflict(_)) => ErrorCode::Busy,
            NnError::Txn(TxnError::Unavailable(_)) | NnError::Txn(TxnError::Unknown(_)) => {
                ErrorCode::Unavailable
            }
            NnError::Txn(TxnError::Internal(_)) | NnError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// Whether this is the server's fault rather than the caller's (logged louder).
    pub fn is_internal(&self) -> bool {
        matches!(
            self.code(),
            ErrorCode::Internal | ErrorCode::Unavailable | ErrorCode::Busy
        )
    }
}

impl From<prost::DecodeError> for NnError {
    fn from(e: prost::DecodeError) -> Self {
        NnError::Internal(format!("corrupt row: {e}"))
    }
}
