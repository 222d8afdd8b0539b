//! `MemStore`: the transaction interface in memory, for tests of the namespace operations.
//!
//! It keeps the real store's semantics where the operations can tell: rows live on shards
//! (a virtual partition `v` on shard `v % shards`, as at format time) so scans see one shard;
//! every commit gets a new version from one global counter; a commit checks, atomically with
//! applying its writes, that every validated read still has the version it had (0 = absent)
//! and that every required-empty prefix is empty, else it fails with `Conflict`; counter
//! updates commute and never conflict. Reads see committed rows only. It formats itself with
//! `format::initial_rows` when built.
//!
//! Tests can also make commits report an unknown outcome (after or instead of applying), as a
//! coordinator losing contact at the commit point would.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::format;
use crate::keys::FIRST_SEQ;
use crate::txn::{CounterOp, Key, OpenIntent, Route, Store, Txn, TxnError, Versioned};

type Rows = BTreeMap<Vec<u8>, (u64, Vec<u8>)>;

struct Tables {
    shards: Vec<Rows>,
    version: u64,
}

/// Counts of what the store was asked, for tests that bound round trips.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemStats {
    pub gets: u64,
    pub scans: u64,
    pub commits: u64,
    pub conflicts: u64,
}

/// What the next commits do instead of answering normally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitFault {
    /// Apply, then report `Unknown`.
    UnknownAfterApply,
    /// Don't apply, and report `Unknown`.
    UnknownWithoutApply,
}

struct Shared {
    tables: Mutex<Tables>,
    vparts: u32,
    seq: AtomicU64,
    stats: Mutex<MemStats>,
    faults: Mutex<Vec<(String, CommitFault)>>,
    /// Pause before each commit validates, to widen race windows in tests.
    commit_delay_us: AtomicU64,
}

/// The in-memory store. Cheap to clone: clones share the rows.
#[derive(Clone)]
pub struct MemStore {
    shared: Arc<Shared>,
}

enum Write {
    Put(Vec<u8>),
    Delete,
    Counter(u32, Vec<(u32, CounterOp, i64)>),
}

pub struct MemTxn {
    shared: Arc<Shared>,
    reads: HashMap<(usize, Vec<u8>), u64>,
    empties: Vec<(usize, Vec<u8>)>,
    writes: Vec<(usize, Vec<u8>, Write)>,
    label: &'static str,
    bad_route: Option<String>,
}

impl MemStore {
    /// A formatted store of `shards` shards and `vparts` virtual partitions.
    pub fn new(shards: u32, vparts: u32) -> Self {
        let shards = shards.max(1);
        let vparts = vparts.clamp(1, 1 << 16);
        let now = crate::attrs::now_ns();
        let map = format::initial_partition_map(vparts, shards, b"memstore".to_vec(), now);
        let mut rows: Vec<Rows> = (0..shards).map(|_| Rows::new()).collect();
        for (key, value) in format::initial_rows(&map, now) {
            let shard = shard_of(key.route, shards, vparts).unwrap_or(0);
            rows[shard].insert(key.bytes, (1, value));
        }
        MemStore {
            shared: Arc::new(Shared {
                tables: Mutex::new(Tables {
                    shards: rows,
                    version: 1,
                }),
                vparts,
                seq: AtomicU64::new(FIRST_SEQ),
                stats: Mutex::new(MemStats::default()),
                faults: Mutex::new(Vec::new()),
                commit_delay_us: AtomicU64::new(0),
            }),
        }
    }

    pub fn stats(&self) -> MemStats {
        *self.shared.stats.lock()
    }

    /// Makes the next commit labelled `label` ("" = any) fail with `fault`.
    pub fn inject(&self, label: &str, fault: CommitFault) {
        self.shared.faults.lock().push((label.to_string(), fault));
    }

    /// Makes every commit wait `delay` before validating (a slow network, in effect), so
    /// that concurrent transactions overlap.
    pub fn set_commit_delay(&self, delay: std::time::Duration) {
        self.shared
            .commit_delay_us
            .store(delay.as_micros() as u64, Ordering::Relaxed);
    }

