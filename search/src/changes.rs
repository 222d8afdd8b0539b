//! The change stream as namespace events: `create`, `delete`, `rename` (old path → new
//! path), `attr` (mode, owner, group, size, times), `setxattr` / `removexattr`, each with
//! its commit time and full path(s).
//!
//! - [`Merger`] merges the shards' streams by commit clock (hlc). It only ever takes the
//!   head of a shard's queue, so each shard's own order (and with it every directory's, as a
//!   directory's dentries live on one shard) is kept; it waits a short delay for the other
//!   shards before emitting, and hands out together the parts of one cross-shard transaction
//!   (same txn id) that are at the heads of their queues, so a rename between shards comes
//!   out as one event.
//! - [`decode_group`] turns one transaction's rows into events, resolving paths through the
//!   namespace model as it was just before the transaction, then applies the rows to it.
//! - [`Position`] is the resumable position: per shard, the last sequence consumed.
//! - [`Follower`] ties these to the shards for `arbor changes`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use arbor_namenode::keys::Ino;
use arbor_proto::metastore::{ChangeBatch, ChangeRecord};
use arbor_proto::records::InodeKind;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::model::Namespace;
use crate::rows::{self, Attrs, RowKind, SCANNED_TABLES};
use crate::shards::Shard;
use crate::tail::{Tailed, tail};

/// Per shard, the last sequence consumed (resume after it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Position(pub BTreeMap<u32, u64>);

impl fmt::Display for Position {
    /// `12,40,7,9`: shard 0's sequence first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.values().map(u64::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

impl FromStr for Position {
    type Err = Error;
    fn from_str(s: &str) -> Result<Position> {
        let mut map = BTreeMap::new();
        for (i, part) in s.split(',').enumerate() {
            let seq = part
                .trim()
                .parse()
                .map_err(|_| Error::Invalid(format!("not a position: {s:?}")))?;
            map.insert(i as u32, seq);
        }
        Ok(Position(map))
    }
}

/// One record and the shard it came from.
#[derive(Clone, Debug)]
pub struct ShardRecord {
    pub shard: u32,
    pub record: ChangeRecord,
}

/// Merges per-shard streams into one, by commit clock, keeping each shard's order.
pub struct Merger {
    queues: BTreeMap<u32, VecDeque<(ChangeRecord, Instant)>>,
    through: BTreeMap<u32, u64>,
}

impl Merger {
    /// A merger for shards that were consumed up to `start`.
    pub fn new(start: &Position) -> Merger {
        Merger {
            queues: start.0.keys().map(|&s| (s, VecDeque::new())).collect(),
            through: start.0.clone(),
        }
    }

    pub fn push(&mut self, shard: u32, batch: ChangeBatch, now: Instant) {
        let q = self.queues.entry(shard).or_default();
        for r in batch.records {
            q.push_back((r, now));
        }
        let t = self.through.entry(shard).or_default();
        *t = (*t).max(batch.through_seq);
    }

    /// The next transaction's records once they are safe to emit: every other shard has a
    /// record queued (so none can still bring an older one), or the head waited `delay`.
    pub fn pop(&mut self, now: Instant, delay: Duration) -> Option<Vec<ShardRecord>> {
        let (&shard, head) = self
            .queues
            .iter()
            .filter_map(|(s, q)| q.front().map(|h| (s, h)))
            .min_by_key(|(s, (r, _))| (r.hlc, **s))?;
        let others_ready = self
            .queues
            .iter()
            .all(|(s, q)| *s == shard || !q.is_empty());
        if !others_ready && now.duration_since(head.1) < delay {
            return None;
        }
        let txn = head.0.txn_id.clone();
        let mut out = Vec::new();
        for (&s, q) in self.queues.iter_mut() {
            let take =
                s == shard || (!txn.is_empty() && q.front().is_some_and(|(r, _)| r.txn_id == txn));
            if take && let Some((record, _)) = q.pop_front() {
                out.push(ShardRecord { shard: s, record });
            }
        }
        Some(out)
    }

