//! The one place where an [`Error`] becomes the line an `hdfs dfs` user expects on stderr:
//! `<command>: <message>`, paths in backquote-quote (`` `/x' ``), POSIX wording for the POSIX
//! errors, the namenode's own text for permission errors (it is already in HDFS form), and
//! `Input/output error` with the detail for everything else.

use arbor_proto::namenode::ErrorCode;

use crate::error::Error;

/// What a failed operation was about.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// One path.
    Path(&'a str),
    /// A move from `src` to the full destination path `dst`.
    Move { src: &'a str, dst: &'a str },
}

/// The POSIX wording of a code, where one applies.
pub fn posix_text(code: ErrorCode) -> Option<&'static str> {
    Some(match code {
        ErrorCode::NotFound => "No such file or directory",
        ErrorCode::AlreadyExists => "File exists",
        ErrorCode::NotADirectory => "Is not a directory",
        ErrorCode::IsADirectory => "Is a directory",
        ErrorCode::NotEmpty => "Directory is not empty",
        ErrorCode::NameTooLong => "File name too long",
        ErrorCode::NotPermitted => "Operation not permitted",
        ErrorCode::InvalidArgument => "Invalid argument",
        _ => return None,
    })
}

/// Wordings the namenode puts after the path it names; only what follows them is detail.
const SERVER_WORDINGS: [&str; 5] = [
    "Invalid argument",
    "Operation not permitted",
    "Device or resource busy",
    "No such attribute",
    "Input/output error",
];

/// What a namenode message adds to the code: without the `` `path': `` it starts with (the
/// CLI names the path as typed) and without the wording the code already gives.
pub fn server_detail(message: &str) -> Option<&str> {
    let mut rest = message.trim();
    if rest.starts_with('`')
        && let Some(i) = rest.find("': ")
    {
        rest = &rest[i + 3..];
    }
    for wording in SERVER_WORDINGS {
        if rest == wording {
            return None;
        }
        if let Some(r) = rest
            .strip_prefix(wording)
            .and_then(|r| r.strip_prefix(": "))
        {
            rest = r;
            break;
        }
    }
    (!rest.is_empty()).then_some(rest)
}

fn with_detail(text: String, message: &str) -> String {
    match server_detail(message) {
        Some(d) => format!("{text}: {d}"),
        None => text,
    }
}

/// The whole stderr line for `command` (without its dash, e.g. `ls`) failing with `err`.
pub fn error_line(command: &str, err: &Error, subject: Subject<'_>) -> String {
    format!("{command}: {}", error_text(command, err, subject))
}

