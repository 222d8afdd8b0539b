//! Mkdir, and `mkdir -p`. A new directory's inode takes a random virtual partition, so
//! directories (and with them their children) spread over the shards. With `parents`, each
//! missing ancestor is created by its own small transaction (an ancestor made meanwhile by
//! someone else is fine), and the retry record goes with the last component's transaction.

use arbor_proto::namenode::FileStatus;
use arbor_proto::records::InodeKind;

use crate::attrs;
use crate::error::NnError;
use crate::ops::{Exo, Namespace, NewEntry, Outcome, Runner, add_entry};
use crate::path::NsPath;
use crate::perm::Caller;
use crate::resolve::End;
use crate::txn::Store;

/// Permission bits an ancestor made by `mkdir -p` gets on top of the requested mode, so that
/// its creator can go on creating below it (as HDFS does).
const ANCESTOR_EXTRA: u32 = 0o300;

pub async fn mkdir<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    path: &str,
    mode: u32,
    parents: bool,
) -> Result<FileStatus, NnError> {
    let path = NsPath::parse(path)?;
    let mut runner = Runner::new(ns, caller, &path.text());
    loop {
        let mut txn = ns.begin("mkdir");
        let mut exo = runner.exo();
        // `mkdir -p` often finds the path made: only a plain mkdir presumes it absent.
        let presume = !parents && runner.presume();
        let (result, last) = attempt(
            ns, &mut txn, caller, &mut exo, &path, mode, parents, presume,
        )
        .await;
        match runner.finish(txn, exo, result).await? {
            Some(status) if last => return Ok(status),
            // An ancestor was made (or found made): go on with the next component.
            _ => continue,
        }
    }
}

/// One transaction: creates the first missing component. Also says whether that component
/// is the last (the call is then done).
#[allow(clippy::too_many_arguments)]
async fn attempt<S: Store>(
    ns: &Namespace<S>,
    txn: &mut S::Txn,
    caller: &Caller,
    exo: &mut Exo,
    path: &NsPath,
    mode: u32,
    parents: bool,
    presume: bool,
) -> (Result<Outcome<FileStatus>, NnError>, bool) {
    let walk = if presume {
        ns.resolver.walk_to_new(txn, caller, path, true).await
    } else {
        ns.resolver.walk(txn, caller, path, true).await
    };
    let walk = match walk {
        Ok(w) => w,
        Err(e) => return (Err(e), true),
    };
    let n = path.depth();
    match walk.end {
        End::Complete if parents => {
            let node = &walk.nodes[n];
            if node.is_dir() {
                let st = attrs::file_status(node.ino, path.name(), &node.inode, node.counter);
                (Ok(Outcome::Done(st)), true)
            } else {
                (Err(NnError::AlreadyExists(path.text())), true)
            }
        }
        End::Complete if n == 0 => (Err(NnError::AlreadyExists(path.text())), true),
        // Exists: add_entry checks the retry record (a retry of a call that made it) before
        // answering ALREADY_EXISTS.
        End::Complete => {
            let entry = NewEntry {
                kind: InodeKind::Directory,
                mode,
                symlink_target: "",
                overwrite: false,
            };
            let r = add_entry(ns, txn, caller, exo, &walk, &walk.nodes[n - 1], path, entry).await;
            (r, true)
        }
        End::NotDir(_) => (Err(NnError::NotADirectory(path.text())), true),
        End::Missing(i) if i + 1 < n && !parents => (Err(NnError::NotFound(path.text())), true),
        End::Missing(i) => {
            let last = i + 1 == n;
            let target = path.prefix(i + 1);
            let mode = if last { mode } else { mode | ANCESTOR_EXTRA };
            let entry = NewEntry {
                kind: InodeKind::Directory,
                mode,
                symlink_target: "",
                overwrite: false,
            };
            let mut plain = Exo::disabled();
            let exo = if last { exo } else { &mut plain };
            let r = add_entry(ns, txn, caller, exo, &walk, &walk.nodes[i], &target, entry).await;
            match r {
                // Someone else made this ancestor meanwhile: walk again.
                Err(NnError::AlreadyExists(_)) if !last => {
                    (Ok(Outcome::Done(FileStatus::default())), false)
                }
                r => (r, last),
            }
        }
    }
}