    /// How long until the head that waits longest becomes due (None: nothing queued).
    pub fn next_due(&self, now: Instant, delay: Duration) -> Option<Duration> {
        self.queues
            .values()
            .filter_map(|q| q.front())
            .map(|(_, at)| delay.saturating_sub(now.duration_since(*at)))
            .min()
    }

    /// Everything before each queue's head has been handed out.
    pub fn position(&self) -> Position {
        Position(
            self.through
                .iter()
                .map(|(&s, &t)| {
                    let p = match self.queues.get(&s).and_then(|q| q.front()) {
                        Some((r, _)) => r.seq.saturating_sub(1),
                        None => t,
                    };
                    (s, p)
                })
                .collect(),
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Create,
    Delete,
    Rename,
    Attr,
    Setxattr,
    Removexattr,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Delete => "delete",
            Op::Rename => "rename",
            Op::Attr => "attr",
            Op::Setxattr => "setxattr",
            Op::Removexattr => "removexattr",
        }
    }
}

/// One namespace event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Commit time, UTC, millisecond precision.
    pub time: String,
    pub hlc: u64,
    pub op: Op,
    /// `file`, `dir` or `symlink` when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    /// `attr`: the changed attributes (`mode=0644 uid=5 size=10`); xattr events: the name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub ino: u64,
    pub txn: String,
}

impl Event {
    /// The text line `arbor changes` prints.
    pub fn line(&self) -> String {
        let mut s = format!("{} {}", self.time, self.op.as_str());
        if self.op == Op::Create
            && let Some(k) = self.kind
        {
            s.push(' ');
            s.push_str(k);
        }
        match &self.old_path {
            Some(old) => s.push_str(&format!(" {old} -> {}", self.path)),
            None => s.push_str(&format!(" {}", self.path)),
        }
        if let Some(d) = &self.detail {
            s.push(' ');
            s.push_str(d);
        }
        s
    }

    /// Whether the event touches `prefix` (its path or old path is at or below it).
    pub fn under(&self, prefix: &str) -> bool {
        let p = prefix.trim_end_matches('/');
        if p.is_empty() {
            return true;
        }
        let at = |path: &str| path == p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/'));
        at(&self.path) || self.old_path.as_deref().is_some_and(at)
    }
}

fn kind_name(k: InodeKind) -> Option<&'static str> {
    match k {
        InodeKind::File => Some("file"),
        InodeKind::Directory => Some("dir"),
        InodeKind::Symlink => Some("symlink"),
        InodeKind::KindUnspecified => None,
    }
}

