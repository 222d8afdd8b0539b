//! Decoding the metastore rows the namespace is made of (dentries, inodes, directory
//! counters, xattrs) from their keys and values, as the change stream and a scan deliver them.
//! Only these four tables matter to search; every other row (data blocks, inline data,
//! retry records, cluster rows, to-delete records) decodes as [`RowKind::Other`].

use arbor_namenode::keys::{self, DirCounter, Ino};
use arbor_proto::records::{DentryRecord, InodeKind, InodeRecord};
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The attributes search keeps of an inode (the namespace-visible part of `InodeRecord`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attrs {
    pub kind: i32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime_ns: i64,
    pub atime_ns: i64,
    pub ctime_ns: i64,
    pub btime_ns: i64,
    #[serde(default)]
    pub symlink_target: String,
}

impl From<&InodeRecord> for Attrs {
    fn from(r: &InodeRecord) -> Attrs {
        Attrs {
            kind: r.kind,
            mode: r.mode,
            uid: r.uid,
            gid: r.gid,
            size: r.size,
            mtime_ns: r.mtime_ns,
            atime_ns: r.atime_ns,
            ctime_ns: r.ctime_ns,
            btime_ns: r.btime_ns,
            symlink_target: r.symlink_target.clone(),
        }
    }
}

/// Where a directory counter row's value (as [`RowKind::Counter`] holds it) keeps the
/// latest modification and change times of the directory's entry list.
pub const COUNTER_MTIME: usize = DirCounter::MTIME_NS as usize;
pub const COUNTER_CTIME: usize = DirCounter::CTIME_NS as usize;

/// One changed (or scanned) row; `None` values are deletions.
#[derive(Clone, Debug, PartialEq)]
pub enum RowKind {
    Dentry {
        parent: Ino,
        name: String,
        value: Option<(Ino, InodeKind)>,
    },
    Inode {
        ino: Ino,
        value: Option<Attrs>,
    },
    Counter {
        ino: Ino,
        value: Option<[i64; 4]>,
    },
    Xattr {
        ino: Ino,
        name: String,
        value: Option<Vec<u8>>,
    },
    Other,
}

fn ino_at(key: &[u8]) -> Result<Ino> {
    key.get(1..9)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| Error::Corrupt(format!("short key {key:?}")))
}

fn name_at(key: &[u8]) -> Result<String> {
    let raw = key.get(9..).unwrap_or_default();
    String::from_utf8(raw.to_vec())
        .map_err(|_| Error::Corrupt(format!("non-UTF-8 name in {key:?}")))
}

/// Decodes one row. `deleted` rows carry no value.
pub fn decode(key: &[u8], value: &[u8], deleted: bool) -> Result<RowKind> {
    let Some(&table) = key.first() else {
        return Ok(RowKind::Other);
    };
    let row = match table {
        keys::DENTRY => RowKind::Dentry {
            parent: ino_at(key)?,
            name: name_at(key)?,
            value: if deleted {
                None
            } else {
                let d = DentryRecord::decode(value)
                    .map_err(|e| Error::Corrupt(format!("dentry {key:?}: {e}")))?;
                Some((d.ino, InodeKind::try_from(d.kind).unwrap_or_default()))
            },
        },
        keys::INODE if key.len() == 9 => RowKind::Inode {
            ino: ino_at(key)?,
            value: if deleted {
                None
            } else {
                let r = InodeRecord::decode(value)
                    .map_err(|e| Error::Corrupt(format!("inode {key:?}: {e}")))?;
                Some(Attrs::from(&r))
            },
        },
        keys::COUNTER if key.len() == 9 => RowKind::Counter {
            ino: ino_at(key)?,
            value: (!deleted).then(|| DirCounter::decode(value)),
        },
        keys::XATTR => RowKind::Xattr {
            ino: ino_at(key)?,
            name: name_at(key)?,
            value: (!deleted).then(|| value.to_vec()),
        },
        _ => RowKind::Other,
    };
    Ok(row)
}

/// Whether a key belongs to a table search reads (so scans can skip the others).
pub const SCANNED_TABLES: [u8; 4] = [keys::DENTRY, keys::INODE, keys::COUNTER, keys::XATTR];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_table() {
        let d = keys::dentry(7, "a.csv").bytes;
        let v = DentryRecord {
            ino: 99,
            kind: InodeKind::File as i32,
        }
        .encode_to_vec();
        assert_eq!(
            decode(&d, &v, false).unwrap(),
            RowKind::Dentry {
                parent: 7,
                name: "a.csv".into(),
                value: Some((99, InodeKind::File))
            }
        );
        assert_eq!(
            decode(&d, &[], true).unwrap(),
            RowKind::Dentry {
                parent: 7,
                name: "a.csv".into(),
                value: None
            }
        );
        let i = keys::inode(99).bytes;
        let rec = InodeRecord {
            kind: InodeKind::File as i32,
            size: 5,
            uid: 3,
            ..Default::default()
        };
        match decode(&i, &rec.encode_to_vec(), false).unwrap() {
            RowKind::Inode {
                ino,
                value: Some(a),
            } => {
                assert_eq!((ino, a.size, a.uid), (99, 5, 3));
            }
            other => panic!("{other:?}"),
        }
        let x = keys::xattr(99, "user.k").bytes;
        assert_eq!(
            decode(&x, b"v", false).unwrap(),
            RowKind::Xattr {
                ino: 99,
                name: "user.k".into(),
                value: Some(b"v".to_vec())
            }
        );
        assert_eq!(decode(b"Mpartmap", b"", false).unwrap(), RowKind::Other);
        assert!(decode(&d, b"\xff\xff", false).is_err());
    }
}
