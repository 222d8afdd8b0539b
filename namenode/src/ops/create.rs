//! Create: a new empty file (the data path writes its contents later). Its inode takes its
//! directory's virtual partition, so a create touches one shard. With overwrite, an existing
//! file is truncated to zero length instead; a directory is still IS_A_DIRECTORY.

use arbor_proto::namenode::FileStatus;
use arbor_proto::records::InodeKind;

use crate::error::NnError;
use crate::ops::{Namespace, NewEntry, Runner, add_entry};
use crate::path::NsPath;
use crate::perm::Caller;
use crate::txn::Store;

pub async fn create<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    path: &str,
    mode: u32,
    overwrite: bool,
) -> Result<FileStatus, NnError> {
    let path = NsPath::parse(path)?;
    if path.is_root() {
        return Err(if overwrite {
            NnError::IsADirectory(path.text())
        } else {
            NnError::AlreadyExists(path.text())
        });
    }
    let mut runner = Runner::new(ns, caller, &path.text());
    loop {
        let mut txn = ns.begin("create");
        let mut exo = runner.exo();
        let presume = runner.presume();
        let result = async {
            let walk = ns
                .resolver
                .walk_to_new(&mut txn, caller, &path, presume)
                .await?;
            let parent = walk.parent()?;
            let entry = NewEntry {
                kind: InodeKind::File,
                mode,
                symlink_target: "",
                overwrite,
            };
            add_entry(ns, &mut txn, caller, &mut exo, &walk, parent, &path, entry).await
        }
        .await;
        if let Some(status) = runner.finish(txn, exo, result).await? {
            return Ok(status);
        }
    }
}
