//! The change-log consumers' cursors: a small durable table, `DIR/cursors`, of consumer name →
//! (first sequence it still needs, when it was last set). The trimmer keeps the log from the
//! lowest cursor on (within the shard's size and age bounds).
//!
//! The table lives beside the log, not in it: moving a cursor writes no log record, so a
//! consumer that moves its cursor after every batch it reads does not feed itself new records.
//! Every change rewrites the whole file (it holds at most [`MAX_CURSORS`] short entries):
//! written to a temporary file, synced, renamed over the old one, directory synced.
//!
//! Invariant: whenever the mutex is free, the file on disk holds exactly the table in memory,
//! and a change is answered only once its file is durable. The trimmer decides under the same
//! mutex ([`Cursors::with_lowest`]), so no segment a cursor being set still needs is deleted
//! between the check of that cursor and its registration.

use crate::error::{Error, Result};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Cursors a shard keeps at most.
pub const MAX_CURSORS: usize = 1024;
/// Longest consumer name, in bytes.
pub const MAX_NAME: usize = 255;

const FILE: &str = "cursors";
const TMP: &str = "cursors.tmp";
const MAGIC: &[u8; 4] = b"ARBC";
const FORMAT: u8 = 1;

/// One consumer's position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub consumer: String,
    /// The first sequence the consumer still needs.
    pub seq: u64,
    /// When it was last set, in Unix nanoseconds.
    pub updated_ns: i64,
}

/// The table, in memory and on disk.
#[derive(Debug)]
pub struct Cursors {
    dir: PathBuf,
    table: Mutex<BTreeMap<String, (u64, i64)>>,
}

