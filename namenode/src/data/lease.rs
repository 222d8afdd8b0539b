//! The writer lease: a file has at most one writer. OpenWrite grants a `WriteLease` row
//! (`W ‖ ino`, on the file's shard) with a random token the writer carries; AddBlock,
//! CommitWrite and RenewLease move its expiry forward (the soft limit). While it is live,
//! another OpenWrite or a truncate answers LEASE_HELD; once it has expired, the next writer
//! recovers it: the old writer's allocated-but-uncommitted blocks are freed and its token stops
//! working (LEASE_EXPIRED), in the same transaction that grants the new lease. Every check
//! reads the lease row validated, so a recovery and a late call of the old writer cannot both
//! commit.

use arbor_proto::records::WriteLease;
use prost::Message;

use crate::data::blocks;
use crate::data::{DataConfig, nanos};
use crate::error::NnError;
use crate::keys::{self, Ino};
use crate::txn::{Txn, Versioned};

pub fn decode(row: &Versioned) -> Result<Option<WriteLease>, NnError> {
    if !row.exists() {
        return Ok(None);
    }
    Ok(Some(WriteLease::decode(row.value.as_slice())?))
}

pub fn is_live(lease: &WriteLease, now: i64) -> bool {
    lease.expires_ns > now
}

/// A short printable name of a client id.
pub fn client_name(id: &[u8]) -> String {
    if id.is_empty() {
        return "an anonymous client".to_string();
    }
    let hex: String = id.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("client {hex}")
}

/// LEASE_HELD, worded as HDFS's AlreadyBeingCreatedException.
pub fn held(path: &str, op: &str, caller_id: &[u8], lease: &WriteLease, now: i64) -> NnError {
    let left_ms = (lease.expires_ns.saturating_sub(now) / 1_000_000).max(0);
    NnError::LeaseHeld(format!(
        "`{path}': Failed to {op} {path} for {} because this file lease is currently owned by \
         {} (the lease expires in {} s unless renewed)",
        client_name(caller_id),
        client_name(&lease.holder),
        (left_ms + 999) / 1000
    ))
}

pub fn expired(what: &str) -> NnError {
    NnError::LeaseExpired(format!(
        "`{what}': the write lease is no longer held by this writer (it expired and was \
         recovered, or the file was closed or deleted)"
    ))
}

/// Makes room for a new writer (or a truncate) of `ino`, whose lease row was read validated
/// as `current`: a live lease is LEASE_HELD; an expired one is recovered (its pending
/// allocations freed, the row removed).
pub async fn take_over<T: Txn>(
    txn: &mut T,
    ino: Ino,
    current: Option<&WriteLease>,
    path: &str,
    op: &str,
    caller_id: &[u8],
    now: i64,
) -> Result<(), NnError> {
    let Some(lease) = current else {
        return Ok(());
    };
    if is_live(lease, now) {
        return Err(held(path, op, caller_id, lease, now));
    }
    let freed = blocks::free_pending(txn, ino, Some(&lease.lease_id), now).await?;
    tracing::info!(
        ino,
        path,
        holder = %client_name(&lease.holder),
        freed,
        "recovered an expired write lease"
    );
    txn.delete(keys::write_lease(ino));
    Ok(())
}

/// A new lease for `holder`, written into `txn`.
pub fn grant<T: Txn>(
    txn: &mut T,
    ino: Ino,
    holder: &[u8],
    policy: &str,
    config: &DataConfig,
    now: i64,
) -> WriteLease {
    let lease = WriteLease {
        holder: holder.to_vec(),
        lease_id: uuid::Uuid::new_v4().as_bytes().to_vec(),
        expires_ns: now.saturating_add(nanos(config.lease_soft)),
        granted_ns: now,
        policy: policy.to_string(),
    };
    txn.put(keys::write_lease(ino), lease.encode_to_vec());
    lease
}

/// The caller's lease on `ino` from its validated row, or LEASE_EXPIRED.
pub fn require(row: &Versioned, ino: Ino, token: &[u8]) -> Result<WriteLease, NnError> {
    match decode(row)? {
        Some(lease) if !token.is_empty() && lease.lease_id == token => Ok(lease),
        _ => Err(expired(&format!("inode {ino}"))),
    }
}

/// Moves the lease's expiry forward, written into `txn`.
pub fn extend<T: Txn>(txn: &mut T, ino: Ino, mut lease: WriteLease, config: &DataConfig, now: i64) {
    lease.expires_ns = now.saturating_add(nanos(config.lease_soft));
    txn.put(keys::write_lease(ino), lease.encode_to_vec());
}

/// What a writer's call by inode number reads first: the inode and lease rows of `ino`,
/// validated with the call's retry record. `Err` carries the stored answer of an earlier
/// attempt of this call that committed.
pub async fn read_file<T: Txn>(
    txn: &mut T,
    exo: &mut crate::ops::Exo,
    ino: Ino,
) -> Result<Result<(Versioned, Versioned), Vec<u8>>, NnError> {
    let mut want = vec![keys::inode(ino), keys::write_lease(ino)];
    want.extend(exo.home(keys::route_of(ino)));
    let mut rows = txn.get(&want, true).await?.into_iter();
    let (inode, lease) = (
        rows.next().unwrap_or_default(),
        rows.next().unwrap_or_default(),
    );
    if let Some(r) = rows.next()
        && let Some(answer) = crate::ops::Exo::replay(&r)?
    {
        return Ok(Err(answer));
    }
    Ok(Ok((inode, lease)))
}
