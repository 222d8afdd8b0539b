//! Arbor file status → kernel attributes, and the mode-bit check a local file system applies
//! (used for `access(2)` and for opening a file for writing, which reaches the namenode only
//! at the first write). Invariant: the kind bits come from the inode kind, the permission
//! bits from the inode mode, never mixed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbor_client::{FileStatus, Identity, InodeKind};
use fuser::{FileAttr, FileType, INodeNo};

/// Block size reported to `stat` (what `cp` and friends size their buffers by).
pub const BLKSIZE: u32 = 1 << 20;

pub fn kind_of(status: &FileStatus) -> FileType {
    match InodeKind::try_from(status.kind) {
        Ok(InodeKind::Directory) => FileType::Directory,
        Ok(InodeKind::Symlink) => FileType::Symlink,
        _ => FileType::RegularFile,
    }
}

pub fn time_of(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

/// Nanoseconds since the epoch.
pub fn ns_of(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// The kernel's view of `status`; `size` overrides the recorded size (a file being written
/// through this mount is as long as its writer says).
/// The attributes of a negative entry: inode 0 tells the kernel the name does not exist.
pub fn absent() -> FileAttr {
    attr_of(&FileStatus::default(), None)
}

pub fn attr_of(status: &FileStatus, size: Option<u64>) -> FileAttr {
    let kind = kind_of(status);
    let size = match kind {
        FileType::Symlink => status.symlink_target.len() as u64,
        FileType::Directory => 4096,
        _ => size.unwrap_or(status.size),
    };
    let nlink = match kind {
        FileType::Directory => 2,
        _ => status.nlink.max(1),
    };
    let mtime = time_of(status.mtime_ns);
    FileAttr {
        ino: INodeNo(status.ino),
        size,
        blocks: size.div_ceil(512),
        atime: if status.atime_ns != 0 {
            time_of(status.atime_ns)
        } else {
            mtime
        },
        mtime,
        ctime: if status.ctime_ns != 0 {
            time_of(status.ctime_ns)
        } else {
            mtime
        },
        crtime: time_of(status.btime_ns),
        kind,
        perm: (status.mode & 0o7777) as u16,
        nlink,
        uid: status.uid,
        gid: status.gid,
        rdev: 0,
        blksize: BLKSIZE,
        flags: 0,
    }
}

/// Whether `who` may access `status` for `mask` (R_OK 4, W_OK 2, X_OK 1), by mode bits as a
/// local file system decides: root passes read/write always and execute when any x bit is set
/// (or for directories); others use the owner, group or other class.
pub fn allowed(status: &FileStatus, who: &Identity, mask: u32) -> bool {
    let mask = mask & 0o7;
    if mask == 0 {
        return true;
    }
    let mode = status.mode & 0o777;
    if who.uid == 0 {
        let is_dir = kind_of(status) == FileType::Directory;
        return mask & 1 == 0 || is_dir || mode & 0o111 != 0;
    }
    let class = if who.uid == status.uid {
        (mode >> 6) & 7
    } else if who.gids.contains(&status.gid) {
        (mode >> 3) & 7
    } else {
        mode & 7
    };
    class & mask == mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(mode: u32, uid: u32, gid: u32) -> FileStatus {
        FileStatus {
            ino: 42,
            kind: InodeKind::File as i32,
            mode,
            uid,
            gid,
            size: 10,
            nlink: 1,
            mtime_ns: 1_500_000_000_123,
            ..Default::default()
        }
    }

    fn who(uid: u32, gids: &[u32]) -> Identity {
        Identity {
            uid,
            gids: gids.to_vec(),
            user: uid.to_string(),
        }
    }

    #[test]
    fn attributes_carry_kind_mode_and_overridden_size() {
        let a = attr_of(&file(0o640, 7, 8), Some(99));
        assert_eq!(a.kind, FileType::RegularFile);
        assert_eq!(a.perm, 0o640);
        assert_eq!(a.size, 99);
        assert_eq!(a.ino, INodeNo(42));
        assert_eq!(ns_of(a.mtime), 1_500_000_000_123);
        let link = FileStatus {
            kind: InodeKind::Symlink as i32,
            symlink_target: "../x".into(),
            ..file(0o777, 0, 0)
        };
        assert_eq!(attr_of(&link, None).size, 4);
        assert_eq!(attr_of(&link, None).kind, FileType::Symlink);
    }

    #[test]
    fn mode_bits_decide_by_class() {
        let f = file(0o640, 1000, 100);
        assert!(allowed(&f, &who(1000, &[1000]), 6));
        assert!(!allowed(&f, &who(1000, &[1000]), 1));
        assert!(allowed(&f, &who(2000, &[100]), 4));
        assert!(!allowed(&f, &who(2000, &[100]), 2));
        assert!(!allowed(&f, &who(3000, &[3000]), 4));
        assert!(allowed(&f, &who(0, &[0]), 6));
        assert!(!allowed(&f, &who(0, &[0]), 1));
        assert!(allowed(&file(0o600, 1, 1), &who(5, &[5]), 0));
    }
}
