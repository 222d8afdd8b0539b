//! GetFileInfo: the status of the entry a path names. A symlink is reported as itself.

use arbor_proto::namenode::FileStatus;

use crate::attrs;
use crate::error::NnError;
use crate::ops::{Namespace, Outcome, Runner};
use crate::path::NsPath;
use crate::perm::Caller;
use crate::txn::Store;

pub async fn stat<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    path: &str,
) -> Result<FileStatus, NnError> {
    let path = NsPath::parse(path)?;
    let mut runner = Runner::new(ns, caller, &path.text());
    loop {
        let mut txn = ns.begin("stat");
        let exo = runner.exo();
        let result = async {
            let walk = ns.resolver.walk(&mut txn, caller, &path, true).await?;
            let node = walk.target()?;
            Ok::<_, NnError>(Outcome::Done(attrs::file_status(
                node.ino,
                path.name(),
                &node.inode,
                node.counter,
            )))
        }
        .await;
        if let Some(status) = runner.finish(txn, exo, result).await? {
            return Ok(status);
        }
    }
}
