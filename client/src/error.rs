//! The client's one error type: an Arbor [`ErrorCode`] plus the detail the namenode (or the
//! client itself) gave. Every failure a caller sees carries a code, so callers branch on the
//! code and never parse messages.

use arbor_proto::namenode::ErrorCode;
use tonic::Status;

/// A failed call: what went wrong (`code`) and a human-readable detail (`message`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

/// Result of every client call.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::InvalidArgument, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::Unavailable, message)
    }

    /// Whether the same request may be sent again, to another namenode: the namenode could
    /// not be reached or could not reach a shard. Every other error is an answer.
    pub fn is_retryable(&self) -> bool {
        self.code == ErrorCode::Unavailable
    }
}

impl From<Status> for Error {
    fn from(status: Status) -> Error {
        // Transport failures say little in the message ("tcp connect error"); the cause
        // ("Connection refused") is in the source chain.
        let mut message = status.message().to_string();
        let mut source = std::error::Error::source(&status);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message = format!("{message}: {text}");
            }
            source = cause.source();
        }
        Error {
            code: arbor_proto::error::code_of(&status),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_and_messages_carry_over() {
        let e = Error::from(arbor_proto::error::status(
            ErrorCode::NotEmpty,
            "/d: Directory is not empty",
        ));
        assert_eq!(e.code, ErrorCode::NotEmpty);
        assert_eq!(e.to_string(), "/d: Directory is not empty");
        assert!(!e.is_retryable());
    }

    #[test]
    fn transport_failures_are_retryable() {
        assert!(Error::from(Status::unavailable("connection refused")).is_retryable());
        assert!(Error::from(Status::deadline_exceeded("late")).is_retryable());
        assert!(!Error::from(Status::not_found("x")).is_retryable());
    }
}
