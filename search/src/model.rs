//! The namespace as search knows it, rebuilt from rows: one [`Entry`] per inode number
//! (its dentries, inode attributes, directory counter and xattrs, each with the version of the
//! row it came from) and the directory map ([`DirMap`]) that turns a parent inode into a path.
//!
//! Invariants:
//! - a row change applies only when its version is newer than what the entry holds for that
//!   same row key (a row key always lives on one shard, so its versions are comparable);
//!   replaying a stretch of log, or a log over a newer scan, never moves an entry backwards;
//! - an inode may transiently have two dentries (a cross-shard rename seen on one shard
//!   only) or none; its path is taken from the dentry with the newest commit clock, and the
//!   stream converges once every shard has been applied;
//! - the directory map always equals "every directory entry with a dentry, by its best dentry".

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use arbor_namenode::keys::{Ino, ROOT_INO};
use arbor_proto::records::InodeKind;
use serde::{Deserialize, Serialize};

use crate::rows::{Attrs, RowKind};

/// One dentry naming an inode, with the version (shard seq) and clock of its last write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DentryPart {
    pub parent: Ino,
    pub name: String,
    pub kind: i32,
    pub version: u64,
    pub hlc: u64,
}

/// Everything known of one inode number.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub ino: Ino,
    pub dentries: Vec<DentryPart>,
    /// The inode row and its version.
    pub inode: Option<(Attrs, u64)>,
    /// A directory's counter row (children, subdirs, mtime, ctime) and its version.
    pub counter: Option<([i64; 4], u64)>,
    /// xattr name -> (value, version).
    pub xattrs: BTreeMap<String, (Vec<u8>, u64)>,
}

impl Entry {
    fn new(ino: Ino) -> Entry {
        Entry {
            ino,
            ..Entry::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.dentries.is_empty()
            && self.inode.is_none()
            && self.counter.is_none()
            && self.xattrs.is_empty()
    }

    /// The dentry that names this inode now: the newest by commit clock, then version.
    pub fn dentry(&self) -> Option<&DentryPart> {
        self.dentries.iter().max_by_key(|d| (d.hlc, d.version))
    }

    pub fn kind(&self) -> InodeKind {
        let raw = match (&self.inode, self.dentry()) {
            (Some((a, _)), _) => a.kind,
            (None, Some(d)) => d.kind,
            (None, None) => 0,
        };
        InodeKind::try_from(raw).unwrap_or_default()
    }

    /// A search result needs both a name and attributes.
    pub fn live(&self) -> bool {
        self.inode.is_some() && self.dentry().is_some()
    }

    /// The attributes a client sees: a directory's mtime and ctime include its counter row
    /// and its size is 0, as `stat` reports them.
    pub fn attrs(&self) -> Attrs {
        let mut a = self
            .inode
            .as_ref()
            .map(|(a, _)| a.clone())
            .unwrap_or_default();
        if self.kind() == InodeKind::Directory {
            a.size = 0;
            if let Some((c, _)) = &self.counter {
                a.mtime_ns = a.mtime_ns.max(c[2]);
                a.ctime_ns = a.ctime_ns.max(c[3]);
            }
        }
        a
    }
}

/// Directories by inode: where each one is, and its subdirectories.
#[derive(Clone, Debug, Default)]
pub struct DirMap {
    up: HashMap<Ino, (Ino, String)>,
    down: HashMap<Ino, BTreeMap<String, Ino>>,
}

/// Deeper than this is a cycle (a transient state of two racing cross-shard renames).
const MAX_DEPTH: usize = 4096;

impl DirMap {
    fn remove(&mut self, ino: Ino) {
        if let Some((parent, name)) = self.up.remove(&ino)
            && let Some(children) = self.down.get_mut(&parent)
        {
            if children.get(&name) == Some(&ino) {
                children.remove(&name);
            }
            if children.is_empty() {
                self.down.remove(&parent);
            }
        }
    }

    fn insert(&mut self, ino: Ino, parent: Ino, name: &str) {
        self.remove(ino);
        self.up.insert(ino, (parent, name.to_string()));
        self.down
            .entry(parent)
            .or_default()
            .insert(name.to_string(), ino);
    }

    pub fn len(&self) -> usize {
        self.up.len()
    }

    pub fn is_empty(&self) -> bool {
        self.up.is_empty()
    }

