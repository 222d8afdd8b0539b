//! `ShardedTxn`: one transaction over the metastore shards. Reads go out at once (batched per
//! shard, all shards in parallel) and validated ones join the read set; writes wait in the
//! buffer until `commit` hands everything to the coordinator.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::join_all;

use super::Shared;
use super::buffer::TxnBuffer;
use super::coordinator;
use super::metaclient::{CallError, ReadKeys};
use crate::counters::Call;
use crate::txn::{CounterOp, Key, Route, ScanPage, ScanRange, Txn, TxnError, Versioned};
use arbor_proto::metastore::{ScanRequest, ScanResponse};

/// A transaction over the shards of one cluster.
pub struct ShardedTxn {
    shared: Arc<Shared>,
    buffer: TxnBuffer,
    label: &'static str,
    /// A write to a route no shard owns; reported by `commit`, since writes cannot fail early.
    bad_route: Option<TxnError>,
    /// Rows served from the lease cache: forgotten if the commit meets a conflict.
    cached: Vec<Vec<u8>>,
}

impl ShardedTxn {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            buffer: TxnBuffer::default(),
            label: "",
            bad_route: None,
            cached: Vec::new(),
        }
    }

    /// The shard of a buffered write, or `None` after remembering why there is none.
    fn write_shard(&mut self, route: Route) -> Option<u32> {
        match self.shared.routing.try_shard_of(route) {
            Ok(shard) => Some(shard),
            Err(e) => {
                self.bad_route.get_or_insert(e);
                None
            }
        }
    }

    /// Shards this transaction would commit on (for tests and logs).
    pub fn participants(&self) -> Vec<u32> {
        self.buffer.participants()
    }
}

impl Txn for ShardedTxn {
    async fn get(&mut self, keys: &[Key], validate: bool) -> Result<Vec<Versioned>, TxnError> {
        self.fetch(keys, validate, &[]).await
    }

    async fn get_walk(
        &mut self,
        keys: &[Key],
        lasting: &[bool],
    ) -> Result<Vec<Versioned>, TxnError> {
        Ok(self.walk_round(keys, lasting, Vec::new()).await?.0)
    }

    async fn walk_round(
        &mut self,
        keys: &[Key],
        lasting: &[bool],
        scans: Vec<ScanRange>,
    ) -> Result<(Vec<Versioned>, Vec<ScanPage>), TxnError> {
        let rows = &self.shared.rows;
        if !rows.enabled() || !lasting.iter().any(|l| *l) {
            return self.fetch_with_scans(keys, false, &[], scans).await;
        }
        let mut out: Vec<Option<Versioned>> = vec![None; keys.len()];
        let mut missing = Vec::new();
        let mut missing_lasting = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let lasts = lasting.get(i).copied().unwrap_or(false);
            match lasts.then(|| rows.get(&key.bytes)).flatten() {
                Some(row) => {
                    self.cached.push(key.bytes.clone());
                    out[i] = Some(row);
                }
                None => {
                    missing.push(i);
                    missing_lasting.push(lasts);
                }
            }
        }
        let mut pages = Vec::new();
        if !missing.is_empty() || !scans.is_empty() {
            let wanted: Vec<Key> = missing.iter().map(|&i| keys[i].clone()).collect();
            let sent = std::time::Instant::now();
            let (got, got_pages) = self
                .fetch_with_scans(&wanted, false, &missing_lasting, scans)
                .await?;
            pages = got_pages;
            for ((i, lasts), row) in missing.into_iter().zip(missing_lasting).zip(got) {
                if lasts {
                    self.shared.rows.put(&keys[i].bytes, &row, sent);
                }
                out[i] = Some(row);
            }
        }
        Ok((
            out.into_iter().map(Option::unwrap_or_default).collect(),
            pages,
        ))
    }

    async fn scan(
        &mut self,
        route: Route,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: u32,
    ) -> Result<ScanPage, TxnError> {
        scan_page(&self.shared, route, start, end, limit).await
    }

    async fn read_round(
        &mut self,
        keys: &[Key],
        validate: bool,
        scans: Vec<ScanRange>,
    ) -> Result<(Vec<Versioned>, Vec<ScanPage>), TxnError> {
        self.fetch_with_scans(keys, validate, &[], scans).await
    }

    fn expect(&mut self, key: Key, version: u64) {
        if let Some(shard) = self.write_shard(key.route) {
            self.buffer.record_read(shard, key.bytes, version);
        }
    }

    fn put(&mut self, key: Key, value: Vec<u8>) {
        if let Some(shard) = self.write_shard(key.route) {
            self.buffer.put(shard, key.bytes, value);
        }
    }

    fn delete(&mut self, key: Key) {
        if let Some(shard) = self.write_shard(key.route) {
            self.buffer.delete(shard, key.bytes);
        }
    }

    fn counter(&mut self, key: Key, width: u32, fields: Vec<(u32, CounterOp, i64)>) {
        if let Some(shard) = self.write_shard(key.route) {
            self.buffer.counter(shard, key.bytes, width, fields);
        }
    }

    fn require_empty(&mut self, route: Route, prefix: Vec<u8>) {
        if let Some(shard) = self.write_shard(route) {
            self.buffer.require_empty(shard, prefix);
        }
    }

    fn set_label(&mut self, label: &'static str) {
        self.label = label;
    }

    fn is_read_only(&self) -> bool {
        !self.buffer.has_writes()
    }

    async fn commit(self) -> Result<(), TxnError> {
        if let Some(e) = self.bad_route {
            return Err(e);
        }
        if !self.buffer.has_writes() {
            return Ok(());
        }
        self.shared
            .counters
            .commit(self.label, self.buffer.participants().len());
        let result = coordinator::commit(&self.shared, &self.buffer, self.label).await;
        self.shared
            .counters
            .finished(self.buffer.participants().len(), &result);
        // Whatever the outcome (it may be unknown), what this transaction wrote is not kept,
        // and after a conflict neither is what it read from the cache.
        self.shared.rows.wrote(self.buffer.replaced_keys());
        if matches!(result, Err(TxnError::Conflict(_))) {
            self.shared
                .rows
                .forget(self.cached.iter().map(Vec::as_slice));
        }
        result
    }
}

