//! fsck: a full scan of every shard (paged) that checks the namespace's invariants:
//! - every dentry names an existing inode of the dentry's kind;
//! - every inode is reachable from the root through dentries, or lies in a subtree detached by
//!   a recursive delete and not yet removed (`todelete`);
//! - each directory's counter row holds its true number of entries and subdirectories (a
//!   directory that never had a child may have none);
//! - each directory's InodeRecord.parent is the directory whose dentry names it, and no
//!   directory is named twice; a file's nlink is the number of dentries naming it;
//! - no counter, xattr or `todelete` row outlives its inode;
//! - no transaction stays prepared longer than the intent timeout;
//! - the data path: no block, inline, lease or pending row outlives its file; a file is inline
//!   or has blocks, not both; block indexes run 0..n with each offset the previous block's
//!   end, and the data adds up to the file's size; every block has at least k good shards (a
//!   missing block makes the report unhealthy and names the file and the block). Blocks with
//!   some shard lost, on a dead server or reported corrupt are counted as under strength but
//!   are not a problem (the leader rebuilds them), as in HDFS.
//!
//! Counts (directories, files, symlinks, bytes) are for the subtree of the path asked about;
//! the checks are always global. It reads committed rows without a snapshot, so on a busy
//! cluster an operation committing mid-scan can show up as a transient problem.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use arbor_proto::namenode::FsckReply;
use arbor_proto::records::{
    BadShardRecord, BlockRecord, BlockServerRecord, DeleteRecord, DentryRecord, InodeKind,
    InodeRecord,
};
use prost::Message;

use crate::attrs::{dentry_kind, kind_of};
use crate::data::{DataConfig, repair, servers};
use crate::error::NnError;
use crate::keys::{self, DirCounter, Ino, ROOT_INO};
use crate::path::NsPath;
use crate::txn::{Route, Store, Txn};

/// Problems listed one by one before the rest are only counted.
const MAX_LINES: usize = 1000;
const PAGE: u32 = 1000;

#[derive(Default)]
struct Rows {
    dentries: Vec<(Ino, String, DentryRecord)>,
    inodes: HashMap<Ino, InodeRecord>,
    counters: HashMap<Ino, [i64; 4]>,
    xattr_owners: HashSet<Ino>,
    detached: Vec<DeleteRecord>,
    blocks: HashMap<Ino, Vec<(u64, BlockRecord)>>,
    inline: HashMap<Ino, u64>,
    data_owners: HashSet<(u8, Ino)>,
    reported: HashMap<(u64, u32), BadShardRecord>,
    servers: HashMap<u64, BlockServerRecord>,
}

fn ino_of(key: &[u8]) -> Option<Ino> {
    key.get(1..9)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
}

async fn load<S: Store>(store: &S, problems: &mut Vec<String>) -> Result<Rows, NnError> {
    let mut rows = Rows::default();
    for shard in 0..store.shards() {
        let mut txn = store.begin();
        let mut start = Vec::new();
        loop {
            let (page, more) = txn
                .scan(Route::Shard(shard), start.clone(), Vec::new(), PAGE)
                .await?;
            for (key, row) in &page {
                let value = row.value.as_slice();
                match key.first().copied() {
                    Some(keys::DENTRY) => {
                        match (keys::dentry_parent(key), keys::dentry_name(key)) {
                            (Some(parent), Some(name)) => {
                                let d = DentryRecord::decode(value)?;
                                rows.dentries.push((parent, name.to_string(), d));
                            }
                            _ => problems
                                .push(format!("shard {shard}: malformed dentry key {key:?}")),
                        }
                    }
                    Some(keys::INODE) => {
                        if let Some(ino) = ino_of(key) {
                            rows.inodes.insert(ino, InodeRecord::decode(value)?);
                        }
                    }
                    Some(keys::COUNTER) => {
                        if let Some(ino) = ino_of(key) {
                            rows.counters.insert(ino, DirCounter::decode(value));
                        }
                    }
                    Some(keys::XATTR) => {
                        if let Some(ino) = ino_of(key) {
                            rows.xattr_owners.insert(ino);
                        }
                    }
                    Some(keys::TODELETE) => rows.detached.push(DeleteRecord::decode(value)?),
                    Some(keys::BLOCK) => {
                        if let Some((ino, index)) = keys::block_key_parts(key) {
                            rows.blocks
                                .entry(ino)
                                .or_default()
                                .push((index, BlockRecord::decode(value)?));
                        }
                    }
                    Some(keys::INLINE) => {
                        if let Some(ino) = ino_of(key) {
                            rows.inline.insert(ino, value.len() as u64);
                        }
                    }
                    Some(t @ (keys::WRITE_LEASE | keys::PENDING)) => {
                        if let Some(ino) = ino_of(key) {
                            rows.data_owners.insert((t, ino));
                        }
                    }
                    Some(keys::BAD_SHARD) => {
                        let r = BadShardRecord::decode(value)?;
                        rows.reported.insert((r.block_id, r.index), r);
                    }
                    Some(keys::BLOCK_SERVER) => {
                        let r = BlockServerRecord::decode(value)?;
                        rows.servers.insert(r.server_id, r);
                    }
                    _ => {}
                }
            }
            match (more, page.last()) {
                (true, Some((k, _))) => {
                    start = k.clone();
                    start.push(0);
                }
                _ => break,
            }
        }
    }
    Ok(rows)
}

