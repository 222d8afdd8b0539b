//! Single-shard transaction logic: checking that a body is well formed, validating it against
//! the shard's committed state and the lock table, and resolving its writes into plain puts and
//! deletes (counter updates become full new rows). Everything here is pure over a [`View`], so
//! the committer can run it against the tables plus the effects of records not yet applied.
//!
//! Validation precedence (first failure wins): read versions (VERSION), reads exclusively locked
//! (LOCKED), writes locked or under a prefix held empty (LOCKED), empty prefixes holding rows
//! (NOT_EMPTY) or about to receive one from a prepared transaction (LOCKED).

use crate::error::{Error, Result};
use crate::keyspace::{self, DATA};
use crate::locks::LockTable;
use crate::wal::Op;
use arbor_proto::metastore::{CounterOp, CounterUpdate, TxnBody, conflict::Reason, write};
use std::collections::HashMap;

/// The widest counter row accepted.
pub const MAX_COUNTER_WIDTH: u32 = 1024;

/// The shard's state as the next record will see it: the tables plus every record already
/// logged (even if not yet applied). Keys are engine keys (namespaced).
pub trait View {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Some existing key that starts with `prefix`, if any.
    fn first_under(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>>;
}

/// Why a transaction could not commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub reason: Reason,
    pub key: Vec<u8>,
}

impl Conflict {
    pub fn new(reason: Reason, key: &[u8]) -> Self {
        Self {
            reason,
            key: key.to_vec(),
        }
    }
}

/// The answer to a single-shard commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Applied at this seq, the new version of every row written.
    Committed(u64),
    Conflict(Conflict),
}

/// Version and payload of user row `key`, if it exists.
pub fn row(view: &dyn View, key: &[u8]) -> Result<Option<(u64, Vec<u8>)>> {
    match view.get(&keyspace::key(DATA, key))? {
        None => Ok(None),
        Some(v) => {
            let (version, payload) = keyspace::decode_row(&v)?;
            Ok(Some((version, payload.to_vec())))
        }
    }
}

fn version(view: &dyn View, key: &[u8]) -> Result<u64> {
    Ok(row(view, key)?.map_or(0, |(v, _)| v))
}

