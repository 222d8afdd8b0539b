//! The two-phase-commit participant: prepared intents, their locks, and transaction records.
//!
//! Invariants: a transaction holds its locks here from its prepare until the record that
//! decides it here (and drops its intent row) is durable and visible to readers (in the read
//! overlay or the tables), so a reader that finds no lock on a key finds the key's latest
//! decided value (the lock table is rebuilt from intent rows at open, when everything logged is
//! applied); a transaction's
//! writes are applied in the same log record that drops its intent; on the primary, the record
//! that writes COMMITTED is the commit point and the only one that applies the writes there. A
//! decision, once recorded, is never changed: a late commit of an aborted transaction answers
//! ALREADY_ABORTED, a late prepare answers DECIDED_ABORT.

use crate::error::{Error, Result};
use crate::keyspace::{self, TXN};
use crate::locks::{LockTable, ReadSet};
use crate::txn::{self, Conflict, View};
use crate::wal::Op;
use arbor_proto::metastore::{PrepareRequest, TxnBody, conflict::Reason};
use prost::Message;
use std::collections::HashMap;

/// A prepared transaction on this shard.
#[derive(Clone, Debug, PartialEq)]
pub struct Intent {
    /// The prepare as received (its body is always present).
    pub req: PrepareRequest,
    /// Wall-clock milliseconds at prepare.
    pub prepared_at_ms: u64,
}

impl Intent {
    pub fn txn_id(&self) -> &[u8] {
        &self.req.txn_id
    }

    pub fn body(&self) -> &TxnBody {
        static EMPTY: TxnBody = TxnBody {
            reads: Vec::new(),
            empty_prefixes: Vec::new(),
            writes: Vec::new(),
        };
        self.req.body.as_ref().unwrap_or(&EMPTY)
    }

    /// Whether this shard holds the transaction record (decides the outcome).
    pub fn is_primary(&self) -> bool {
        self.req.this_shard == self.req.primary_shard
    }

    pub fn age_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.prepared_at_ms)
    }

    /// `prepared_at_ms` (u64 BE) ‖ the prepare request (protobuf).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.req.encoded_len());
        out.extend_from_slice(&self.prepared_at_ms.to_be_bytes());
        self.req.encode(&mut out).unwrap_or_default();
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < 8 {
            return Err(Error::corrupt("intent", "short row"));
        }
        let (at, rest) = bytes.split_at(8);
        let mut b = [0u8; 8];
        b.copy_from_slice(at);
        let req =
            PrepareRequest::decode(rest).map_err(|e| Error::corrupt("intent", e.to_string()))?;
        Ok(Self {
            req,
            prepared_at_ms: u64::from_be_bytes(b),
        })
    }

    pub fn summary(&self) -> IntentSummary {
        IntentSummary {
            txn_id: self.req.txn_id.clone(),
            primary_shard: self.req.primary_shard,
            primary_addr: self.req.primary_addr.clone(),
            is_primary: self.is_primary(),
            prepared_at_ms: self.prepared_at_ms,
        }
    }
}

/// What status reports and the resolver needs of an intent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntentSummary {
    pub txn_id: Vec<u8>,
    pub primary_shard: u32,
    pub primary_addr: String,
    pub is_primary: bool,
    pub prepared_at_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnState {
    Committed,
    Aborted,
}

/// A decided transaction, kept until swept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnRecord {
    pub state: TxnState,
    /// Wall-clock milliseconds of the decision.
    pub at_ms: u64,
    /// The seq that applied the writes here (0 for an abort).
    pub seq: u64,
}

impl TxnRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17);
        out.push(match self.state {
            TxnState::Committed => 1,
            TxnState::Aborted => 2,
        });
        out.extend_from_slice(&self.at_ms.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != 17 {
            return Err(Error::corrupt(
                "txn record",
                format!("{} bytes", bytes.len()),
            ));
        }
        let state = match bytes[0] {
            1 => TxnState::Committed,
            2 => TxnState::Aborted,
            s => return Err(Error::corrupt("txn record", format!("state {s}"))),
        };
        let mut at = [0u8; 8];
        at.copy_from_slice(&bytes[1..9]);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&bytes[9..17]);
        Ok(Self {
            state,
            at_ms: u64::from_be_bytes(at),
            seq: u64::from_be_bytes(seq),
        })
    }
}

