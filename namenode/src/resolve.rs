//! Path resolution with few round trips. A bounded LRU cache maps (parent ino, name) to the
//! child's (ino, kind). To resolve `/a/b/c`, the cache's guesses say which rows to fetch, and
//! every component's dentry and inode (the inodes feed the permission checks) come in ONE
//! parallel round (the transaction's `get` groups keys by shard and asks all shards at once).
//! The walk then follows the dentries as read, never the guesses: where a guess was wrong or
//! missing, the rows it needs are fetched from there on, one round per component (each round
//! also fetches the next component's dentry). So the name cache can only cost a wasted key,
//! never a wrong answer, and it needs no invalidation from other namenodes; operations forget
//! the names they change.
//!
//! The rows of the directories a walk passes through (the root's inode, each ancestor's
//! dentry and inode) are read through [`Txn::get_walk`]: the sharded store keeps them under a
//! read lease of the shards, which hold up any other namenode's write of them until the lease
//! ran out, so they are as current as a fresh read. The last component's rows are always
//! read. Resolution reads are not validated: each operation turns exactly the rows its
//! semantics depend on into read checks.

use std::collections::HashMap;
use std::num::NonZeroUsize;

use arbor_proto::records::{InodeKind, InodeRecord};
use lru::LruCache;
use parking_lot::Mutex;

use crate::attrs::{self, dentry_kind, kind_of};
use crate::error::NnError;
use crate::keys::{self, Ino, ROOT_INO};
use crate::path::NsPath;
use crate::perm::{self, Caller};
use crate::txn::{Key, ScanPage, ScanRange, Txn, Versioned};

/// A resolved path component.
#[derive(Clone, Debug)]
pub struct Node {
    pub ino: Ino,
    pub inode: InodeRecord,
    /// The directory's counter row, when asked for the walk's target.
    pub counter: Option<[i64; 4]>,
}

impl Node {
    pub fn kind(&self) -> InodeKind {
        kind_of(&self.inode)
    }

    pub fn is_dir(&self) -> bool {
        self.kind() == InodeKind::Directory
    }
}

/// Where a walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Every component exists.
    Complete,
    /// Component `i` (0-based) does not exist in the directory `nodes[i]`.
    Missing(usize),
    /// `nodes[i]` (component `i - 1`) is not a directory but more components follow.
    NotDir(usize),
}

/// The result of resolving a path: `nodes[0]` is the root, `nodes[i]` is component `i - 1`.
#[derive(Clone, Debug)]
pub struct Walk {
    pub path: NsPath,
    pub nodes: Vec<Node>,
    pub end: End,
    /// Every row the walk read, with its version (0: absent): an operation turns the ones its
    /// semantics rest on into read checks ([`Walk::expect`]) instead of reading them again.
    rows: HashMap<Vec<u8>, Versioned>,
    /// The inode the caller's [`ExtraFor`] was asked about (the path cache's guess of the
    /// target), when its reads went with the first round.
    pub extra_for: Option<Ino>,
    /// The first page of each scan of that [`Extra`].
    pub extra_pages: Vec<ScanPage>,
}

/// What a walk's caller wants read in the walk's first round beside the path's own rows
/// (unvalidated; point reads before scans on each shard). Its keys' rows are then the walk's
/// ([`Walk::row`]).
#[derive(Debug, Default)]
pub struct Extra {
    pub keys: Vec<Key>,
    pub scans: Vec<ScanRange>,
}

/// The [`Extra`] a caller wants for the inode the path cache guesses the path names, if any.
pub type ExtraFor = fn(Ino, InodeKind) -> Option<Extra>;

/// A walk's first round, as planned from the path cache's guesses.
struct FirstRound {
    /// Each key, marked when it belongs to a directory the walk passes through.
    keys: Vec<(Key, bool)>,
    /// The last component is presumed absent (not read).
    presumed: bool,
    /// The guessed target and the caller's reads for it.
    extra: Option<(Ino, Extra)>,
}

impl Walk {
    /// Makes `key`'s row, as the walk read it, a read check of `txn`. False when the walk did
    /// not read it (the caller must then read it itself).
    pub fn expect<T: Txn>(&self, txn: &mut T, key: &Key) -> bool {
        match self.rows.get(&key.bytes) {
            Some(row) => {
                txn.expect(key.clone(), row.version);
                true
            }
            None => false,
        }
    }

    /// The row of `key` as the walk read it.
    pub fn row(&self, key: &Key) -> Option<&Versioned> {
        self.rows.get(&key.bytes)
    }

