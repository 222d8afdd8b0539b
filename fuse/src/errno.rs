//! The one translation from Arbor's error codes to the errno a local file system would give.
//! Invariant: every [`ErrorCode`] has exactly one errno here, and no code maps to `EXDEV`
//! (the whole mount is one file system: renames never cross devices).

use arbor_client::{Error, ErrorCode};
use fuser::Errno;

/// The errno for an Arbor error code.
pub fn errno_of_code(code: ErrorCode) -> Errno {
    match code {
        ErrorCode::NotFound => Errno::ENOENT,
        ErrorCode::AlreadyExists => Errno::EEXIST,
        ErrorCode::NotADirectory => Errno::ENOTDIR,
        ErrorCode::IsADirectory => Errno::EISDIR,
        ErrorCode::NotEmpty => Errno::ENOTEMPTY,
        ErrorCode::PermissionDenied => Errno::EACCES,
        ErrorCode::NotPermitted => Errno::EPERM,
        ErrorCode::InvalidArgument | ErrorCode::SubdirOfItself => Errno::EINVAL,
        ErrorCode::NameTooLong => Errno::ENAMETOOLONG,
        ErrorCode::NoXattr => Errno::NO_XATTR,
        ErrorCode::Busy => Errno::EAGAIN,
        ErrorCode::Root | ErrorCode::LeaseHeld => Errno::EBUSY,
        ErrorCode::NoSpace => Errno::ENOSPC,
        ErrorCode::Unavailable
        | ErrorCode::Internal
        | ErrorCode::ErrorUnspecified
        | ErrorCode::LeaseExpired
        | ErrorCode::BlockMissing => Errno::EIO,
    }
}

/// The errno for a failed client call; failures that are not answers (I/O) are logged, since
/// the caller only sees `EIO`.
pub fn errno_of(err: &Error) -> Errno {
    let errno = errno_of_code(err.code);
    if errno == Errno::EIO {
        tracing::warn!(code = ?err.code, "call failed: {}", err.message);
    } else {
        tracing::debug!(code = ?err.code, "call failed: {}", err.message);
    }
    errno
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_to_local_errnos() {
        let cases = [
            (ErrorCode::NotFound, libc::ENOENT),
            (ErrorCode::AlreadyExists, libc::EEXIST),
            (ErrorCode::NotADirectory, libc::ENOTDIR),
            (ErrorCode::IsADirectory, libc::EISDIR),
            (ErrorCode::NotEmpty, libc::ENOTEMPTY),
            (ErrorCode::PermissionDenied, libc::EACCES),
            (ErrorCode::NotPermitted, libc::EPERM),
            (ErrorCode::InvalidArgument, libc::EINVAL),
            (ErrorCode::SubdirOfItself, libc::EINVAL),
            (ErrorCode::NameTooLong, libc::ENAMETOOLONG),
            (ErrorCode::NoXattr, libc::ENODATA),
            (ErrorCode::Root, libc::EBUSY),
            (ErrorCode::NoSpace, libc::ENOSPC),
            (ErrorCode::Unavailable, libc::EIO),
            (ErrorCode::BlockMissing, libc::EIO),
        ];
        for (code, want) in cases {
            assert_eq!(i32::from(errno_of_code(code)), want, "{code:?}");
        }
    }

    #[test]
    fn nothing_is_cross_device() {
        for n in 0..64 {
            if let Ok(code) = ErrorCode::try_from(n) {
                assert_ne!(i32::from(errno_of_code(code)), libc::EXDEV, "{code:?}");
            }
        }
    }
}
