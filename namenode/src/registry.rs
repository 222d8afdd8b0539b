//! The namenodes that are up, for the status page: each namenode writes its own row
//! `meta(namenode/ID)` (a `NamenodeRecord`: its addresses and when it last wrote) every
//! [`EVERY`], one small single-shard commit on shard 0; [`list`] reads them back. A row not
//! renewed for [`ALIVE_FOR`] is a namenode that stopped; the leader removes rows older than
//! [`FORGET_AFTER`], so the table holds the namenodes of the last hour.

use std::time::Duration;

use arbor_proto::records::NamenodeRecord;
use prost::Message;
use tokio::sync::watch;

use crate::attrs;
use crate::data::nanos;
use crate::error::NnError;
use crate::keys;
use crate::ops::prefix_end;
use crate::txn::{Key, Route, Store, Txn, TxnError};

/// How often a namenode renews its row.
pub const EVERY: Duration = Duration::from_secs(2);
/// A row renewed within this is a live namenode.
pub const ALIVE_FOR: Duration = Duration::from_secs(10);
/// Rows older than this are removed by the leader.
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// The rows' name prefix among the cluster-wide rows.
const PREFIX: &[u8] = b"namenode/";

fn key_of(id: &[u8]) -> Key {
    let mut name = PREFIX.to_vec();
    name.extend_from_slice(id);
    keys::meta(&name)
}

/// Writes `me` with the time now.
pub async fn renew<S: Store>(store: &S, me: &NamenodeRecord) -> Result<(), NnError> {
    let mut txn = store.begin();
    txn.set_label("registry");
    let record = NamenodeRecord {
        seen_ns: attrs::now_ns(),
        ..me.clone()
    };
    txn.put(key_of(&me.id), record.encode_to_vec());
    txn.commit().await.map_err(NnError::from)
}

/// Every namenode row, in id order.
pub async fn list<S: Store>(store: &S) -> Result<Vec<NamenodeRecord>, NnError> {
    let start = keys::meta(PREFIX).bytes;
    let end = prefix_end(&start);
    let mut txn = store.begin();
    let (rows, _) = txn.scan(Route::Shard(0), start, end, 1000).await?;
    let mut out = Vec::with_capacity(rows.len());
    for (_, row) in rows {
        out.push(NamenodeRecord::decode(row.value.as_slice())?);
    }
    Ok(out)
}

/// Whether `r` was renewed recently enough to count as up at `now_ns`.
pub fn is_alive(r: &NamenodeRecord, now_ns: i64) -> bool {
    now_ns.saturating_sub(r.seen_ns) <= nanos(ALIVE_FOR)
}

/// Removes the rows not renewed for [`FORGET_AFTER`].
async fn forget_old<S: Store>(store: &S) -> Result<(), NnError> {
    let now = attrs::now_ns();
    let old: Vec<Vec<u8>> = list(store)
        .await?
        .into_iter()
        .filter(|r| now.saturating_sub(r.seen_ns) > nanos(FORGET_AFTER))
        .map(|r| r.id)
        .collect();
    if old.is_empty() {
        return Ok(());
    }
    let mut txn = store.begin();
    txn.set_label("registry");
    for id in old {
        txn.delete(key_of(&id));
    }
    match txn.commit().await {
        Ok(()) | Err(TxnError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Renews `me` every [`EVERY`] until `stop` turns true (then removes the row, so the page
/// shows the namenode gone at once); the leader also forgets old rows.
pub async fn run<S: Store>(
    store: std::sync::Arc<S>,
    me: NamenodeRecord,
    leader: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = renew(&*store, &me).await {
            tracing::debug!(error = %e, "renewing this namenode's row failed");
        }
        if *leader.borrow()
            && let Err(e) = forget_old(&*store).await
        {
            tracing::debug!(error = %e, "forgetting old namenode rows failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            let mut txn = store.begin();
            txn.set_label("registry");
            txn.delete(key_of(&me.id));
            let _ = txn.commit().await;
            return;
        }
    }
}
