//! A bounded map whose entries live for a fixed time after they were put: what the mount
//! remembers for the kernel's entry or attribute timeout.
//!
//! Invariants: an entry is never returned once `ttl` has passed since its insert; the map
//! holds at most its capacity ([`MAX_ENTRIES`] unless given; expired entries go first, then
//! all); a zero `ttl` keeps nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept at most; they expire within a timeout anyway.
pub const MAX_ENTRIES: usize = 4096;

pub struct Expiring<V> {
    ttl: Duration,
    cap: usize,
    map: Mutex<HashMap<u64, (V, Instant)>>,
}

impl<V> Expiring<V> {
    pub fn new(ttl: Duration) -> Self {
        Expiring::bounded(ttl, MAX_ENTRIES)
    }

    /// A map holding at most `cap` entries.
    pub fn bounded(ttl: Duration, cap: usize) -> Self {
        Expiring {
            ttl,
            cap: cap.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (V, Instant)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts `value` at `key`, living for the ttl from now.
    pub fn insert(&self, key: u64, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut map = self.lock();
        if map.len() >= self.cap {
            let ttl = self.ttl;
            map.retain(|_, (_, at)| at.elapsed() < ttl);
            if map.len() >= self.cap {
                map.clear();
            }
        }
        map.insert(key, (value, Instant::now()));
    }

    /// Runs `f` on the live entry at `key` with the time it has left; an expired one is dropped.
    pub fn with<R>(&self, key: u64, f: impl FnOnce(&mut V, Duration) -> R) -> Option<R> {
        let mut map = self.lock();
        let (value, at) = map.get_mut(&key)?;
        match self.ttl.checked_sub(at.elapsed()).filter(|d| !d.is_zero()) {
            Some(left) => Some(f(value, left)),
            None => {
                map.remove(&key);
                None
            }
        }
    }

    pub fn remove(&self, key: u64) {
        self.lock().remove(&key);
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_end_with_the_ttl_and_the_map_stays_bounded() {
        let m = Expiring::new(Duration::from_millis(30));
        m.insert(7, 1);
        let left = m.with(7, |v, left| {
            *v += 1;
            left
        });
        assert!(left.is_some_and(|l| l <= Duration::from_millis(30)));
        assert_eq!(m.with(7, |v, _| *v), Some(2));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(m.with(7, |v, _| *v), None);
        let off = Expiring::new(Duration::ZERO);
        off.insert(7, 1);
        assert_eq!(off.with(7, |v, _| *v), None);
        let big = Expiring::new(Duration::from_secs(60));
        for k in 0..(MAX_ENTRIES as u64 * 3) {
            big.insert(k, ());
        }
        assert!(big.len() <= MAX_ENTRIES);
    }
}
