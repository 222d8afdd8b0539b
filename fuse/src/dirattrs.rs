//! The last status of each directory this mount fetched, kept for the attribute timeout and
//! moved forward by this mount's own additions to it. The kernel drops a directory's cached
//! attributes after every entry made in it, and its next path walk through the directory asks
//! for them again (to check search permission): without this, every create in a directory
//! would cost a second namenode call for the directory's status.
//!
//! Invariants: a status is served at most one attribute timeout after the namenode gave it
//! (so never staler than the kernel's own cache may be); an addition through this mount sets
//! the copy's mtime and ctime to the new entry's ctime (the namenode gives the parent the same
//! time in the same transaction) and counts the entry; any other change through this mount
//! drops the copy, so it is fetched again; the table is bounded.

use std::time::Duration;

use arbor_client::{FileStatus, InodeKind};

use crate::expiring::Expiring;

/// The directory statuses of one mount.
pub struct DirAttrs {
    dirs: Expiring<FileStatus>,
}

fn is_dir(s: &FileStatus) -> bool {
    s.kind == InodeKind::Directory as i32
}

impl DirAttrs {
    /// Statuses are served for `ttl` (the attribute timeout; zero turns this off).
    pub fn new(ttl: Duration) -> DirAttrs {
        DirAttrs {
            dirs: Expiring::new(ttl),
        }
    }

    /// The namenode just gave `status` (any kind; only directories are kept).
    pub fn fetched(&self, status: &FileStatus) {
        if is_dir(status) {
            self.dirs.insert(status.ino, status.clone());
        }
    }

    /// Directory `ino`'s status and how much longer it may be served, if it may.
    pub fn get(&self, ino: u64) -> Option<(FileStatus, Duration)> {
        self.dirs.with(ino, |s, left| (s.clone(), left))
    }

    /// This mount made `child` in directory `parent`.
    pub fn added(&self, parent: u64, child: &FileStatus) {
        self.dirs.with(parent, |s, _| {
            s.mtime_ns = s.mtime_ns.max(child.ctime_ns);
            s.ctime_ns = s.ctime_ns.max(child.ctime_ns);
            s.children += 1;
        });
    }

    /// Directory `ino` changed in a way the copy cannot follow.
    pub fn changed(&self, ino: u64) {
        self.dirs.remove(ino);
    }

    /// Forget every copy (after a rename or rmdir, which may move or end directories).
    pub fn clear(&self) {
        self.dirs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(ino: u64, mtime: i64) -> FileStatus {
        FileStatus {
            ino,
            kind: InodeKind::Directory as i32,
            mtime_ns: mtime,
            ctime_ns: mtime,
            ..Default::default()
        }
    }

    #[test]
    fn additions_move_the_copy_forward_and_changes_drop_it() {
        let d = DirAttrs::new(Duration::from_secs(5));
        assert!(d.get(7).is_none());
        d.fetched(&dir(7, 100));
        let child = FileStatus {
            ino: 9,
            ctime_ns: 250,
            ..Default::default()
        };
        d.added(7, &child);
        let (s, _) = d.get(7).expect("kept");
        assert_eq!((s.mtime_ns, s.ctime_ns, s.children), (250, 250, 1));
        d.changed(7);
        assert!(d.get(7).is_none());
        d.fetched(&child);
        assert!(d.get(9).is_none(), "only directories are kept");
    }

    #[test]
    fn copies_end_with_the_attribute_timeout() {
        let d = DirAttrs::new(Duration::from_millis(30));
        d.fetched(&dir(7, 1));
        let (_, left) = d.get(7).expect("fresh");
        assert!(left <= Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(40));
        assert!(d.get(7).is_none());
        let off = DirAttrs::new(Duration::ZERO);
        off.fetched(&dir(7, 1));
        assert!(off.get(7).is_none());
    }
}