fn join(parent: &str, name: &str) -> String {
    format!("{}/{name}", parent.trim_end_matches('/'))
}

/// Checks the whole namespace; counts the subtree at `path` (with the default data settings).
pub async fn fsck<S: Store>(store: &S, path: &str) -> Result<FsckReply, NnError> {
    fsck_with(store, path, &DataConfig::default()).await
}

/// The health of one file's data, for the counts.
#[derive(Default)]
struct DataHealth {
    blocks: u64,
    under_strength: u64,
    missing: u64,
    corrupt: u64,
}

/// Checks one file's data rows; returns its health.
fn check_file_data(
    ino: Ino,
    inode: &InodeRecord,
    name: &str,
    rows: &Rows,
    config: &DataConfig,
    now: i64,
    problems: &mut Vec<String>,
) -> DataHealth {
    let mut health = DataHealth::default();
    let blocks = rows.blocks.get(&ino).map(Vec::as_slice).unwrap_or(&[]);
    let inline = rows.inline.get(&ino);
    if let Some(len) = inline {
        if !blocks.is_empty() {
            problems.push(format!(
                "{name}: has both inline data and {} blocks",
                blocks.len()
            ));
        } else if *len != inode.size {
            problems.push(format!(
                "{name}: size is {} but the inline data holds {len} bytes",
                inode.size
            ));
        }
    }
    if blocks.is_empty() {
        return health;
    }
    let mut offset = 0u64;
    for (expect, (index, b)) in blocks.iter().enumerate() {
        if *index != expect as u64 {
            problems.push(format!("{name}: block index {expect} is missing"));
            break;
        }
        if b.offset != offset {
            problems.push(format!(
                "{name}: block {index} (id {}) starts at {} but the previous block ends at {offset}",
                b.block_id, b.offset
            ));
        }
        offset = offset.saturating_add(b.length);
        if b.shards.is_empty() {
            continue;
        }
        health.blocks += 1;
        let Some(pol) = &b.policy else {
            problems.push(format!("{name}: block {} has no policy", b.block_id));
            continue;
        };
        let mut bad = 0usize;
        for s in &b.shards {
            if let Some(why) =
                repair::shard_is_bad(s, b.block_id, &rows.servers, &rows.reported, config, now)
            {
                bad += 1;
                if why == "reported bad" {
                    health.corrupt += 1;
                }
            }
        }
        let good = b.shards.len().saturating_sub(bad);
        if bad > 0 {
            health.under_strength += 1;
        }
        if good < pol.data_shards as usize {
            health.missing += 1;
            problems.push(format!(
                "{name}: block {} (index {index}) is MISSING: {good} of {} shards are good, {} needed",
                b.block_id,
                b.shards.len(),
                pol.data_shards
            ));
        }
    }
    if offset != inode.size {
        problems.push(format!(
            "{name}: size is {} but its blocks hold {offset} bytes",
            inode.size
        ));
    }
    health
}