    /// The path of directory `ino`, or None when it is not connected to the root.
    pub fn dir_path(&self, ino: Ino) -> Option<String> {
        let mut names = Vec::new();
        let mut cur = ino;
        while cur != ROOT_INO {
            if names.len() > MAX_DEPTH {
                return None;
            }
            let (parent, name) = self.up.get(&cur)?;
            names.push(name.as_str());
            cur = *parent;
        }
        if names.is_empty() {
            return Some("/".to_string());
        }
        names.reverse();
        let mut out = String::new();
        for n in names {
            out.push('/');
            out.push_str(n);
        }
        Some(out)
    }

    /// The path of `name` in directory `parent`.
    pub fn child_path(&self, parent: Ino, name: &str) -> Option<String> {
        let dir = self.dir_path(parent)?;
        Some(join(&dir, name))
    }

    /// The directory at `path` (absolute), if the path names one.
    pub fn resolve(&self, path: &str) -> Option<Ino> {
        let mut cur = ROOT_INO;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            cur = *self.down.get(&cur)?.get(part)?;
        }
        Some(cur)
    }

    /// `root` and every directory below it.
    pub fn subtree(&self, root: Ino) -> Vec<Ino> {
        let mut out = vec![root];
        let mut seen: HashSet<Ino> = HashSet::from([root]);
        let mut queue = VecDeque::from([root]);
        while let Some(d) = queue.pop_front() {
            if let Some(children) = self.down.get(&d) {
                for &c in children.values() {
                    if seen.insert(c) {
                        out.push(c);
                        queue.push_back(c);
                    }
                }
            }
        }
        out
    }
}

/// Joins a directory path and a name.
pub fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The whole namespace: entries by inode, dentry keys, the directory map, and which entries
/// changed since the last [`Namespace::take_dirty`].
#[derive(Default)]
pub struct Namespace {
    entries: HashMap<Ino, Entry>,
    by_key: HashMap<(Ino, String), Ino>,
    dirs: DirMap,
    dirs_changed: bool,
    dirty: HashSet<Ino>,
}

/// What applying one row did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The row was newer and changed the entry.
    Changed,
    /// The entry already holds this version or a newer one (a replay).
    Stale,
    /// A row search does not keep.
    Ignored,
}

impl Namespace {
    pub fn new() -> Namespace {
        Namespace::default()
    }

    /// A namespace from entries loaded back (from the index).
    pub fn from_entries(entries: impl IntoIterator<Item = Entry>) -> Namespace {
        let mut ns = Namespace::new();
        for e in entries {
            let ino = e.ino;
            for d in &e.dentries {
                ns.by_key.insert((d.parent, d.name.clone()), ino);
            }
            ns.entries.insert(ino, e);
            ns.refresh_dir(ino);
        }
        ns.dirty.clear();
        ns
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, ino: Ino) -> Option<&Entry> {
        self.entries.get(&ino)
    }

    /// The inode a dentry key names now.
    pub fn lookup(&self, parent: Ino, name: &str) -> Option<Ino> {
        self.by_key.get(&(parent, name.to_string())).copied()
    }

    pub fn dirs(&self) -> &DirMap {
        &self.dirs
    }

    /// The current path of an inode (through its best dentry), if connected to the root.
    pub fn path_of(&self, ino: Ino) -> Option<String> {
        if ino == ROOT_INO {
            return Some("/".into());
        }
        let d = self.entries.get(&ino)?.dentry()?;
        self.dirs.child_path(d.parent, &d.name)
    }

    /// Entries changed since the last call, with their current state (None: gone).
    pub fn take_dirty(&mut self) -> Vec<(Ino, Option<Entry>)> {
        let dirty: Vec<Ino> = self.dirty.drain().collect();
        dirty
            .into_iter()
            .map(|ino| (ino, self.entries.get(&ino).cloned()))
            .collect()
    }

    /// Whether the directory map changed since the last call.
    pub fn take_dirs_changed(&mut self) -> bool {
        std::mem::take(&mut self.dirs_changed)
    }

    pub fn clear(&mut self) {
        let inos: Vec<Ino> = self.entries.keys().copied().collect();
        self.dirty.extend(inos);
        self.entries.clear();
        self.by_key.clear();
        self.dirs = DirMap::default();
        self.dirs_changed = true;
    }

    fn entry(&mut self, ino: Ino) -> &mut Entry {
        self.dirty.insert(ino);
        self.entries.entry(ino).or_insert_with(|| Entry::new(ino))
    }