fn encode(table: &BTreeMap<String, (u64, i64)>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.extend_from_slice(&(table.len() as u32).to_le_bytes());
    for (name, (seq, ns)) in table {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(&ns.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn decode(bytes: &[u8]) -> Result<BTreeMap<String, (u64, i64)>> {
    let bad = |detail: &str| Error::corrupt("cursor table", detail.to_string());
    if bytes.len() < MAGIC.len() + 1 + 4 + 4 {
        return Err(bad("too short"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let mut crc4 = [0u8; 4];
    crc4.copy_from_slice(crc);
    if crc32fast::hash(body) != u32::from_le_bytes(crc4) {
        return Err(bad("checksum mismatch"));
    }
    if &body[..4] != MAGIC || body[4] != FORMAT {
        return Err(bad("unknown format"));
    }
    let mut rest = &body[5..];
    let mut take = |n: usize| -> Result<&[u8]> {
        if rest.len() < n {
            return Err(bad("truncated"));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let mut n4 = [0u8; 4];
    n4.copy_from_slice(take(4)?);
    let n = u32::from_le_bytes(n4);
    let mut table = BTreeMap::new();
    for _ in 0..n {
        let mut l2 = [0u8; 2];
        l2.copy_from_slice(take(2)?);
        let name = String::from_utf8(take(u16::from_le_bytes(l2) as usize)?.to_vec())
            .map_err(|_| bad("consumer name is not UTF-8"))?;
        let mut s8 = [0u8; 8];
        s8.copy_from_slice(take(8)?);
        let mut t8 = [0u8; 8];
        t8.copy_from_slice(take(8)?);
        table.insert(name, (u64::from_le_bytes(s8), i64::from_le_bytes(t8)));
    }
    if !rest.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok(table)
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Checks a consumer name: non-empty, at most [`MAX_NAME`] bytes.
pub fn check_name(consumer: &str) -> Result<()> {
    if consumer.is_empty() || consumer.len() > MAX_NAME {
        return Err(Error::InvalidArgument(format!(
            "a consumer name has 1 to {MAX_NAME} bytes, not {}",
            consumer.len()
        )));
    }
    Ok(())
}

impl Cursors {
    /// Loads the table from `dir` (none there: an empty table). A leftover temporary file is
    /// an update that never took effect and is removed.
    pub fn open(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir)?;
        match fs::remove_file(dir.join(TMP)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let table = match fs::read(dir.join(FILE)) {
            Ok(bytes) => decode(&bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            table: Mutex::new(table),
        })
    }

    fn store(&self, table: &BTreeMap<String, (u64, i64)>) -> Result<()> {
        let tmp = self.dir.join(TMP);
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&tmp)?;
        f.write_all(&encode(table))?;
        f.sync_all()?;
        fs::rename(&tmp, self.dir.join(FILE))?;
        File::open(&self.dir)?.sync_all()?;
        Ok(())
    }

    /// Sets `consumer`'s cursor to what `check(seq)` answers (it may refuse `seq`, or resolve
    /// it), registering the consumer if new. `check` runs under the table's mutex, so the
    /// trimmer cannot act between the check and the registration. Durable when it returns.
    /// Blocks on the disk.
    pub fn set(
        &self,
        consumer: &str,
        seq: u64,
        check: impl FnOnce(u64) -> Result<u64>,
    ) -> Result<()> {
        check_name(consumer)?;
        let mut table = self.table.lock();
        if table.len() >= MAX_CURSORS && !table.contains_key(consumer) {
            return Err(Error::InvalidArgument(format!(
                "a shard keeps at most {MAX_CURSORS} cursors"
            )));
        }
        let seq = check(seq)?;
        let mut next = table.clone();
        next.insert(consumer.to_string(), (seq, now_ns()));
        self.store(&next)?;
        *table = next;
        Ok(())
    }

    /// Removes `consumer`'s cursor; true if it had one. Durable when it returns. Blocks on the
    /// disk.
    pub fn delete(&self, consumer: &str) -> Result<bool> {
        let mut table = self.table.lock();
        if !table.contains_key(consumer) {
            return Ok(false);
        }
        let mut next = table.clone();
        next.remove(consumer);
        self.store(&next)?;
        *table = next;
        Ok(true)
    }

    /// Every cursor, by consumer name.
    pub fn list(&self) -> Vec<Cursor> {
        self.table
            .lock()
            .iter()
            .map(|(name, &(seq, updated_ns))| Cursor {
                consumer: name.clone(),
                seq,
                updated_ns,
            })
            .collect()
    }

    /// Runs `f` with the lowest cursor (`None`: no cursor registered), holding the table so no
    /// cursor changes meanwhile.
    pub fn with_lowest<T>(&self, f: impl FnOnce(Option<u64>) -> T) -> T {
        let table = self.table.lock();
        f(table.values().map(|&(seq, _)| seq).min())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_survive_reopening_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cursors::open(dir.path()).unwrap();
        assert_eq!(c.with_lowest(|l| l), None);
        c.set("search", 40, Ok).unwrap();
        c.set("backup", 12, Ok).unwrap();
        c.set("search", 50, Ok).unwrap();
        assert_eq!(c.with_lowest(|l| l), Some(12));
        // A refused check changes nothing.
        let err = c
            .set("backup", 1, |s| {
                Err(Error::Trimmed {
                    wanted: s,
                    first: 5,
                })
            })
            .unwrap_err();
        assert!(matches!(
            err,
            Error::Trimmed {
                wanted: 1,
                first: 5
            }
        ));
        assert!(c.set("", 1, Ok).is_err());
        drop(c);

        let c = Cursors::open(dir.path()).unwrap();
        let list = c.list();
        assert_eq!(
            list.iter()
                .map(|c| (c.consumer.as_str(), c.seq))
                .collect::<Vec<_>>(),
            vec![("backup", 12), ("search", 50)]
        );
        assert!(list.iter().all(|c| c.updated_ns > 0));
        assert!(c.delete("backup").unwrap());
        assert!(!c.delete("backup").unwrap());
        assert_eq!(c.with_lowest(|l| l), Some(50));
        drop(c);

        let c = Cursors::open(dir.path()).unwrap();
        assert_eq!(c.list().len(), 1);
        drop(c);
        let path = dir.path().join(FILE);
        let mut bytes = fs::read(&path).unwrap();
        bytes[6] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(matches!(
            Cursors::open(dir.path()).unwrap_err(),
            Error::Corrupt { .. }
        ));
    }
}