    /// The path's last entry as read checks of `txn`: the parent's tombstone expected absent,
    /// the entry's dentry and (when it names something) its inode at the versions the walk
    /// read them; a row the walk did not read is read now, validated. Returns the dentry row
    /// and the inode row.
    pub async fn last_entry<T: Txn>(
        &self,
        txn: &mut T,
    ) -> Result<(Versioned, Option<Versioned>), NnError> {
        let parent = self.parent()?.ino;
        txn.expect(keys::tombstone(parent), 0);
        let mut wanted = vec![keys::dentry(parent, self.path.name())];
        wanted.extend(self.target_ino().map(keys::inode));
        let mut rows = Vec::with_capacity(wanted.len());
        for key in wanted {
            let row = match self.row(&key) {
                Some(row) => {
                    txn.expect(key, row.version);
                    row.clone()
                }
                None => txn.get(std::slice::from_ref(&key), true).await?.remove(0),
            };
            rows.push(row);
        }
        let inode = rows.get(1).cloned();
        Ok((rows.swap_remove(0), inode))
    }

    /// The node the path names, or the error its absence means.
    pub fn target(&self) -> Result<&Node, NnError> {
        match self.end {
            End::Complete => self
                .nodes
                .last()
                .ok_or_else(|| NnError::Internal("empty walk".into())),
            End::Missing(_) => Err(NnError::NotFound(self.path.text())),
            End::NotDir(_) => Err(NnError::NotADirectory(self.path.text())),
        }
    }

    /// The directory holding the path's last component (whether or not that exists).
    pub fn parent(&self) -> Result<&Node, NnError> {
        let n = self.path.depth();
        if n == 0 {
            return Err(NnError::Root(self.path.text()));
        }
        match self.end {
            End::Complete => Ok(&self.nodes[n - 1]),
            End::Missing(i) if i == n - 1 => Ok(&self.nodes[n - 1]),
            End::Missing(_) => Err(NnError::NotFound(self.path.text())),
            End::NotDir(_) => Err(NnError::NotADirectory(self.path.text())),
        }
    }

    /// The target's ino when it exists.
    pub fn target_ino(&self) -> Option<Ino> {
        match self.end {
            End::Complete => self.nodes.last().map(|n| n.ino),
            _ => None,
        }
    }
}

pub struct Resolver {
    names: Mutex<LruCache<(Ino, String), (Ino, InodeKind)>>,
}

impl Resolver {
    pub fn new(entries: usize) -> Self {
        let cap = NonZeroUsize::new(entries.max(1)).unwrap_or(NonZeroUsize::MIN);
        Resolver {
            names: Mutex::new(LruCache::new(cap)),
        }
    }

    pub fn remember(&self, parent: Ino, name: &str, ino: Ino, kind: InodeKind) {
        self.names
            .lock()
            .put((parent, name.to_string()), (ino, kind));
    }

    pub fn forget(&self, parent: Ino, name: &str) {
        self.names.lock().pop(&(parent, name.to_string()));
    }

    pub fn cached(&self) -> usize {
        self.names.lock().len()
    }

    /// The cache's guess of every component's (ino, kind), as far as it knows.
    fn guesses(&self, path: &NsPath) -> Vec<(Ino, InodeKind)> {
        let mut names = self.names.lock();
        let mut out = Vec::new();
        let mut parent = ROOT_INO;
        for name in path.comps() {
            match names.get(&(parent, name.clone())) {
                Some(&(ino, kind)) => {
                    out.push((ino, kind));
                    if kind != InodeKind::Directory {
                        break;
                    }
                    parent = ino;
                }
                None => break,
            }
        }
        out
    }

    /// Resolves `path`, checking EXECUTE for `caller` on every directory it looks into. With
    /// `want_counter`, a directory target comes with its counter row.
    pub async fn walk<T: Txn>(
        &self,
        txn: &mut T,
        caller: &Caller,
        path: &NsPath,
        want_counter: bool,
    ) -> Result<Walk, NnError> {
        self.walk_from(txn, caller, path, want_counter, false, None, HashMap::new())
            .await
    }

    /// [`Resolver::walk`] with, when the path cache knows what the path names, what `extra`
    /// asks for that inode read in the first round ([`Walk::extra_for`] says it was).
    pub async fn walk_with<T: Txn>(
        &self,
        txn: &mut T,
        caller: &Caller,
        path: &NsPath,
        extra: ExtraFor,
    ) -> Result<Walk, NnError> {
        self.walk_from(txn, caller, path, false, false, Some(extra), HashMap::new())
            .await
    }

