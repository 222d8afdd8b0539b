//! The inodes the kernel knows: Arbor inode number → (parent directory, name), so the
//! path-based namespace calls can be made for an inode. Arbor's inode numbers are used as
//! they are (the root is 1 = FUSE_ROOT_ID).
//!
//! Invariants: the root is always present and is its own parent; an entry lives while the
//! kernel holds lookups on it (every reply that hands out an inode counts one; `forget` drops
//! them), and its (parent, name) is the last one a lookup, create or rename saw. Arbor has no
//! hard links, so one name per inode is the whole truth.

use std::collections::HashMap;
use std::sync::Mutex;

use fuser::Errno;

/// The root directory's inode number.
pub const ROOT: u64 = 1;

#[derive(Clone, Debug)]
struct Node {
    parent: u64,
    name: String,
    lookups: u64,
    /// Unlinked (or replaced by a rename) while the kernel still holds it.
    detached: bool,
}

#[derive(Default)]
struct Table {
    nodes: HashMap<u64, Node>,
    /// (parent, name) → inode, for renames and unlinks that name entries, not inodes.
    names: HashMap<(u64, String), u64>,
}

/// The inode table, shared by all request threads.
pub struct Inodes {
    table: Mutex<Table>,
}

impl Default for Inodes {
    fn default() -> Self {
        Inodes::new()
    }
}

impl Inodes {
    pub fn new() -> Inodes {
        let mut table = Table::default();
        table.nodes.insert(
            ROOT,
            Node {
                parent: ROOT,
                name: String::new(),
                lookups: 1,
                detached: false,
            },
        );
        Inodes {
            table: Mutex::new(table),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The absolute path of `ino`: `ESTALE` if the kernel asks about an inode it forgot,
    /// `ENOENT` if it was unlinked.
    pub fn path(&self, ino: u64) -> Result<String, Errno> {
        let t = self.lock();
        let mut parts = Vec::new();
        let mut cur = ino;
        // A cycle cannot form (renames of a directory under itself fail), but a bound keeps a
        // corrupted table from hanging a request thread.
        for _ in 0..4096 {
            if cur == ROOT {
                parts.reverse();
                return Ok(format!("/{}", parts.join("/")));
            }
            let node = t.nodes.get(&cur).ok_or(Errno::ESTALE)?;
            if node.detached {
                return Err(Errno::ENOENT);
            }
            parts.push(node.name.clone());
            cur = node.parent;
        }
        Err(Errno::ELOOP)
    }

    /// The path of `name` in directory `parent`.
    pub fn child_path(&self, parent: u64, name: &str) -> Result<String, Errno> {
        let dir = self.path(parent)?;
        Ok(if dir == "/" {
            format!("/{name}")
        } else {
            format!("{dir}/{name}")
        })
    }

    /// Records that the kernel got `ino` as `name` in `parent` (one more lookup).
    pub fn remember(&self, parent: u64, name: &str, ino: u64) {
        if ino == ROOT {
            return;
        }
        let mut t = self.lock();
        let key = (parent, name.to_string());
        if let Some(old) = t.names.insert(key, ino)
            && old != ino
            && let Some(n) = t.nodes.get_mut(&old)
        {
            // The name now names another inode: the old one was replaced behind our back.
            n.detached = true;
        }
        let node = t.nodes.entry(ino).or_insert_with(|| Node {
            parent,
            name: name.to_string(),
            lookups: 0,
            detached: false,
        });
        let moved = node.parent != parent || node.name != name;
        let old_key = (node.parent, node.name.clone());
        node.parent = parent;
        node.name = name.to_string();
        node.detached = false;
        node.lookups += 1;
        if moved && t.names.get(&old_key) == Some(&ino) {
            t.names.remove(&old_key);
        }
    }

    /// The kernel dropped `n` lookups of `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        if ino == ROOT {
            return;
        }
        let mut t = self.lock();
        let Some(node) = t.nodes.get_mut(&ino) else {
            return;
        };
        node.lookups = node.lookups.saturating_sub(n);
        if node.lookups == 0 {
            let key = (node.parent, node.name.clone());
            t.nodes.remove(&ino);
            if t.names.get(&key) == Some(&ino) {
                t.names.remove(&key);
            }
        }
    }

    /// `name` was removed from `parent`.
    pub fn unlinked(&self, parent: u64, name: &str) {
        let mut t = self.lock();
        if let Some(ino) = t.names.remove(&(parent, name.to_string()))
            && let Some(n) = t.nodes.get_mut(&ino)
        {
            n.detached = true;
        }
    }