    /// Every committed row of one shard, in key order.
    pub fn dump(&self, shard: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        let t = self.shared.tables.lock();
        t.shards
            .get(shard as usize)
            .map(|rows| {
                rows.iter()
                    .map(|(k, (_, v))| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Number of committed rows whose key starts with `table`, over all shards.
    pub fn count_table(&self, table: u8) -> usize {
        let t = self.shared.tables.lock();
        t.shards
            .iter()
            .map(|rows| rows.keys().filter(|k| k.first() == Some(&table)).count())
            .sum()
    }
}

fn shard_of(route: Route, shards: u32, vparts: u32) -> Result<usize, TxnError> {
    match route.resolve(vparts) {
        Route::Vpart(v) if (v as u32) < vparts => Ok((v as u32 % shards) as usize),
        Route::Shard(s) if s < shards => Ok(s as usize),
        other => Err(TxnError::Internal(format!("no shard for route {other:?}"))),
    }
}

impl Shared {
    fn shard(&self, route: Route) -> Result<usize, TxnError> {
        let shards = self.tables.lock().shards.len() as u32;
        shard_of(route, shards, self.vparts)
    }
}

impl MemTxn {
    fn route(&mut self, route: Route) -> Option<usize> {
        match self.shared.shard(route) {
            Ok(s) => Some(s),
            Err(e) => {
                self.bad_route = Some(e.to_string());
                None
            }
        }
    }
}

fn apply_counter(old: Option<&Vec<u8>>, width: u32, fields: &[(u32, CounterOp, i64)]) -> Vec<u8> {
    let width = width as usize;
    let mut vals = vec![0i64; width];
    if let Some(old) = old {
        for (i, chunk) in old.chunks_exact(8).take(width).enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            vals[i] = i64::from_le_bytes(b);
        }
    }
    for &(i, op, v) in fields {
        if let Some(slot) = vals.get_mut(i as usize) {
            *slot = match op {
                CounterOp::Add => slot.wrapping_add(v),
                CounterOp::Max => (*slot).max(v),
                CounterOp::Set => v,
            };
        }
    }
    vals.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The first key after every key that starts with `prefix` (empty: no such key).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    Vec::new()
}

impl Txn for MemTxn {
    async fn get(&mut self, keys: &[Key], validate: bool) -> Result<Vec<Versioned>, TxnError> {
        // Let other tasks run between a transaction's reads, so races are exercised.
        tokio::task::yield_now().await;
        self.shared.stats.lock().gets += 1;
        let mut idx = Vec::with_capacity(keys.len());
        for k in keys {
            idx.push(self.shared.shard(k.route)?);
        }
        let t = self.shared.tables.lock();
        let mut out = Vec::with_capacity(keys.len());
        for (k, shard) in keys.iter().zip(idx) {
            let row = t.shards[shard]
                .get(&k.bytes)
                .map(|(v, value)| Versioned {
                    value: value.clone(),
                    version: *v,
                })
                .unwrap_or_default();
            if validate {
                self.reads
                    .entry((shard, k.bytes.clone()))
                    .or_insert(row.version);
            }
            out.push(row);
        }
        Ok(out)
    }

    fn expect(&mut self, key: Key, version: u64) {
        if let Ok(shard) = self.shared.shard(key.route) {
            self.reads.entry((shard, key.bytes)).or_insert(version);
        }
    }

    async fn scan(
        &mut self,
        route: Route,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: u32,
    ) -> Result<(Vec<(Vec<u8>, Versioned)>, bool), TxnError> {
        tokio::task::yield_now().await;
        self.shared.stats.lock().scans += 1;
        let shard = self.shared.shard(route)?;
        let limit = if limit == 0 { 1000 } else { limit as usize };
        let t = self.shared.tables.lock();
        let mut rows = Vec::new();
        let mut more = false;
        for (k, (v, value)) in t.shards[shard].range(start..) {
            if !end.is_empty() && *k >= end {
                break;
            }
            if rows.len() == limit {
                more = true;
                break;
            }
            rows.push((
                k.clone(),
                Versioned {
                    value: value.clone(),
                    version: *v,
                },
            ));
        }
        Ok((rows, more))
    }

    fn put(&mut self, key: Key, value: Vec<u8>) {
        if let Some(s) = self.route(key.route) {
            self.writes.push((s, key.bytes, Write::Put(value)));
        }
    }

    fn delete(&mut self, key: Key) {
        if let Some(s) = self.route(key.route) {
            self.writes.push((s, key.bytes, Write::Delete));
        }
    }

    fn counter(&mut self, key: Key, width: u32, fields: Vec<(u32, CounterOp, i64)>) {
        if let Some(s) = self.route(key.route) {
            self.writes
                .push((s, key.bytes, Write::Counter(width, fields)));
        }
    }

    fn require_empty(&mut self, route: Route, prefix: Vec<u8>) {
        if let Some(s) = self.route(route) {
            self.empties.push((s, prefix));
        }
    }

    fn set_label(&mut self, label: &'static str) {
        self.label = label;
    }

    fn is_read_only(&self) -> bool {
        self.writes.is_empty()
    }

    async fn commit(self) -> Result<(), TxnError> {
        if let Some(e) = self.bad_route {
            return Err(TxnError::Internal(e));
        }
        let fault = {
            let mut faults = self.shared.faults.lock();
            let pos = faults
                .iter()
                .position(|(l, _)| l.is_empty() || l == self.label);
            pos.map(|p| faults.remove(p).1)
        };
        let delay = self.shared.commit_delay_us.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_micros(delay)).await;
        }
        if fault == Some(CommitFault::UnknownWithoutApply) {
            return Err(TxnError::Unknown("injected: not applied".into()));
        }
        let result = {
            let mut t = self.shared.tables.lock();
            check(&t, &self.reads, &self.empties).map(|()| {
                t.version += 1;
                let version = t.version;
                for (shard, key, w) in self.writes {
                    let rows = &mut t.shards[shard];
                    match w {
                        Write::Put(value) => {
                            rows.insert(key, (version, value));
                        }
                        Write::Delete => {
                            rows.remove(&key);
                        }
                        Write::Counter(width, fields) => {
                            let value = apply_counter(rows.get(&key).map(|r| &r.1), width, &fields);
                            rows.insert(key, (version, value));
                        }
                    }
                }
            })
        };
        let mut stats = self.shared.stats.lock();
        match result {
            Ok(()) => {
                stats.commits += 1;
                if fault == Some(CommitFault::UnknownAfterApply) {
                    return Err(TxnError::Unknown("injected: applied".into()));
                }
                Ok(())
            }
            Err(e) => {
                stats.conflicts += 1;
                Err(e)
            }
        }
    }
}

fn check(
    t: &Tables,
    reads: &HashMap<(usize, Vec<u8>), u64>,
    empties: &[(usize, Vec<u8>)],
) -> Result<(), TxnError> {
    for ((shard, key), seen) in reads {
        let now = t.shards[*shard].get(key).map(|r| r.0).unwrap_or(0);
        if now != *seen {
            return Err(TxnError::Conflict(format!(
                "version of {} changed",
                String::from_utf8_lossy(key)
            )));
        }
    }
    for (shard, prefix) in empties {
        let end = prefix_end(prefix);
        let mut range = t.shards[*shard].range(prefix.clone()..);
        if let Some((k, _)) = range.next()
            && (end.is_empty() || *k < end)
        {
            return Err(TxnError::Conflict(format!(
                "{} is not empty",
                String::from_utf8_lossy(prefix)
            )));
        }
    }
    Ok(())
}

impl Store for MemStore {
    type Txn = MemTxn;