    /// Resolves the path of an entry about to be made. With `presume`, when this namenode
    /// does not know the last component, it is presumed absent instead of read, and the
    /// commit checks that (its dentry at version 0): a create is then one shard round. A
    /// presumption proved wrong fails the commit as a conflict; callers presume on their
    /// first attempt only, so the next one reads.
    pub async fn walk_to_new<T: Txn>(
        &self,
        txn: &mut T,
        caller: &Caller,
        path: &NsPath,
        presume: bool,
    ) -> Result<Walk, NnError> {
        self.walk_from(txn, caller, path, false, presume, None, HashMap::new())
            .await
    }

    /// Walks two paths (a rename's source and destination) with one first round for both:
    /// when the guesses are right, both are resolved in one parallel round.
    pub async fn walk_two<T: Txn>(
        &self,
        txn: &mut T,
        caller: &Caller,
        a: &NsPath,
        b: &NsPath,
    ) -> Result<(Walk, Walk), NnError> {
        let mut first = self.first_round(a, false, false, None).keys;
        for (key, lasting) in self.first_round(b, false, false, None).keys {
            match first.iter_mut().find(|(k, _)| *k == key) {
                Some((_, l)) => *l &= lasting,
                None => first.push((key, lasting)),
            }
        }
        let mut rows = HashMap::new();
        fetch_walk(txn, &mut rows, first).await?;
        let wa = self
            .walk_from(txn, caller, a, false, false, None, rows.clone())
            .await?;
        let wb = self
            .walk_from(txn, caller, b, false, false, None, rows)
            .await?;
        Ok((wa, wb))
    }

    /// The rows of a walk's first round: everything the guesses point at, and the first
    /// unguessed dentry; each marked when it belongs to a directory the walk passes through
    /// (the root's inode, an ancestor's dentry and inode), which the store may serve from rows
    /// it keeps under a lease. The last component's rows are read, unless `presume_new` and
    /// the cache does not know it (else it likely exists); with `extra`, a guessed target's
    /// extra reads are planned too.
    fn first_round(
        &self,
        path: &NsPath,
        want_counter: bool,
        presume_new: bool,
        extra: Option<ExtraFor>,
    ) -> FirstRound {
        let comps = path.comps();
        let n = comps.len();
        let guesses = self.guesses(path);
        let presume_new = presume_new && guesses.len() < n;
        let extra = match (extra, guesses.last()) {
            (Some(f), Some(&(ino, kind))) if n > 0 && guesses.len() == n => {
                f(ino, kind).map(|e| (ino, e))
            }
            _ => None,
        };
        let mut first = vec![(keys::inode(ROOT_INO), n > 0)];
        if want_counter && n == 0 {
            first.push((keys::counter(ROOT_INO), false));
        }
        let mut parent = ROOT_INO;
        let mut parent_is_dir = true;
        for (i, name) in comps.iter().enumerate() {
            if !parent_is_dir {
                break;
            }
            let Some(&(ino, kind)) = guesses.get(i) else {
                if !(presume_new && i + 1 == n) {
                    first.push((keys::dentry(parent, name), false));
                }
                break;
            };
            let passes = i + 1 < n && kind == InodeKind::Directory;
            first.push((keys::dentry(parent, name), passes));
            first.push((keys::inode(ino), passes));
            if want_counter && i + 1 == n && kind == InodeKind::Directory {
                first.push((keys::counter(ino), false));
            }
            parent = ino;
            parent_is_dir = kind == InodeKind::Directory;
        }
        FirstRound {
            keys: first,
            presumed: presume_new,
            extra,
        }
    }

