//! Directories this mount made moments ago, with the names made in them since. A lookup of
//! any other name in such a directory is answered "absent" here, without a namenode call: the
//! kernel could have cached that answer itself, as a negative entry for the entry timeout, had
//! it looked the name up right after the mkdir. So unpacking a tree (mkdir, then a create per
//! file, each preceded by the kernel's lookup of the new name) asks the namenode nothing for
//! those lookups.
//!
//! Invariants: a directory is fresh for one entry timeout after its mkdir through this mount;
//! every name this mount makes in it or renames into it meanwhile is in its set, so a name
//! answered absent was never made here (a name made elsewhere shows once the entry timeout
//! passes, as with any cached entry); the table is bounded.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Fresh directories kept at most (the oldest go first; they expire within a second anyway).
const MAX_DIRS: usize = 4096;

struct Fresh {
    made: Instant,
    names: HashSet<String>,
}

/// The fresh directories of one mount.
pub struct FreshDirs {
    ttl: Duration,
    dirs: Mutex<HashMap<u64, Fresh>>,
}

impl FreshDirs {
    /// Directories stay fresh for `ttl` (the mount's entry timeout; zero turns this off).
    pub fn new(ttl: Duration) -> FreshDirs {
        FreshDirs {
            ttl,
            dirs: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Fresh>> {
        self.dirs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This mount made directory `ino` just now: it is empty.
    pub fn made_dir(&self, ino: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let mut dirs = self.lock();
        if dirs.len() >= MAX_DIRS {
            let ttl = self.ttl;
            dirs.retain(|_, f| f.made.elapsed() < ttl);
            if dirs.len() >= MAX_DIRS {
                dirs.clear();
            }
        }
        dirs.insert(
            ino,
            Fresh {
                made: Instant::now(),
                names: HashSet::new(),
            },
        );
    }

    /// This mount made (or renamed into) `name` in `parent`.
    pub fn added(&self, parent: u64, name: &str) {
        if let Some(f) = self.lock().get_mut(&parent) {
            f.names.insert(name.to_string());
        }
    }

    /// How much longer `name` may be answered absent in `parent`, or `None` when the
    /// namenode must be asked.
    pub fn absent(&self, parent: u64, name: &str) -> Option<Duration> {
        let mut dirs = self.lock();
        let f = dirs.get(&parent)?;
        let left = self
            .ttl
            .checked_sub(f.made.elapsed())
            .filter(|d| !d.is_zero());
        let Some(left) = left else {
            dirs.remove(&parent);
            return None;
        };
        (!f.names.contains(name)).then_some(left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_made_here_are_never_answered_absent() {
        let f = FreshDirs::new(Duration::from_secs(5));
        assert_eq!(f.absent(7, "a"), None, "not fresh: ask the namenode");
        f.made_dir(7);
        assert!(f.absent(7, "a").is_some());
        f.added(7, "a");
        assert_eq!(f.absent(7, "a"), None);
        assert!(f.absent(7, "b").is_some());
        f.added(8, "b");
        assert_eq!(f.absent(8, "b"), None);
    }

    #[test]
    fn freshness_ends_with_the_entry_timeout() {
        let f = FreshDirs::new(Duration::from_millis(30));
        f.made_dir(7);
        let left = f.absent(7, "a").expect("fresh");
        assert!(left <= Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(f.absent(7, "a"), None);
        let off = FreshDirs::new(Duration::ZERO);
        off.made_dir(7);
        assert_eq!(off.absent(7, "a"), None);
    }

    #[test]
    fn the_table_stays_bounded() {
        let f = FreshDirs::new(Duration::from_secs(60));
        for ino in 0..(MAX_DIRS as u64 * 3) {
            f.made_dir(ino);
        }
        assert!(f.lock().len() <= MAX_DIRS);
    }
}
