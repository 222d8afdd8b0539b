//! Extended attributes: set (with CREATE / REPLACE), get, list, remove. Names carry a Linux
//! namespace prefix (`user.`, `trusted.`, `system.`, `security.`), at most 255 bytes; values
//! at most 64 KiB. `user.` attributes need READ to read and WRITE to change; `trusted.` ones
//! are the superuser's only (and hidden from others' lists); `security.` ones only the
//! superuser changes; `system.` ones the owner or the superuser changes.
//!
//! A change writes the xattr row and moves the inode's ctime through the inode's own row, so a
//! concurrent delete of the inode (which reads it validated) and a change never both commit.

use arbor_proto::namenode::set_xattr_request::Flag;
use arbor_proto::namenode::{Empty, GetXattrReply, ListXattrsReply, Xattr};
use prost::Message;

use crate::attrs;
use crate::error::NnError;
use crate::keys;
use crate::ops::{Exo, Namespace, Outcome, Runner, scan_prefix};
use crate::path::NsPath;
use crate::perm::{self, Caller};
use crate::txn::{Store, Txn};

pub const MAX_XATTR_NAME: usize = 255;
pub const MAX_XATTR_VALUE: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    User,
    Trusted,
    System,
    Security,
}

fn class_of(name: &str, path: &str) -> Result<Class, NnError> {
    if name.len() > MAX_XATTR_NAME {
        return Err(NnError::invalid(path, "xattr name longer than 255 bytes"));
    }
    if name.contains('\0') {
        return Err(NnError::invalid(path, "NUL in xattr name"));
    }
    let prefixes = [
        ("user.", Class::User),
        ("trusted.", Class::Trusted),
        ("system.", Class::System),
        ("security.", Class::Security),
    ];
    for (prefix, class) in prefixes {
        if let Some(rest) = name.strip_prefix(prefix) {
            if rest.is_empty() {
                return Err(NnError::invalid(path, "empty xattr name after its prefix"));
            }
            return Ok(class);
        }
    }
    Err(NnError::invalid(
        path,
        format!("xattr name {name:?} lacks a user., trusted., system. or security. prefix"),
    ))
}

fn may_read(
    caller: &Caller,
    class: Class,
    inode: &arbor_proto::records::InodeRecord,
    path: &str,
) -> Result<(), NnError> {
    if class == Class::Trusted && !caller.is_superuser() {
        return Err(NnError::not_permitted(
            path,
            "trusted.* attributes are the superuser's",
        ));
    }
    perm::check(caller, inode, path, perm::READ)
}

fn may_change(
    caller: &Caller,
    class: Class,
    inode: &arbor_proto::records::InodeRecord,
    path: &str,
) -> Result<(), NnError> {
    match class {
        Class::User => perm::check(caller, inode, path, perm::WRITE),
        Class::System if caller.is_superuser() || caller.owns(inode) => Ok(()),
        _ if caller.is_superuser() => Ok(()),
        _ => Err(NnError::not_permitted(
            path,
            "only the superuser may change this attribute",
        )),
    }
}

/// A change of one attribute: set it (`value`), or remove it (`None`).
struct Change<'a> {
    name: &'a str,
    value: Option<&'a [u8]>,
    flag: Flag,
}

async fn change_attempt<S: Store>(
    ns: &Namespace<S>,
    txn: &mut S::Txn,
    caller: &Caller,
    exo: &mut Exo,
    path: &NsPath,
    change: &Change<'_>,
) -> Result<Outcome<Empty>, NnError> {
    let Change { name, value, flag } = *change;
    let text = path.text();
    let class = class_of(name, &text)?;
    let walk = ns.resolver.walk(txn, caller, path, false).await?;
    let ino = walk.target()?.ino;
    let mut want = vec![keys::inode(ino), keys::xattr(ino, name)];
    want.extend(exo.home(keys::route_of(ino)));
    let rows = txn.get(&want, true).await?;
    if let Some(r) = rows.get(2)
        && let Some(answer) = Exo::replay(r)?
    {
        return Ok(Outcome::Replayed(answer));
    }
    let Some(mut inode) = attrs::decode_inode(&rows[0])? else {
        return Err(NnError::raced("inode vanished"));
    };
    may_change(caller, class, &inode, &text)?;
    let exists = rows[1].exists();
    match value {
        Some(value) => {
            match flag {
                Flag::Create if exists => {
                    return Err(NnError::AlreadyExists(format!("{text}' attribute `{name}")));
                }
                Flag::Replace if !exists => {
                    return Err(NnError::NoXattr {
                        path: text,
                        name: name.to_string(),
                    });
                }
                _ => {}
            }
            txn.put(keys::xattr(ino, name), value.to_vec());
        }
        None => {
            if !exists {
                return Err(NnError::NoXattr {
                    path: text,
                    name: name.to_string(),
                });
            }
            txn.delete(keys::xattr(ino, name));
        }
    }
    inode.ctime_ns = inode.ctime_ns.max(attrs::now_ns());
    txn.put(keys::inode(ino), inode.encode_to_vec());
    Ok(Outcome::Done(Empty {}))
}

