//! Symlink: a new entry holding a target path, stored as given and never followed by the
//! namenode (paths are literal). Like a file, its inode takes its directory's partition.

use arbor_proto::namenode::FileStatus;
use arbor_proto::records::InodeKind;

use crate::error::NnError;
use crate::ops::{Namespace, NewEntry, Runner, add_entry};
use crate::path::NsPath;
use crate::perm::Caller;
use crate::txn::Store;

/// Longest symlink target, in bytes (PATH_MAX).
pub const MAX_TARGET: usize = 4096;

pub async fn symlink<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    target: &str,
    link: &str,
) -> Result<FileStatus, NnError> {
    let path = NsPath::parse(link)?;
    if target.is_empty() || target.contains('\0') {
        return Err(NnError::invalid(link, "empty symlink target or NUL in it"));
    }
    if target.len() > MAX_TARGET {
        return Err(NnError::NameTooLong(link.to_string()));
    }
    if path.is_root() {
        return Err(NnError::AlreadyExists(path.text()));
    }
    let mut runner = Runner::new(ns, caller, &path.text());
    loop {
        let mut txn = ns.begin("symlink");
        let mut exo = runner.exo();
        let presume = runner.presume();
        let result = async {
            let walk = ns
                .resolver
                .walk_to_new(&mut txn, caller, &path, presume)
                .await?;
            let parent = walk.parent()?;
            let entry = NewEntry {
                kind: InodeKind::Symlink,
                mode: 0o777,
                symlink_target: target,
                overwrite: false,
            };
            add_entry(ns, &mut txn, caller, &mut exo, &walk, parent, &path, entry).await
        }
        .await;
        if let Some(status) = runner.finish(txn, exo, result).await? {
            return Ok(status);
        }
    }
}