/// The recorded decision for `txn_id`, if any.
pub fn txn_record(view: &dyn View, txn_id: &[u8]) -> Result<Option<TxnRecord>> {
    view.get(&keyspace::key(TXN, txn_id))?
        .map(|v| TxnRecord::decode(&v))
        .transpose()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrepareOutcome {
    Prepared,
    Conflict(Conflict),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecideOutcome {
    /// Applied here at this seq (or earlier, for a repeated decision).
    Committed(u64),
    Aborted,
    /// Commit asked after the transaction was decided ABORTED.
    AlreadyAborted,
    /// No intent and no record here.
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolveOutcome {
    Committed,
    Aborted,
    Pending,
}

/// What a participant request does: log operations to write (none: nothing to log) and the
/// answer, which is sent once the operations are durable.
#[derive(Debug)]
pub struct Step<T> {
    pub ops: Vec<Op>,
    pub outcome: T,
}

impl<T> Step<T> {
    fn answer(outcome: T) -> Self {
        Self {
            ops: Vec::new(),
            outcome,
        }
    }
}

fn record_op(txn_id: &[u8], state: TxnState, at_ms: u64, seq: u64) -> Op {
    Op::PutTxnRecord {
        txn_id: txn_id.to_vec(),
        record: TxnRecord { state, at_ms, seq }.encode(),
    }
}

/// An intent held in memory, with the order of its prepare among this shard's prepares since
/// open (a read ignores intents prepared after it began: their commit point is later too).
#[derive(Debug)]
struct Held {
    intent: Intent,
    stamp: u64,
}

/// An intent decided here whose decision record is logged (at `seq`) but not yet durable and
/// visible: it keeps its locks, and readers wait for it, until the completer retires it.
#[derive(Debug)]
struct Retiring {
    held: Held,
    seq: u64,
}

/// A transaction that will put or delete a key a read returns, as the read found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Writer {
    /// Decided here: its decision record is logged at `seq`, not yet visible.
    Decided { seq: u64 },
    /// Prepared here and not decided here yet.
    Prepared(IntentSummary),
}

/// The 2PC state of one shard. The committer thread runs every state change in log order; the
/// completer retires decided intents once their records are durable and visible; readers only
/// look.
#[derive(Debug)]
pub struct Participant {
    shard: u32,
    timeout_ms: u64,
    /// Prepared and undecided here.
    intents: HashMap<Vec<u8>, Held>,
    /// Decided here, the decision not yet durable and visible.
    retiring: HashMap<Vec<u8>, Retiring>,
    locks: LockTable,
    /// Stamp of the latest prepare.
    stamp: u64,
}

impl Participant {
    pub fn new(shard: u32, timeout_ms: u64) -> Self {
        Self {
            shard,
            timeout_ms,
            intents: HashMap::new(),
            retiring: HashMap::new(),
            locks: LockTable::default(),
            stamp: 0,
        }
    }

    /// Re-adds an intent found in the tables at open, with its locks.
    pub fn restore(&mut self, intent: Intent) {
        self.hold(intent);
    }

    fn hold(&mut self, intent: Intent) {
        self.locks.acquire(intent.body());
        self.stamp += 1;
        let held = Held {
            intent,
            stamp: self.stamp,
        };
        self.intents.insert(held.intent.req.txn_id.clone(), held);
        crate::metrics::INTENTS_OPEN.set(self.intents.len() as i64);
    }

    /// The stamp of the latest prepare: intents stamped later were prepared after this call.
    pub fn stamp(&self) -> u64 {
        self.stamp
    }

    /// The transactions prepared (stamped) at or before `horizon` that will put or delete a key
    /// of `reads`, undecided or decided but not yet visible. Without an exclusive lock in
    /// `reads` this is one lock-table lookup per key (or one range walk).
    pub fn writers(&self, reads: &ReadSet<'_>, horizon: u64) -> Vec<Writer> {
        if !self.locks.exclusive_in(reads) {
            return Vec::new();
        }
        let writes_into = |h: &Held| {
            h.stamp <= horizon
                && h.intent
                    .body()
                    .writes
                    .iter()
                    .any(|w| reads.contains(&w.key))
        };
        let prepared = self
            .intents
            .values()
            .filter(|h| writes_into(h))
            .map(|h| Writer::Prepared(h.intent.summary()));
        let decided = self
            .retiring
            .values()
            .filter(|r| writes_into(&r.held))
            .map(|r| Writer::Decided { seq: r.seq });
        prepared.chain(decided).collect()
    }

    /// Drops the intents whose decision records are visible (at or below `visible`), and
    /// their locks. Called by the completer once those records are durable and their rows are
    /// in the read overlay.
    pub fn retire_through(&mut self, visible: u64) {
        if self.retiring.is_empty() {
            return;
        }
        let done: Vec<Vec<u8>> = self
            .retiring
            .iter()
            .filter(|(_, r)| r.seq <= visible)
            .map(|(id, _)| id.clone())
            .collect();
        for id in done {
            if let Some(r) = self.retiring.remove(&id) {
                self.locks.release(r.held.intent.body());
            }
        }
    }

    pub fn locks(&self) -> &LockTable {
        &self.locks
    }

    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms
    }

    /// The undecided intents (a decided one is gone once its record is visible, which is
    /// before the answer of any request logged after the decision).
    pub fn summaries(&self) -> Vec<IntentSummary> {
        self.intents.values().map(|h| h.intent.summary()).collect()
    }

    /// Undecided intents prepared at least the intent timeout ago.
    pub fn expired(&self, now_ms: u64) -> Vec<IntentSummary> {
        self.intents
            .values()
            .map(|h| &h.intent)
            .filter(|i| i.age_ms(now_ms) >= self.timeout_ms)
            .map(Intent::summary)
            .collect()
    }

    /// Phase one: validate like a commit, then record the intent and take its locks.
    pub fn prepare(
        &mut self,
        mut req: PrepareRequest,
        view: &dyn View,
        now_ms: u64,
    ) -> Result<Step<PrepareOutcome>> {
        if req.this_shard != self.shard {
            return Err(Error::InvalidArgument(format!(
                "prepare for shard {} sent to shard {}",
                req.this_shard, self.shard
            )));
        }
        let body = req.body.get_or_insert_default();
        txn::check_body(body)?;
        if self.intents.contains_key(&req.txn_id) {
            return Ok(Step::answer(PrepareOutcome::Prepared));
        }
        // Any decision already recorded means this prepare arrives late (or twice): preparing
        // again could apply the writes a second time.
        if txn_record(view, &req.txn_id)?.is_some() {
            return Ok(Step::answer(PrepareOutcome::Conflict(Conflict::new(
                Reason::DecidedAbort,
                &req.txn_id,
            ))));
        }
        if let Some(c) = txn::validate(body, view, &self.locks)? {
            return Ok(Step::answer(PrepareOutcome::Conflict(c)));
        }
        let intent = Intent {
            req,
            prepared_at_ms: now_ms,
        };
        let ops = vec![Op::PutIntent {
            txn_id: intent.req.txn_id.clone(),
            intent: intent.encode(),
        }];
        self.hold(intent);
        Ok(Step {
            ops,
            outcome: PrepareOutcome::Prepared,
        })
    }

    /// Phase two. `seq` is the seq the returned operations will be logged at.
    pub fn decide(
        &mut self,
        txn_id: &[u8],
        commit: bool,
        view: &dyn View,
        now_ms: u64,
        seq: u64,
    ) -> Result<Step<DecideOutcome>> {
        let record = txn_record(view, txn_id)?;
        let Some(held) = self.intents.get(txn_id) else {
            // A decision logged but not yet applied is seen here through its record.
            return Ok(match (commit, record) {
                (_, Some(r)) if r.state == TxnState::Committed => {
                    Step::answer(DecideOutcome::Committed(r.seq))
                }
                (true, Some(_)) => Step::answer(DecideOutcome::AlreadyAborted),
                (true, None) => Step::answer(DecideOutcome::Unknown),
                (false, Some(_)) => Step::answer(DecideOutcome::Aborted),
                // Recording the abort makes a prepare still in flight fail when it lands.
                (false, None) => Step {
                    ops: vec![record_op(txn_id, TxnState::Aborted, now_ms, 0)],
                    outcome: DecideOutcome::Aborted,
                },
            });
        };
        let drop_intent = Op::DropIntent {
            txn_id: txn_id.to_vec(),
        };
        let step = match (commit, record) {
            // A decision is already recorded (cannot normally coexist with an intent): it
            // stands, and the intent goes.
            (_, Some(r)) => Step {
                ops: vec![drop_intent],
                outcome: match r.state {
                    TxnState::Committed => DecideOutcome::Committed(r.seq),
                    TxnState::Aborted if commit => DecideOutcome::AlreadyAborted,
                    TxnState::Aborted => DecideOutcome::Aborted,
                },
            },
            (true, None) => {
                // Counters resolve now, against everything committed since the prepare.
                let mut ops = txn::resolve_writes(held.intent.body().writes.clone(), view)?;
                ops.push(drop_intent);
                ops.push(record_op(txn_id, TxnState::Committed, now_ms, seq));
                Step {
                    ops,
                    outcome: DecideOutcome::Committed(seq),
                }
            }
            (false, None) => Step {
                ops: vec![drop_intent, record_op(txn_id, TxnState::Aborted, now_ms, 0)],
                outcome: DecideOutcome::Aborted,
            },
        };
        self.retire(txn_id, seq);
        Ok(step)
    }

    /// Asked of the primary about a transaction whose intent outlived its timeout somewhere.
    /// `seq` is the seq the returned operations will be logged at.
    pub fn resolve(
        &mut self,
        txn_id: &[u8],
        view: &dyn View,
        now_ms: u64,
        seq: u64,
    ) -> Result<Step<ResolveOutcome>> {
        if let Some(r) = txn_record(view, txn_id)? {
            return Ok(Step::answer(match r.state {
                TxnState::Committed => ResolveOutcome::Committed,
                TxnState::Aborted => ResolveOutcome::Aborted,
            }));
        }
        let aborted = record_op(txn_id, TxnState::Aborted, now_ms, 0);
        match self.intents.get(txn_id).map(|h| &h.intent) {
            // Only the primary decides.
            Some(i) if !i.is_primary() => Ok(Step::answer(ResolveOutcome::Pending)),
            Some(i) if i.age_ms(now_ms) < self.timeout_ms => {
                Ok(Step::answer(ResolveOutcome::Pending))
            }
            Some(_) => {
                self.retire(txn_id, seq);
                Ok(Step {
                    ops: vec![
                        Op::DropIntent {
                            txn_id: txn_id.to_vec(),
                        },
                        aborted,
                    ],
                    outcome: ResolveOutcome::Aborted,
                })
            }
            // Never prepared here (or the prepare is still in flight): abort, so it fails when
            // it lands.
            None => Ok(Step {
                ops: vec![aborted],
                outcome: ResolveOutcome::Aborted,
            }),
        }
    }

    /// The intent is decided by the record logged at `seq`: it keeps its locks until that
    /// record is durable and visible.
    fn retire(&mut self, txn_id: &[u8], seq: u64) {
        let removed = self.intents.remove(txn_id);
        crate::metrics::INTENTS_OPEN.set(self.intents.len() as i64);
        if let Some(held) = removed {
            // A retiring id has a logged record, so it cannot be prepared (and retired) again
            // before it is applied; should it be, the older entry's locks must not leak.
            if let Some(old) = self
                .retiring
                .insert(txn_id.to_vec(), Retiring { held, seq })
            {
                self.locks.release(old.held.intent.body());
            }
        }
    }
}

/// Drops the records of `txn_ids` that are still older than `cutoff_ms`.
pub fn sweep(txn_ids: &[Vec<u8>], cutoff_ms: u64, view: &dyn View) -> Result<Vec<Op>> {
    let mut ops = Vec::new();
    for id in txn_ids {
        if let Some(r) = txn_record(view, id)?
            && r.at_ms < cutoff_ms
        {
            ops.push(Op::DropTxnRecord { txn_id: id.clone() });
        }
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::tests::{MapView, put, read};

    fn prepare_req(txn: &[u8], this: u32, primary: u32, body: TxnBody) -> PrepareRequest {
        PrepareRequest {
            txn_id: txn.to_vec(),
            body: Some(body),
            primary_shard: primary,
            primary_addr: "127.0.0.1:1".into(),
            participants: vec![primary, this],
            this_shard: this,
            ..Default::default()
        }
    }

    /// Applies ops to a map view the way the shard applies a record.
    fn apply(view: &mut MapView, seq: u64, ops: Vec<Op>) {
        let record = crate::wal::LogRecord {
            seq,
            hlc: 0,
            txn_id: vec![],
            ops,
        };
        for (k, v) in keyspace::mutations(&record) {
            match v {
                Some(v) => view.0.insert(k, v),
                None => view.0.remove(&k),
            };
        }
    }

    #[test]
    fn encodings_round_trip() {
        let i = Intent {
            req: prepare_req(b"t", 1, 0, TxnBody::default()),
            prepared_at_ms: 1234,
        };
        assert_eq!(Intent::decode(&i.encode()).unwrap(), i);
        let r = TxnRecord {
            state: TxnState::Aborted,
            at_ms: 9,
            seq: 0,
        };
        assert_eq!(TxnRecord::decode(&r.encode()).unwrap(), r);
        assert!(TxnRecord::decode(&[3; 17]).is_err());
    }

    #[test]
    fn primary_lifecycle() {
        let mut view = MapView::default();
        let mut p = Participant::new(0, 1000);
        let body = TxnBody {
            reads: vec![read(b"r", 0)],
            writes: vec![put(b"w", b"v")],
            ..Default::default()
        };
        let step = p
            .prepare(prepare_req(b"t1", 0, 0, body.clone()), &view, 10)
            .unwrap();
        assert_eq!(step.outcome, PrepareOutcome::Prepared);
        apply(&mut view, 1, step.ops);
        // A second prepare of the same id is answered prepared, logging nothing.
        let again = p
            .prepare(prepare_req(b"t1", 0, 0, body), &view, 11)
            .unwrap();
        assert_eq!(again.outcome, PrepareOutcome::Prepared);
        assert!(again.ops.is_empty());
        assert!(p.locks().exclusively_locked(b"w"));
        // Not expired yet: pending.
        let r = p.resolve(b"t1", &view, 500, 2).unwrap();
        assert_eq!(r.outcome, ResolveOutcome::Pending);
        // Commit point. The locks stay until the tables hold the decision.
        let d = p.decide(b"t1", true, &view, 20, 2).unwrap();
        assert_eq!(d.outcome, DecideOutcome::Committed(2));
        apply(&mut view, 2, d.ops);
        assert!(p.locks().exclusively_locked(b"w"));
        assert!(p.summaries().is_empty());
        p.retire_through(1);
        assert!(p.locks().exclusively_locked(b"w"));
        p.retire_through(2);
        assert!(p.locks().is_empty());
        assert_eq!(txn::row(&view, b"w").unwrap(), Some((2, b"v".to_vec())));
        // Idempotent, and nothing can abort it now.
        assert_eq!(
            p.decide(b"t1", true, &view, 30, 3).unwrap().outcome,
            DecideOutcome::Committed(2)
        );
        assert_eq!(
            p.decide(b"t1", false, &view, 30, 3).unwrap().outcome,
            DecideOutcome::Committed(2)
        );
        assert_eq!(
            p.resolve(b"t1", &view, 10_000, 3).unwrap().outcome,
            ResolveOutcome::Committed
        );
        // A late prepare of a decided transaction fails.
        let late = p
            .prepare(prepare_req(b"t1", 0, 0, TxnBody::default()), &view, 40)
            .unwrap();
        assert!(matches!(
            late.outcome,
            PrepareOutcome::Conflict(Conflict {
                reason: Reason::DecidedAbort,
                ..
            })
        ));
    }

    #[test]
    fn resolve_aborts_what_the_primary_never_decided() {
        let mut view = MapView::default();
        let mut p = Participant::new(0, 1000);
        let body = TxnBody {
            writes: vec![put(b"w", b"v")],
            ..Default::default()
        };
        let step = p.prepare(prepare_req(b"t", 0, 0, body), &view, 0).unwrap();
        apply(&mut view, 1, step.ops);
        let r = p.resolve(b"t", &view, 1000, 2).unwrap();
        assert_eq!(r.outcome, ResolveOutcome::Aborted);
        apply(&mut view, 2, r.ops);
        assert!(p.summaries().is_empty());
        assert!(
            p.locks().exclusively_locked(b"w"),
            "locks go when the abort is applied"
        );
        p.retire_through(2);
        assert!(p.locks().is_empty());
        assert_eq!(
            p.decide(b"t", true, &view, 1001, 3).unwrap().outcome,
            DecideOutcome::AlreadyAborted
        );
        // Neither intent nor record: aborted on the spot, durably.
        let r = p.resolve(b"never", &view, 5, 3).unwrap();
        assert_eq!(r.outcome, ResolveOutcome::Aborted);
        assert_eq!(r.ops.len(), 1);
        apply(&mut view, 3, r.ops);
        let late = p
            .prepare(prepare_req(b"never", 0, 0, TxnBody::default()), &view, 6)
            .unwrap();
        assert!(matches!(late.outcome, PrepareOutcome::Conflict(_)));
    }

    #[test]
    fn non_primary_and_sweep() {
        let mut view = MapView::default();
        let mut p = Participant::new(1, 1000);
        // Wrong shard.
        assert!(matches!(
            p.prepare(prepare_req(b"t", 2, 0, TxnBody::default()), &view, 0),
            Err(Error::InvalidArgument(_))
        ));
        let step = p
            .prepare(prepare_req(b"t", 1, 0, TxnBody::default()), &view, 0)
            .unwrap();
        apply(&mut view, 1, step.ops);
        // Only the primary decides: a non-primary answers pending however old the intent.
        assert_eq!(
            p.resolve(b"t", &view, 1_000_000, 2).unwrap().outcome,
            ResolveOutcome::Pending
        );
        assert_eq!(p.expired(1_000_000).len(), 1);
        assert_eq!(p.expired(999).len(), 0);
        let d = p.decide(b"t", true, &view, 50, 2).unwrap();
        apply(&mut view, 2, d.ops);
        assert_eq!(
            p.decide(b"t", true, &view, 60, 3).unwrap().outcome,
            DecideOutcome::Committed(2)
        );
        assert_eq!(
            p.decide(b"unknown", true, &view, 60, 3).unwrap().outcome,
            DecideOutcome::Unknown
        );
        // Records older than the cutoff go, younger ones stay.
        assert!(sweep(&[b"t".to_vec()], 50, &view).unwrap().is_empty());
        let ops = sweep(&[b"t".to_vec(), b"unknown".to_vec()], 51, &view).unwrap();
        assert_eq!(
            ops,
            vec![Op::DropTxnRecord {
                txn_id: b"t".to_vec()
            }]
        );
    }

    #[test]
    fn readers_find_writers_until_the_decision_is_applied() {
        let mut view = MapView::default();
        let mut p = Participant::new(1, 1000);
        let keys = |ks: &[&[u8]]| ks.iter().map(|k| k.to_vec()).collect::<Vec<_>>();
        let body = TxnBody {
            reads: vec![read(b"r", 0)],
            writes: vec![put(b"k1", b"v"), crate::txn::tests::del(b"k2")],
            ..Default::default()
        };
        let step = p.prepare(prepare_req(b"t", 1, 0, body), &view, 10).unwrap();
        apply(&mut view, 1, step.ops);
        let horizon = p.stamp();
        let found = p.writers(&ReadSet::Keys(&keys(&[b"x", b"k2"])), horizon);
        assert_eq!(found.len(), 1);
        match &found[0] {
            Writer::Prepared(s) => {
                assert_eq!(s.txn_id, b"t".to_vec());
                assert!(!s.is_primary);
                assert_eq!(s.primary_addr, "127.0.0.1:1");
            }
            other => panic!("{other:?}"),
        }
        let range = ReadSet::Range {
            start: b"k",
            end: Some(b"l"),
        };
        assert_eq!(p.writers(&range, horizon).len(), 1);
        // Keys only read, keys nobody touches, and intents prepared after the read began do
        // not hold a read up.
        assert!(
            p.writers(&ReadSet::Keys(&keys(&[b"r", b"z"])), horizon)
                .is_empty()
        );
        assert!(p.writers(&range, horizon - 1).is_empty());
        let later = TxnBody {
            writes: vec![put(b"k3", b"")],
            ..Default::default()
        };
        let step = p
            .prepare(prepare_req(b"u", 1, 0, later), &view, 11)
            .unwrap();
        apply(&mut view, 2, step.ops);
        assert_eq!(p.writers(&range, horizon).len(), 1);
        assert_eq!(p.writers(&range, p.stamp()).len(), 2);

        // Decided: found as such until the applier retires it; a repeated decision logs
        // nothing and answers from the record.
        let d = p.decide(b"t", true, &view, 20, 3).unwrap();
        assert!(
            p.writers(&range, horizon)
                .contains(&Writer::Decided { seq: 3 })
        );
        assert_eq!(p.expired(1_000_000).len(), 1, "only u is still undecided");
        apply(&mut view, 3, d.ops);
        let again = p.decide(b"t", true, &view, 21, 4).unwrap();
        assert!(again.ops.is_empty());
        assert_eq!(again.outcome, DecideOutcome::Committed(3));
        // A late prepare meets the record, not the retiring intent.
        let late = p
            .prepare(prepare_req(b"t", 1, 0, TxnBody::default()), &view, 22)
            .unwrap();
        assert!(matches!(late.outcome, PrepareOutcome::Conflict(_)));
        p.retire_through(2);
        assert_eq!(p.writers(&range, horizon), vec![Writer::Decided { seq: 3 }]);
        p.retire_through(3);
        assert!(p.writers(&range, horizon).is_empty());
        assert!(!p.locks().exclusively_locked(b"k1"));
        assert!(p.locks().exclusively_locked(b"k3"));
    }
}