/// An hlc's physical part as `2026-11-25T18:00:01.123Z`.
pub fn hlc_time(hlc: u64) -> String {
    let ms = (hlc >> 16) as i64;
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn attr_diff(old: &Attrs, new: &Attrs) -> Vec<String> {
    let mut d = Vec::new();
    if old.mode != new.mode {
        d.push(format!("mode={:04o}", new.mode));
    }
    if old.uid != new.uid {
        d.push(format!("uid={}", new.uid));
    }
    if old.gid != new.gid {
        d.push(format!("gid={}", new.gid));
    }
    if old.size != new.size {
        d.push(format!("size={}", new.size));
    }
    if old.mtime_ns != new.mtime_ns {
        d.push(format!("mtime={}", ns_time(new.mtime_ns)));
    }
    if old.atime_ns != new.atime_ns {
        d.push(format!("atime={}", ns_time(new.atime_ns)));
    }
    d
}

fn ns_time(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

struct Decoded {
    shard_seq: u64,
    hlc: u64,
    row: RowKind,
}

/// Events of one transaction (its records from every shard it touched), then applies its
/// rows to `ns`. Paths of what the transaction removes or moves come from `ns` as it was
/// before; paths of what it creates, from `ns` after.
pub fn decode_group(ns: &mut Namespace, group: &[ShardRecord]) -> Vec<Event> {
    let Some(first) = group.first() else {
        return Vec::new();
    };
    let hlc = group
        .iter()
        .map(|r| r.record.hlc)
        .max()
        .unwrap_or(first.record.hlc);
    let txn: String = first
        .record
        .txn_id
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut decoded = Vec::new();
    for r in group {
        for row in &r.record.rows {
            match rows::decode(&row.key, &row.value, row.deleted) {
                Ok(RowKind::Other) => {}
                Ok(k) => decoded.push(Decoded {
                    shard_seq: r.record.seq,
                    hlc: r.record.hlc,
                    row: k,
                }),
                Err(e) => tracing::warn!(error = %e, "undecodable row"),
            }
        }
    }

    // Before: what deleted dentries named, and inode attributes.
    struct Removed {
        ino: Option<Ino>,
        kind: Option<&'static str>,
        path: Option<String>,
    }
    let mut removed: Vec<Removed> = Vec::new();
    let mut old_attrs: HashMap<Ino, Attrs> = HashMap::new();
    let mut xattr_existed: HashMap<(Ino, String), bool> = HashMap::new();
    for d in &decoded {
        match &d.row {
            RowKind::Dentry {
                parent,
                name,
                value: None,
            } => {
                let ino = ns.lookup(*parent, name);
                removed.push(Removed {
                    ino,
                    kind: ino
                        .and_then(|i| ns.get(i))
                        .and_then(|e| kind_name(e.kind())),
                    path: ns.dirs().child_path(*parent, name),
                });
            }
            RowKind::Inode { ino, .. } => {
                if let Some((a, _)) = ns.get(*ino).and_then(|e| e.inode.as_ref()) {
                    old_attrs.entry(*ino).or_insert_with(|| a.clone());
                }
            }
            RowKind::Xattr { ino, name, .. } => {
                let had = ns.get(*ino).is_some_and(|e| e.xattrs.contains_key(name));
                xattr_existed.entry((*ino, name.clone())).or_insert(had);
            }
            _ => {}
        }
    }
    for d in &decoded {
        ns.apply(&d.row, d.shard_seq, d.hlc);
    }

    let event = |op: Op, kind: Option<&'static str>, path: String, ino: Ino| Event {
        time: hlc_time(hlc),
        hlc,
        op,
        kind,
        path,
        old_path: None,
        detail: None,
        ino,
        txn: txn.clone(),
    };
    let mut out = Vec::new();
    let mut created: Vec<Ino> = Vec::new();
    let mut puts: Vec<(Ino, InodeKind, Option<String>)> = Vec::new();
    for d in &decoded {
        if let RowKind::Dentry {
            parent,
            name,
            value: Some((ino, kind)),
        } = &d.row
        {
            puts.push((*ino, *kind, ns.dirs().child_path(*parent, name)));
        }
    }
    // Pair moves by inode; a lone delete and a lone insert in one transaction are a move too
    // (the model may not know the inode of an entry deleted before it started).
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for (pi, (ino, _, _)) in puts.iter().enumerate() {
        if let Some(ri) = (0..removed.len())
            .find(|&ri| removed[ri].ino == Some(*ino) && !pairs.iter().any(|(_, x)| *x == ri))
        {
            pairs.push((pi, ri));
        }
    }
    if pairs.is_empty() && puts.len() == 1 && removed.len() == 1 && removed[0].ino.is_none() {
        pairs.push((0, 0));
    }
    for (pi, (ino, kind, path)) in puts.iter().enumerate() {
        let Some(path) = path.clone() else { continue };
        match pairs.iter().find(|(p, _)| *p == pi) {
            Some((_, ri)) => {
                let Some(old) = removed[*ri].path.clone() else {
                    // Moved in from a detached place: show it as created.
                    out.push(event(Op::Create, kind_name(*kind), path, *ino));
                    continue;
                };
                let mut e = event(Op::Rename, kind_name(*kind), path, *ino);
                e.old_path = Some(old);
                out.push(e);
            }
            None => {
                created.push(*ino);
                out.push(event(Op::Create, kind_name(*kind), path, *ino));
            }
        }
    }
    for (ri, r) in removed.iter().enumerate() {
        if pairs.iter().any(|(_, x)| *x == ri) {
            continue;
        }
        if let Some(path) = r.path.clone() {
            out.push(event(Op::Delete, r.kind, path, r.ino.unwrap_or(0)));
        }
    }
    for d in &decoded {
        match &d.row {
            RowKind::Inode {
                ino,
                value: Some(new),
            } if !created.contains(ino) => {
                let Some(old) = old_attrs.get(ino) else {
                    continue;
                };
                let diff = attr_diff(old, new);
                if diff.is_empty() {
                    continue;
                }
                if let Some(path) = ns.path_of(*ino) {
                    let mut e = event(
                        Op::Attr,
                        kind_name(InodeKind::try_from(new.kind).unwrap_or_default()),
                        path,
                        *ino,
                    );
                    e.detail = Some(diff.join(" "));
                    out.push(e);
                }
            }
            RowKind::Xattr { ino, name, value } => {
                let op = if value.is_some() {
                    Op::Setxattr
                } else if xattr_existed
                    .get(&(*ino, name.clone()))
                    .copied()
                    .unwrap_or(true)
                {
                    Op::Removexattr
                } else {
                    continue;
                };
                if let Some(path) = ns.path_of(*ino) {
                    let mut e = event(op, None, path, *ino);
                    e.detail = Some(name.clone());
                    out.push(e);
                }
            }
            _ => {}
        }
    }
    out
}

/// Where `arbor changes` starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// With the next change.
    Now,
    /// With the oldest change the shards still hold.
    Beginning,
    /// After a position printed earlier.
    At(Position),
}

