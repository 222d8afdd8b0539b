//! Attributes as stored and as shown: decoding the rows the namespace keeps (dentries, inodes,
//! directory counter rows), building new inodes, and the `FileStatus` a client sees. A
//! directory's status merges its InodeRecord with its counter row (entry counts and the latest
//! mtime/ctime), because creates in a directory change the counter row commutatively and never
//! the directory's InodeRecord.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use arbor_proto::namenode::FileStatus;
use arbor_proto::records::{DentryRecord, InodeKind, InodeRecord};
use prost::Message;

use crate::error::NnError;
use crate::keys::{self, DirCounter, Ino};
use crate::txn::{CounterOp, Txn, Versioned};

/// Wall-clock time in nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

pub fn kind_of(inode: &InodeRecord) -> InodeKind {
    InodeKind::try_from(inode.kind).unwrap_or(InodeKind::KindUnspecified)
}

pub fn dentry_kind(d: &DentryRecord) -> InodeKind {
    InodeKind::try_from(d.kind).unwrap_or(InodeKind::KindUnspecified)
}

pub fn decode_inode(row: &Versioned) -> Result<Option<InodeRecord>, NnError> {
    if !row.exists() {
        return Ok(None);
    }
    Ok(Some(InodeRecord::decode(row.value.as_slice())?))
}

pub fn decode_dentry(row: &Versioned) -> Result<Option<DentryRecord>, NnError> {
    if !row.exists() {
        return Ok(None);
    }
    Ok(Some(DentryRecord::decode(row.value.as_slice())?))
}

/// A counter row's fields; a missing row reads as zeros.
pub fn decode_counter(row: &Versioned) -> [i64; 4] {
    DirCounter::decode(&row.value)
}

/// The encoded counter row of a new directory.
pub fn counter_row(children: i64, subdirs: i64, mtime_ns: i64, ctime_ns: i64) -> Vec<u8> {
    let mut v = Vec::with_capacity(DirCounter::WIDTH as usize * 8);
    for f in [children, subdirs, mtime_ns, ctime_ns] {
        v.extend_from_slice(&f.to_le_bytes());
    }
    v
}

pub fn dentry_value(ino: Ino, kind: InodeKind) -> Vec<u8> {
    DentryRecord {
        ino,
        kind: kind as i32,
    }
    .encode_to_vec()
}

/// A new inode's record: owner = the caller, group = the parent's (the BSD rule HDFS follows).
pub fn new_inode(
    kind: InodeKind,
    mode: u32,
    uid: u32,
    gid: u32,
    parent: Ino,
    now: i64,
) -> InodeRecord {
    InodeRecord {
        kind: kind as i32,
        mode: mode & 0o7777,
        uid,
        gid,
        size: 0,
        mtime_ns: now,
        atime_ns: now,
        ctime_ns: now,
        parent: if kind == InodeKind::Directory {
            parent
        } else {
            0
        },
        nlink: if kind == InodeKind::Directory { 2 } else { 1 },
        symlink_target: String::new(),
        ec_policy: String::new(),
        block_size: 0,
        btime_ns: now,
    }
}

/// What a client sees of `inode`; `counter` is the directory's counter row.
pub fn file_status(
    ino: Ino,
    name: &str,
    inode: &InodeRecord,
    counter: Option<[i64; 4]>,
) -> FileStatus {
    let mut st = FileStatus {
        ino,
        kind: inode.kind,
        mode: inode.mode,
        uid: inode.uid,
        gid: inode.gid,
        size: inode.size,
        mtime_ns: inode.mtime_ns,
        atime_ns: inode.atime_ns,
        ctime_ns: inode.ctime_ns,
        nlink: inode.nlink,
        children: 0,
        symlink_target: inode.symlink_target.clone(),
        block_size: inode.block_size,
        ec_policy: inode.ec_policy.clone(),
        name: name.to_string(),
        btime_ns: inode.btime_ns,
    };
    if kind_of(inode) == InodeKind::Directory {
        let c = counter.unwrap_or_default();
        st.size = 0;
        st.children = c[DirCounter::CHILDREN as usize].max(0) as u64;
        st.nlink =
            2u32.saturating_add(c[DirCounter::SUBDIRS as usize].clamp(0, u32::MAX as i64) as u32);
        st.mtime_ns = st.mtime_ns.max(c[DirCounter::MTIME_NS as usize]);
        st.ctime_ns = st.ctime_ns.max(c[DirCounter::CTIME_NS as usize]);
    }
    st
}

/// Commutative changes to directories' counter rows, gathered over an operation so that each
/// row gets one update (rename touches two directories, maybe the same one twice).
#[derive(Default)]
pub struct CounterUpdates {
    dirs: BTreeMap<Ino, (i64, i64, i64, i64)>,
}

impl CounterUpdates {
    /// `children`/`subdirs` are added; `mtime`/`ctime` (0 = unchanged) are maxed.
    pub fn change(&mut self, dir: Ino, children: i64, subdirs: i64, mtime: i64, ctime: i64) {
        let e = self.dirs.entry(dir).or_default();
        e.0 += children;
        e.1 += subdirs;
        e.2 = e.2.max(mtime);
        e.3 = e.3.max(ctime);
    }

    /// An entry list change at `now`: mtime and ctime move.
    pub fn entries(&mut self, dir: Ino, children: i64, subdirs: i64, now: i64) {
        self.change(dir, children, subdirs, now, now);
    }

    /// Buffers the updates in `txn`.
    pub fn apply<T: Txn>(self, txn: &mut T) {
        for (dir, (children, subdirs, mtime, ctime)) in self.dirs {
            let mut fields = Vec::with_capacity(4);
            if children != 0 {
                fields.push((DirCounter::CHILDREN, CounterOp::Add, children));
            }
            if subdirs != 0 {
                fields.push((DirCounter::SUBDIRS, CounterOp::Add, subdirs));
            }
            if mtime != 0 {
                fields.push((DirCounter::MTIME_NS, CounterOp::Max, mtime));
            }
            if ctime != 0 {
                fields.push((DirCounter::CTIME_NS, CounterOp::Max, ctime));
            }
            if !fields.is_empty() {
                txn.counter(keys::counter(dir), DirCounter::WIDTH, fields);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_status_merges_counter_row() {
        let mut d = new_inode(InodeKind::Directory, 0o40755, 5, 6, 1, 100);
        assert_eq!(d.mode, 0o755);
        d.size = 99;
        let st = file_status(42, "d", &d, Some([3, 2, 500, 50]));
        assert_eq!(st.children, 3);
        assert_eq!(st.nlink, 4);
        assert_eq!(st.mtime_ns, 500);
        assert_eq!(st.ctime_ns, 100);
        assert_eq!(st.size, 0);
        let f = new_inode(InodeKind::File, 0o644, 5, 6, 1, 100);
        assert_eq!(f.parent, 0);
        assert_eq!(file_status(43, "f", &f, None).nlink, 1);
    }

    #[test]
    fn counter_row_round_trips() {
        let v = counter_row(1, 2, 3, 4);
        assert_eq!(DirCounter::decode(&v), [1, 2, 3, 4]);
    }
}
