//! Permission checks, HDFS-style POSIX model: uid 0 is the superuser and passes every check;
//! anyone else gets the owner, group or other bits of the inode (the first class that applies,
//! as in POSIX). Traversal needs EXECUTE on every directory looked into; creating, removing or
//! renaming an entry needs WRITE+EXECUTE on its directory; with the sticky bit on a directory
//! only the entry's owner, the directory's owner or the superuser may remove or rename it.

use arbor_proto::namenode::CallContext;
use arbor_proto::records::{InodeKind, InodeRecord};

use crate::error::NnError;

pub const READ: u32 = 4;
pub const WRITE: u32 = 2;
pub const EXECUTE: u32 = 1;
pub const STICKY: u32 = 0o1000;

/// Who calls, and which call this is (the ids make retries of one call exactly-once).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    /// The first is the primary group.
    pub gids: Vec<u32>,
    /// For messages; the uid's number when the client sent no name.
    pub user: String,
    /// Empty: no exactly-once for this caller.
    pub client_id: Vec<u8>,
    pub call_id: u64,
}

impl Caller {
    pub fn from_ctx(ctx: Option<&CallContext>) -> Self {
        match ctx {
            None => Caller {
                uid: 0,
                gids: vec![0],
                user: "0".to_string(),
                ..Default::default()
            },
            Some(c) => Caller {
                uid: c.uid,
                gids: c.gids.clone(),
                user: if c.user.is_empty() {
                    c.uid.to_string()
                } else {
                    c.user.clone()
                },
                client_id: c.client_id.clone(),
                call_id: c.call_id,
            },
        }
    }

    /// A caller without call ids (internal work, tests).
    pub fn user(uid: u32, gids: &[u32], name: &str) -> Self {
        Caller {
            uid,
            gids: gids.to_vec(),
            user: name.to_string(),
            ..Default::default()
        }
    }

    pub fn root() -> Self {
        Caller::user(0, &[0], "root")
    }

    /// The same identity with call ids for exactly-once.
    pub fn with_call(mut self, client_id: &[u8], call_id: u64) -> Self {
        self.client_id = client_id.to_vec();
        self.call_id = call_id;
        self
    }

    pub fn is_superuser(&self) -> bool {
        self.uid == 0
    }

    pub fn in_group(&self, gid: u32) -> bool {
        self.gids.contains(&gid)
    }

    pub fn owns(&self, inode: &InodeRecord) -> bool {
        self.uid == inode.uid
    }
}

/// HDFS's name for a set of permission bits (`FsAction`).
pub fn action_name(bits: u32) -> &'static str {
    match bits & 7 {
        0 => "NONE",
        1 => "EXECUTE",
        2 => "WRITE",
        3 => "WRITE_EXECUTE",
        4 => "READ",
        5 => "READ_EXECUTE",
        6 => "READ_WRITE",
        _ => "ALL",
    }
}

