//! How an [`ErrorCode`] travels on a `tonic::Status`: as the number in the `arbor-error`
//! metadata entry, beside a gRPC code that a generic gRPC tool would still read sensibly.
//! Servers build statuses with [`status`]; clients read them back with [`code_of`].

use crate::namenode::ErrorCode;
use tonic::{Code, Status};

/// The metadata key that carries the Arbor error code.
pub const ERROR_KEY: &str = "arbor-error";

/// The gRPC code that best describes an Arbor error code.
pub fn grpc_code(code: ErrorCode) -> Code {
    match code {
        ErrorCode::NotFound | ErrorCode::NoXattr => Code::NotFound,
        ErrorCode::AlreadyExists => Code::AlreadyExists,
        ErrorCode::PermissionDenied | ErrorCode::NotPermitted => Code::PermissionDenied,
        ErrorCode::InvalidArgument | ErrorCode::NameTooLong | ErrorCode::SubdirOfItself => {
            Code::InvalidArgument
        }
        ErrorCode::NotADirectory
        | ErrorCode::IsADirectory
        | ErrorCode::NotEmpty
        | ErrorCode::Root => Code::FailedPrecondition,
        ErrorCode::Busy => Code::Aborted,
        ErrorCode::LeaseHeld | ErrorCode::LeaseExpired => Code::FailedPrecondition,
        ErrorCode::NoSpace => Code::ResourceExhausted,
        ErrorCode::BlockMissing => Code::DataLoss,
        ErrorCode::Unavailable => Code::Unavailable,
        ErrorCode::Internal | ErrorCode::ErrorUnspecified => Code::Internal,
    }
}

/// A status carrying `code` and a human-readable `message`.
pub fn status(code: ErrorCode, message: impl Into<String>) -> Status {
    let mut status = Status::new(grpc_code(code), message);
    if let Ok(value) = (code as i32).to_string().parse() {
        status.metadata_mut().insert(ERROR_KEY, value);
    }
    status
}

/// The Arbor error code a status carries; statuses from elsewhere (transport failures, a
/// proxy) map from their gRPC code.
pub fn code_of(status: &Status) -> ErrorCode {
    if let Some(code) = status
        .metadata()
        .get(ERROR_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .and_then(|n| ErrorCode::try_from(n).ok())
    {
        return code;
    }
    match status.code() {
        Code::NotFound => ErrorCode::NotFound,
        Code::AlreadyExists => ErrorCode::AlreadyExists,
        Code::PermissionDenied => ErrorCode::PermissionDenied,
        Code::InvalidArgument => ErrorCode::InvalidArgument,
        Code::Aborted => ErrorCode::Busy,
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
            ErrorCode::Unavailable
        }
        _ => ErrorCode::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_a_status() {
        for n in 1..=15 {
            let code = ErrorCode::try_from(n).expect("defined code");
            assert_eq!(code_of(&status(code, "x")), code);
        }
    }

    #[test]
    fn foreign_statuses_map_by_grpc_code() {
        assert_eq!(
            code_of(&Status::unavailable("down")),
            ErrorCode::Unavailable
        );
        assert_eq!(code_of(&Status::not_found("x")), ErrorCode::NotFound);
    }
}