/// Checks the whole namespace; counts the subtree at `path`.
pub async fn fsck_with<S: Store>(
    store: &S,
    path: &str,
    config: &DataConfig,
) -> Result<FsckReply, NnError> {
    let started = Instant::now();
    let path = NsPath::parse(path)?;
    let mut problems = Vec::new();
    // Intents first: one prepared before the scan and still open after it is a real leftover,
    // while one resolved during the scan has already settled the rows the scan then reads.
    let intents = store.open_intents().await?;
    let rows = load(store, &mut problems).await?;

    // Entries by directory, and how many dentries name each inode.
    let mut children: HashMap<Ino, Vec<(&str, Ino, InodeKind)>> = HashMap::new();
    let mut named: HashMap<Ino, Vec<Ino>> = HashMap::new();
    for (parent, name, d) in &rows.dentries {
        let kind = dentry_kind(d);
        children
            .entry(*parent)
            .or_default()
            .push((name, d.ino, kind));
        named.entry(d.ino).or_default().push(*parent);
        match rows.inodes.get(&d.ino) {
            None => problems.push(format!(
                "dentry {name:?} in directory {parent} names missing inode {}",
                d.ino
            )),
            Some(inode) if kind_of(inode) != kind => problems.push(format!(
                "dentry {name:?} in directory {parent} says {kind:?} but inode {} is {:?}",
                d.ino,
                kind_of(inode)
            )),
            Some(_) => {}
        }
    }

    // Reachability: from the root, and from every detached subtree.
    let mut paths: HashMap<Ino, String> = HashMap::new();
    let mut detached_roots: HashSet<Ino> = HashSet::new();
    let mut starts: Vec<(Ino, String)> = vec![(ROOT_INO, "/".to_string())];
    for z in &rows.detached {
        detached_roots.insert(z.ino);
        if !rows.inodes.contains_key(&z.ino) {
            problems.push(format!(
                "todelete row of missing directory {} ({})",
                z.ino, z.path
            ));
        }
        if named.contains_key(&z.ino) {
            problems.push(format!(
                "detached directory {} ({}) is still linked",
                z.ino, z.path
            ));
        }
        starts.push((z.ino, format!("{} (being deleted)", z.path)));
    }
    for (start, start_path) in starts {
        if paths.contains_key(&start) {
            continue;
        }
        paths.insert(start, start_path.clone());
        let mut queue = VecDeque::from([(start, start_path)]);
        while let Some((dir, dir_path)) = queue.pop_front() {
            for (name, ino, kind) in children.get(&dir).map(Vec::as_slice).unwrap_or(&[]) {
                let p = join(&dir_path, name);
                if paths.contains_key(ino) {
                    if *kind == InodeKind::Directory {
                        problems.push(format!("directory {ino} reached twice (again as {p})"));
                    }
                    continue;
                }
                paths.insert(*ino, p.clone());
                if *kind == InodeKind::Directory {
                    queue.push_back((*ino, p));
                }
            }
        }
    }
    let mut orphans: Vec<_> = rows
        .inodes
        .iter()
        .filter(|(ino, _)| !paths.contains_key(ino))
        .collect();
    orphans.sort_by_key(|(ino, _)| **ino);
    for (ino, inode) in orphans {
        problems.push(format!(
            "orphan inode {ino} ({:?}): not reachable from / nor from a pending delete",
            kind_of(inode)
        ));
    }

    let name_of = |ino: &Ino| {
        paths
            .get(ino)
            .cloned()
            .unwrap_or_else(|| format!("inode {ino}"))
    };
    let mut by_ino: Vec<_> = rows.inodes.iter().collect();
    by_ino.sort_by_key(|(ino, _)| **ino);
    for (ino, inode) in by_ino {
        let links = named.get(ino).map(Vec::as_slice).unwrap_or(&[]);
        match kind_of(inode) {
            InodeKind::Directory => {
                let entries = children.get(ino).map(Vec::as_slice).unwrap_or(&[]);
                let subdirs = entries
                    .iter()
                    .filter(|e| e.2 == InodeKind::Directory)
                    .count();
                // A counter row is made by the first child's update: none means no child yet.
                match rows.counters.get(ino) {
                    None if !entries.is_empty() => problems.push(format!(
                        "directory {} has {} entries but no counter row",
                        name_of(ino),
                        entries.len()
                    )),
                    None => {}
                    Some(c) => {
                        let (cc, cs) = (
                            c[DirCounter::CHILDREN as usize],
                            c[DirCounter::SUBDIRS as usize],
                        );
                        if cc != entries.len() as i64 || cs != subdirs as i64 {
                            problems.push(format!(
                                "directory {}: counter row says {cc} entries / {cs} subdirectories, dentries hold {} / {subdirs}",
                                name_of(ino),
                                entries.len()
                            ));
                        }
                    }
                }
                if links.len() > 1 {
                    problems.push(format!(
                        "directory {} is named by {} dentries",
                        name_of(ino),
                        links.len()
                    ));
                }
                if *ino == ROOT_INO {
                    if inode.parent != ROOT_INO {
                        problems.push(format!("the root's parent is {}, not itself", inode.parent));
                    }
                } else if let [parent] = links
                    && inode.parent != *parent
                {
                    problems.push(format!(
                        "directory {}: InodeRecord.parent is {} but its dentry is in {parent}",
                        name_of(ino),
                        inode.parent
                    ));
                }
            }
            InodeKind::File | InodeKind::Symlink => {
                if inode.nlink as usize != links.len() && paths.contains_key(ino) {
                    problems.push(format!(
                        "{}: nlink {} but {} dentries name it",
                        name_of(ino),
                        inode.nlink,
                        links.len()
                    ));
                }
            }
            InodeKind::KindUnspecified => problems.push(format!("inode {ino} has no kind")),
        }
    }
    let mut stray: Vec<_> = rows
        .counters
        .keys()
        .filter(|ino| {
            rows.inodes
                .get(ino)
                .is_none_or(|i| kind_of(i) != InodeKind::Directory)
        })
        .collect();
    stray.sort();
    for ino in stray {
        problems.push(format!("counter row of missing directory {ino}"));
    }
    let mut stray: Vec<_> = rows
        .xattr_owners
        .iter()
        .filter(|ino| !rows.inodes.contains_key(ino))
        .collect();
    stray.sort();
    for ino in stray {
        problems.push(format!("xattr rows of missing inode {ino}"));
    }
    let is_file = |ino: &Ino| {
        rows.inodes
            .get(ino)
            .is_some_and(|i| kind_of(i) == InodeKind::File)
    };
    let mut stray: Vec<(Ino, &str)> = rows
        .blocks
        .keys()
        .map(|i| (*i, "block"))
        .chain(rows.inline.keys().map(|i| (*i, "inline data")))
        .chain(rows.data_owners.iter().map(|(t, i)| {
            (
                *i,
                if *t == keys::WRITE_LEASE {
                    "write lease"
                } else {
                    "pending block"
                },
            )
        }))
        .filter(|(ino, _)| !is_file(ino))
        .collect();
    stray.sort();
    for (ino, what) in stray {
        problems.push(format!("{what} rows of missing file {ino}"));
    }
    let now = crate::attrs::now_ns();
    let mut health: HashMap<Ino, DataHealth> = HashMap::new();
    let mut files: Vec<_> = rows
        .inodes
        .iter()
        .filter(|(_, i)| kind_of(i) == InodeKind::File)
        .collect();
    files.sort_by_key(|(ino, _)| **ino);
    for (ino, inode) in files {
        let h = check_file_data(
            *ino,
            inode,
            &name_of(ino),
            &rows,
            config,
            now,
            &mut problems,
        );
        health.insert(*ino, h);
    }

    let timeout = store.intent_timeout_ms();
    for i in &intents {
        if i.age_ms > timeout {
            problems.push(format!(
                "shard {}: transaction {} prepared {} ms ago (timeout {timeout} ms)",
                i.shard,
                hex(&i.txn_id),
                i.age_ms
            ));
        }
    }

    // Counts for the path's subtree (live entries only).
    let mut at = ROOT_INO;
    for name in path.comps() {
        let next = children
            .get(&at)
            .and_then(|c| c.iter().find(|(n, _, _)| n == name))
            .map(|(_, ino, _)| *ino);
        at = next.ok_or_else(|| NnError::NotFound(path.text()))?;
    }
    let mut reply = FsckReply {
        pending_deletes: rows.detached.len() as u64,
        open_intents: intents.len() as u64,
        ..Default::default()
    };
    let mut queue = VecDeque::from([at]);
    let mut counted = HashSet::new();
    while let Some(ino) = queue.pop_front() {
        if !counted.insert(ino) {
            continue;
        }
        let Some(inode) = rows.inodes.get(&ino) else {
            continue;
        };
        match kind_of(inode) {
            InodeKind::Directory => {
                reply.directories += 1;
                for (_, child, _) in children.get(&ino).map(Vec::as_slice).unwrap_or(&[]) {
                    queue.push_back(*child);
                }
            }
            InodeKind::Symlink => reply.symlinks += 1,
            _ => {
                reply.files += 1;
                reply.total_size += inode.size;
                if let Some(h) = health.get(&ino) {
                    reply.blocks += h.blocks;
                    reply.under_strength_blocks += h.under_strength;
                    reply.missing_blocks += h.missing;
                    reply.corrupt_shards += h.corrupt;
                }
            }
        }
    }

    for server in rows.servers.values() {
        if servers::is_alive(server, config, now) {
            reply.live_block_servers += 1;
        } else {
            reply.dead_block_servers += 1;
        }
    }
    reply.healthy = problems.is_empty();
    if problems.len() > MAX_LINES {
        let more = problems.len() - MAX_LINES;
        problems.truncate(MAX_LINES);
        problems.push(format!("... and {more} more problems"));
    }
    reply.problems = problems;
    reply.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(reply)
}

/// `bytes` as lowercase hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