impl ShardedTxn {
    /// Point reads, each shard asked once and all in parallel; rows marked in `lease` are
    /// read under a lease.
    async fn fetch(
        &mut self,
        keys: &[Key],
        validate: bool,
        lease: &[bool],
    ) -> Result<Vec<Versioned>, TxnError> {
        Ok(self
            .fetch_with_scans(keys, validate, lease, Vec::new())
            .await?
            .0)
    }

    /// Point reads of `keys` and one page of each scan, one call per shard (every shard at
    /// once): a shard's keys and scans travel together.
    async fn fetch_with_scans(
        &mut self,
        keys: &[Key],
        validate: bool,
        lease: &[bool],
        scans: Vec<ScanRange>,
    ) -> Result<(Vec<Versioned>, Vec<ScanPage>), TxnError> {
        if keys.is_empty() && scans.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut by_shard: BTreeMap<u32, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
        for (i, key) in keys.iter().enumerate() {
            let shard = self.shared.routing.try_shard_of(key.route)?;
            by_shard.entry(shard).or_default().0.push(i);
        }
        for (j, scan) in scans.iter().enumerate() {
            let shard = self.shared.routing.try_shard_of(scan.route)?;
            by_shard.entry(shard).or_default().1.push(j);
        }
        let shared = Arc::clone(&self.shared);
        let calls = by_shard.into_iter().map(|(shard, (idx, sidx))| {
            let shared = &shared;
            let read = ReadKeys {
                keys: idx.iter().map(|&i| keys[i].bytes.clone()).collect(),
                leased: if lease.is_empty() {
                    Vec::new()
                } else {
                    idx.iter()
                        .map(|&i| lease.get(i).copied().unwrap_or(false))
                        .collect()
                },
                scans: sidx
                    .iter()
                    .map(|&j| ScanRequest {
                        start: scans[j].start.clone(),
                        end: scans[j].end.clone(),
                        limit: scans[j].limit,
                        keys_only: false,
                    })
                    .collect(),
            };
            async move {
                if !read.keys.is_empty() {
                    shared.counters.sent(shard, Call::Get);
                }
                for _ in &read.scans {
                    shared.counters.sent(shard, Call::Scan);
                }
                let answer = shared
                    .client(shard)?
                    .read(read)
                    .await
                    .map_err(CallError::into_read_error)?;
                Ok::<_, TxnError>((shard, idx, sidx, answer))
            }
        });
        let mut out = vec![Versioned::default(); keys.len()];
        let mut pages: Vec<ScanPage> = vec![(Vec::new(), false); scans.len()];
        for answer in join_all(calls).await {
            let (shard, idx, sidx, answer) = answer?;
            for (j, page) in sidx.into_iter().zip(answer.pages) {
                pages[j] = page_of(page);
            }
            for (i, row) in idx.into_iter().zip(answer.rows) {
                if validate {
                    self.buffer
                        .record_read(shard, keys[i].bytes.clone(), row.version);
                }
                out[i] = Versioned {
                    value: row.value,
                    version: row.version,
                };
            }
        }
        Ok((out, pages))
    }
}

/// One scan call to the shard of `route`.
async fn scan_page(
    shared: &Shared,
    route: Route,
    start: Vec<u8>,
    end: Vec<u8>,
    limit: u32,
) -> Result<ScanPage, TxnError> {
    let shard = shared.routing.try_shard_of(route)?;
    shared.counters.sent(shard, Call::Scan);
    let resp = shared
        .client(shard)?
        .scan(start, end, limit)
        .await
        .map_err(CallError::into_read_error)?;
    Ok(page_of(resp))
}

/// A shard's scan page as the transaction interface gives it.
fn page_of(resp: ScanResponse) -> ScanPage {
    let rows = resp
        .rows
        .into_iter()
        .map(|row| {
            (
                row.key,
                Versioned {
                    value: row.value,
                    version: row.version,
                },
            )
        })
        .collect();
    (rows, resp.more)
}
