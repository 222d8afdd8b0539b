//! SetEcPolicy, GetEcPolicy, ListEcPolicies (as `hdfs ec`). A policy is set on a directory by
//! its owner or the superuser and applies to the files created under it afterwards (a file
//! keeps the policy it was created with). The retry record's home is the directory.

use arbor_proto::namenode::{Empty, GetEcPolicyReply, ListEcPoliciesReply};
use arbor_proto::records::InodeKind;
use prost::Message;

use crate::attrs;
use crate::data::policy;
use crate::error::NnError;
use crate::keys;
use crate::ops::{Exo, Namespace, Outcome, Runner};
use crate::path::NsPath;
use crate::perm::Caller;
use crate::txn::{Store, Txn};

pub async fn set_ec_policy<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    path: &str,
    name: &str,
) -> Result<(), NnError> {
    let path = NsPath::parse(path)?;
    let text = path.text();
    let full = if name.is_empty() {
        String::new()
    } else {
        policy::parse(name, ns.config.data.cell_size, &text)?.name
    };
    let mut runner = Runner::new(ns, caller, &text);
    loop {
        let mut txn = ns.begin("set_ec_policy");
        let mut exo = runner.exo();
        let result = async {
            let walk = ns.resolver.walk(&mut txn, caller, &path, false).await?;
            let ino = walk.target()?.ino;
            let mut want = vec![keys::inode(ino)];
            want.extend(exo.home(keys::route_of(ino)));
            let rows = txn.get(&want, true).await?;
            if let Some(r) = rows.get(1)
                && let Some(answer) = Exo::replay(r)?
            {
                return Ok(Outcome::Replayed(answer));
            }
            let Some(mut inode) = attrs::decode_inode(&rows[0])? else {
                return Err(NnError::raced("inode vanished"));
            };
            if attrs::kind_of(&inode) != InodeKind::Directory {
                return Err(NnError::NotADirectory(text.clone()));
            }
            if !(caller.is_superuser() || caller.owns(&inode)) {
                return Err(NnError::not_permitted(
                    &text,
                    "only the owner or the superuser may set the erasure coding policy",
                ));
            }
            inode.ec_policy = full.clone();
            inode.ctime_ns = inode.ctime_ns.max(attrs::now_ns());
            txn.put(keys::inode(ino), inode.encode_to_vec());
            Ok(Outcome::Done(Empty {}))
        }
        .await;
        if runner.finish(txn, exo, result).await?.is_some() {
            return Ok(());
        }
    }
}

pub async fn get_ec_policy<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    path: &str,
) -> Result<GetEcPolicyReply, NnError> {
    let path = NsPath::parse(path)?;
    let mut runner = Runner::new(ns, caller, &path.text());
    loop {
        let mut txn = ns.begin("get_ec_policy");
        let exo = runner.exo();
        let result = async {
            let walk = ns.resolver.walk(&mut txn, caller, &path, false).await?;
            walk.target()?;
            let cfg = &ns.config.data;
            let (name, at) =
                policy::effective(walk.nodes.iter().map(|n| &n.inode), &cfg.default_policy);
            let pol = policy::parse(&name, cfg.cell_size, &path.text())?;
            Ok(Outcome::Done(GetEcPolicyReply {
                policy: Some(pol),
                set_on: at.map(|i| path.prefix(i).text()).unwrap_or_default(),
            }))
        }
        .await;
        if let Some(reply) = runner.finish(txn, exo, result).await? {
            return Ok(reply);
        }
    }
}

pub fn list_ec_policies<S: Store>(ns: &Namespace<S>) -> ListEcPoliciesReply {
    let cfg = &ns.config.data;
    ListEcPoliciesReply {
        policies: policy::all(cfg.cell_size),
        default_policy: policy::lookup(&cfg.default_policy, cfg.cell_size)
            .map(|p| p.name)
            .unwrap_or_else(|| cfg.default_policy.clone()),
    }
}