    /// Keeps the directory map and the entry table in step after `ino` changed.
    fn refresh_dir(&mut self, ino: Ino) {
        let place = self.entries.get(&ino).and_then(|e| {
            let d = e.dentry()?;
            (e.kind() == InodeKind::Directory).then(|| (d.parent, d.name.clone()))
        });
        let before = self.dirs.up.get(&ino).cloned();
        if before.as_ref().map(|(p, n)| (*p, n.as_str()))
            == place.as_ref().map(|(p, n)| (*p, n.as_str()))
        {
            return;
        }
        self.dirs_changed = true;
        match place {
            Some((parent, name)) => self.dirs.insert(ino, parent, &name),
            None => self.dirs.remove(ino),
        }
    }

    fn drop_if_empty(&mut self, ino: Ino) {
        if self.entries.get(&ino).is_some_and(Entry::is_empty) {
            self.entries.remove(&ino);
        }
        self.refresh_dir(ino);
    }

    /// Applies one row written at `version` (its shard seq) with commit clock `hlc`.
    pub fn apply(&mut self, row: &RowKind, version: u64, hlc: u64) -> Applied {
        match row {
            RowKind::Other => Applied::Ignored,
            RowKind::Dentry {
                parent,
                name,
                value,
            } => self.apply_dentry(*parent, name, *value, version, hlc),
            RowKind::Inode { ino, value } => {
                let current = self.entries.get(ino).and_then(|e| e.inode.as_ref());
                if current.is_some_and(|(_, v)| *v >= version) {
                    return Applied::Stale;
                }
                if value.is_none() && current.is_none() {
                    return Applied::Stale;
                }
                self.entry(*ino).inode = value.clone().map(|a| (a, version));
                self.drop_if_empty(*ino);
                Applied::Changed
            }
            RowKind::Counter { ino, value } => {
                let current = self.entries.get(ino).and_then(|e| e.counter.as_ref());
                if current.is_some_and(|(_, v)| *v >= version) {
                    return Applied::Stale;
                }
                if value.is_none() && current.is_none() {
                    return Applied::Stale;
                }
                self.entry(*ino).counter = value.map(|c| (c, version));
                self.drop_if_empty(*ino);
                Applied::Changed
            }
            RowKind::Xattr { ino, name, value } => {
                let current = self.entries.get(ino).and_then(|e| e.xattrs.get(name));
                if current.is_some_and(|(_, v)| *v >= version) {
                    return Applied::Stale;
                }
                match value {
                    Some(v) => {
                        self.entry(*ino)
                            .xattrs
                            .insert(name.clone(), (v.clone(), version));
                    }
                    None => {
                        if current.is_none() {
                            return Applied::Stale;
                        }
                        self.entry(*ino).xattrs.remove(name);
                        self.drop_if_empty(*ino);
                    }
                }
                Applied::Changed
            }
        }
    }

