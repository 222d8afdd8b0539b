//! The no-wait lock table of prepared transactions, in memory only: it is rebuilt from the
//! intent rows at open. A prepared intent holds a shared lock on every key it read, an exclusive
//! lock on every key it will put or delete, and a range lock on every prefix it requires to stay
//! empty. Counter updates take no lock. No transaction ever waits on a lock: one that meets a
//! lock aborts, so there are no deadlocks. Reads take no lock; they only ask whether a key they
//! return is about to be written (see `read_resolve`).

use arbor_proto::metastore::{TxnBody, write};
use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Holders {
    shared: u32,
    exclusive: u32,
    /// Counter updates waiting in prepared transactions: other writers commute with them and
    /// ignore them, but a reader must not see the row without them once they are committed.
    counted: u32,
}

/// The user keys a read returns rows of.
#[derive(Clone, Copy, Debug)]
pub enum ReadSet<'a> {
    /// Point reads of these keys.
    Keys(&'a [Vec<u8>]),
    /// Every key in `[start, end)`; no end: to the end of the key space.
    Range {
        start: &'a [u8],
        end: Option<&'a [u8]>,
    },
}

impl ReadSet<'_> {
    pub fn contains(&self, key: &[u8]) -> bool {
        match *self {
            ReadSet::Keys(keys) => keys.iter().any(|k| k == key),
            ReadSet::Range { start, end } => key >= start && end.is_none_or(|e| key < e),
        }
    }
}

/// Locks held by every prepared transaction of a shard, on user keys.
#[derive(Debug, Default)]
pub struct LockTable {
    keys: BTreeMap<Vec<u8>, Holders>,
    /// Prefixes that prepared transactions require to stay empty, with their holder counts.
    prefixes: BTreeMap<Vec<u8>, u32>,
}

impl Holders {
    fn holds_readers(&self) -> bool {
        self.exclusive > 0 || self.counted > 0
    }
}

impl LockTable {
    /// Whether a prepared transaction will write `key`.
    pub fn exclusively_locked(&self, key: &[u8]) -> bool {
        self.keys.get(key).is_some_and(|h| h.exclusive > 0)
    }

    /// Whether a prepared transaction will write (or update a counter of) some key of `reads`:
    /// one lookup per key, or one range walk over the locked keys in the range.
    pub fn exclusive_in(&self, reads: &ReadSet<'_>) -> bool {
        use std::ops::Bound;
        match *reads {
            ReadSet::Keys(keys) => keys.iter().any(|k| {
                self.keys
                    .get(k.as_slice())
                    .is_some_and(Holders::holds_readers)
            }),
            ReadSet::Range { start, end } => {
                let upper = match end {
                    // An empty range (BTreeMap::range panics on an inverted one).
                    Some(e) if e <= start => return false,
                    Some(e) => Bound::Excluded(e),
                    None => Bound::Unbounded,
                };
                self.keys
                    .range::<[u8], _>((Bound::Included(start), upper))
                    .any(|(_, h)| h.holds_readers())
            }
        }
    }

    /// Whether a prepared transaction read or will write `key`.
    pub fn locked(&self, key: &[u8]) -> bool {
        self.keys
            .get(key)
            .is_some_and(|h| h.shared > 0 || h.exclusive > 0)
    }

    /// A prefix, required empty by a prepared transaction, that `key` falls under.
    pub fn prefix_covering(&self, key: &[u8]) -> Option<&[u8]> {
        self.prefixes
            .keys()
            .find(|p| key.starts_with(p))
            .map(|p| p.as_slice())
    }

    /// The first key under `prefix` that a prepared transaction will write.
    pub fn exclusive_under(&self, prefix: &[u8]) -> Option<&[u8]> {
        self.keys
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .find(|(_, h)| h.exclusive > 0)
            .map(|(k, _)| k.as_slice())
    }

    /// Takes the locks of a transaction prepared with `body`.
    pub fn acquire(&mut self, body: &TxnBody) {
        for r in &body.reads {
            self.keys.entry(r.key.clone()).or_default().shared += 1;
        }
        for w in &body.writes {
            let held = self.keys.entry(w.key.clone()).or_default();
            if takes_lock(w.op.as_ref()) {
                held.exclusive += 1;
            } else {
                held.counted += 1;
            }
        }
        for p in &body.empty_prefixes {
            *self.prefixes.entry(p.clone()).or_default() += 1;
        }
    }

