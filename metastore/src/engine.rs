//! The storage engine behind a shard's tables: point reads, ordered range reads, atomic
//! batches and a flush that really reaches the disk. The transaction code sees only the
//! [`Engine`] trait, so another engine (redb) can be measured without touching it.
//!
//! Nothing written through [`Engine::apply`] needs to be durable on its own: the log is. An
//! engine only has to make every batch atomic, recover to some prefix of the applied batches
//! after a crash, and make everything applied so far durable when `flush_durable` returns.

use crate::error::Result;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Puts and deletes applied together, all or none.
#[derive(Debug, Default)]
pub struct WriteBatch {
    pub ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteBatch {
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push((key, Some(value)));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.ops.push((key, None));
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// An ordered key-value store of bytes.
pub trait Engine: Send + Sync + 'static {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Rows with keys in `[start, end)` (to the end of the key space if `end` is `None`), in key
    /// order, at most `limit`.
    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Number of rows with keys in `[start, end)`.
    fn count(&self, start: &[u8], end: Option<&[u8]>) -> Result<u64>;
    /// Applies every operation of `batch` atomically.
    fn apply(&self, batch: &WriteBatch) -> Result<()>;
    /// Returns once everything applied before the call survives a power cut.
    fn flush_durable(&self) -> Result<()>;
}

/// sled 0.34, with one tree for everything so a batch is atomic across namespaces.
pub struct SledEngine {
    db: sled::Db,
    path: PathBuf,
}

/// How long an open waits for sled's directory lock to be let go.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl SledEngine {
    /// Opens (or creates) the database in `path` with a page cache of at most `cache_bytes`.
    ///
    /// sled releases its directory lock only when the last of its background threads of a
    /// previous open in this process has let go, a moment after that open was closed and
    /// dropped; so a lock held is waited for, up to [`LOCK_WAIT`], before it is an error.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Self> {
        let started = std::time::Instant::now();
        loop {
            let opened = sled::Config::new()
                .path(path)
                .cache_capacity(cache_bytes)
                .mode(sled::Mode::HighThroughput)
                // sled's own flusher fsyncs on a timer of its own; the shard flushes (and
                // fsyncs) on its schedule instead, so the disk sees one writer less.
                .flush_every_ms(None)
                .open();
            match opened {
                Ok(db) => {
                    return Ok(Self {
                        db,
                        path: path.to_path_buf(),
                    });
                }
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && started.elapsed() < LOCK_WAIT =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn range(start: &[u8], end: Option<&[u8]>) -> (std::ops::Bound<Vec<u8>>, std::ops::Bound<Vec<u8>>) {
    use std::ops::Bound;
    (
        Bound::Included(start.to_vec()),
        match end {
            Some(e) => Bound::Excluded(e.to_vec()),
            None => Bound::Unbounded,
        },
    )
}

/// fsyncs every file and directory under `dir`, the directory itself last.
fn fsync_tree(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            fsync_tree(&entry.path())?;
        } else if kind.is_file() {
            match File::open(entry.path()) {
                Ok(f) => f.sync_all()?,
                // sled removes old snapshots and blobs concurrently; a file gone needs no sync.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    File::open(dir)?.sync_all()?;
    Ok(())
}

impl Engine for SledEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(key)?.map(|v| v.to_vec()))
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        for item in self.db.range(range(start, end)) {
            let (k, v) = item?;
            out.push((k.to_vec(), v.to_vec()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn count(&self, start: &[u8], end: Option<&[u8]>) -> Result<u64> {
        let mut n = 0;
        for item in self.db.range(range(start, end)) {
            item?;
            n += 1;
        }
        Ok(n)
    }

    fn apply(&self, batch: &WriteBatch) -> Result<()> {
        // By reference: sled copies keys and values into its own buffers either way, and the
        // caller still needs the keys (to drop them from the read overlay).
        let mut b = sled::Batch::default();
        for (k, v) in &batch.ops {
            match v {
                Some(v) => b.insert(k.as_slice(), v.as_slice()),
                None => b.remove(k.as_slice()),
            }
        }
        self.db.apply_batch(b)?;
        Ok(())
    }

    fn flush_durable(&self) -> Result<()> {
        // sled's flush ends in sync_file_range, which neither persists file metadata nor
        // flushes the device cache: fsync its files as well.
        self.db.flush()?;
        fsync_tree(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_scans_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let e = SledEngine::open(dir.path(), 1 << 20).unwrap();
            let mut b = WriteBatch::default();
            for i in 0u8..10 {
                b.put(vec![b'a', i], vec![i]);
            }
            b.put(b"b".to_vec(), b"x".to_vec());
            e.apply(&b).unwrap();
            let mut b = WriteBatch::default();
            b.delete(vec![b'a', 3]);
            e.apply(&b).unwrap();
            assert_eq!(e.get(&[b'a', 4]).unwrap(), Some(vec![4]));
            assert_eq!(e.get(&[b'a', 3]).unwrap(), None);
            let rows = e.scan(&[b'a', 2], Some(&[b'a', 6]), 10).unwrap();
            let keys: Vec<u8> = rows.iter().map(|(k, _)| k[1]).collect();
            assert_eq!(keys, vec![2, 4, 5]);
            assert_eq!(e.scan(b"a", None, 2).unwrap().len(), 2);
            assert_eq!(e.count(b"a", Some(b"b")).unwrap(), 9);
            assert_eq!(e.count(b"a", None).unwrap(), 10);
            e.flush_durable().unwrap();
        }
        let e = SledEngine::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(e.get(b"b").unwrap(), Some(b"x".to_vec()));
        assert_eq!(e.count(b"", None).unwrap(), 10);
    }
}