impl FromStr for Start {
    type Err = Error;
    fn from_str(s: &str) -> Result<Start> {
        Ok(match s {
            "now" => Start::Now,
            "beginning" => Start::Beginning,
            other => Start::At(other.parse()?),
        })
    }
}

/// Reads every shard's dentries, inodes and xattrs into a fresh model.
pub async fn scan_namespace(shards: &[Shard]) -> Result<Namespace> {
    let mut ns = Namespace::new();
    for shard in shards {
        for table in SCANNED_TABLES {
            shard
                .scan_table(table, |row| {
                    if let Ok(r) = rows::decode(&row.key, &row.value, false) {
                        ns.apply(&r, row.version, 0);
                    }
                })
                .await?;
        }
    }
    let _ = ns.take_dirty();
    Ok(ns)
}

/// How long the merge waits for the other shards before emitting a record.
pub const MERGE_DELAY: Duration = Duration::from_millis(300);

/// Follows every shard's change stream and yields events in merged order.
pub struct Follower {
    shards: Vec<Shard>,
    ns: Namespace,
    merger: Merger,
    rx: mpsc::Receiver<Tailed>,
    tails: Vec<tokio::task::JoinHandle<()>>,
    consumer: Option<String>,
    stored: Position,
}

impl Follower {
    /// Starts following. With a `consumer` whose cursors are stored on every shard, resumes
    /// from them (and ignores `start`).
    pub async fn start(
        shards: Vec<Shard>,
        start: Start,
        consumer: Option<String>,
    ) -> Result<Follower> {
        let mut statuses = Vec::new();
        for s in &shards {
            statuses.push(s.status().await?);
        }
        let mut resumed = None;
        if let Some(name) = &consumer {
            let mut map = BTreeMap::new();
            for s in &shards {
                if let Some(seq) = s.cursor(name).await? {
                    map.insert(s.index, seq.saturating_sub(1));
                }
            }
            if map.len() == shards.len() {
                resumed = Some(Position(map));
            }
        }
        let (position, ns) = match (resumed, start) {
            (Some(p), _) => (p, scan_namespace(&shards).await?),
            (None, Start::Now) => {
                let ns = scan_namespace(&shards).await?;
                let p = shards
                    .iter()
                    .zip(&statuses)
                    .map(|(s, st)| (s.index, st.applied_seq))
                    .collect();
                (Position(p), ns)
            }
            (None, Start::Beginning) => {
                let whole = statuses.iter().all(|st| st.first_retained_seq <= 1);
                let ns = if whole {
                    Namespace::new()
                } else {
                    scan_namespace(&shards).await?
                };
                let p = shards
                    .iter()
                    .zip(&statuses)
                    .map(|(s, st)| (s.index, st.first_retained_seq.saturating_sub(1)))
                    .collect();
                (Position(p), ns)
            }
            (None, Start::At(p)) => {
                if p.0.len() != shards.len() {
                    return Err(Error::Invalid(format!(
                        "position {p} names {} shards; the cluster has {}",
                        p.0.len(),
                        shards.len()
                    )));
                }
                (p, scan_namespace(&shards).await?)
            }
        };
        let (tx, rx) = mpsc::channel(64);
        let tails = shards
            .iter()
            .map(|s| {
                let from = position.0.get(&s.index).copied().unwrap_or(0) + 1;
                tokio::spawn(tail(s.clone(), from, tx.clone()))
            })
            .collect();
        let mut f = Follower {
            shards,
            ns,
            merger: Merger::new(&position),
            rx,
            tails,
            consumer,
            stored: Position::default(),
        };
        f.store_cursor().await?;
        Ok(f)
    }