    fn begin(&self) -> MemTxn {
        MemTxn {
            shared: self.shared.clone(),
            reads: HashMap::new(),
            empties: Vec::new(),
            writes: Vec::new(),
            label: "",
            bad_route: None,
        }
    }

    async fn alloc_seq(&self) -> Result<u64, TxnError> {
        Ok(self.shared.seq.fetch_add(1, Ordering::Relaxed))
    }

    fn vparts(&self) -> u32 {
        self.shared.vparts
    }

    fn shards(&self) -> u32 {
        self.shared.tables.lock().shards.len() as u32
    }

    async fn open_intents(&self) -> Result<Vec<OpenIntent>, TxnError> {
        Ok(Vec::new())
    }

    fn intent_timeout_ms(&self) -> u64 {
        5000
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys;

    fn k(name: &str) -> Key {
        keys::dentry(keys::ROOT_INO, name)
    }

    #[tokio::test]
    async fn formats_the_root_at_construction() {
        let s = MemStore::new(2, 8);
        let mut t = s.begin();
        let rows = t
            .get(
                &[keys::inode(keys::ROOT_INO), keys::meta(keys::META_PARTMAP)],
                false,
            )
            .await
            .unwrap();
        assert!(rows.iter().all(Versioned::exists));
    }

    #[tokio::test]
    async fn validated_read_conflicts_when_row_changes() {
        let s = MemStore::new(2, 8);
        let mut a = s.begin();
        let seen = a.get(&[k("x")], true).await.unwrap();
        assert!(!seen[0].exists());
        a.put(k("x"), b"a".to_vec());
        let mut b = s.begin();
        b.get(&[k("x")], true).await.unwrap();
        b.put(k("x"), b"b".to_vec());
        a.commit().await.unwrap();
        assert!(matches!(b.commit().await, Err(TxnError::Conflict(_))));
        let mut r = s.begin();
        assert_eq!(r.get(&[k("x")], false).await.unwrap()[0].value, b"a");
        // An unvalidated read does not conflict.
        let mut c = s.begin();
        c.get(&[k("x")], false).await.unwrap();
        let mut d = s.begin();
        d.put(k("x"), b"d".to_vec());
        d.commit().await.unwrap();
        c.put(k("y"), b"c".to_vec());
        c.commit().await.unwrap();
    }

    #[tokio::test]
    async fn counters_commute_and_never_conflict() {
        let s = MemStore::new(1, 4);
        let key = keys::counter(77);
        let mut txns = Vec::new();
        for i in 0..5 {
            let mut t = s.begin();
            t.counter(
                key.clone(),
                4,
                vec![(0, CounterOp::Add, 1), (2, CounterOp::Max, i)],
            );
            txns.push(t);
        }
        for t in txns {
            t.commit().await.unwrap();
        }
        let mut r = s.begin();
        let row = r.get(&[key], false).await.unwrap().remove(0);
        let f = crate::keys::DirCounter::decode(&row.value);
        assert_eq!(f[0], 5);
        assert_eq!(f[2], 4);
    }

    #[tokio::test]
    async fn require_empty_fails_when_prefix_gains_a_row() {
        let s = MemStore::new(1, 4);
        let mut a = s.begin();
        a.require_empty(keys::route_of(5), keys::dentry_prefix(5));
        a.put(keys::inode(5), vec![1]);
        let mut b = s.begin();
        b.put(keys::dentry(5, "child"), vec![2]);
        b.commit().await.unwrap();
        assert!(matches!(a.commit().await, Err(TxnError::Conflict(_))));
        // A row of the next parent does not count.
        let mut c = s.begin();
        c.require_empty(keys::route_of(4), keys::dentry_prefix(4));
        c.put(keys::inode(4), vec![1]);
        c.commit().await.unwrap();
    }

    #[tokio::test]
    async fn scans_see_one_shard_and_page() {
        let s = MemStore::new(2, 4);
        let mut t = s.begin();
        for i in 0..5 {
            t.put(keys::dentry(keys::make_ino(1, 9), &format!("n{i}")), vec![]);
        }
        t.put(keys::dentry(keys::make_ino(2, 9), "other"), vec![]);
        t.commit().await.unwrap();
        let mut r = s.begin();
        let prefix = keys::dentry_prefix(keys::make_ino(1, 9));
        let (rows, more) = r
            .scan(Route::Vpart(1), prefix.clone(), prefix_end(&prefix), 3)
            .await
            .unwrap();
        assert_eq!(rows.len(), 3);
        assert!(more);
        let (all, more) = r.scan(Route::Shard(1), vec![], vec![], 0).await.unwrap();
        assert!(!more);
        assert_eq!(all.len(), 5, "vpart 1 is on shard 1, vpart 2 on shard 0");
    }

    #[tokio::test]
    async fn injected_unknown_outcomes() {
        let s = MemStore::new(1, 4);
        s.inject("", CommitFault::UnknownAfterApply);
        let mut t = s.begin();
        t.put(k("a"), vec![1]);
        assert!(matches!(t.commit().await, Err(TxnError::Unknown(_))));
        s.inject("", CommitFault::UnknownWithoutApply);
        let mut t = s.begin();
        t.put(k("b"), vec![1]);
        assert!(matches!(t.commit().await, Err(TxnError::Unknown(_))));
        let mut r = s.begin();
        let rows = r.get(&[k("a"), k("b")], false).await.unwrap();
        assert!(rows[0].exists());
        assert!(!rows[1].exists());
    }
}