pub async fn set_xattr<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    path: &str,
    name: &str,
    value: &[u8],
    flag: Flag,
) -> Result<(), NnError> {
    let path = NsPath::parse(path)?;
    if value.len() > MAX_XATTR_VALUE {
        return Err(NnError::invalid(
            &path.text(),
            "xattr value larger than 64 KiB",
        ));
    }
    let mut runner = Runner::new(ns, caller, &path.text());
    loop {
        let mut txn = ns.begin("setxattr");
        let mut exo = runner.exo();
        let change = Change {
            name,
            value: Some(value),
            flag,
        };
        let result = change_attempt(ns, &mut txn, caller, &mut exo, &path, &change).await;
        if runner.finish(txn, exo, result).await?.is_some() {
            return Ok(());
        }
    }
}

pub async fn remove_xattr<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    path: &str,
    name: &str,
) -> Result<(), NnError> {
    let path = NsPath::parse(path)?;
    let mut runner = Runner::new(ns, caller, &path.text());
    loop {
        let mut txn = ns.begin("removexattr");
        let mut exo = runner.exo();
        let change = Change {
            name,
            value: None,
            flag: Flag::Any,
        };
        let result = change_attempt(ns, &mut txn, caller, &mut exo, &path, &change).await;
        if runner.finish(txn, exo, result).await?.is_some() {
            return Ok(());
        }
    }
}

pub async fn get_xattr<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    path: &str,
    name: &str,
) -> Result<Vec<u8>, NnError> {
    let path = NsPath::parse(path)?;
    let text = path.text();
    let class = class_of(name, &text)?;
    let mut runner = Runner::new(ns, caller, &text);
    loop {
        let mut txn = ns.begin("getxattr");
        let exo = runner.exo();
        let result = async {
            let walk = ns.resolver.walk(&mut txn, caller, &path, false).await?;
            let node = walk.target()?;
            may_read(caller, class, &node.inode, &text)?;
            let row = txn.get(&[keys::xattr(node.ino, name)], false).await?;
            if !row[0].exists() {
                return Err(NnError::NoXattr {
                    path: text.clone(),
                    name: name.to_string(),
                });
            }
            Ok(Outcome::Done(GetXattrReply {
                value: row[0].value.clone(),
            }))
        }
        .await;
        if let Some(reply) = runner.finish(txn, exo, result).await? {
            return Ok(reply.value);
        }
    }
}

pub async fn list_xattrs<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    path: &str,
) -> Result<Vec<Xattr>, NnError> {
    let path = NsPath::parse(path)?;
    let text = path.text();
    let mut runner = Runner::new(ns, caller, &text);
    loop {
        let mut txn = ns.begin("listxattrs");
        let exo = runner.exo();
        let result = async {
            let walk = ns.resolver.walk(&mut txn, caller, &path, false).await?;
            let node = walk.target()?;
            perm::check(caller, &node.inode, &text, perm::READ)?;
            let rows = scan_prefix(
                &mut txn,
                keys::route_of(node.ino),
                keys::xattr_prefix(node.ino),
            )
            .await?;
            let mut xattrs = Vec::with_capacity(rows.len());
            for (key, row) in rows {
                let Some(name) = key.get(9..).and_then(|b| std::str::from_utf8(b).ok()) else {
                    continue;
                };
                if name.starts_with("trusted.") && !caller.is_superuser() {
                    continue;
                }
                xattrs.push(Xattr {
                    name: name.to_string(),
                    value: row.value,
                });
            }
            Ok::<_, NnError>(Outcome::Done(ListXattrsReply { xattrs }))
        }
        .await;
        if let Some(reply) = runner.finish(txn, exo, result).await? {
            return Ok(reply.xattrs);
        }
    }
}