/// The message part of [`error_line`].
pub fn error_text(command: &str, err: &Error, subject: Subject<'_>) -> String {
    let path = match subject {
        Subject::Path(p) => p,
        // Which side a rename error concerns: the destination for what is wrong with the
        // destination, else the source.
        Subject::Move { src, dst } => match err.code {
            ErrorCode::AlreadyExists
            | ErrorCode::NotFound
            | ErrorCode::NotADirectory
            | ErrorCode::IsADirectory
            | ErrorCode::NotEmpty => dst,
            _ => src,
        },
    };
    let detail = |text: &str| match server_detail(&err.message) {
        Some(d) => format!("`{path}': {text}: {d}"),
        None => format!("`{path}': {text}"),
    };
    match err.code {
        ErrorCode::PermissionDenied => {
            if err.message.starts_with("Permission denied") {
                err.message.clone()
            } else {
                format!("Permission denied: `{path}'")
            }
        }
        ErrorCode::SubdirOfItself => match subject {
            Subject::Move { src, dst } => {
                format!("`{src}' to `{dst}': is a subdirectory of itself")
            }
            Subject::Path(p) => format!("`{p}': is a subdirectory of itself"),
        },
        ErrorCode::NotPermitted if command == "chmod" => with_detail(
            format!("changing permissions of '{path}': Operation not permitted"),
            &err.message,
        ),
        ErrorCode::NotPermitted if command == "chown" || command == "chgrp" => with_detail(
            format!("changing ownership of '{path}': Operation not permitted"),
            &err.message,
        ),
        ErrorCode::NotPermitted => detail("Operation not permitted"),
        ErrorCode::NoXattr if command == "getfattr" => {
            "At least one of the attributes provided was not found.".to_string()
        }
        ErrorCode::NoXattr if command == "setfattr" => {
            "No matching attributes found for remove operation".to_string()
        }
        ErrorCode::NoXattr => detail("No such attribute"),
        ErrorCode::InvalidArgument => detail("Invalid argument"),
        ErrorCode::LeaseHeld => detail("File is being written by another client"),
        ErrorCode::LeaseExpired => detail("The write lease on the file was lost"),
        ErrorCode::NoSpace => detail("No space left on device"),
        ErrorCode::BlockMissing => {
            // The client's own text already names the file and the block.
            if err.message.starts_with("Could not obtain block") {
                err.message.clone()
            } else {
                detail("Could not obtain block")
            }
        }
        code => match posix_text(code) {
            Some(text) => format!("`{path}': {text}"),
            None => detail("Input/output error"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: ErrorCode) -> Error {
        Error::new(code, "")
    }

    #[test]
    fn posix_errors_read_as_in_hdfs() {
        let p = Subject::Path("/x");
        assert_eq!(
            error_line("ls", &err(ErrorCode::NotFound), p),
            "ls: `/x': No such file or directory"
        );
        assert_eq!(
            error_line("mkdir", &err(ErrorCode::AlreadyExists), p),
            "mkdir: `/x': File exists"
        );
        assert_eq!(
            error_line(
                "mkdir",
                &err(ErrorCode::NotADirectory),
                Subject::Path("/file/sub")
            ),
            "mkdir: `/file/sub': Is not a directory"
        );
        assert_eq!(
            error_line("rm", &err(ErrorCode::IsADirectory), Subject::Path("/d")),
            "rm: `/d': Is a directory"
        );
        assert_eq!(
            error_line("rmdir", &err(ErrorCode::NotEmpty), Subject::Path("/d")),
            "rmdir: `/d': Directory is not empty"
        );
    }

    #[test]
    fn moves_name_the_right_side() {
        let m = Subject::Move {
            src: "/a",
            dst: "/a/b/a",
        };
        assert_eq!(
            error_line("mv", &err(ErrorCode::SubdirOfItself), m),
            "mv: `/a' to `/a/b/a': is a subdirectory of itself"
        );
        let m = Subject::Move {
            src: "/s",
            dst: "/d",
        };
        assert_eq!(
            error_line("mv", &err(ErrorCode::AlreadyExists), m),
            "mv: `/d': File exists"
        );
        assert_eq!(
            error_line(
                "mv",
                &err(ErrorCode::Root),
                Subject::Move {
                    src: "/",
                    dst: "/x"
                }
            ),
            "mv: `/': Input/output error"
        );
    }

    #[test]
    fn permission_errors_keep_the_namenode_text() {
        let e = Error::new(
            ErrorCode::PermissionDenied,
            "Permission denied: user=alice, access=WRITE, inode=\"/user/bob\":1002:100:drwxr-xr-x",
        );
        assert_eq!(
            error_line("mkdir", &e, Subject::Path("/user/bob/x")),
            "mkdir: Permission denied: user=alice, access=WRITE, inode=\"/user/bob\":1002:100:drwxr-xr-x"
        );
        assert_eq!(
            error_line("ls", &err(ErrorCode::PermissionDenied), Subject::Path("/p")),
            "ls: Permission denied: `/p'"
        );
    }

    #[test]
    fn command_specific_wording() {
        let p = Subject::Path("/f");
        assert_eq!(
            error_line("chmod", &err(ErrorCode::NotPermitted), p),
            "chmod: changing permissions of '/f': Operation not permitted"
        );
        assert_eq!(
            error_line("chgrp", &err(ErrorCode::NotPermitted), p),
            "chgrp: changing ownership of '/f': Operation not permitted"
        );
        assert_eq!(
            error_line("getfattr", &err(ErrorCode::NoXattr), p),
            "getfattr: At least one of the attributes provided was not found."
        );
        assert_eq!(
            error_line("setfattr", &err(ErrorCode::NoXattr), p),
            "setfattr: No matching attributes found for remove operation"
        );
    }

    #[test]
    fn data_path_errors() {
        let e = Error::new(
            ErrorCode::LeaseHeld,
            "`/f': lease held by client 0a1b until 12:00:00",
        );
        assert_eq!(
            error_line("put", &e, Subject::Path("/f")),
            "put: `/f': File is being written by another client: lease held by client 0a1b until 12:00:00"
        );
        let e = Error::new(
            ErrorCode::NoSpace,
            "only 3 block servers are live, RS-4-2-1024k needs 6",
        );
        assert_eq!(
            error_line("put", &e, Subject::Path("/f")),
            "put: `/f': No space left on device: only 3 block servers are live, RS-4-2-1024k needs 6"
        );
        let e = Error::new(
            ErrorCode::BlockMissing,
            "Could not obtain block blk_7 of /f (block 0 of the file): 3 of the 4 shards needed are available",
        );
        assert_eq!(
            error_line("cat", &e, Subject::Path("/f")),
            "cat: Could not obtain block blk_7 of /f (block 0 of the file): 3 of the 4 shards needed are available"
        );
        assert_eq!(
            error_line("cat", &err(ErrorCode::BlockMissing), Subject::Path("/f")),
            "cat: `/f': Could not obtain block"
        );
    }

    #[test]
    fn everything_else_is_an_io_error_with_detail() {
        let e = Error::new(ErrorCode::Unavailable, "no namenode answered");
        assert_eq!(
            error_line("ls", &e, Subject::Path("/x")),
            "ls: `/x': Input/output error: no namenode answered"
        );
        assert_eq!(
            error_line("ls", &err(ErrorCode::Internal), Subject::Path("/x")),
            "ls: `/x': Input/output error"
        );
        let e = Error::new(ErrorCode::InvalidArgument, "bad name '.'");
        assert_eq!(
            error_line("mkdir", &e, Subject::Path("/a/.")),
            "mkdir: `/a/.': Invalid argument: bad name '.'"
        );
        // The namenode's own path and wording are not repeated.
        let e = Error::new(
            ErrorCode::InvalidArgument,
            "`/abs/f': Invalid argument: xattr name \"x\" lacks a prefix",
        );
        assert_eq!(
            error_line("setfattr", &e, Subject::Path("f")),
            "setfattr: `f': Invalid argument: xattr name \"x\" lacks a prefix"
        );
        let e = Error::new(
            ErrorCode::Root,
            "`/': Device or resource busy: the root directory cannot be removed or renamed",
        );
        assert_eq!(
            error_line("rm", &e, Subject::Path("/")),
            "rm: `/': Input/output error: the root directory cannot be removed or renamed"
        );
        let e = Error::new(
            ErrorCode::NotPermitted,
            "`/f': Operation not permitted: not the owner",
        );
        assert_eq!(
            error_line("chmod", &e, Subject::Path("/f")),
            "chmod: changing permissions of '/f': Operation not permitted: not the owner"
        );
        assert_eq!(
            error_line("touchz", &e, Subject::Path("/f")),
            "touchz: `/f': Operation not permitted: not the owner"
        );
        assert_eq!(server_detail("`/x': Invalid argument"), None);
        assert_eq!(server_detail("plain words"), Some("plain words"));
    }
}
