//! ReportBadShards: a reader found shards missing, corrupt or unreachable. Each report becomes
//! a `Q` row on the file's shard (blind writes: reporting twice is reporting once); the leader's
//! repair loop rebuilds the shard elsewhere and removes the row, or drops it when the block is
//! gone.

use arbor_proto::namenode::ReportBadShardsRequest;
use arbor_proto::records::BadShardRecord;
use prost::Message;

use crate::attrs;
use crate::error::NnError;
use crate::keys;
use crate::ops::{Exo, Namespace, Outcome, Runner};
use crate::perm::Caller;
use crate::txn::{Store, Txn};

pub async fn report_bad_shards<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    req: &ReportBadShardsRequest,
) -> Result<(), NnError> {
    if req.shards.is_empty() {
        return Ok(());
    }
    let mut runner = Runner::new(ns, caller, "report bad shards");
    loop {
        let mut txn = ns.begin("report_bad_shards");
        let exo = Exo::disabled();
        let now = attrs::now_ns();
        let vparts = ns.store.vparts();
        for s in &req.shards {
            // A report naming no file (or a nonsense one) is kept on shard 0's partition.
            let ino = if u32::from(keys::vpart(s.ino)) < vparts {
                s.ino
            } else {
                0
            };
            tracing::info!(
                block = s.block_id,
                index = s.index,
                server = s.server_id,
                reason = %s.reason,
                "bad shard reported"
            );
            let record = BadShardRecord {
                block_id: s.block_id,
                index: s.index,
                server_id: s.server_id,
                reason: s.reason.clone(),
                ino,
                block_index: s.block_index,
                reported_ns: now,
            };
            txn.put(
                keys::bad_shard(ino, s.block_id, s.index),
                record.encode_to_vec(),
            );
        }
        let result = Ok(Outcome::Done(arbor_proto::namenode::Empty {}));
        if runner.finish(txn, exo, result).await?.is_some() {
            return Ok(());
        }
    }
}
