//! What readers see between the log and the tables: the read overlay of user rows whose log
//! records are durable (synced) but not yet applied to sled, the "visible up to seq" mark, and
//! the backlog bound that keeps the overlay from growing without limit.
//!
//! A commit is answered as soon as its record is synced; the applier writes it into sled later.
//! In between, its user rows live here, so a read right after the answer sees them.
//!
//! Invariants:
//! - only rows of records that are synced are ever inserted, and a group's rows are all inserted
//!   (under one write lock) before the visible seq moves past the group: a reader never sees a
//!   write whose record a crash could take back;
//! - an entry goes only once sled holds its record (or a later one for the same key), and only if
//!   no later record replaced it meanwhile: for every key, overlay-then-tables gives its latest
//!   visible value;
//! - the rows logged but not yet in sled never exceed the backlog bound for long: the committer
//!   waits for room before it starts a group ([`Backlog::wait_room`]).

use crate::keyspace::DATA;
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// An overlay entry: the seq of the record that wrote the row, and the stored row (version ‖
/// payload, as in the tables) or `None` for a delete.
type Entry = (u64, Option<Vec<u8>>);

/// A row the overlay answers for: `Some(None)` is a delete not yet applied.
pub type Found = Option<Option<Vec<u8>>>;

/// The user rows durable in the log but not yet in the tables, keyed by engine key.
pub struct ReadOverlay {
    rows: RwLock<BTreeMap<Vec<u8>, Entry>>,
    /// Every record up to here is durable, and its user rows are in the overlay or the tables.
    visible: std::sync::Arc<AtomicU64>,
    visible_watch: watch::Sender<u64>,
}

impl ReadOverlay {
    /// An empty overlay over tables that hold everything up to `applied`.
    pub fn new(applied: u64) -> Self {
        Self {
            rows: RwLock::new(BTreeMap::new()),
            visible: std::sync::Arc::new(AtomicU64::new(applied)),
            visible_watch: watch::channel(applied).0,
        }
    }

    /// The highest seq readers see.
    pub fn visible(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    /// The visible seq as a shared counter, for the change stream.
    pub fn visible_counter(&self) -> std::sync::Arc<AtomicU64> {
        self.visible.clone()
    }

    /// Told every new visible seq.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.visible_watch.subscribe()
    }

    /// Makes the rows of the synced records up to `through` visible, then the seq itself.
    /// `rows` holds engine writes in log order with the seq of their record; only user rows are
    /// kept (intents and transaction records are read by the committer alone, which has its own
    /// overlay of them).
    pub fn publish(&self, rows: Vec<(Vec<u8>, u64, Option<Vec<u8>>)>, through: u64) {
        if !rows.is_empty() {
            let mut map = self.rows.write();
            for (k, seq, v) in rows {
                if k.first() == Some(&DATA) {
                    map.insert(k, (seq, v));
                }
            }
        }
        if through > self.visible.load(Ordering::Acquire) {
            self.visible.store(through, Ordering::Release);
            self.visible_watch.send_replace(through);
        }
    }

    /// Drops the entries of `keys` whose record is now in the tables (at or below `applied`).
    pub fn forget<'a>(&self, keys: impl Iterator<Item = &'a [u8]>, applied: u64) {
        let mut map = self.rows.write();
        for k in keys {
            if let Some((seq, _)) = map.get(k)
                && *seq <= applied
            {
                map.remove(k);
            }
        }
    }

    /// The overlay's answer for each engine key (`None`: ask the tables).
    pub fn get_many(&self, keys: &[Vec<u8>]) -> Vec<Found> {
        let map = self.rows.read();
        keys.iter()
            .map(|k| map.get(k).map(|(_, v)| v.clone()))
            .collect()
    }

    /// The entries in `[start, end)` in key order, stopping after the `puts`-th put (entries
    /// after it cannot be among the first `puts` rows of a scan).
    pub fn range(&self, start: &[u8], end: &[u8], puts: usize) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let map = self.rows.read();
        let mut out = Vec::new();
        let mut seen = 0;
        for (k, (_, v)) in map.range::<[u8], _>((
            std::ops::Bound::Included(start),
            std::ops::Bound::Excluded(end),
        )) {
            if seen >= puts {
                break;
            }
            seen += usize::from(v.is_some());
            out.push((k.clone(), v.clone()));
        }
        out
    }

    /// Rows in the overlay (for tests and status).
    pub fn len(&self) -> usize {
        self.rows.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Merges a scan of the tables with the overlay's entries of the same range (both in key
/// order; the overlay wins on equal keys, its deletes hide rows) into at most `limit` rows.
pub fn merge_scan(
    overlay: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    tables: Vec<(Vec<u8>, Vec<u8>)>,
    limit: usize,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::with_capacity(limit.min(tables.len() + overlay.len()));
    let mut o = overlay.into_iter().peekable();
    let mut t = tables.into_iter().peekable();
    while out.len() < limit {
        let take_overlay = match (o.peek(), t.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((ok, _)), Some((tk, _))) => {
                if ok == tk {
                    // The overlay holds the later write of this key.
                    t.next();
                    true
                } else {
                    ok < tk
                }
            }
        };
        if take_overlay {
            if let Some((k, Some(v))) = o.next() {
                out.push((k, v));
            }
        } else if let Some(row) = t.next() {
            out.push(row);
        }
    }
    out
}

