//! The rows this namenode keeps under the shards' read leases: the directories a path walk
//! passes through (the root's inode, each ancestor's dentry and inode), so that resolving a
//! path reads only its last component from the shards.
//!
//! Why a cached row is never stale for a caller: a shard answers a write of a leased row by
//! another namenode only after the lease ran out, and this cache forgets a row before its
//! lease runs out (the lease is counted from before the Get was sent). This namenode's own
//! writes are not held up by its own leases, so it forgets what it writes itself, once the
//! write is done and before the caller hears of it; a read that was in flight meanwhile may
//! bring back the old row, so a row whose read began before a write of it finished is not
//! kept. A transaction that failed on a conflict forgets the cached rows it used, so its
//! retry reads them again.
//!
//! Invariants: at most `capacity` rows; only rows that exist are kept.

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use lru::LruCache;
use parking_lot::Mutex;

use arbor_proto::metrics::prometheus::IntCounter;

use crate::metrics::ROW_CACHE;
use crate::txn::Versioned;

/// How much of a lease the cache uses: the rest covers the time the Get took to arrive.
const USE_OF_LEASE: f64 = 0.8;

struct Rows {
    rows: LruCache<Vec<u8>, (Versioned, Instant)>,
    /// When each recently written key was last written by this namenode.
    written: LruCache<Vec<u8>, Instant>,
    /// The latest write time `written` no longer remembers.
    forgotten_write: Option<Instant>,
}

pub struct RowCache {
    lease: Duration,
    inner: Mutex<Rows>,
    /// `arbor_namenode_row_cache_total{result="hit"}` and `{result="miss"}`.
    hits: IntCounter,
    misses: IntCounter,
}

impl RowCache {
    /// A cache of at most `capacity` rows kept for `lease` (zero: keeps nothing).
    pub fn new(lease: Duration, capacity: usize) -> RowCache {
        let cap = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        RowCache {
            lease,
            inner: Mutex::new(Rows {
                rows: LruCache::new(cap),
                written: LruCache::new(cap),
                forgotten_write: None,
            }),
            hits: ROW_CACHE.with_label_values(&["hit"]),
            misses: ROW_CACHE.with_label_values(&["miss"]),
        }
    }

    /// The lease the shards are asked for (zero: the cache is off).
    pub fn lease(&self) -> Duration {
        self.lease
    }

    pub fn enabled(&self) -> bool {
        !self.lease.is_zero()
    }

    /// The row of `key`, while its lease lasts.
    pub fn get(&self, key: &[u8]) -> Option<Versioned> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let found = match inner.rows.get(key) {
            Some((row, until)) if *until > now => Some(row.clone()),
            Some(_) => {
                inner.rows.pop(key);
                None
            }
            None => None,
        };
        if found.is_some() {
            self.hits.inc();
        } else {
            self.misses.inc();
        }
        found
    }

    /// Keeps `row` of `key`, read by a Get sent at `sent` with a lease: unless the row is
    /// absent, or this namenode wrote the key since `sent`.
    pub fn put(&self, key: &[u8], row: &Versioned, sent: Instant) {
        if !self.enabled() || row.version == 0 {
            return;
        }
        let until = sent + self.lease.mul_f64(USE_OF_LEASE);
        let mut inner = self.inner.lock();
        let written = inner
            .written
            .peek(key)
            .copied()
            .or(inner.forgotten_write)
            .is_some_and(|w| w >= sent);
        if !written {
            inner.rows.put(key.to_vec(), (row.clone(), until));
        }
    }

    /// Forgets `keys`, which this namenode just wrote (or may have written).
    pub fn wrote<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>) {
        if !self.enabled() {
            return;
        }
        let now = Instant::now();
        let mut inner = self.inner.lock();
        for key in keys {
            inner.rows.pop(key);
            if inner.written.contains(key) {
                inner.written.put(key.to_vec(), now);
            } else if let Some((_, at)) = inner.written.push(key.to_vec(), now) {
                // The least recent write fell out of the list.
                inner.forgotten_write = Some(inner.forgotten_write.map_or(at, |f| f.max(at)));
            }
        }
    }

    /// Forgets `keys` (rows a conflicted transaction used).
    pub fn forget<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>) {
        let mut inner = self.inner.lock();
        for key in keys {
            inner.rows.pop(key);
        }
    }

    /// Rows kept now (some may have run out).
    pub fn len(&self) -> usize {
        self.inner.lock().rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v: u64) -> Versioned {
        Versioned {
            value: vec![1],
            version: v,
        }
    }

    #[test]
    fn rows_last_less_than_their_lease() {
        let c = RowCache::new(Duration::from_millis(50), 8);
        let sent = Instant::now();
        c.put(b"k", &row(3), sent);
        assert_eq!(c.get(b"k").map(|r| r.version), Some(3));
        std::thread::sleep(Duration::from_millis(45));
        assert!(c.get(b"k").is_none(), "kept past 80% of the lease");
    }

    #[test]
    fn absent_rows_and_a_disabled_cache_keep_nothing() {
        let c = RowCache::new(Duration::from_secs(1), 8);
        c.put(b"k", &row(0), Instant::now());
        assert!(c.get(b"k").is_none());
        let off = RowCache::new(Duration::ZERO, 8);
        off.put(b"k", &row(1), Instant::now());
        assert!(off.get(b"k").is_none());
    }

    #[test]
    fn a_read_older_than_our_write_is_not_kept() {
        let c = RowCache::new(Duration::from_secs(1), 8);
        let sent = Instant::now();
        c.put(b"k", &row(1), sent);
        c.wrote([&b"k"[..]]);
        assert!(c.get(b"k").is_none(), "a write forgets the row");
        // A read sent before the write, answered after it, may hold the old row.
        c.put(b"k", &row(1), sent);
        assert!(c.get(b"k").is_none());
        // One sent after the write is kept.
        std::thread::sleep(Duration::from_millis(2));
        c.put(b"k", &row(2), Instant::now());
        assert_eq!(c.get(b"k").map(|r| r.version), Some(2));
    }

    #[test]
    fn writes_the_cache_no_longer_remembers_still_count() {
        let c = RowCache::new(Duration::from_secs(1), 2);
        let sent = Instant::now();
        c.wrote([&b"a"[..], &b"b"[..], &b"c"[..]]);
        // "a" fell out of the written list, but its write was after `sent`.
        c.put(b"a", &row(1), sent);
        assert!(c.get(b"a").is_none());
    }
}
