//! The last status of each inode this mount fetched or committed, kept for the attribute
//! timeout, so the kernel's getattr after a close, an open or one of our own additions costs
//! no namenode call. The kernel drops a file's attributes at every write and a directory's
//! after every entry made in it, and asks again at the next stat or path walk: without this,
//! a create, a write and a stat would cost a namenode call more each.
//!
//! Invariants: a status is served at most one attribute timeout after the namenode gave it
//! (so never staler than the kernel's own cache may be), and sooner dropped when the change
//! streams show a newer change (see `watch`); an addition through this mount sets a
//! directory copy's mtime and ctime to the new entry's ctime (the namenode gives the parent
//! the same time in the same transaction) and counts the entry; any other change through this
//! mount drops the copy, so it is fetched again; a file with a writer open here is never
//! served from this table (the writer knows better); the table is bounded.
use std::time::Duration;

use arbor_client::{FileStatus, InodeKind};

use crate::expiring::Expiring;

/// Statuses kept at most (a few hundred bytes each).
pub const MAX_STATUSES: usize = 65_536;

/// The inode statuses of one mount.
pub struct Statuses {
    inodes: Expiring<FileStatus>,
}

fn is_dir(s: &FileStatus) -> bool {
    s.kind == InodeKind::Directory as i32
}

impl Statuses {
    /// Statuses are served for `ttl` (the attribute timeout; zero turns this off).
    pub fn new(ttl: Duration) -> Statuses {
        Statuses {
            inodes: Expiring::bounded(ttl, MAX_STATUSES),
        }
    }

    /// The namenode just gave `status`.
    pub fn fetched(&self, status: &FileStatus) {
        self.inodes.insert(status.ino, status.clone());
    }

    /// Inode `ino`'s status and how much longer it may be served, if it may.
    pub fn get(&self, ino: u64) -> Option<(FileStatus, Duration)> {
        self.inodes.with(ino, |s, left| (s.clone(), left))
    }

    /// This mount made `child` in directory `parent`.
    pub fn added(&self, parent: u64, child: &FileStatus) {
        self.inodes.with(parent, |s, _| {
            if !is_dir(s) {
                return;
            }
            s.mtime_ns = s.mtime_ns.max(child.ctime_ns);
            s.ctime_ns = s.ctime_ns.max(child.ctime_ns);
            s.children += 1;
        });
    }

    /// Inode `ino` changed in a way the copy cannot follow.
    pub fn changed(&self, ino: u64) {
        self.inodes.remove(ino);
    }

    /// Forget every copy (after a rename or rmdir, which may move or end directories).
    pub fn clear(&self) {
        self.inodes.clear();
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
        let d = Statuses::new(Duration::from_secs(5));
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
        d.added(9, &child);
        let (s, _) = d.get(9).expect("files are kept too");
        assert_eq!(s.children, 0, "additions count in directories only");
    }

    #[test]
    fn copies_end_with_the_attribute_timeout() {
        let d = Statuses::new(Duration::from_millis(30));
        d.fetched(&dir(7, 1));
        let (_, left) = d.get(7).expect("fresh");
        assert!(left <= Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(40));
        assert!(d.get(7).is_none());
        let off = Statuses::new(Duration::ZERO);
        off.fetched(&dir(7, 1));
        assert!(off.get(7).is_none());
    }
}
