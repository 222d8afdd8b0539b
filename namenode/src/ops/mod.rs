//! The namespace operations, one module each, every one plain code over the [`Txn`] trait, so
//! the same code runs on the sharded store and on the in-memory one in tests.
//!
//! This module owns how an operation runs:
//! - [`Runner`]: each attempt runs in a fresh transaction; a conflict starts the operation over
//!   after a jittered exponential backoff (1 ms doubling to 50 ms) until a deadline, then BUSY.
//! - Exactly-once ([`Exo`]): a mutating call with a client id has a home inode (the directory
//!   it changes first, or the inode it changes). Each attempt reads the call's retry record on
//!   the home's shard *validated*, in the same round as the operation's other validated reads:
//!   if present, the stored answer is returned; if absent, the attempt writes the record with
//!   its answer, so the record commits atomically with the operation and two concurrent
//!   attempts of one call cannot both commit. After an unknown commit outcome the operation
//!   simply runs again: its first read of the record tells whether the earlier attempt
//!   committed.

pub mod content_summary;
pub mod create;
pub mod delete;
pub mod list;
pub mod mkdir;
pub mod readlink;
pub mod rename;
pub mod setattr;
pub mod stat;
pub mod symlink;
pub mod xattr;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arbor_proto::namenode::FileStatus;
use arbor_proto::records::{InodeKind, RetryRecord};
use prost::Message;

use crate::attrs::{self, CounterUpdates};
use crate::error::NnError;
use crate::keys::{self, Ino};
use crate::path::{self, NsPath};
use crate::perm::{self, Caller};
use crate::resolve::{Extra, Node, Resolver, Walk};
use crate::txn::{Key, Route, ScanPage, ScanRange, Store, Txn, TxnError, Versioned};

/// Tunables of the namespace layer.
#[derive(Clone, Debug)]
pub struct NsConfig {
    /// Entries of the path-resolution cache.
    pub cache_entries: usize,
    /// How long an operation keeps retrying conflicts before answering BUSY.
    pub retry_deadline: Duration,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// List page when the client asks for none, and the largest page served.
    pub list_default: u32,
    pub list_max: u32,
    /// The data path's settings.
    pub data: crate::data::DataConfig,
}

impl Default for NsConfig {
    fn default() -> Self {
        NsConfig {
            cache_entries: 100_000,
            retry_deadline: Duration::from_secs(30),
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(50),
            list_default: 1000,
            list_max: 10_000,
            data: crate::data::DataConfig::default(),
        }
    }
}

/// The namespace: a store, a resolution cache, and the operations (in the submodules).
pub struct Namespace<S: Store> {
    pub store: Arc<S>,
    pub resolver: Resolver,
    pub config: NsConfig,
}

impl<S: Store> Namespace<S> {
    pub fn new(store: Arc<S>, config: NsConfig) -> Self {
        Namespace {
            store,
            resolver: Resolver::new(config.cache_entries),
            config,
        }
    }

    /// A fresh transaction named `label`.
    pub(crate) fn begin(&self, label: &'static str) -> S::Txn {
        let mut txn = self.store.begin();
        txn.set_label(label);
        txn
    }
}

/// What one attempt of an operation produced.
pub enum Outcome<R> {
    /// The answer; the runner commits the attempt (with the retry record, if any).
    Done(R),
    /// An earlier attempt of this call committed: its stored answer.
    Replayed(Vec<u8>),
}

/// The exactly-once state of one attempt.
pub struct Exo {
    client_id: Vec<u8>,
    call_id: u64,
    key: Option<Key>,
    /// The call's first attempt on this namenode: its retry record is most likely absent.
    first: bool,
}

impl Exo {
    fn new(caller: &Caller, first: bool) -> Self {
        Exo {
            client_id: caller.client_id.clone(),
            call_id: caller.call_id,
            key: None,
            first,
        }
    }

