//! Looking at the namespace as a whole through the client library: recursive walks, a snapshot
//! that two states can be compared by, and error-code assertions that print what came instead.

use std::collections::BTreeMap;
use std::fmt::Debug;

use arbor_client::Client;
use arbor_proto::namenode::{ErrorCode, FileStatus};
use arbor_proto::records::InodeKind;

/// Joins a directory path and a name.
pub fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Every entry under `root` (not `root` itself), path -> status, walking directories
/// breadth-first with full (paged) listings.
pub async fn walk(client: &Client, root: &str) -> BTreeMap<String, FileStatus> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_string()];
    while let Some(dir) = dirs.pop() {
        let entries = client
            .list(&dir)
            .await
            .unwrap_or_else(|e| panic!("list {dir}: {:?} {}", e.code, e.message));
        for entry in entries {
            let path = join(&dir, &entry.name);
            let status = entry.status.clone().unwrap_or_default();
            if status.kind == InodeKind::Directory as i32 {
                dirs.push(path.clone());
            }
            out.insert(path, status);
        }
    }
    out
}

/// One line per entry under `root` (and `root` itself), with every attribute a failed operation
/// must leave alone (access times excluded: reads may touch them).
pub async fn snapshot(client: &Client, root: &str) -> Vec<String> {
    let top = client
        .stat(root)
        .await
        .unwrap_or_else(|e| panic!("stat {root}: {:?} {}", e.code, e.message));
    let mut lines = vec![describe(root, &top)];
    for (path, status) in walk(client, root).await {
        lines.push(describe(&path, &status));
    }
    lines
}

fn describe(path: &str, s: &FileStatus) -> String {
    format!(
        "{path} kind={} ino={} mode={:o} uid={} gid={} size={} mtime={} ctime={} children={} \
         nlink={} target={:?}",
        s.kind,
        s.ino,
        s.mode,
        s.uid,
        s.gid,
        s.size,
        s.mtime_ns,
        s.ctime_ns,
        s.children,
        s.nlink,
        s.symlink_target
    )
}

/// Asserts that `result` failed with `want`; returns the error's message.
#[track_caller]
pub fn expect_code<T: Debug>(
    result: Result<T, arbor_client::Error>,
    want: ErrorCode,
    what: &str,
) -> String {
    match result {
        Ok(v) => panic!("{what}: expected {want:?}, got success {v:?}"),
        Err(e) => {
            assert_eq!(
                e.code, want,
                "{what}: expected {want:?}, got {:?}: {}",
                e.code, e.message
            );
            e.message
        }
    }
}

/// Unwraps a library result with the error code and message in the panic.
#[track_caller]
pub fn ok<T>(result: Result<T, arbor_client::Error>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: {:?}: {}", e.code, e.message),
    }
}

/// Whether a status is a directory.
pub fn is_dir(status: &FileStatus) -> bool {
    status.kind == InodeKind::Directory as i32
}

/// Whether a status is a regular file.
pub fn is_file(status: &FileStatus) -> bool {
    status.kind == InodeKind::File as i32
}