    fn apply_dentry(
        &mut self,
        parent: Ino,
        name: &str,
        value: Option<(Ino, InodeKind)>,
        version: u64,
        hlc: u64,
    ) -> Applied {
        let key = (parent, name.to_string());
        if let Some(&old) = self.by_key.get(&key) {
            let old_version = self
                .entries
                .get(&old)
                .and_then(|e| {
                    e.dentries
                        .iter()
                        .find(|d| d.parent == parent && d.name == name)
                })
                .map(|d| d.version)
                .unwrap_or(0);
            if old_version >= version {
                return Applied::Stale;
            }
            // The key moves away from (or is rewritten on) its old inode.
            let e = self.entry(old);
            e.dentries
                .retain(|d| !(d.parent == parent && d.name == name));
            self.by_key.remove(&key);
            self.drop_if_empty(old);
        } else if value.is_none() {
            return Applied::Stale;
        }
        if let Some((ino, kind)) = value {
            let part = DentryPart {
                parent,
                name: name.to_string(),
                kind: kind as i32,
                version,
                hlc,
            };
            self.entry(ino).dentries.push(part);
            self.by_key.insert(key, ino);
            self.refresh_dir(ino);
        }
        Applied::Changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dentry(parent: Ino, name: &str, value: Option<(Ino, InodeKind)>) -> RowKind {
        RowKind::Dentry {
            parent,
            name: name.into(),
            value,
        }
    }

    fn inode(ino: Ino, kind: InodeKind, size: u64) -> RowKind {
        RowKind::Inode {
            ino,
            value: Some(Attrs {
                kind: kind as i32,
                size,
                ..Attrs::default()
            }),
        }
    }

    const DIR: InodeKind = InodeKind::Directory;
    const FILE: InodeKind = InodeKind::File;

    #[test]
    fn paths_follow_directory_renames_at_any_depth() {
        let mut ns = Namespace::new();
        ns.apply(&dentry(ROOT_INO, "a", Some((10, DIR))), 1, 1);
        ns.apply(&inode(10, DIR, 0), 1, 1);
        ns.apply(&dentry(10, "b", Some((11, DIR))), 2, 2);
        ns.apply(&dentry(11, "f.csv", Some((12, FILE))), 3, 3);
        ns.apply(&inode(12, FILE, 7), 3, 3);
        assert_eq!(ns.path_of(12).as_deref(), Some("/a/b/f.csv"));
        // Rename /a -> /z: the delete and insert, here on one shard.
        ns.apply(&dentry(ROOT_INO, "a", None), 4, 4);
        ns.apply(&dentry(ROOT_INO, "z", Some((10, DIR))), 4, 4);
        assert_eq!(ns.path_of(12).as_deref(), Some("/z/b/f.csv"));
        assert_eq!(ns.dirs().resolve("/z/b"), Some(11));
        assert_eq!(ns.dirs().resolve("/a/b"), None);
        assert_eq!(ns.dirs().subtree(10), vec![10, 11]);
    }

    #[test]
    fn replays_never_move_an_entry_backwards() {
        let mut ns = Namespace::new();
        ns.apply(&dentry(ROOT_INO, "f", Some((20, FILE))), 5, 5);
        ns.apply(&inode(20, FILE, 100), 5, 5);
        ns.apply(&inode(20, FILE, 200), 9, 9);
        assert_eq!(ns.apply(&inode(20, FILE, 100), 5, 5), Applied::Stale);
        assert_eq!(ns.get(20).unwrap().attrs().size, 200);
        // A delete older than the dentry's version (the name was re-created since) is stale.
        assert_eq!(ns.apply(&dentry(ROOT_INO, "f", None), 4, 4), Applied::Stale);
        assert_eq!(ns.path_of(20).as_deref(), Some("/f"));
        ns.apply(&dentry(ROOT_INO, "f", None), 10, 10);
        ns.apply(
            &RowKind::Inode {
                ino: 20,
                value: None,
            },
            10,
            10,
        );
        assert!(ns.get(20).is_none());
        // Replaying the deletes again changes nothing.
        assert_eq!(
            ns.apply(&dentry(ROOT_INO, "f", None), 10, 10),
            Applied::Stale
        );
    }

    #[test]
    fn cross_shard_rename_converges_in_either_order() {
        for insert_first in [true, false] {
            let mut ns = Namespace::new();
            ns.apply(&dentry(ROOT_INO, "d1", Some((30, DIR))), 1, 1);
            ns.apply(&dentry(ROOT_INO, "d2", Some((31, DIR))), 2, 2);
            ns.apply(&dentry(30, "x", Some((40, FILE))), 3, 3);
            ns.apply(&inode(40, FILE, 1), 3, 3);
            let del = dentry(30, "x", None);
            let ins = dentry(31, "y", Some((40, FILE)));
            if insert_first {
                ns.apply(&ins, 7, 100);
                assert_eq!(ns.path_of(40).as_deref(), Some("/d2/y"));
                ns.apply(&del, 4, 100);
            } else {
                ns.apply(&del, 4, 100);
                assert_eq!(ns.path_of(40), None);
                ns.apply(&ins, 7, 100);
            }
            assert_eq!(ns.path_of(40).as_deref(), Some("/d2/y"));
            assert_eq!(ns.get(40).unwrap().dentries.len(), 1);
        }
    }

    #[test]
    fn directory_attributes_merge_the_counter_row() {
        let mut ns = Namespace::new();
        ns.apply(&dentry(ROOT_INO, "d", Some((50, DIR))), 1, 1);
        ns.apply(&inode(50, DIR, 4096), 1, 1);
        ns.apply(
            &RowKind::Counter {
                ino: 50,
                value: Some([1, 0, 777, 778]),
            },
            2,
            2,
        );
        let a = ns.get(50).unwrap().attrs();
        assert_eq!((a.size, a.mtime_ns, a.ctime_ns), (0, 777, 778));
        let dirty = ns.take_dirty();
        assert_eq!(dirty.len(), 1);
        assert!(ns.take_dirs_changed());
        let copy = Namespace::from_entries(vec![ns.get(50).unwrap().clone()]);
        assert_eq!(copy.path_of(50).as_deref(), Some("/d"));
    }
}
