//! `ShardedTxn`: one transaction over the metastore shards. Reads go out at once (batched per
//! shard, all shards in parallel) and validated ones join the read set; writes wait in the
//! buffer until `commit` hands everything to the coordinator.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::join_all;

use super::Shared;
use super::buffer::TxnBuffer;
use super::coordinator;
use super::metaclient::CallError;
use crate::txn::{CounterOp, Key, Route, ScanPage, ScanRange, Txn, TxnError, Versioned};

/// A transaction over the shards of one cluster.
pub struct ShardedTxn {
    shared: Arc<Shared>,
    buffer: TxnBuffer,
    label: &'static str,
    /// A write to a route no shard owns; reported by `commit`, since writes cannot fail early.
    bad_route: Option<TxnError>,
}

impl ShardedTxn {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            buffer: TxnBuffer::default(),
            label: "",
            bad_route: None,
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
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut by_shard: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, key) in keys.iter().enumerate() {
            let shard = self.shared.routing.try_shard_of(key.route)?;
            by_shard.entry(shard).or_default().push(i);
        }
        let shared = Arc::clone(&self.shared);
        let calls = by_shard.into_iter().map(|(shard, idx)| {
            let shared = &shared;
            let request: Vec<Vec<u8>> = idx.iter().map(|&i| keys[i].bytes.clone()).collect();
            async move {
                shared.counters.get_sent();
                let rows = shared
                    .client(shard)?
                    .get(request)
                    .await
                    .map_err(CallError::into_read_error)?;
                Ok::<_, TxnError>((shard, idx, rows))
            }
        });
        let mut out = vec![Versioned::default(); keys.len()];
        for answer in join_all(calls).await {
            let (shard, idx, rows) = answer?;
            for (i, row) in idx.into_iter().zip(rows) {
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
        Ok(out)
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
        let shared = Arc::clone(&self.shared);
        let pages = join_all(
            scans
                .into_iter()
                .map(|s| scan_page(&shared, s.route, s.start, s.end, s.limit)),
        );
        let (rows, pages) = futures::join!(self.get(keys, validate), pages);
        Ok((rows?, pages.into_iter().collect::<Result<_, _>>()?))
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
        coordinator::commit(&self.shared, &self.buffer, self.label).await
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
    shared.counters.scan_sent();
    let resp = shared
        .client(shard)?
        .scan(start, end, limit)
        .await
        .map_err(CallError::into_read_error)?;
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
    Ok((rows, resp.more))
}
