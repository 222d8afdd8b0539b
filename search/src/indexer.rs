//! The indexing pipeline of the search service: one tail task per shard streams its change
//! log into a bounded channel; one applier (on a blocking thread: tantivy commits write and
//! sync files) applies the rows to the namespace model and the index, commits, publishes the
//! new searchable snapshot, and only then lets the shard cursors advance.
//!
//! Invariants:
//! - the index commit carries the shard positions it reflects ([`Payload`]); a restart
//!   resumes from those, so a crash at any point neither loses nor duplicates a change; the
//!   cursors stored on the shards trail the committed positions (they only bound the log's
//!   retention);
//! - a shard that no longer holds the log from where the index needs it (or `--rebuild`, or
//!   an index of another cluster) triggers a rebuild: a scan of every shard at its applied
//!   sequence, then the logs from there; rows carry versions, so the log replayed over a
//!   newer scan changes nothing it should not.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tantivy::Searcher;
use tokio::sync::{mpsc, watch};

use crate::error::{Error, Result};
use crate::index::{self, Fields, IndexStore, Payload};
use crate::model::{DirMap, Namespace};
use crate::rows::{self, SCANNED_TABLES};
use crate::shards::{self, Shard};
use crate::tail::{Tailed, tail};

/// How the service is set up.
#[derive(Clone, Debug)]
pub struct Config {
    pub namenodes: Vec<String>,
    pub dir: PathBuf,
    /// Rebuild the index from a scan at start.
    pub rebuild: bool,
    /// The cursor name on the shards.
    pub consumer: String,
    /// Shortest time between two index commits (batches arriving meanwhile are grouped).
    pub min_commit_interval: Duration,
}

impl Config {
    pub fn new(namenodes: Vec<String>, dir: PathBuf) -> Config {
        Config {
            namenodes,
            dir,
            rebuild: false,
            consumer: "search".into(),
            min_commit_interval: Duration::from_millis(1000),
        }
    }
}

/// What queries see: one committed state of the index and the directory map that goes
/// with it.
pub struct Snapshot {
    pub searcher: Searcher,
    pub dirs: Arc<DirMap>,
    pub payload: Payload,
    pub documents: u64,
}

/// State shared with the query side.
pub struct Shared {
    pub fields: Fields,
    snapshot: RwLock<Arc<Snapshot>>,
    shards: RwLock<Vec<Shard>>,
    rebuilds: std::sync::atomic::AtomicU64,
}

impl Shared {
    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn publish(&self, s: Snapshot) {
        let s = Arc::new(s);
        match self.snapshot.write() {
            Ok(mut g) => *g = s,
            Err(poisoned) => *poisoned.into_inner() = s,
        }
    }