    /// A walk given rows already read in this transaction (its own first round is then only
    /// what they lack).
    #[allow(clippy::too_many_arguments)]
    async fn walk_from<T: Txn>(
        &self,
        txn: &mut T,
        caller: &Caller,
        path: &NsPath,
        want_counter: bool,
        presume_new: bool,
        extra: Option<ExtraFor>,
        mut rows: HashMap<Vec<u8>, Versioned>,
    ) -> Result<Walk, NnError> {
        let comps = path.comps();
        let n = comps.len();
        let plan = self.first_round(path, want_counter, presume_new, extra);
        let presume_new = plan.presumed;
        let mut first = plan.keys;
        first.retain(|(k, _)| !rows.contains_key(&k.bytes));
        let (extra_for, scans) = match plan.extra {
            Some((ino, extra)) => {
                for key in extra.keys {
                    if !rows.contains_key(&key.bytes) && !first.iter().any(|(k, _)| *k == key) {
                        first.push((key, false));
                    }
                }
                (Some(ino), extra.scans)
            }
            None => (None, Vec::new()),
        };
        let extra_pages = fetch_walk_with(txn, &mut rows, first, scans).await?;

        let root_inode = attrs::decode_inode(row(&rows, &keys::inode(ROOT_INO)))?
            .ok_or_else(|| NnError::Internal("the root inode is missing".into()))?;
        let root_counter = (want_counter && n == 0)
            .then(|| attrs::decode_counter(row(&rows, &keys::counter(ROOT_INO))));
        let mut nodes = vec![Node {
            ino: ROOT_INO,
            inode: root_inode,
            counter: root_counter,
        }];

        for (i, name) in comps.iter().enumerate() {
            let dir = &nodes[i];
            if !dir.is_dir() {
                return Ok(Walk {
                    path: path.clone(),
                    nodes,
                    end: End::NotDir(i),
                    rows,
                    extra_for,
                    extra_pages,
                });
            }
            perm::check(caller, &dir.inode, &path.prefix(i).text(), perm::EXECUTE)?;
            let dir_ino = dir.ino;
            let dkey = keys::dentry(dir_ino, name);
            if presume_new && i + 1 == n && !rows.contains_key(&dkey.bytes) {
                rows.insert(dkey.bytes.clone(), ABSENT.clone());
            }
            if !rows.contains_key(&dkey.bytes) {
                fetch_walk(txn, &mut rows, vec![(dkey.clone(), false)]).await?;
            }
            let Some(dentry) = attrs::decode_dentry(row(&rows, &dkey))? else {
                self.forget(dir_ino, name);
                return Ok(Walk {
                    path: path.clone(),
                    nodes,
                    end: End::Missing(i),
                    rows,
                    extra_for,
                    extra_pages,
                });
            };
            let kind = dentry_kind(&dentry);
            self.remember(dir_ino, name, dentry.ino, kind);

            let passes = i + 1 < n && kind == InodeKind::Directory;
            let mut need = vec![(keys::inode(dentry.ino), passes)];
            let counter_key = (want_counter && i + 1 == n && kind == InodeKind::Directory)
                .then(|| keys::counter(dentry.ino));
            need.extend(counter_key.clone().map(|k| (k, false)));
            if passes && !(presume_new && i + 2 == n) {
                need.push((keys::dentry(dentry.ino, &comps[i + 1]), false));
            }
            need.retain(|(k, _)| !rows.contains_key(&k.bytes));
            fetch_walk(txn, &mut rows, need).await?;
            let Some(inode) = attrs::decode_inode(row(&rows, &keys::inode(dentry.ino)))? else {
                // The entry was removed between our reads of its dentry and its inode.
                self.forget(dir_ino, name);
                return Err(NnError::raced(format!("inode {} vanished", dentry.ino)));
            };
            if kind_of(&inode) != kind {
                self.forget(dir_ino, name);
                return Err(NnError::raced(format!("inode {} changed kind", dentry.ino)));
            }
            let counter = counter_key.map(|k| attrs::decode_counter(row(&rows, &k)));
            nodes.push(Node {
                ino: dentry.ino,
                inode,
                counter,
            });
        }
        Ok(Walk {
            path: path.clone(),
            nodes,
            end: End::Complete,
            rows,
            extra_for,
            extra_pages,
        })
    }
}

static ABSENT: Versioned = Versioned {
    value: Vec::new(),
    version: 0,
};

fn row<'a>(rows: &'a HashMap<Vec<u8>, Versioned>, key: &Key) -> &'a Versioned {
    rows.get(&key.bytes).unwrap_or(&ABSENT)
}

/// Reads `keys` for a walk (see [`Txn::get_walk`]) into `rows`.
async fn fetch_walk<T: Txn>(
    txn: &mut T,
    rows: &mut HashMap<Vec<u8>, Versioned>,
    keys: Vec<(Key, bool)>,
) -> Result<(), NnError> {
    fetch_walk_with(txn, rows, keys, Vec::new()).await?;
    Ok(())
}

/// [`fetch_walk`] with `scans` in the same round; their first pages.
async fn fetch_walk_with<T: Txn>(
    txn: &mut T,
    rows: &mut HashMap<Vec<u8>, Versioned>,
    keys: Vec<(Key, bool)>,
    scans: Vec<ScanRange>,
) -> Result<Vec<ScanPage>, NnError> {
    if keys.is_empty() && scans.is_empty() {
        return Ok(Vec::new());
    }
    let (keys, lasting): (Vec<Key>, Vec<bool>) = keys.into_iter().unzip();
    let (got, pages) = txn.walk_round(&keys, &lasting, scans).await?;
    if got.len() != keys.len() {
        return Err(NnError::Internal(format!(
            "asked for {} rows, got {}",
            keys.len(),
            got.len()
        )));
    }
    for (k, v) in keys.into_iter().zip(got) {
        rows.insert(k.bytes, v);
    }
    Ok(pages)
}
