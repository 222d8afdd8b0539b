//! The sharded store against real `arbor-metastore` processes on loopback: formatting once,
//! atomic single- and cross-shard commits, conflicts on changed reads, unique sequence
//! numbers across stores, and coordinator crashes at each fault point of two-phase commit
//! being finished or rolled back by the shards.
//!
//! Needs the shard binary: `cargo build -p arbor-metastore --bin arbor-metastore` (found in
//! `$ARBOR_BIN_DIR`, else the workspace's `target/debug`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbor_namenode::keys;
use arbor_namenode::sharded::{ShardedStore, StoreConfig};
use arbor_namenode::txn::{CounterOp, Key, Route, Store, Txn, TxnError, Versioned};
use arbor_proto::records::SequenceRecord;
use prost::Message;

/// Shard processes own 19300-19339; each test takes its own block of ports.
const INTENT_TIMEOUT_MS: u64 = 2000;
const SHARDS: u16 = 3;
/// vpart v lives on shard v % 3.
const VPARTS: u32 = 12;

fn metastore_bin() -> PathBuf {
    let dir = std::env::var_os("ARBOR_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug"));
    let bin = dir.join("arbor-metastore");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p arbor-metastore --bin arbor-metastore`",
        bin.display()
    );
    bin
}

/// Shard processes of one test; killed when dropped.
struct Cluster {
    children: Vec<Child>,
    addrs: Vec<String>,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start(base_port: u16) -> Cluster {
        let bin = metastore_bin();
        let dir = tempfile::tempdir().unwrap();
        let mut cluster = Cluster {
            children: Vec::new(),
            addrs: Vec::new(),
            dir,
        };
        for shard in 0..SHARDS {
            let addr = format!("127.0.0.1:{}", base_port + shard);
            let data = cluster.dir.path().join(format!("shard{shard}"));
            let log = std::fs::File::create(cluster.dir.path().join(format!("shard{shard}.log")))
                .unwrap();
            let mut child = Command::new(&bin)
                .arg("--dir")
                .arg(&data)
                .args(["--listen", &addr, "--shard", &shard.to_string()])
                .args(["--intent-timeout-ms", &INTENT_TIMEOUT_MS.to_string()])
                .stdout(Stdio::piped())
                .stderr(log)
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            cluster.children.push(child);
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line.contains("listening on") {
                        let _ = tx.send(line);
                    }
                }
            });
            let ready = rx.recv_timeout(Duration::from_secs(30));
            assert!(
                ready.is_ok(),
                "shard {shard} did not start; its log:\n{}",
                cluster.log(shard)
            );
            cluster.addrs.push(addr);
        }
        cluster
    }

    fn log(&self, shard: u16) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("shard{shard}.log")))
            .unwrap_or_default()
    }

    fn config(&self) -> StoreConfig {
        StoreConfig {
            metastores: self.addrs.clone(),
            vparts: VPARTS,
            rpc_timeout: Duration::from_secs(5),
            id_batch: 16,
            intent_timeout_ms: INTENT_TIMEOUT_MS,
            ..Default::default()
        }
    }

    async fn store(&self) -> Arc<ShardedStore> {
        ShardedStore::connect(self.config()).await.unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A test key on virtual partition `v`.
fn key(v: u16, name: &str) -> Key {
    Key::new(Route::Vpart(v), format!("T{name}").into_bytes())
}

async fn read(store: &ShardedStore, keys: &[Key]) -> Vec<Versioned> {
    store.begin().get(keys, false).await.unwrap()
}

/// Fails a test that would otherwise hang on a stuck process.
async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .expect("scenario timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_starts_format_the_cluster_once() {
    let cluster = Cluster::start(19300);
    bounded(async {
        let (a, b) = tokio::join!(cluster.store(), cluster.store());
        assert_eq!(a.partition_map(), b.partition_map());
        assert_eq!(a.partition_map().cluster_id.len(), 16);
        assert_eq!(a.partition_map().shard_of.len(), VPARTS as usize);
        assert_eq!(a.shards(), 3);
        // Every format row came from the same single commit.
        let rows = read(
            &a,
            &[
                keys::meta(keys::META_PARTMAP),
                keys::meta(keys::META_SEQUENCE),
                keys::inode(keys::ROOT_INO),
            ],
        )
        .await;
        assert!(rows.iter().all(|r| r.exists()));
        assert!(
            rows.iter().all(|r| r.version == rows[0].version),
            "{rows:?}"
        );
        let seq = SequenceRecord::decode(rows[1].value.as_slice()).unwrap();
        assert_eq!(seq.next, keys::FIRST_SEQ);
        // A later start loads the same map and writes nothing.
        let c = cluster.store().await;
        assert_eq!(c.partition_map(), a.partition_map());
        let again = read(&c, &[keys::meta(keys::META_PARTMAP)]).await;
        assert_eq!(again[0].version, rows[0].version);
        // A namenode given the wrong number of shards refuses to start.
        let mut wrong = cluster.config();
        wrong.metastores.pop();
        assert!(matches!(
            ShardedStore::connect(wrong).await.err(),
            Some(TxnError::Internal(_))
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_and_cross_shard_commits_apply_atomically() {
    let cluster = Cluster::start(19303);
    bounded(async {
        let store = cluster.store().await;

        // One shard: three puts and a counter land at one version.
        let mut t = store.begin();
        t.put(key(1, "a"), b"a".to_vec());
        t.put(key(4, "b"), b"b".to_vec());
        t.counter(
            key(7, "n"),
            2,
            vec![(0, CounterOp::Add, 5), (1, CounterOp::Max, 9)],
        );
        t.put(key(10, "gone"), b"x".to_vec());
        t.delete(key(10, "gone"));
        assert_eq!(t.participants(), vec![1]);
        t.commit().await.unwrap();
        let rows = read(
            &store,
            &[key(1, "a"), key(4, "b"), key(7, "n"), key(10, "gone")],
        )
        .await;
        assert_eq!(rows[0].value, b"a");
        assert_eq!(
            rows[2].value,
            [5i64.to_le_bytes(), 9i64.to_le_bytes()].concat()
        );
        assert!(rows[..3].iter().all(|r| r.version == rows[0].version));
        assert!(!rows[3].exists());

        // Three shards, with a validated read and a write of the same key on one of them.
        let mut t = store.begin();
        let seen = t.get(&[key(1, "a")], true).await.unwrap();
        assert!(seen[0].exists());
        t.delete(key(1, "a"));
        t.put(key(0, "x"), b"0".to_vec());
        t.put(key(2, "y"), b"2".to_vec());
        t.counter(key(7, "n"), 2, vec![(0, CounterOp::Add, -2)]);
        t.set_label("cross");
        assert_eq!(t.participants(), vec![0, 1, 2]);
        t.commit().await.unwrap();
        let rows = read(
            &store,
            &[key(0, "x"), key(1, "a"), key(2, "y"), key(7, "n")],
        )
        .await;
        assert_eq!(rows[0].value, b"0");
        assert!(!rows[1].exists());
        assert_eq!(rows[2].value, b"2");
        assert_eq!(
            rows[3].value,
            [3i64.to_le_bytes(), 9i64.to_le_bytes()].concat()
        );
        assert!(store.open_intents().await.unwrap().is_empty());

        // Transfers between accounts on every shard from many tasks: each one either moves
        // both halves or nothing, so the total never changes.
        let accounts: Vec<Key> = (0..6u16).map(|v| key(v, &format!("acct{v}"))).collect();
        let mut t = store.begin();
        for a in &accounts {
            t.put(a.clone(), 100i64.to_le_bytes().to_vec());
        }
        t.commit().await.unwrap();
        let mut tasks = Vec::new();
        for task in 0..6u64 {
            let store = Arc::clone(&store);
            let accounts = accounts.clone();
            tasks.push(tokio::spawn(async move {
                let mut done = 0u32;
                let mut conflicts = 0u32;
                for i in 0..20u64 {
                    let from = ((task + i) % 6) as usize;
                    let to = ((task * 7 + i * 5 + 1) % 6) as usize;
                    if from == to {
                        continue;
                    }
                    loop {
                        let mut t = store.begin();
                        let rows = t
                            .get(&[accounts[from].clone(), accounts[to].clone()], true)
                            .await
                            .unwrap();
                        let bal =
                            |r: &Versioned| i64::from_le_bytes(r.value[..8].try_into().unwrap());
                        t.put(
                            accounts[from].clone(),
                            (bal(&rows[0]) - 3).to_le_bytes().to_vec(),
                        );
                        t.put(
                            accounts[to].clone(),
                            (bal(&rows[1]) + 3).to_le_bytes().to_vec(),
                        );
                        match t.commit().await {
                            Ok(()) => break,
                            Err(TxnError::Conflict(_)) => {
                                conflicts += 1;
                                let ms = rand_ms(task, conflicts);
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                            }
                            Err(e) => panic!("transfer failed: {e}"),
                        }
                    }
                    done += 1;
                }
                (done, conflicts)
            }));
        }
        let mut transfers = 0;
        for t in tasks {
            transfers += t.await.unwrap().0;
        }
        assert!(transfers > 60);
        let rows = read(&store, &accounts).await;
        let total: i64 = rows
            .iter()
            .map(|r| i64::from_le_bytes(r.value[..8].try_into().unwrap()))
            .sum();
        assert_eq!(total, 600);
        assert!(store.open_intents().await.unwrap().is_empty());
    })
    .await;
}

/// A small deterministic jitter, so retrying tasks fall out of step.
fn rand_ms(task: u64, attempt: u32) -> u64 {
    1 + (task * 13 + u64::from(attempt) * 7) % 20
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_changed_fails_the_commit() {
    let cluster = Cluster::start(19306);
    bounded(async {
        let store = cluster.store().await;
        let mut t = store.begin();
        t.put(key(1, "k"), b"v1".to_vec());
        t.commit().await.unwrap();

        for cross_shard in [false, true] {
            let mut stale = store.begin();
            let seen = stale.get(&[key(1, "k")], true).await.unwrap();
            let mut other = store.begin();
            other.put(
                key(1, "k"),
                seen[0].value.iter().chain(b"+").copied().collect(),
            );
            other.commit().await.unwrap();
            stale.put(key(4, "copy"), seen[0].value.clone());
            if cross_shard {
                stale.put(key(0, "copy"), seen[0].value.clone());
                stale.put(key(2, "copy"), seen[0].value.clone());
            }
            match stale.commit().await {
                Err(TxnError::Conflict(why)) => assert!(why.contains("VERSION"), "{why}"),
                other => panic!("expected a conflict, got {other:?}"),
            }
            let rows = read(&store, &[key(0, "copy"), key(4, "copy"), key(2, "copy")]).await;
            assert!(rows.iter().all(|r| !r.exists()), "{rows:?}");
        }

        // A row that appeared under a read of an absent key, and a prefix that filled up.
        let mut stale = store.begin();
        let absent = stale.get(&[key(2, "new")], true).await.unwrap();
        assert!(!absent[0].exists());
        stale.require_empty(Route::Vpart(5), b"Tdir/".to_vec());
        stale.put(key(0, "z"), b"z".to_vec());
        let mut other = store.begin();
        other.put(key(5, "dir/child"), b"c".to_vec());
        other.commit().await.unwrap();
        match stale.commit().await {
            Err(TxnError::Conflict(why)) => assert!(why.contains("NOT_EMPTY"), "{why}"),
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert!(!read(&store, &[key(0, "z")]).await[0].exists());
        // Aborted prepares left no intent or lock behind: the same keys commit now.
        assert!(store.open_intents().await.unwrap().is_empty());
        let mut t = store.begin();
        t.put(key(0, "z"), b"z".to_vec());
        t.put(key(4, "copy"), b"c".to_vec());
        t.commit().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_numbers_are_unique_across_stores_and_tasks() {
    let cluster = Cluster::start(19309);
    bounded(async {
        let stores = [
            cluster.store().await,
            cluster.store().await,
            cluster.store().await,
        ];
        let mut tasks = Vec::new();
        for store in &stores {
            for _ in 0..4 {
                let store = Arc::clone(store);
                tasks.push(tokio::spawn(async move {
                    let mut got = Vec::with_capacity(100);
                    for _ in 0..100 {
                        got.push(store.alloc_seq().await.unwrap());
                    }
                    got
                }));
            }
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a sequence number was handed out twice");
        assert!(all[0] >= keys::FIRST_SEQ);
        let row = read(&stores[0], &[keys::meta(keys::META_SEQUENCE)]).await;
        let next = SequenceRecord::decode(row[0].value.as_slice())
            .unwrap()
            .next;
        assert!(next > *all.last().unwrap());
        // Batches of 16: no more than one partly used batch per store wasted.
        assert!(next - keys::FIRST_SEQ <= n as u64 + 3 * 16, "next = {next}");
    })
    .await;
}

/// Runs `crash_child` in a child process with `fault` armed; returns its stderr.
fn run_crashing_child(cluster: &Cluster, fault: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ARBOR_FAULT", fault)
        .env("SHARDED_TEST_METASTORES", cluster.addrs.join(","))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGKILL),
        "child was not killed by the fault ({:?}); stderr:\n{stderr}",
        out.status
    );
    stderr
}

fn crash_keys() -> Vec<Key> {
    (0..3u16).map(|v| key(v, "crash")).collect()
}

/// Polls until every shard has resolved its intents.
async fn wait_until_resolved(store: &ShardedStore) {
    let deadline = Instant::now() + Duration::from_millis(INTENT_TIMEOUT_MS * 10);
    loop {
        let open = store.open_intents().await.unwrap();
        if open.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "intents never resolved: {open:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_killed_after_the_commit_point_still_commits_everywhere() {
    let cluster = Cluster::start(19312);
    bounded(async {
        let store = cluster.store().await;
        let stderr = run_crashing_child(&cluster, "after_primary_commit:crash");
        assert!(
            stderr.contains("fault injected at after_primary_commit:crash"),
            "{stderr}"
        );
        // The primary (shard 0) applied at the commit point; the others finish through their
        // resolvers asking it.
        wait_until_resolved(&store).await;
        let rows = read(&store, &crash_keys()).await;
        assert!(rows.iter().all(|r| r.value == b"crashed"), "{rows:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_killed_before_the_commit_point_rolls_back_everywhere() {
    let cluster = Cluster::start(19315);
    bounded(async {
        let store = cluster.store().await;
        let stderr = run_crashing_child(&cluster, "after_prepare:crash");
        assert!(
            stderr.contains("fault injected at after_prepare:crash"),
            "{stderr}"
        );
        // All three shards hold the prepared intent until it times out.
        let open = store.open_intents().await.unwrap();
        assert_eq!(open.len(), 3, "{open:?}");
        wait_until_resolved(&store).await;
        let rows = read(&store, &crash_keys()).await;
        assert!(rows.iter().all(|r| !r.exists()), "{rows:?}");
        // Its locks are gone: the same keys commit.
        let mut t = store.begin();
        for k in crash_keys() {
            t.put(k, b"after".to_vec());
        }
        t.commit().await.unwrap();

        // A coordinator that dies before preparing leaves nothing at all.
        let stderr = run_crashing_child(&cluster, "before_prepare:crash");
        assert!(
            stderr.contains("fault injected at before_prepare:crash"),
            "{stderr}"
        );
        assert!(store.open_intents().await.unwrap().is_empty());
        let rows = read(&store, &crash_keys()).await;
        assert!(rows.iter().all(|r| r.value == b"after"), "{rows:?}");
    })
    .await;
}

/// The body of the crash tests' child process: one cross-shard commit that an armed fault
/// point interrupts. Reaching the end means the fault point did not fire.
#[tokio::test]
#[ignore = "run as a child process by the crash tests"]
async fn crash_child() {
    let addrs = std::env::var("SHARDED_TEST_METASTORES").expect("run by the crash tests");
    let store = ShardedStore::connect(StoreConfig {
        metastores: addrs.split(',').map(str::to_string).collect(),
        vparts: VPARTS,
        rpc_timeout: Duration::from_secs(5),
        id_batch: 16,
        intent_timeout_ms: INTENT_TIMEOUT_MS,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut t = store.begin();
    t.set_label("crash");
    for k in crash_keys() {
        t.put(k, b"crashed".to_vec());
    }
    let result = t.commit().await;
    panic!("the fault point did not fire; commit returned {result:?}");
}