    /// For an attempt whose answer cannot depend on an earlier attempt of the same call
    /// having committed: on the call's first attempt the retry record is not read but
    /// expected absent at commit (a version-0 read check), which saves a shard round. If an
    /// earlier attempt (through another namenode) did commit, this commit conflicts and the
    /// next attempt reads the record. Returns the key still to be read validated, if any.
    pub fn home_expecting_absent<T: Txn>(&mut self, txn: &mut T, home: Route) -> Option<Key> {
        let key = self.home(home)?;
        if self.first {
            txn.expect(key, 0);
            return None;
        }
        Some(key)
    }

    /// A caller without a client id gets no exactly-once.
    fn enabled(&self) -> bool {
        !self.client_id.is_empty()
    }

    /// Names the operation's home (the content route of the directory it changes, or the
    /// route of the inode it changes); returns the retry-record key to read validated (with the
    /// operation's other validated reads), `None` without exactly-once.
    pub fn home(&mut self, home: Route) -> Option<Key> {
        if !self.enabled() {
            return None;
        }
        let key = keys::retry(home, &self.client_id, self.call_id);
        self.key = Some(key.clone());
        Some(key)
    }

    /// Exactly-once off: for the steps of a call that are not its last transaction (the
    /// ancestors made by `mkdir -p`).
    pub fn disabled() -> Self {
        Exo {
            client_id: Vec::new(),
            call_id: 0,
            key: None,
            first: false,
        }
    }

    /// The stored answer, if the record read from [`Exo::home`]'s key exists.
    pub fn replay(row: &Versioned) -> Result<Option<Vec<u8>>, NnError> {
        if !row.exists() {
            return Ok(None);
        }
        Ok(Some(RetryRecord::decode(row.value.as_slice())?.response))
    }
}

/// Runs the attempts of one call: backoff, deadline, commit, retry record.
pub struct Runner {
    caller: Caller,
    what: String,
    deadline: Instant,
    backoff: Duration,
    max_backoff: Duration,
    pub attempts: u32,
    retry_at_once: bool,
}

impl Runner {
    pub fn new<S: Store>(ns: &Namespace<S>, caller: &Caller, what: &str) -> Self {
        Runner {
            caller: caller.clone(),
            what: what.to_string(),
            deadline: Instant::now() + ns.config.retry_deadline,
            backoff: ns.config.first_backoff,
            max_backoff: ns.config.max_backoff,
            attempts: 0,
            retry_at_once: false,
        }
    }

    /// Whether the attempt under way may presume a name absent (see
    /// [`Resolver::walk_to_new`]): only the call's first. A conflict of that attempt is
    /// retried at once, since the likeliest cause is the presumption itself.
    pub fn presume(&mut self) -> bool {
        self.retry_at_once = self.attempts == 1;
        self.retry_at_once
    }

    /// Exactly-once state for the next attempt.
    pub fn exo(&mut self) -> Exo {
        self.attempts += 1;
        Exo::new(&self.caller, self.attempts == 1)
    }

    async fn backoff(&mut self) -> Result<(), NnError> {
        let now = Instant::now();
        if now >= self.deadline {
            return Err(NnError::Busy(self.what.clone()));
        }
        let span = self.backoff.as_micros().max(1) as u64;
        // Full jitter in [backoff/2, backoff).
        let sleep = Duration::from_micros(span / 2 + rand::random::<u64>() % (span / 2 + 1));
        tokio::time::sleep(sleep.min(self.deadline - now)).await;
        self.backoff = (self.backoff * 2).min(self.max_backoff);
        Ok(())
    }