    pub fn position(&self) -> Position {
        self.merger.position()
    }

    /// Waits for the next events (possibly an empty batch when a transaction had none to
    /// show). Fails when a shard's log was trimmed past the position.
    pub async fn next(&mut self) -> Result<Vec<Event>> {
        loop {
            let now = Instant::now();
            if let Some(group) = self.merger.pop(now, MERGE_DELAY) {
                return Ok(decode_group(&mut self.ns, &group));
            }
            let wait = self
                .merger
                .next_due(now, MERGE_DELAY)
                .unwrap_or(Duration::from_secs(3600))
                .max(Duration::from_millis(5));
            match tokio::time::timeout(wait, self.rx.recv()).await {
                Ok(Some(Tailed::Batch { shard, at, batch })) => self.merger.push(shard, batch, at),
                Ok(Some(Tailed::Trimmed(shard))) => {
                    let from = self.merger.position().0.get(&shard).copied().unwrap_or(0) + 1;
                    return Err(Error::Trimmed { shard, from });
                }
                Ok(None) => return Err(Error::Invalid("change streams ended".into())),
                Err(_) => {}
            }
        }
    }

    /// Stores the consumer's cursors at the current position (no-op without a consumer).
    pub async fn store_cursor(&mut self) -> Result<()> {
        let Some(name) = self.consumer.clone() else {
            return Ok(());
        };
        let p = self.position();
        for s in &self.shards {
            let Some(&seq) = p.0.get(&s.index) else {
                continue;
            };
            if self.stored.0.get(&s.index) != Some(&seq) {
                s.set_cursor(&name, seq + 1).await?;
                self.stored.0.insert(s.index, seq);
            }
        }
        Ok(())
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        for t in &self.tails {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbor_namenode::keys::{self, ROOT_INO};
    use arbor_proto::metastore::ChangeRow;
    use arbor_proto::records::{DentryRecord, InodeRecord};
    use prost::Message;

    fn put_dentry(parent: Ino, name: &str, ino: Ino, kind: InodeKind) -> ChangeRow {
        ChangeRow {
            key: keys::dentry(parent, name).bytes,
            value: DentryRecord {
                ino,
                kind: kind as i32,
            }
            .encode_to_vec(),
            deleted: false,
        }
    }

    fn del_dentry(parent: Ino, name: &str) -> ChangeRow {
        ChangeRow {
            key: keys::dentry(parent, name).bytes,
            value: vec![],
            deleted: true,
        }
    }

    fn put_inode(ino: Ino, kind: InodeKind, mode: u32) -> ChangeRow {
        ChangeRow {
            key: keys::inode(ino).bytes,
            value: InodeRecord {
                kind: kind as i32,
                mode,
                ..Default::default()
            }
            .encode_to_vec(),
            deleted: false,
        }
    }

    fn rec(shard: u32, seq: u64, hlc: u64, txn: u8, rows: Vec<ChangeRow>) -> ShardRecord {
        ShardRecord {
            shard,
            record: ChangeRecord {
                seq,
                hlc,
                txn_id: vec![txn],
                rows,
            },
        }
    }

    fn lines(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| e.line().split_once(' ').unwrap().1.to_string())
            .collect()
    }

    const HLC: u64 = 1_795_600_000_000 << 16;

    #[test]
    fn creates_renames_attrs_and_deletes_read_as_events() {
        use InodeKind::{Directory as D, File as F};
        let mut ns = Namespace::new();
        let ev = decode_group(
            &mut ns,
            &[
                rec(0, 1, HLC, 1, vec![put_dentry(ROOT_INO, "a", 10, D)]),
                rec(1, 1, HLC, 1, vec![put_inode(10, D, 0o755)]),
            ],
        );
        assert_eq!(lines(&ev), vec!["create dir /a"]);
        assert_eq!(ev[0].time, "2026-11-25T09:46:40.000Z");
        let ev = decode_group(
            &mut ns,
            &[rec(
                1,
                2,
                HLC + 1,
                2,
                vec![put_dentry(10, "x", 20, F), put_inode(20, F, 0o644)],
            )],
        );
        assert_eq!(lines(&ev), vec!["create file /a/x"]);
        ns.apply(
            &RowKind::Dentry {
                parent: ROOT_INO,
                name: "b".into(),
                value: Some((11, D)),
            },
            2,
            HLC,
        );
        // A rename between directories on two shards: one event.
        let ev = decode_group(
            &mut ns,
            &[
                rec(1, 3, HLC + 2, 3, vec![del_dentry(10, "x")]),
                rec(0, 3, HLC + 2, 3, vec![put_dentry(11, "y", 20, F)]),
            ],
        );
        assert_eq!(lines(&ev), vec!["rename /a/x -> /b/y"]);
        let ev = decode_group(
            &mut ns,
            &[rec(1, 4, HLC + 3, 4, vec![put_inode(20, F, 0o600)])],
        );
        assert_eq!(lines(&ev), vec!["attr /b/y mode=0600"]);
        let ev = decode_group(
            &mut ns,
            &[rec(
                1,
                5,
                HLC + 4,
                5,
                vec![ChangeRow {
                    key: keys::xattr(20, "user.k").bytes,
                    value: b"v".to_vec(),
                    deleted: false,
                }],
            )],
        );
        assert_eq!(lines(&ev), vec!["setxattr /b/y user.k"]);
        let ev = decode_group(&mut ns, &[rec(0, 6, HLC + 5, 6, vec![del_dentry(11, "y")])]);
        assert_eq!(lines(&ev), vec!["delete /b/y"]);
        assert_eq!(ev[0].kind, Some("file"));
        assert!(ev[0].under("/b") && !ev[0].under("/a") && !ev[0].under("/b/yy"));
    }

    #[test]
    fn merge_keeps_shard_order_and_groups_a_transaction() {
        let start = Position(BTreeMap::from([(0, 0), (1, 0)]));
        let mut m = Merger::new(&start);
        let t0 = Instant::now();
        let batch = |recs: Vec<(u64, u64, u8)>, through| ChangeBatch {
            records: recs
                .into_iter()
                .map(|(seq, hlc, txn)| ChangeRecord {
                    seq,
                    hlc,
                    txn_id: vec![txn],
                    rows: vec![],
                })
                .collect(),
            through_seq: through,
        };
        m.push(0, batch(vec![(1, 5, 1), (2, 9, 3)], 2), t0);
        // Shard 1 has nothing yet: the head waits for it.
        assert!(m.pop(t0, MERGE_DELAY).is_none());
        m.push(1, batch(vec![(1, 7, 2), (2, 9, 3)], 2), t0);
        let order: Vec<Vec<(u32, u64)>> =
            std::iter::from_fn(|| m.pop(t0 + MERGE_DELAY, MERGE_DELAY))
                .map(|g| g.iter().map(|r| (r.shard, r.record.seq)).collect())
                .collect();
        assert_eq!(
            order,
            vec![vec![(0, 1)], vec![(1, 1)], vec![(0, 2), (1, 2)]]
        );
        assert_eq!(m.position().to_string(), "2,2");
        assert_eq!("2,2".parse::<Position>().unwrap(), m.position());
    }
}