    pub fn shards(&self) -> Vec<Shard> {
        match self.shards.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Rebuilds done since the service started.
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// How long the oldest change of each index commit waited to become searchable.
static LAG_SECONDS: std::sync::LazyLock<arbor_proto::metrics::prometheus::Histogram> =
    std::sync::LazyLock::new(|| {
        arbor_proto::metrics::histogram(
            "arbor_search_lag_seconds",
            "From a change's commit to the index commit that makes it searchable (the oldest \
             change of each index commit).",
            &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0],
        )
    });

/// The applier's state: moved between the async side and its blocking thread.
struct State {
    store: IndexStore,
    ns: Namespace,
    payload: Payload,
    dirs: Arc<DirMap>,
    /// The commit clock of the oldest change applied since the last index commit.
    oldest_pending_hlc: Option<u64>,
}

impl State {
    /// Writes the changed entries, commits with the payload, and publishes the result.
    fn commit(&mut self, shared: &Shared) -> Result<()> {
        let changed = self.ns.take_dirty();
        self.store.write(changed)?;
        let searcher = self.store.commit(&self.payload)?;
        if let Some(hlc) = self.oldest_pending_hlc.take() {
            let changed_ms = (hlc >> 16) as i64;
            let now_ms = chrono::Utc::now().timestamp_millis();
            LAG_SECONDS.observe(now_ms.saturating_sub(changed_ms).max(0) as f64 / 1000.0);
        }
        if self.ns.take_dirs_changed() {
            self.dirs = Arc::new(self.ns.dirs().clone());
        }
        let documents = index::live_documents(&searcher, &shared.fields)?;
        shared.publish(Snapshot {
            searcher,
            dirs: self.dirs.clone(),
            payload: self.payload.clone(),
            documents,
        });
        Ok(())
    }
}

/// Opens the index and starts the pipeline. Queries can be answered as soon as this returns
/// (from the last committed state); the pipeline runs until the process ends.
pub async fn start(config: Config) -> Result<Arc<Shared>> {
    let dir = config.dir.clone();
    let (store, payload, entries) = tokio::task::spawn_blocking(move || IndexStore::open(&dir))
        .await
        .map_err(|e| Error::Index(e.to_string()))??;
    let ns = Namespace::from_entries(entries);
    tracing::info!(entries = ns.len(), ?payload, "index opened");
    let dirs = Arc::new(ns.dirs().clone());
    let searcher = store.searcher();
    let fields = store.fields();
    let documents = index::live_documents(&searcher, &fields)?;
    let payload_known = payload.is_some();
    let state = State {
        store,
        ns,
        payload: payload.unwrap_or_default(),
        dirs: dirs.clone(),
        oldest_pending_hlc: None,
    };
    let shared = Arc::new(Shared {
        fields,
        snapshot: RwLock::new(Arc::new(Snapshot {
            searcher,
            dirs,
            payload: state.payload.clone(),
            documents,
        })),
        shards: RwLock::new(Vec::new()),
        rebuilds: Default::default(),
    });
    let runner = shared.clone();
    let force = config.rebuild || !payload_known;
    tokio::spawn(async move {
        if let Err(e) = run(config, runner, state, force).await {
            tracing::error!(error = %e, "indexing stopped");
        }
    });
    Ok(shared)
}

/// Finds the cluster through the namenodes, retrying until one answers.
async fn discover(config: &Config) -> (String, Vec<Shard>) {
    let mut wait = Duration::from_millis(200);
    loop {
        match shards::cluster_info(&config.namenodes).await {
            Ok(info) => match Shard::all(&info) {
                Ok(list) if !list.is_empty() => return (hex(&info.cluster_id), list),
                Ok(_) => tracing::warn!("cluster reports no shards"),
                Err(e) => tracing::warn!(error = %e, "bad shard address"),
            },
            Err(e) => tracing::warn!(error = %e, "cluster info"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn run(config: Config, shared: Arc<Shared>, mut state: State, mut force: bool) -> Result<()> {
    let (cluster_id, shard_list) = discover(&config).await;
    match shared.shards.write() {
        Ok(mut g) => *g = shard_list.clone(),
        Err(p) => *p.into_inner() = shard_list.clone(),
    }
    let (cursor_tx, cursor_rx) = watch::channel(Payload::default());
    tokio::spawn(advance_cursors(
        shard_list.clone(),
        config.consumer.clone(),
        cursor_rx,
    ));
    loop {
        let foreign = state.payload.cluster_id != cluster_id
            || state.payload.shards.len() != shard_list.len();
        if force || foreign {
            state = rebuild_until_done(&shared, state, &shard_list, &cluster_id).await;
            force = false;
        }
        let _ = cursor_tx.send(state.payload.clone());
        let (tx, rx) = mpsc::channel::<Tailed>(64);
        let tails: Vec<_> = shard_list
            .iter()
            .map(|s| {
                let from = state.payload.shards.get(&s.index).copied().unwrap_or(0) + 1;
                tokio::spawn(tail(s.clone(), from, tx.clone()))
            })
            .collect();
        drop(tx);
        let applier_shared = shared.clone();
        let interval = config.min_commit_interval;
        let ctx = cursor_tx.clone();
        let handle = tokio::runtime::Handle::current();
        let (back, outcome) = tokio::task::spawn_blocking(move || {
            apply_loop(state, rx, &applier_shared, interval, &ctx, &handle)
        })
        .await
        .map_err(|e| Error::Index(e.to_string()))?;
        state = back;
        for t in tails {
            t.abort();
        }
        match outcome {
            Outcome::Trimmed(shard) => {
                tracing::warn!(shard, "change log trimmed past the index: rebuilding");
                force = true;
            }
            Outcome::Failed(e) => {
                tracing::error!(error = %e, "applying changes failed; restarting from the index");
                tokio::time::sleep(Duration::from_secs(1)).await;
                state = reload(state).await?;
            }
            Outcome::Closed => return Ok(()),
        }
    }
}

/// Drops what was not committed and goes back to the index's last commit.
async fn reload(state: State) -> Result<State> {
    let State { mut store, .. } = state;
    let (store, payload, entries) =
        tokio::task::spawn_blocking(move || store.rollback().map(|(p, e)| (store, p, e)))
            .await
            .map_err(|e| Error::Index(e.to_string()))??;
    let ns = Namespace::from_entries(entries);
    let dirs = Arc::new(ns.dirs().clone());
    Ok(State {
        store,
        ns,
        payload: payload.unwrap_or_default(),
        dirs,
        oldest_pending_hlc: None,
    })
}

async fn rebuild_until_done(
    shared: &Arc<Shared>,
    mut state: State,
    shards: &[Shard],
    cluster_id: &str,
) -> State {
    let mut wait = Duration::from_millis(200);
    loop {
        match rebuild(shared, state, shards, cluster_id).await {
            (s, Ok(())) => {
                shared
                    .rebuilds
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return s;
            }
            (s, Err(e)) => {
                tracing::warn!(error = %e, "rebuild failed; retrying");
                state = s;
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

/// Scans every shard at its applied sequence into a fresh index.
async fn rebuild(
    shared: &Arc<Shared>,
    mut state: State,
    shards: &[Shard],
    cluster_id: &str,
) -> (State, Result<()>) {
    let started = Instant::now();
    state.ns.clear();
    let _ = state.ns.take_dirty();
    let mut payload = Payload {
        cluster_id: cluster_id.to_string(),
        shards: BTreeMap::new(),
    };
    for shard in shards {
        let applied = match shard.status().await {
            Ok(st) => st.applied_seq,
            Err(e) => return (state, Err(e)),
        };
        for table in SCANNED_TABLES {
            let ns = &mut state.ns;
            let scanned = shard
                .scan_table(table, |row| {
                    match rows::decode(&row.key, &row.value, false) {
                        Ok(r) => {
                            ns.apply(&r, row.version, 0);
                        }
                        Err(e) => tracing::warn!(error = %e, "skipping row"),
                    }
                })
                .await;
            if let Err(e) = scanned {
                return (state, Err(e));
            }
        }
        payload.shards.insert(shard.index, applied);
    }
    state.payload = payload;
    let shared2 = shared.clone();
    let res = tokio::task::spawn_blocking(move || {
        let r = state.store.clear().and_then(|_| state.commit(&shared2));
        (state, r)
    })
    .await;
    match res {
        Ok((s, r)) => {
            tracing::info!(
                entries = s.ns.len(),
                took_ms = started.elapsed().as_millis() as u64,
                "index rebuilt from a scan"
            );
            (s, r)
        }
        Err(e) => panic!("rebuild thread panicked: {e}"),
    }
}

enum Outcome {
    Trimmed(u32),
    Failed(Error),
    Closed,
}

/// Applies batches and commits, on a blocking thread.
fn apply_loop(
    mut state: State,
    mut rx: mpsc::Receiver<Tailed>,
    shared: &Shared,
    interval: Duration,
    cursor_tx: &watch::Sender<Payload>,
    handle: &tokio::runtime::Handle,
) -> (State, Outcome) {
    let mut pending = false;
    let mut last_commit = Instant::now();
    loop {
        let wait = if pending {
            interval.saturating_sub(last_commit.elapsed())
        } else {
            Duration::from_secs(3600)
        };
        let msg = handle.block_on(async { tokio::time::timeout(wait, rx.recv()).await });
        match msg {
            Ok(Some(Tailed::Batch { shard, batch, .. })) => {
                for rec in &batch.records {
                    for row in &rec.rows {
                        match rows::decode(&row.key, &row.value, row.deleted) {
                            Ok(r) => {
                                state.ns.apply(&r, rec.seq, rec.hlc);
                                state.oldest_pending_hlc = Some(
                                    state.oldest_pending_hlc.map_or(rec.hlc, |h| h.min(rec.hlc)),
                                );
                            }
                            Err(e) => {
                                tracing::warn!(shard, seq = rec.seq, error = %e, "skipping row")
                            }
                        }
                    }
                }
                let pos = state.payload.shards.entry(shard).or_default();
                *pos = (*pos).max(batch.through_seq);
                pending = true;
            }
            Ok(Some(Tailed::Trimmed(shard))) => return (state, Outcome::Trimmed(shard)),
            Ok(None) => return (state, Outcome::Closed),
            Err(_) => {}
        }
        // Group what is already queued into one commit, but never wait longer than a second.
        let due = last_commit.elapsed() >= interval
            && (rx.is_empty() || last_commit.elapsed() >= Duration::from_secs(1));
        if pending && due {
            if let Err(e) = state.commit(shared) {
                return (state, Outcome::Failed(e));
            }
            pending = false;
            last_commit = Instant::now();
            let _ = cursor_tx.send(state.payload.clone());
        }
    }
}

/// Moves the shards' cursors to just after what the index has committed.
async fn advance_cursors(shards: Vec<Shard>, consumer: String, mut rx: watch::Receiver<Payload>) {
    let mut stored: BTreeMap<u32, u64> = BTreeMap::new();
    loop {
        let payload = rx.borrow_and_update().clone();
        for shard in &shards {
            let Some(&pos) = payload.shards.get(&shard.index) else {
                continue;
            };
            if stored.get(&shard.index) == Some(&(pos + 1)) {
                continue;
            }
            match shard.set_cursor(&consumer, pos + 1).await {
                Ok(()) => {
                    stored.insert(shard.index, pos + 1);
                }
                Err(e) => tracing::debug!(shard = shard.index, error = %e, "set cursor"),
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