    /// Settles one attempt: `Some(answer)` when the call is done, `None` to run it again.
    pub async fn finish<T: Txn, R: Message + Default>(
        &mut self,
        mut txn: T,
        exo: Exo,
        result: Result<Outcome<R>, NnError>,
    ) -> Result<Option<R>, NnError> {
        match result {
            Ok(Outcome::Replayed(bytes)) => Ok(Some(R::decode(bytes.as_slice())?)),
            Ok(Outcome::Done(reply)) => {
                if txn.is_read_only() {
                    return Ok(Some(reply));
                }
                let recorded = exo.key.is_some();
                if let Some(key) = exo.key {
                    let record = RetryRecord {
                        response: reply.encode_to_vec(),
                        written_ns: attrs::now_ns(),
                    };
                    txn.put(key, record.encode_to_vec());
                }
                match txn.commit().await {
                    Ok(()) => Ok(Some(reply)),
                    Err(TxnError::Conflict(why)) => {
                        tracing::trace!(what = %self.what, %why, "conflict, retrying");
                        if std::mem::take(&mut self.retry_at_once) {
                            return Ok(None);
                        }
                        self.backoff().await?;
                        Ok(None)
                    }
                    // The retry record tells whether it happened: run again and read it.
                    Err(TxnError::Unknown(why)) if recorded => {
                        tracing::debug!(what = %self.what, %why, "commit outcome unknown, re-checking");
                        self.backoff().await?;
                        Ok(None)
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) if e.is_conflict() => {
                self.backoff().await?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// The first key after every key starting with `prefix` (empty when there is none).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    Vec::new()
}

/// Every row under `prefix` on `route`'s shard, read page by page (unvalidated).
pub async fn scan_prefix<T: Txn>(
    txn: &mut T,
    route: Route,
    prefix: Vec<u8>,
) -> Result<Vec<(Vec<u8>, Versioned)>, NnError> {
    let end = prefix_end(&prefix);
    let first = txn.scan(route, prefix, end.clone(), SCAN_PAGE).await?;
    scan_rest(txn, route, end, first).await
}

/// Rows of a prefix scan in one page.
const SCAN_PAGE: u32 = 1000;

/// Point reads of `keys` and every row under each of `prefixes` on the shard of `route`, in one
/// round ([`Txn::read_round`]); only prefixes holding more than a page take further rounds.
pub async fn read_with_prefixes<T: Txn>(
    txn: &mut T,
    keys: &[Key],
    validate: bool,
    route: Route,
    prefixes: &[Vec<u8>],
) -> Result<(Vec<Versioned>, Vec<Vec<(Vec<u8>, Versioned)>>), NnError> {
    let scans = prefix_scans(route, prefixes);
    let (rows, pages) = txn.read_round(keys, validate, scans.clone()).await?;
    let found = scans_rest(txn, &scans, pages).await?;
    Ok((rows, found))
}

/// A first-page scan of each of `prefixes` on the shard of `route`.
fn prefix_scans(route: Route, prefixes: &[Vec<u8>]) -> Vec<ScanRange> {
    prefixes
        .iter()
        .map(|p| ScanRange {
            route,
            start: p.clone(),
            end: prefix_end(p),
            limit: SCAN_PAGE,
        })
        .collect()
}

/// Every row of each of `scans`, given their first pages: the pages after a full one are
/// read now.
async fn scans_rest<T: Txn>(
    txn: &mut T,
    scans: &[ScanRange],
    pages: Vec<ScanPage>,
) -> Result<Vec<Vec<(Vec<u8>, Versioned)>>, NnError> {
    let mut found = Vec::with_capacity(pages.len());
    for (scan, page) in scans.iter().zip(pages) {
        found.push(scan_rest(txn, scan.route, scan.end.clone(), page).await?);
    }
    Ok(found)
}

/// Every row of a scan up to `end`, given its first page: the pages after it are read now.
async fn scan_rest<T: Txn>(
    txn: &mut T,
    route: Route,
    end: Vec<u8>,
    first: ScanPage,
) -> Result<Vec<(Vec<u8>, Versioned)>, NnError> {
    let (mut out, mut more) = first;
    while more {
        let Some(mut start) = out.last().map(|(k, _)| k.clone()) else {
            break;
        };
        start.push(0);
        let (rows, m) = txn.scan(route, start, end.clone(), SCAN_PAGE).await?;
        out.extend(rows);
        more = m;
    }
    Ok(out)
}

/// Whether directory `ino` has no entries (a one-row scan on its shard).
pub async fn dir_is_empty<T: Txn>(txn: &mut T, ino: Ino) -> Result<bool, NnError> {
    let prefix = keys::dentry_prefix(ino);
    let end = prefix_end(&prefix);
    let (rows, _) = txn.scan(keys::content_route(ino), prefix, end, 1).await?;
    Ok(rows.is_empty())
}

/// Buffers the removal of an inode that no dentry will name any more: the inode, its xattrs,
/// for a directory its counter row and a tombstone in its place, so that an add racing the
/// removal fails (the caller guarantees the directory is empty), for a file
/// its data (blocks to the freed queue, inline bytes, pending allocations, its lease).
///
/// What it must read (xattr names; a file's inline row, blocks and pending allocations) comes
/// in one round on the inode's shard.
pub async fn delete_inode<T: Txn>(txn: &mut T, ino: Ino, kind: InodeKind) -> Result<(), NnError> {
    let rows = InodeRows::read(txn, ino, kind).await?;
    rows.delete(txn)
}

/// The rows an inode owns besides its inode row (its xattrs; a file's inline bytes, blocks
/// and pending allocations), as read (unvalidated) to delete them, with the versions of the
/// inode row and the write lease read before them in the same call: every change to those
/// rows also writes the inode row or (an allocation) the lease, so a delete whose commit
/// checks both versions removes exactly what there is. The caller checks the inode's
/// version (its walk read it); [`InodeRows::delete`] checks the lease's.
pub struct InodeRows {
    ino: Ino,
    kind: InodeKind,
    /// The inode row's version, read before the other rows in the same call.
    pub inode_version: u64,
    lease_version: u64,
    inline: Versioned,
    xattrs: Vec<(Vec<u8>, Versioned)>,
    blocks: Vec<(Vec<u8>, Versioned)>,
    pending: Vec<(Vec<u8>, Versioned)>,
}

impl InodeRows {
    /// What to read for them: point reads (the inode row and lease first), and scans.
    pub fn plan(ino: Ino, kind: InodeKind) -> Extra {
        let mut prefixes = vec![keys::xattr_prefix(ino)];
        let mut want = vec![keys::inode(ino)];
        if kind == InodeKind::File {
            prefixes.push(keys::block_prefix(ino));
            prefixes.push(keys::pending_prefix(ino));
            want.push(keys::write_lease(ino));
            want.push(keys::inline(ino));
        }
        Extra {
            keys: want,
            scans: prefix_scans(keys::route_of(ino), &prefixes),
        }
    }

    /// A file's [`InodeRows::plan`], for a walk to read in its first round
    /// ([`Resolver::walk_with`]).
    pub fn extra_for_file(ino: Ino, kind: InodeKind) -> Option<Extra> {
        (kind == InodeKind::File).then(|| Self::plan(ino, kind))
    }

    /// Reads them in one round on the inode's shard.
    pub async fn read<T: Txn>(txn: &mut T, ino: Ino, kind: InodeKind) -> Result<Self, NnError> {
        let plan = Self::plan(ino, kind);
        let (rows, pages) = txn
            .read_round(&plan.keys, false, plan.scans.clone())
            .await?;
        Self::assemble(txn, ino, kind, &plan, rows, pages).await
    }

    /// From what `plan` read (`rows` in its keys' order, `pages` the first page of each
    /// scan): the pages after a full one are read now.
    pub async fn assemble<T: Txn>(
        txn: &mut T,
        ino: Ino,
        kind: InodeKind,
        plan: &Extra,
        rows: Vec<Versioned>,
        pages: Vec<ScanPage>,
    ) -> Result<Self, NnError> {
        let mut found = scans_rest(txn, &plan.scans, pages).await?.into_iter();
        let mut rows = rows.into_iter();
        Ok(InodeRows {
            ino,
            kind,
            inode_version: rows.next().map_or(0, |r| r.version),
            lease_version: rows.next().map_or(0, |r| r.version),
            inline: rows.next().unwrap_or_default(),
            xattrs: found.next().unwrap_or_default(),
            blocks: found.next().unwrap_or_default(),
            pending: found.next().unwrap_or_default(),
        })
    }

    /// Deletes the inode with every row read (a directory's counter too, leaving its
    /// tombstone; a file's blocks and pending allocations go to the freed queue).
    pub fn delete<T: Txn>(self, txn: &mut T) -> Result<(), NnError> {
        use crate::data::blocks::{self, FileData};
        let now = attrs::now_ns();
        let ino = self.ino;
        let route = keys::route_of(ino);
        for (k, _) in self.xattrs {
            txn.delete(Key::new(route, k));
        }
        txn.delete(keys::inode(ino));
        match self.kind {
            InodeKind::Directory => {
                txn.delete(keys::counter(ino));
                txn.put(keys::tombstone(ino), now.to_be_bytes().to_vec());
            }
            InodeKind::File => {
                // An allocation made since the read (it writes the lease) fails this commit.
                txn.expect(keys::write_lease(ino), self.lease_version);
                let before = FileData::from_rows(&self.inline, self.blocks)?;
                FileData::default().store(txn, ino, &before, now);
                for p in blocks::pending_from_rows(self.pending)? {
                    blocks::free_pending_one(txn, ino, &p, now);
                }
                txn.delete(keys::write_lease(ino));
            }
            _ => {}
        }
        Ok(())
    }
}

/// What a new entry is.
pub struct NewEntry<'a> {
    pub kind: InodeKind,
    pub mode: u32,
    pub symlink_target: &'a str,
    /// `create` with overwrite: an existing file is truncated instead of ALREADY_EXISTS.
    pub overwrite: bool,
}

/// Adds entry `path` (its last component) to directory `parent`, as one attempt.
///
/// Read checks: the parent's inode (it still exists, is a directory, and permission was
/// checked against it), the new dentry (absent), and the call's retry record. The first two
/// were read by `walk`, so their versions become the checks without a second read; the retry
/// record is expected absent on a first attempt. A create is then one read round (the walk)
/// and one commit. Writes the dentry, the inode, a directory's counter row, and a commutative
/// update of the parent's counter row: never the parent's InodeRecord, so creates in one
/// directory don't conflict.
#[allow(clippy::too_many_arguments)]
pub async fn add_entry<S: Store>(
    ns: &Namespace<S>,
    txn: &mut S::Txn,
    caller: &Caller,
    exo: &mut Exo,
    walk: &Walk,
    parent: &Node,
    path: &NsPath,
    new: NewEntry<'_>,
) -> Result<Outcome<FileStatus>, NnError> {
    let name = path.name();
    let text = path.text();
    path::check_name(name, &text)?;
    let dkey = keys::dentry(parent.ino, name);
    // The parent still exists: its tombstone, beside its children, is absent at commit.
    txn.expect(keys::tombstone(parent.ino), 0);
    let dentry_row = if walk.expect(txn, &dkey) {
        walk.row(&dkey).cloned().unwrap_or_default()
    } else {
        txn.get(std::slice::from_ref(&dkey), true).await?.remove(0)
    };
    // An existing entry may be this very call's earlier attempt: read the record first.
    let record = if dentry_row.exists() {
        exo.home(keys::content_route(parent.ino))
    } else {
        exo.home_expecting_absent(txn, keys::content_route(parent.ino))
    };
    if let Some(key) = record {
        let rows = txn.get(&[key], true).await?;
        if let Some(answer) = Exo::replay(&rows[0])? {
            return Ok(Outcome::Replayed(answer));
        }
    }
    let parent_inode = &parent.inode;
    if attrs::kind_of(parent_inode) != InodeKind::Directory {
        return Err(NnError::raced("parent is no longer a directory"));
    }
    perm::check(
        caller,
        parent_inode,
        &path.parent().text(),
        perm::WRITE | perm::EXECUTE,
    )?;
    let now = attrs::now_ns();
    if let Some(existing) = attrs::decode_dentry(&dentry_row)? {
        let kind = attrs::dentry_kind(&existing);
        if !new.overwrite {
            return Err(NnError::AlreadyExists(text));
        }
        if kind == InodeKind::Directory {
            return Err(NnError::IsADirectory(text));
        }
        if kind != InodeKind::File {
            return Err(NnError::AlreadyExists(text));
        }
        // Overwrite keeps the inode and truncates it: its data goes, unless a writer holds it.
        let row = txn
            .get(
                &[keys::inode(existing.ino), keys::write_lease(existing.ino)],
                true,
            )
            .await?;
        let Some(mut inode) = attrs::decode_inode(&row[0])? else {
            return Err(NnError::raced("overwritten file vanished"));
        };
        let lease = crate::data::lease::decode(&row[1])?;
        crate::data::lease::take_over(
            txn,
            existing.ino,
            lease.as_ref(),
            &text,
            "create",
            &caller.client_id,
            now,
        )
        .await?;
        let before = crate::data::blocks::FileData::load(txn, existing.ino).await?;
        crate::data::blocks::FileData::default().store(txn, existing.ino, &before, now);
        inode.size = 0;
        inode.mtime_ns = now;
        inode.ctime_ns = now;
        txn.put(keys::inode(existing.ino), inode.encode_to_vec());
        let mut c = CounterUpdates::default();
        c.change(parent.ino, 0, 0, now, now);
        c.apply(txn);
        return Ok(Outcome::Done(attrs::file_status(
            existing.ino,
            name,
            &inode,
            None,
        )));
    }

    // Every new inode, file or directory, lives beside its dentry (the parent's content
    // partition): the whole add is one shard's commit. A directory's own children go to its
    // content partition, a hash of the new id, so they spread over the shards.
    let seq = ns.store.alloc_seq().await?;
    let ino = keys::make_ino(keys::content_vpart(parent.ino, ns.store.vparts()), seq);
    let mut inode = attrs::new_inode(
        new.kind,
        new.mode,
        caller.uid,
        parent_inode.gid,
        parent.ino,
        now,
    );
    if new.kind == InodeKind::Symlink {
        inode.symlink_target = new.symlink_target.to_string();
        inode.size = new.symlink_target.len() as u64;
    }
    if new.kind == InodeKind::File {
        // A file takes its erasure-coding policy when made, as OpenWrite's new files do, so
        // a writer that later opens it by inode number needs no walk to find it.
        let cfg = &ns.config.data;
        let parents = walk.nodes[..path.depth()].iter().map(|n| &n.inode);
        inode.ec_policy = crate::data::policy::effective(parents, &cfg.default_policy).0;
        inode.block_size = cfg.block_size;
    }
    txn.put(
        keys::dentry(parent.ino, name),
        attrs::dentry_value(ino, new.kind),
    );
    txn.put(keys::inode(ino), inode.encode_to_vec());
    // A guess for the next walk through this name (checked by that walk's read of the
    // dentry, so a commit that fails leaves only a wrong guess).
    ns.resolver.remember(parent.ino, name, ino, new.kind);
    // A new directory's counter row is made by its first child's commutative update (a
    // missing row reads as zeros): writing it now would take the mkdir to a second shard.
    let counter = (new.kind == InodeKind::Directory).then_some([0, 0, now, now]);
    let mut c = CounterUpdates::default();
    c.entries(
        parent.ino,
        1,
        i64::from(new.kind == InodeKind::Directory),
        now,
    );
    c.apply(txn);
    Ok(Outcome::Done(attrs::file_status(
        ino, name, &inode, counter,
    )))
}
