//! Readlink: the target of a symlink, as it was given.

use arbor_proto::namenode::ReadlinkReply;
use arbor_proto::records::InodeKind;

use crate::error::NnError;
use crate::ops::{Namespace, Outcome, Runner};
use crate::path::NsPath;
use crate::perm::Caller;
use crate::txn::Store;

pub async fn readlink<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    path: &str,
) -> Result<String, NnError> {
    let path = NsPath::parse(path)?;
    let mut runner = Runner::new(ns, caller, &path.text());
    loop {
        let mut txn = ns.begin("readlink");
        let exo = runner.exo();
        let result = async {
            let walk = ns.resolver.walk(&mut txn, caller, &path, false).await?;
            let node = walk.target()?;
            if node.kind() != InodeKind::Symlink {
                return Err(NnError::invalid(&path.text(), "not a symbolic link"));
            }
            Ok::<_, NnError>(Outcome::Done(ReadlinkReply {
                target: node.inode.symlink_target.clone(),
            }))
        }
        .await;
        if let Some(reply) = runner.finish(txn, exo, result).await? {
            return Ok(reply.target);
        }
    }
}