    /// Releases what [`LockTable::acquire`] took for the same `body`.
    pub fn release(&mut self, body: &TxnBody) {
        for r in &body.reads {
            self.drop_key(&r.key, |h| h.shared = h.shared.saturating_sub(1));
        }
        for w in &body.writes {
            if takes_lock(w.op.as_ref()) {
                self.drop_key(&w.key, |h| h.exclusive = h.exclusive.saturating_sub(1));
            } else {
                self.drop_key(&w.key, |h| h.counted = h.counted.saturating_sub(1));
            }
        }
        for p in &body.empty_prefixes {
            if let Some(n) = self.prefixes.get_mut(p) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.prefixes.remove(p);
                }
            }
        }
    }

    fn drop_key(&mut self, key: &[u8], f: impl FnOnce(&mut Holders)) {
        if let Some(h) = self.keys.get_mut(key) {
            f(h);
            if *h == Holders::default() {
                self.keys.remove(key);
            }
        }
    }

    /// Whether no lock is held at all.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.prefixes.is_empty()
    }
}

/// Puts and deletes lock their key; counter updates commute and lock nothing.
pub fn takes_lock(op: Option<&write::Op>) -> bool {
    matches!(op, Some(write::Op::Put(_)) | Some(write::Op::Delete(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbor_proto::metastore::{CounterUpdate, Empty, ReadCheck, Write};

    fn body() -> TxnBody {
        TxnBody {
            reads: vec![ReadCheck {
                key: b"r".to_vec(),
                version: 1,
            }],
            empty_prefixes: vec![b"dir/".to_vec()],
            writes: vec![
                Write {
                    key: b"w".to_vec(),
                    op: Some(write::Op::Put(b"v".to_vec())),
                },
                Write {
                    key: b"x".to_vec(),
                    op: Some(write::Op::Delete(Empty {})),
                },
                Write {
                    key: b"c".to_vec(),
                    op: Some(write::Op::Counter(CounterUpdate {
                        width: 1,
                        fields: vec![],
                    })),
                },
            ],
        }
    }

    #[test]
    fn modes_and_release() {
        let mut t = LockTable::default();
        t.acquire(&body());
        assert!(t.locked(b"r") && !t.exclusively_locked(b"r"));
        assert!(t.exclusively_locked(b"w") && t.exclusively_locked(b"x"));
        assert!(!t.locked(b"c"), "counters take no lock");
        assert_eq!(t.prefix_covering(b"dir/a"), Some(&b"dir/"[..]));
        assert_eq!(t.prefix_covering(b"di"), None);
        assert_eq!(t.exclusive_under(b"w"), Some(&b"w"[..]));
        assert_eq!(t.exclusive_under(b"r"), None);
        // Two holders: the locks stay until both release.
        t.acquire(&body());
        t.release(&body());
        assert!(t.exclusively_locked(b"w"));
        t.release(&body());
        assert!(t.is_empty());
    }

    #[test]
    fn reads_meet_writes_and_counter_updates_only() {
        let mut t = LockTable::default();
        t.acquire(&body());
        let keys = |ks: &[&[u8]]| ks.iter().map(|k| k.to_vec()).collect::<Vec<_>>();
        let range =
            |start: &'static [u8], end: Option<&'static [u8]>| ReadSet::Range { start, end };
        assert!(t.exclusive_in(&ReadSet::Keys(&keys(&[b"a", b"w"]))));
        assert!(t.exclusive_in(&ReadSet::Keys(&keys(&[b"x"]))));
        // A pending counter update holds a read up (the read must see it once committed)...
        assert!(t.exclusive_in(&ReadSet::Keys(&keys(&[b"c"]))));
        assert!(t.exclusive_in(&range(b"a", Some(b"d"))));
        // ...shared locks and absent keys do not.
        assert!(!t.exclusive_in(&ReadSet::Keys(&keys(&[b"r", b"zz"]))));
        assert!(!t.exclusive_in(&ReadSet::Keys(&[])));
        assert!(t.exclusive_in(&range(b"s", Some(b"x"))));
        assert!(t.exclusive_in(&range(b"x", None)));
        assert!(t.exclusive_in(&range(b"", None)));
        // End exclusive.
        assert!(!t.exclusive_in(&range(b"d", Some(b"w"))));
        assert!(!t.exclusive_in(&range(b"r", Some(b"s"))));
        assert!(!t.exclusive_in(&range(b"x\0", None)));
        // Empty and inverted ranges hold nothing.
        assert!(!t.exclusive_in(&range(b"w", Some(b"w"))));
        assert!(!t.exclusive_in(&range(b"z", Some(b"a"))));
        assert!(range(b"b", Some(b"d")).contains(b"c"));
        assert!(!range(b"b", Some(b"d")).contains(b"d"));
        assert!(range(b"b", None).contains(b"zzz"));
        assert!(ReadSet::Keys(&keys(&[b"k"])).contains(b"k"));
        t.release(&body());
        assert!(!t.exclusive_in(&range(b"", None)));
    }
}
