//! What the kernel's page cache holds of each file: the status (mtime, ctime, size) of the open
//! that last filled it. An open whose fresh status from the namenode is the same keeps the
//! pages (`FOPEN_KEEP_CACHE`), so re-reading a file nobody changed costs no read calls; any
//! other open lets the kernel drop them, as before.
//!
//! Invariants: an entry is only recorded from a status the namenode gave at open, never from
//! what this mount holds; a write, truncate or create through this mount, and a change seen on
//! the change streams, forget the entry; a file this mount is writing never keeps its pages;
//! the table is bounded.

use std::time::Duration;

use arbor_client::FileStatus;

use crate::expiring::Expiring;

/// Files remembered at most.
pub const MAX_FILES: usize = 65_536;
/// How long an entry lasts without an open (a bound on memory, not on correctness).
const KEEP_FOR: Duration = Duration::from_secs(3600);

type Version = (i64, i64, u64);

fn version(s: &FileStatus) -> Version {
    (s.mtime_ns, s.ctime_ns, s.size)
}

/// The page-cache versions of one mount.
pub struct Pages {
    files: Expiring<Version>,
}

impl Default for Pages {
    fn default() -> Self {
        Pages::new()
    }
}

impl Pages {
    pub fn new() -> Pages {
        Pages {
            files: Expiring::bounded(KEEP_FOR, MAX_FILES),
        }
    }

    /// A reading open of `ino` found `status`: whether the kernel may keep the pages it has.
    /// Records `status` as what the pages hold from now on.
    pub fn opened(&self, ino: u64, status: &FileStatus) -> bool {
        let now = version(status);
        let same = self.files.with(ino, |v, _| *v == now).unwrap_or(false);
        if !same {
            self.files.insert(ino, now);
        }
        same
    }

    /// `ino` changed (through this mount or elsewhere): its pages are not to be kept.
    pub fn forget(&self, ino: u64) {
        self.files.remove(ino);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(mtime: i64, size: u64) -> FileStatus {
        FileStatus {
            ino: 7,
            mtime_ns: mtime,
            ctime_ns: mtime,
            size,
            ..Default::default()
        }
    }

    #[test]
    fn pages_are_kept_only_while_the_file_is_unchanged() {
        let p = Pages::new();
        assert!(!p.opened(7, &st(1, 10)), "first open: nothing known");
        assert!(p.opened(7, &st(1, 10)), "unchanged: keep");
        assert!(!p.opened(7, &st(2, 10)), "a new mtime, same size: drop");
        assert!(p.opened(7, &st(2, 10)));
        p.forget(7);
        assert!(!p.opened(7, &st(2, 10)), "forgotten: drop");
    }
}