/// `drwxr-xr-x`, with `s`/`S` for set-id bits and `t`/`T` for the sticky bit.
pub fn mode_string(kind: InodeKind, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(match kind {
        InodeKind::Directory => 'd',
        InodeKind::Symlink => 'l',
        _ => '-',
    });
    let special = [(0o4000, 's', 'S'), (0o2000, 's', 'S'), (0o1000, 't', 'T')];
    for (class, (bit, on, off)) in special.iter().enumerate() {
        let shift = 6 - 3 * class as u32;
        let bits = (mode >> shift) & 7;
        s.push(if bits & READ != 0 { 'r' } else { '-' });
        s.push(if bits & WRITE != 0 { 'w' } else { '-' });
        let x = bits & EXECUTE != 0;
        s.push(match (mode & bit != 0, x) {
            (true, true) => *on,
            (true, false) => *off,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

fn kind_of(inode: &InodeRecord) -> InodeKind {
    InodeKind::try_from(inode.kind).unwrap_or(InodeKind::KindUnspecified)
}

/// The bits of `inode` that apply to `caller`.
pub fn granted(caller: &Caller, inode: &InodeRecord) -> u32 {
    if caller.uid == inode.uid {
        (inode.mode >> 6) & 7
    } else if caller.in_group(inode.gid) {
        (inode.mode >> 3) & 7
    } else {
        inode.mode & 7
    }
}

/// Whether `caller` has all of `want` on `inode`.
pub fn allows(caller: &Caller, inode: &InodeRecord, want: u32) -> bool {
    caller.is_superuser() || granted(caller, inode) & want == want
}

/// Fails with PERMISSION_DENIED unless `caller` has all of `want` on `inode` (at `path`).
pub fn check(caller: &Caller, inode: &InodeRecord, path: &str, want: u32) -> Result<(), NnError> {
    if allows(caller, inode, want) {
        return Ok(());
    }
    Err(NnError::PermissionDenied(format!(
        "Permission denied: user={}, access={}, inode=\"{}\":{}:{}:{}",
        caller.user,
        action_name(want),
        path,
        inode.uid,
        inode.gid,
        mode_string(kind_of(inode), inode.mode)
    )))
}

/// The sticky-bit rule for removing or renaming `victim` (at `path`) out of `parent`.
pub fn check_sticky(
    caller: &Caller,
    parent: &InodeRecord,
    parent_path: &str,
    victim: &InodeRecord,
    path: &str,
) -> Result<(), NnError> {
    if parent.mode & STICKY == 0
        || caller.is_superuser()
        || caller.owns(parent)
        || caller.owns(victim)
    {
        return Ok(());
    }
    Err(NnError::PermissionDenied(format!(
        "Permission denied by sticky bit: user={}, path=\"{}\":{}:{}:{}, parent=\"{}\":{}:{}:{}",
        caller.user,
        path,
        victim.uid,
        victim.gid,
        mode_string(kind_of(victim), victim.mode),
        parent_path,
        parent.uid,
        parent.gid,
        mode_string(kind_of(parent), parent.mode)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbor_proto::namenode::ErrorCode;

    fn dir(uid: u32, gid: u32, mode: u32) -> InodeRecord {
        InodeRecord {
            kind: InodeKind::Directory as i32,
            uid,
            gid,
            mode,
            ..Default::default()
        }
    }

    #[test]
    fn mode_strings() {
        assert_eq!(mode_string(InodeKind::Directory, 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(InodeKind::File, 0o644), "-rw-r--r--");
        assert_eq!(mode_string(InodeKind::Directory, 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(InodeKind::Directory, 0o1776), "drwxrwxrwT");
        assert_eq!(mode_string(InodeKind::File, 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(InodeKind::Symlink, 0o777), "lrwxrwxrwx");
    }

    #[test]
    fn owner_then_group_then_other() {
        let d = dir(1001, 100, 0o750);
        let owner = Caller::user(1001, &[100], "bob");
        let member = Caller::user(1002, &[7, 100], "carol");
        let other = Caller::user(1003, &[7], "dave");
        assert!(allows(&owner, &d, READ | WRITE | EXECUTE));
        assert!(allows(&member, &d, READ | EXECUTE));
        assert!(!allows(&member, &d, WRITE));
        assert!(!allows(&other, &d, EXECUTE));
        assert!(allows(&Caller::root(), &d, WRITE));
        // The owner class applies even when it grants less than the group class.
        let d = dir(1001, 100, 0o070);
        assert!(!allows(&owner, &d, READ));
    }

    #[test]
    fn denial_message_names_user_access_and_inode() {
        let d = dir(1001, 1001, 0o755);
        let alice = Caller::user(1000, &[1000], "alice");
        let e = check(&alice, &d, "/user/bob", WRITE).unwrap_err();
        assert_eq!(e.code(), ErrorCode::PermissionDenied);
        assert_eq!(
            e.to_string(),
            "Permission denied: user=alice, access=WRITE, inode=\"/user/bob\":1001:1001:drwxr-xr-x"
        );
    }

    #[test]
    fn sticky_bit_limits_removal() {
        let tmp = dir(0, 0, 0o1777);
        let file = InodeRecord {
            kind: InodeKind::File as i32,
            uid: 1001,
            ..Default::default()
        };
        let bob = Caller::user(1001, &[1001], "bob");
        let alice = Caller::user(1000, &[1000], "alice");
        assert!(check_sticky(&bob, &tmp, "/tmp", &file, "/tmp/f").is_ok());
        assert!(check_sticky(&alice, &tmp, "/tmp", &file, "/tmp/f").is_err());
        assert!(check_sticky(&Caller::root(), &tmp, "/tmp", &file, "/tmp/f").is_ok());
        let plain = dir(0, 0, 0o777);
        assert!(check_sticky(&alice, &plain, "/tmp", &file, "/tmp/f").is_ok());
    }
}