/// How many rows (and bytes of keys and values) are logged but not yet in the tables, against
/// the bound the committer must respect.
pub struct Backlog {
    state: Mutex<BacklogState>,
    room: Condvar,
    max_rows: usize,
    max_bytes: usize,
}

#[derive(Default)]
struct BacklogState {
    rows: usize,
    bytes: usize,
    /// The applier is gone: no room will ever come.
    closed: bool,
}

/// How often a committer waiting for room looks again at why it may have to stop waiting.
const ROOM_POLL: Duration = Duration::from_millis(50);

impl Backlog {
    pub fn new(max_rows: usize, max_bytes: usize) -> Self {
        Self {
            state: Mutex::new(BacklogState::default()),
            room: Condvar::new(),
            max_rows: max_rows.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    /// Blocks (the committer's own thread) while the backlog is at its bound. Returns false if
    /// it never will have room (the applier is gone) or `give_up` says to stop waiting.
    pub fn wait_room(&self, mut give_up: impl FnMut() -> bool) -> bool {
        let mut s = self.state.lock();
        let mut waited = false;
        while s.rows >= self.max_rows || s.bytes >= self.max_bytes {
            if s.closed || give_up() {
                return false;
            }
            if !waited {
                waited = true;
                tracing::debug!(
                    rows = s.rows,
                    bytes = s.bytes,
                    "the tables fall behind the log: commits wait for the applier"
                );
            }
            self.room.wait_for(&mut s, ROOM_POLL);
        }
        !s.closed
    }

    /// Counts rows the committer just logged.
    pub fn add(&self, rows: usize, bytes: usize) {
        let mut s = self.state.lock();
        s.rows += rows;
        s.bytes += bytes;
    }

    /// Rows the applier wrote into the tables (or that will never get there).
    pub fn release(&self, rows: usize, bytes: usize) {
        let mut s = self.state.lock();
        s.rows = s.rows.saturating_sub(rows);
        s.bytes = s.bytes.saturating_sub(bytes);
        drop(s);
        self.room.notify_all();
    }

    /// The applier stopped: wake a waiting committer for good.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.room.notify_all();
    }

    /// Rows logged and not yet in the tables.
    pub fn rows(&self) -> usize {
        self.state.lock().rows
    }
}

/// Bytes an engine write holds in the backlog's account.
pub fn write_bytes(key: &[u8], value: &Option<Vec<u8>>) -> usize {
    key.len() + value.as_ref().map_or(0, Vec::len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace;

    fn d(k: &str) -> Vec<u8> {
        keyspace::key(DATA, k.as_bytes())
    }

    #[test]
    fn publish_forget_and_later_writes() {
        let o = ReadOverlay::new(3);
        o.publish(
            vec![
                (d("a"), 4, Some(b"a4".to_vec())),
                (d("b"), 4, None),
                (keyspace::key(keyspace::INTENT, b"t"), 4, Some(vec![])),
            ],
            4,
        );
        assert_eq!(o.visible(), 4);
        assert_eq!(o.len(), 2, "only user rows are kept");
        o.publish(vec![(d("a"), 5, Some(b"a5".to_vec()))], 5);
        // Record 4 reached the tables: the delete of b goes, a stays (rewritten by 5).
        o.forget([d("a"), d("b")].iter().map(|k| k.as_slice()), 4);
        assert_eq!(
            o.get_many(&[d("a"), d("b")]),
            vec![Some(Some(b"a5".to_vec())), None]
        );
        o.forget(std::iter::once(d("a").as_slice()), 5);
        assert!(o.is_empty());
    }

    #[test]
    fn scans_merge_the_overlay_over_the_tables() {
        let o = ReadOverlay::new(0);
        o.publish(
            vec![
                (d("b"), 1, None),
                (d("c"), 1, Some(b"C".to_vec())),
                (d("e"), 1, Some(b"E".to_vec())),
            ],
            1,
        );
        let tables = vec![
            (d("a"), b"a".to_vec()),
            (d("b"), b"b".to_vec()),
            (d("c"), b"c".to_vec()),
            (d("d"), b"d".to_vec()),
        ];
        let (s, e) = keyspace::data_range(b"", b"");
        let merged = merge_scan(o.range(&s, &e, 10), tables.clone(), 10);
        let got: Vec<_> = merged.iter().map(|(k, v)| (k[1], v[0])).collect();
        assert_eq!(
            got,
            vec![(b'a', b'a'), (b'c', b'C'), (b'd', b'd'), (b'e', b'E')]
        );
        assert_eq!(merge_scan(o.range(&s, &e, 1), tables, 2).len(), 2);
        // The range stops after the asked number of puts.
        assert_eq!(o.range(&s, &e, 1).len(), 2);
    }

    #[test]
    fn the_backlog_waits_for_room() {
        let b = std::sync::Arc::new(Backlog::new(2, 1 << 20));
        b.add(2, 10);
        assert!(!b.wait_room(|| true), "gives up when told to");
        let waiter = {
            let b = b.clone();
            std::thread::spawn(move || b.wait_room(|| false))
        };
        std::thread::sleep(Duration::from_millis(20));
        assert!(!waiter.is_finished());
        b.release(1, 5);
        assert!(waiter.join().unwrap());
        b.add(1, 5);
        b.close();
        assert!(!b.wait_room(|| false));
    }
}