/// Rejects bodies no correct client sends.
pub fn check_body(body: &TxnBody) -> Result<()> {
    for w in &body.writes {
        match &w.op {
            None => {
                return Err(Error::InvalidArgument(
                    "a write without an operation".into(),
                ));
            }
            Some(write::Op::Counter(c)) => {
                if c.width == 0 || c.width > MAX_COUNTER_WIDTH {
                    return Err(Error::InvalidArgument(format!(
                        "counter width {} outside 1..={MAX_COUNTER_WIDTH}",
                        c.width
                    )));
                }
                for f in &c.fields {
                    if f.index >= c.width {
                        return Err(Error::InvalidArgument(format!(
                            "counter field {} outside a row of {}",
                            f.index, c.width
                        )));
                    }
                    if CounterOp::try_from(f.op).is_err() {
                        return Err(Error::InvalidArgument(format!(
                            "unknown counter operation {}",
                            f.op
                        )));
                    }
                }
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Checks `body` against the state in `view` and the locks of prepared transactions.
pub fn validate(body: &TxnBody, view: &dyn View, locks: &LockTable) -> Result<Option<Conflict>> {
    for r in &body.reads {
        if version(view, &r.key)? != r.version {
            return Ok(Some(Conflict::new(Reason::Version, &r.key)));
        }
    }
    for r in &body.reads {
        if locks.exclusively_locked(&r.key) {
            return Ok(Some(Conflict::new(Reason::Locked, &r.key)));
        }
    }
    for w in &body.writes {
        match w.op {
            Some(write::Op::Put(_)) => {
                if locks.locked(&w.key) || locks.prefix_covering(&w.key).is_some() {
                    return Ok(Some(Conflict::new(Reason::Locked, &w.key)));
                }
            }
            Some(write::Op::Delete(_)) => {
                if locks.locked(&w.key) {
                    return Ok(Some(Conflict::new(Reason::Locked, &w.key)));
                }
            }
            Some(write::Op::Counter(_)) | None => {}
        }
    }
    for p in &body.empty_prefixes {
        if view.first_under(&keyspace::key(DATA, p))?.is_some() {
            return Ok(Some(Conflict::new(Reason::NotEmpty, p)));
        }
        if let Some(k) = locks.exclusive_under(p) {
            return Ok(Some(Conflict::new(Reason::Locked, k)));
        }
    }
    Ok(None)
}

/// The new payload of a counter row: `current` read as little-endian i64 fields (missing
/// fields are zero, extra bytes are dropped), each field update applied in order.
pub fn apply_counter(current: Option<&[u8]>, update: &CounterUpdate) -> Vec<u8> {
    let width = update.width as usize;
    let mut fields = vec![0i64; width];
    if let Some(cur) = current {
        for (i, chunk) in cur.chunks_exact(8).take(width).enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            fields[i] = i64::from_le_bytes(b);
        }
    }
    for f in &update.fields {
        let Some(slot) = fields.get_mut(f.index as usize) else {
            continue;
        };
        // Wrapping keeps ADD exactly commutative even at the edges of i64.
        match CounterOp::try_from(f.op) {
            Ok(CounterOp::CounterAdd) => *slot = slot.wrapping_add(f.value),
            Ok(CounterOp::CounterMax) => *slot = (*slot).max(f.value),
            Ok(CounterOp::CounterSet) => *slot = f.value,
            Err(_) => {}
        }
    }
    fields.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Turns the writes of a body into log operations, resolving counter updates against `view`
/// (and against earlier writes of the same body to the same key).
pub fn resolve_writes(
    writes: Vec<arbor_proto::metastore::Write>,
    view: &dyn View,
) -> Result<Vec<Op>> {
    let mut ops = Vec::with_capacity(writes.len());
    // What this body already wrote, for a counter that follows a write to its own key.
    let mut own: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
    let has_counter = writes
        .iter()
        .any(|w| matches!(w.op, Some(write::Op::Counter(_))));
    for w in writes {
        match w.op {
            Some(write::Op::Put(value)) => {
                if has_counter {
                    own.insert(w.key.clone(), Some(value.clone()));
                }
                ops.push(Op::Put { key: w.key, value });
            }
            Some(write::Op::Delete(_)) => {
                if has_counter {
                    own.insert(w.key.clone(), None);
                }
                ops.push(Op::Delete { key: w.key });
            }
            Some(write::Op::Counter(update)) => {
                let current = match own.get(&w.key) {
                    Some(v) => v.clone(),
                    None => row(view, &w.key)?.map(|(_, payload)| payload),
                };
                let value = apply_counter(current.as_deref(), &update);
                own.insert(w.key.clone(), Some(value.clone()));
                ops.push(Op::Put { key: w.key, value });
            }
            None => {
                return Err(Error::InvalidArgument(
                    "a write without an operation".into(),
                ));
            }
        }
    }
    Ok(ops)
}

/// Validates and resolves a single-shard commit: the log operations to write, or the conflict.
pub fn commit(
    body: TxnBody,
    view: &dyn View,
    locks: &LockTable,
) -> Result<std::result::Result<Vec<Op>, Conflict>> {
    if let Some(c) = validate(&body, view, locks)? {
        return Ok(Err(c));
    }
    Ok(Ok(resolve_writes(body.writes, view)?))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arbor_proto::metastore::{CounterField, Empty, ReadCheck, Write};
    use std::collections::BTreeMap;

    /// A view over a map of engine keys.
    #[derive(Default)]
    pub struct MapView(pub BTreeMap<Vec<u8>, Vec<u8>>);

    impl MapView {
        pub fn with_row(mut self, key: &[u8], version: u64, payload: &[u8]) -> Self {
            self.0.insert(
                keyspace::key(DATA, key),
                keyspace::encode_row(version, payload),
            );
            self
        }
    }

    impl View for MapView {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            Ok(self.0.get(key).cloned())
        }
        fn first_under(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>> {
            Ok(self
                .0
                .range(prefix.to_vec()..)
                .next()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, _)| k.clone()))
        }
    }

    pub fn put(key: &[u8], value: &[u8]) -> Write {
        Write {
            key: key.to_vec(),
            op: Some(write::Op::Put(value.to_vec())),
        }
    }

    pub fn del(key: &[u8]) -> Write {
        Write {
            key: key.to_vec(),
            op: Some(write::Op::Delete(Empty {})),
        }
    }

    pub fn counter(key: &[u8], width: u32, fields: &[(u32, CounterOp, i64)]) -> Write {
        Write {
            key: key.to_vec(),
            op: Some(write::Op::Counter(CounterUpdate {
                width,
                fields: fields
                    .iter()
                    .map(|&(index, op, value)| CounterField {
                        index,
                        op: op as i32,
                        value,
                    })
                    .collect(),
            })),
        }
    }

    pub fn read(key: &[u8], version: u64) -> ReadCheck {
        ReadCheck {
            key: key.to_vec(),
            version,
        }
    }

    /// The reason and key of a conflict, if any.
    type Found = Option<(Reason, Vec<u8>)>;

    fn conflict(body: &TxnBody, view: &MapView, locks: &LockTable) -> Found {
        validate(body, view, locks)
            .unwrap()
            .map(|c| (c.reason, c.key))
    }

    #[test]
    fn read_versions_are_checked_first() {
        let view = MapView::default().with_row(b"a", 5, b"x");
        let ok = TxnBody {
            reads: vec![read(b"a", 5), read(b"b", 0)],
            ..Default::default()
        };
        assert_eq!(conflict(&ok, &view, &LockTable::default()), None);
        let stale = TxnBody {
            reads: vec![read(b"a", 4)],
            ..Default::default()
        };
        assert_eq!(
            conflict(&stale, &view, &LockTable::default()),
            Some((Reason::Version, b"a".to_vec()))
        );
        let appeared = TxnBody {
            reads: vec![read(b"a", 0)],
            ..Default::default()
        };
        assert_eq!(
            conflict(&appeared, &view, &LockTable::default()),
            Some((Reason::Version, b"a".to_vec()))
        );
        // A stale read wins over a lock on another key.
        let mut locks = LockTable::default();
        locks.acquire(&TxnBody {
            writes: vec![put(b"z", b"")],
            ..Default::default()
        });
        let both = TxnBody {
            reads: vec![read(b"z", 0), read(b"a", 1)],
            ..Default::default()
        };
        assert_eq!(
            conflict(&both, &view, &locks),
            Some((Reason::Version, b"a".to_vec()))
        );
    }

    #[test]
    fn locks_of_prepared_transactions() {
        let view = MapView::default();
        let mut locks = LockTable::default();
        locks.acquire(&TxnBody {
            reads: vec![read(b"shared", 0)],
            writes: vec![put(b"excl", b"v")],
            empty_prefixes: vec![b"dir/".to_vec()],
        });
        let cases: Vec<(TxnBody, Found)> = vec![
            // Reading a shared-locked key is fine, an exclusively locked one is not.
            (
                TxnBody {
                    reads: vec![read(b"shared", 0)],
                    ..Default::default()
                },
                None,
            ),
            (
                TxnBody {
                    reads: vec![read(b"excl", 0)],
                    ..Default::default()
                },
                Some((Reason::Locked, b"excl".to_vec())),
            ),
            // Writing any locked key is not.
            (
                TxnBody {
                    writes: vec![put(b"shared", b"")],
                    ..Default::default()
                },
                Some((Reason::Locked, b"shared".to_vec())),
            ),
            (
                TxnBody {
                    writes: vec![del(b"excl")],
                    ..Default::default()
                },
                Some((Reason::Locked, b"excl".to_vec())),
            ),
            // A put under a prefix a prepared transaction holds empty.
            (
                TxnBody {
                    writes: vec![put(b"dir/a", b"")],
                    ..Default::default()
                },
                Some((Reason::Locked, b"dir/a".to_vec())),
            ),
            // Counters are never blocked.
            (
                TxnBody {
                    writes: vec![counter(b"excl", 1, &[(0, CounterOp::CounterAdd, 1)])],
                    ..Default::default()
                },
                None,
            ),
            // An empty prefix over a key about to be written.
            (
                TxnBody {
                    empty_prefixes: vec![b"ex".to_vec()],
                    ..Default::default()
                },
                Some((Reason::Locked, b"excl".to_vec())),
            ),
            // ... but not over one only read.
            (
                TxnBody {
                    empty_prefixes: vec![b"sh".to_vec()],
                    ..Default::default()
                },
                None,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(conflict(&body, &view, &locks), want, "{body:?}");
        }
    }

    #[test]
    fn empty_prefixes() {
        let view = MapView::default().with_row(b"dir/a", 1, b"");
        let body = |p: &[u8]| TxnBody {
            empty_prefixes: vec![p.to_vec()],
            ..Default::default()
        };
        assert_eq!(
            conflict(&body(b"dir/"), &view, &LockTable::default()),
            Some((Reason::NotEmpty, b"dir/".to_vec()))
        );
        assert_eq!(
            conflict(&body(b"dir/b"), &view, &LockTable::default()),
            None
        );
        assert_eq!(conflict(&body(b"dis"), &view, &LockTable::default()), None);
        // NOT_EMPTY comes before LOCKED on the same prefix.
        let mut locks = LockTable::default();
        locks.acquire(&TxnBody {
            writes: vec![put(b"dir/z", b"")],
            ..Default::default()
        });
        assert_eq!(
            conflict(&body(b"dir/"), &view, &locks),
            Some((Reason::NotEmpty, b"dir/".to_vec()))
        );
    }

    #[test]
    fn counters_resolve_to_plain_rows() {
        let add = |v| (0, CounterOp::CounterAdd, v);
        assert_eq!(
            apply_counter(
                None,
                &counter_update(2, &[add(3), (1, CounterOp::CounterMax, 9)])
            ),
            [3i64.to_le_bytes(), 9i64.to_le_bytes()].concat()
        );
        let cur = [10i64.to_le_bytes(), 20i64.to_le_bytes()].concat();
        let next = apply_counter(
            Some(&cur),
            &counter_update(
                3,
                &[
                    add(-4),
                    (1, CounterOp::CounterMax, 5),
                    (2, CounterOp::CounterSet, 7),
                    (2, CounterOp::CounterAdd, 1),
                ],
            ),
        );
        assert_eq!(
            next,
            [6i64.to_le_bytes(), 20i64.to_le_bytes(), 8i64.to_le_bytes()].concat()
        );
        // Two counter updates of one key in one body see each other.
        let view = MapView::default().with_row(b"c", 3, &5i64.to_le_bytes());
        let ops = resolve_writes(
            vec![counter(b"c", 1, &[add(1)]), counter(b"c", 1, &[add(2)])],
            &view,
        )
        .unwrap();
        assert_eq!(
            ops.last(),
            Some(&Op::Put {
                key: b"c".to_vec(),
                value: 8i64.to_le_bytes().to_vec()
            })
        );
    }

    fn counter_update(width: u32, fields: &[(u32, CounterOp, i64)]) -> CounterUpdate {
        match counter(b"", width, fields).op {
            Some(write::Op::Counter(c)) => c,
            _ => unreachable!(),
        }
    }

    #[test]
    fn malformed_bodies_are_rejected() {
        let bad = [
            Write {
                key: b"k".to_vec(),
                op: None,
            },
            counter(b"k", 0, &[]),
            counter(b"k", 2, &[(2, CounterOp::CounterAdd, 1)]),
            Write {
                key: b"k".to_vec(),
                op: Some(write::Op::Counter(CounterUpdate {
                    width: 1,
                    fields: vec![CounterField {
                        index: 0,
                        op: 99,
                        value: 1,
                    }],
                })),
            },
        ];
        for w in bad {
            let body = TxnBody {
                writes: vec![w],
                ..Default::default()
            };
            assert!(matches!(check_body(&body), Err(Error::InvalidArgument(_))));
        }
        let good = TxnBody {
            writes: vec![
                put(b"k", b"v"),
                del(b"j"),
                counter(b"c", 2, &[(1, CounterOp::CounterSet, 1)]),
            ],
            ..Default::default()
        };
        check_body(&good).unwrap();
    }
}
