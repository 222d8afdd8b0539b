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

use std::collections::HashSet;
use std::time::Duration;

use crate::expiring::Expiring;

/// The fresh directories of one mount.
pub struct FreshDirs {
    dirs: Expiring<HashSet<String>>,
}

impl FreshDirs {
    /// Directories stay fresh for `ttl` (the mount's entry timeout; zero turns this off).
    pub fn new(ttl: Duration) -> FreshDirs {
        FreshDirs {
            dirs: Expiring::new(ttl),
        }
    }

    /// This mount made directory `ino` just now: it is empty.
    pub fn made_dir(&self, ino: u64) {
        self.dirs.insert(ino, HashSet::new());
    }

    /// This mount made (or renamed into) `name` in `parent`.
    pub fn added(&self, parent: u64, name: &str) {
        self.dirs
            .with(parent, |names, _| names.insert(name.to_string()));
    }

    /// How much longer `name` may be answered absent in `parent`, or `None` when the
    /// namenode must be asked.
    pub fn absent(&self, parent: u64, name: &str) -> Option<Duration> {
        self.dirs
            .with(parent, |names, left| {
                (!names.contains(name)).then_some(left)
            })
            .flatten()
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
    }
}
