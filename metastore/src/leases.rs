//! Read leases: a reader may ask to be allowed to keep the rows it read for a short time (a
//! namenode caches the directories it walks through). While a lease on a key is unexpired, a
//! commit or prepare that writes the key is not answered: its writer waits until every lease
//! another holder took on the key has run out, so once any writer hears "committed", no
//! holder still serves the row as it was.
//!
//! Ordering: a lease is recorded before its rows are read, and a write's leases are looked up
//! after the write is visible to readers. So either the write's lookup sees the lease (and
//! waits it out), or the read came after the write was visible (and read the new row).
//!
//! The table lives in memory only. A shard that reopens a log it wrote before cannot know
//! what leases it gave before it stopped, so for [`MAX_LEASE`] after such an open every write
//! waits as if each key were leased ([`Leases::after_restart`]).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The longest lease granted, whatever is asked.
pub const MAX_LEASE: Duration = Duration::from_secs(1);
/// Expired leases are swept once the table holds this many keys.
const SWEEP_AT: usize = 65_536;

/// Who holds a lease: an opaque id of the reader (at most this many bytes are kept).
const HOLDER_BYTES: usize = 16;
type Holder = [u8; HOLDER_BYTES];

fn holder_of(id: &[u8]) -> Option<Holder> {
    if id.is_empty() {
        return None;
    }
    let mut h = [0u8; HOLDER_BYTES];
    let n = id.len().min(HOLDER_BYTES);
    h[..n].copy_from_slice(&id[..n]);
    Some(h)
}

#[derive(Default)]
struct Table {
    keys: HashMap<Vec<u8>, Vec<(Holder, Instant)>>,
    /// Keys at the last sweep (the next sweep waits until the table doubled).
    swept_at: usize,
}

/// The leases of one shard.
#[derive(Default)]
pub struct Leases {
    table: Mutex<Table>,
    /// Until then every write waits (leases of an earlier run may still be held).
    unknown_until: Option<Instant>,
}

impl Leases {
    /// The table of a shard reopened after an earlier run, whose leases it does not know.
    pub fn after_restart() -> Leases {
        Leases {
            table: Mutex::default(),
            unknown_until: Some(Instant::now() + MAX_LEASE),
        }
    }

    /// Grants `holder` a lease of `length` (capped at [`MAX_LEASE`]) on each of `keys`. An
    /// empty holder or a zero length grants nothing.
    pub fn grant<'a>(
        &self,
        holder: &[u8],
        length: Duration,
        keys: impl IntoIterator<Item = &'a [u8]>,
    ) {
        let Some(holder) = holder_of(holder) else {
            return;
        };
        if length.is_zero() {
            return;
        }
        let now = Instant::now();
        let until = now + length.min(MAX_LEASE);
        let mut t = self.table.lock();
        for key in keys {
            let held = t.keys.entry(key.to_vec()).or_default();
            held.retain(|(h, end)| *h != holder && *end > now);
            held.push((holder, until));
        }
        if t.keys.len() >= SWEEP_AT.max(t.swept_at * 2) {
            t.keys.retain(|_, held| {
                held.retain(|(_, end)| *end > now);
                !held.is_empty()
            });
            t.swept_at = t.keys.len();
        }
    }

    /// When the last lease that a holder other than `writer` has on any of `keys` runs out,
    /// if one is still running.
    pub fn others_until<'a>(
        &self,
        writer: &[u8],
        keys: impl IntoIterator<Item = &'a [u8]>,
    ) -> Option<Instant> {
        let writer = holder_of(writer);
        let now = Instant::now();
        let unknown = self.unknown_until.filter(|u| *u > now);
        let t = self.table.lock();
        if t.keys.is_empty() {
            return unknown;
        }
        keys.into_iter()
            .filter_map(|k| t.keys.get(k))
            .flatten()
            .filter(|(h, end)| Some(*h) != writer && *end > now)
            .map(|(_, end)| *end)
            .chain(unknown)
            .max()
    }

    /// Waits until no holder other than `writer` has a lease on any of `keys`.
    pub async fn wait_out<'a>(&self, writer: &[u8], keys: impl IntoIterator<Item = &'a [u8]>) {
        if let Some(until) = self.others_until(writer, keys) {
            tokio::time::sleep_until(until.into()).await;
        }
    }

    /// Keys with a lease entry (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.table.lock().keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_waits_for_other_holders_only() {
        let l = Leases::default();
        l.grant(b"nn-a", Duration::from_millis(500), [&b"k"[..]]);
        assert!(l.others_until(b"nn-a", [&b"k"[..]]).is_none());
        let until = l.others_until(b"nn-b", [&b"k"[..]]);
        assert!(until.is_some_and(|u| u > Instant::now()));
        assert!(l.others_until(b"nn-b", [&b"other"[..]]).is_none());
        // A writer without an id waits for every holder.
        assert!(l.others_until(b"", [&b"k"[..]]).is_some());
    }

    #[test]
    fn leases_run_out_and_are_capped() {
        let l = Leases::default();
        l.grant(b"nn-a", Duration::from_millis(20), [&b"k"[..]]);
        std::thread::sleep(Duration::from_millis(30));
        assert!(l.others_until(b"nn-b", [&b"k"[..]]).is_none());
        l.grant(b"nn-a", Duration::from_secs(3600), [&b"k"[..]]);
        let until = l.others_until(b"nn-b", [&b"k"[..]]);
        assert!(until.is_some_and(|u| u <= Instant::now() + MAX_LEASE));
        // Nothing is granted without a holder or a length.
        let m = Leases::default();
        m.grant(b"", Duration::from_secs(1), [&b"k"[..]]);
        m.grant(b"nn-a", Duration::ZERO, [&b"k"[..]]);
        assert!(m.is_empty());
    }

    #[test]
    fn a_restarted_shard_waits_out_what_it_may_have_granted() {
        let l = Leases::after_restart();
        let until = l.others_until(b"nn-a", [&b"never-leased"[..]]);
        assert!(until.is_some_and(|u| u > Instant::now() + MAX_LEASE / 2));
    }

    #[tokio::test]
    async fn wait_out_returns_once_the_lease_ran_out() {
        let l = Leases::default();
        l.grant(b"nn-a", Duration::from_millis(50), [&b"k"[..]]);
        let start = Instant::now();
        l.wait_out(b"nn-b", [&b"k"[..]]).await;
        assert!(start.elapsed() >= Duration::from_millis(45));
        let start = Instant::now();
        l.wait_out(b"nn-a", [&b"k"[..]]).await;
        assert!(start.elapsed() < Duration::from_millis(45));
    }
}