    /// `name` in `parent` was renamed to `new_name` in `new_parent` (replacing what was there).
    pub fn renamed(&self, parent: u64, name: &str, new_parent: u64, new_name: &str) {
        let mut t = self.lock();
        let dst = (new_parent, new_name.to_string());
        if let Some(replaced) = t.names.remove(&dst)
            && let Some(n) = t.nodes.get_mut(&replaced)
        {
            n.detached = true;
        }
        if let Some(ino) = t.names.remove(&(parent, name.to_string())) {
            if let Some(n) = t.nodes.get_mut(&ino) {
                n.parent = new_parent;
                n.name = new_name.to_string();
                n.detached = false;
            }
            t.names.insert(dst, ino);
        }
    }

    /// The inode the kernel knows `name` in `parent` as, if any.
    pub fn name_ino(&self, parent: u64, name: &str) -> Option<u64> {
        self.lock().names.get(&(parent, name.to_string())).copied()
    }

    /// Whether the kernel holds `ino` (got it from this mount and has not forgotten it).
    pub fn knows(&self, ino: u64) -> bool {
        self.lock().nodes.contains_key(&ino)
    }

    /// Where the kernel knows `ino` to be: its (parent, name).
    pub fn located(&self, ino: u64) -> Option<(u64, String)> {
        self.lock()
            .nodes
            .get(&ino)
            .map(|n| (n.parent, n.name.clone()))
    }

    /// The directory holding `ino`, if known.
    pub fn parent(&self, ino: u64) -> Option<u64> {
        self.lock().nodes.get(&ino).map(|n| n.parent)
    }

    /// How many inodes are remembered (the root included).
    pub fn len(&self) -> usize {
        self.lock().nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().nodes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_lookups_and_renames() {
        let t = Inodes::new();
        assert_eq!(t.path(ROOT).unwrap(), "/");
        t.remember(ROOT, "a", 10);
        t.remember(10, "f", 11);
        assert_eq!(t.path(11).unwrap(), "/a/f");
        assert_eq!(t.child_path(10, "g").unwrap(), "/a/g");
        t.remember(ROOT, "b", 20);
        // Moving the directory moves everything under it.
        t.renamed(ROOT, "a", 20, "c");
        assert_eq!(t.path(11).unwrap(), "/b/c/f");
        assert_eq!(t.path(10).unwrap(), "/b/c");
    }

    #[test]
    fn replaced_and_unlinked_inodes_have_no_path() {
        let t = Inodes::new();
        t.remember(ROOT, "x", 5);
        t.remember(ROOT, "y", 6);
        t.renamed(ROOT, "x", ROOT, "y");
        assert_eq!(t.path(5).unwrap(), "/y");
        assert_eq!(t.path(6), Err(Errno::ENOENT));
        t.unlinked(ROOT, "y");
        assert_eq!(t.path(5), Err(Errno::ENOENT));
    }

    #[test]
    fn forget_drops_entries_after_the_last_lookup() {
        let t = Inodes::new();
        t.remember(ROOT, "x", 5);
        t.remember(ROOT, "x", 5);
        t.forget(5, 1);
        assert_eq!(t.path(5).unwrap(), "/x");
        t.forget(5, 1);
        assert_eq!(t.path(5), Err(Errno::ESTALE));
        assert_eq!(t.len(), 1);
        t.forget(ROOT, 100);
        assert_eq!(t.path(ROOT).unwrap(), "/");
    }

    #[test]
    fn a_fresh_lookup_under_a_new_name_moves_the_entry() {
        let t = Inodes::new();
        t.remember(ROOT, "old", 7);
        // Another mount renamed it; our lookup of the new name finds the same inode.
        t.remember(ROOT, "new", 7);
        assert_eq!(t.path(7).unwrap(), "/new");
        t.unlinked(ROOT, "old");
        assert_eq!(t.path(7).unwrap(), "/new");
    }

    #[test]
    fn names_and_places_read_back_as_the_kernel_knows_them() {
        let t = Inodes::new();
        t.remember(ROOT, "d", 5);
        t.remember(5, "f", 7);
        assert_eq!(t.name_ino(5, "f"), Some(7));
        assert_eq!(t.located(7), Some((5, "f".to_string())));
        assert!(t.knows(5) && t.knows(7) && !t.knows(99));
        t.renamed(5, "f", ROOT, "g");
        assert_eq!(t.name_ino(5, "f"), None);
        assert_eq!(t.located(7), Some((ROOT, "g".to_string())));
        assert_eq!(t.located(99), None);
    }
}
