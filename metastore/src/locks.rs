//! The no-wait lock table of prepared transactions, in memory only: it is rebuilt from the
//! intent rows at open. A prepared intent holds a shared lock on every key it read, an exclusive
//! lock on every key it will put or delete, and a range lock on every prefix it requires to stay
//! empty. Counter updates take no lock. Nobody ever waits on a lock: a transaction that meets
//! one aborts, so there are no deadlocks.

use arbor_proto::metastore::{TxnBody, write};
use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Holders {
    shared: u32,
    exclusive: u32,
}

/// Locks held by every prepared transaction of a shard, on user keys.
#[derive(Debug, Default)]
pub struct LockTable {
    keys: BTreeMap<Vec<u8>, Holders>,
    /// Prefixes that prepared transactions require to stay empty, with their holder counts.
    prefixes: BTreeMap<Vec<u8>, u32>,
}

impl LockTable {
    /// Whether a prepared transaction will write `key`.
    pub fn exclusively_locked(&self, key: &[u8]) -> bool {
        self.keys.get(key).is_some_and(|h| h.exclusive > 0)
    }

    /// Whether a prepared transaction read or will write `key`.
    pub fn locked(&self, key: &[u8]) -> bool {
        self.keys.contains_key(key)
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
            if takes_lock(w.op.as_ref()) {
                self.keys.entry(w.key.clone()).or_default().exclusive += 1;
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
fn takes_lock(op: Option<&write::Op>) -> bool {
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
}
