//! Recursive delete of a tree of a few thousand entries: `-rm -r` detaches it in one small
//! transaction, so it vanishes at once; the leader's background deleter then removes every row
//! of it (checked shard by shard), also when the namenode doing it is killed mid-way.

use std::time::{Duration, Instant};

use arbor_client::Client;
use arbor_namenode::keys;
use arbor_proto::namenode::ErrorCode;
use arbor_tests::namespace::{expect_code, ok};
use arbor_tests::rows::Rows;
use arbor_tests::{Config, TestCluster, secs, within};
use tokio::task::JoinSet;

const TOP: usize = 10;
const MIDDLE: usize = 6;
const FILES: usize = 50;

/// The inodes of a tree: directories (the top one first) and files.
struct Tree {
    dirs: Vec<u64>,
    files: Vec<u64>,
}

/// /big/tN/mM/fK: 1 + 10 + 60 directories and 3,000 files, some with xattrs.
async fn build(cluster: &TestCluster, client: &Client) -> Tree {
    let mut dirs = vec![ok(client.mkdir("/big", 0o755, false).await, "mkdir /big").ino];
    let mut middles = Vec::new();
    for t in 0..TOP {
        let top = format!("/big/t{t}");
        dirs.push(ok(client.mkdir(&top, 0o755, false).await, &top).ino);
        for m in 0..MIDDLE {
            let middle = format!("{top}/m{m}");
            dirs.push(ok(client.mkdir(&middle, 0o755, false).await, &middle).ino);
            middles.push(middle);
        }
    }
    let mut tasks = JoinSet::new();
    for (n, middle) in middles.into_iter().enumerate() {
        let client = cluster.client_on(n % 2).await;
        tasks.spawn(async move {
            let mut inos = Vec::new();
            for k in 0..FILES {
                let path = format!("{middle}/f{k}");
                inos.push(ok(client.create(&path, 0o644, false).await, &path).ino);
                if k % 10 == 0 {
                    ok(client.set_xattr(&path, "user.tag", b"x").await, &path);
                }
            }
            inos
        });
    }
    let mut files = Vec::new();
    while let Some(done) = tasks.join_next().await {
        files.extend(done.expect("create task"));
    }
    Tree { dirs, files }
}

/// Removes /big with the CLI and checks it is gone from the namespace at once.
async fn remove(cluster: &TestCluster, client: &Client) -> Duration {
    let before = ok(client.content_summary("/").await, "content summary");
    let started = Instant::now();
    let out = cluster.cli(&["dfs", "-rm", "-r", "/big"]).await;
    let took = started.elapsed();
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.stdout_lines(), ["Deleted /big"], "{out}");
    expect_code(
        client.stat("/big").await,
        ErrorCode::NotFound,
        "/big after -rm -r",
    );
    expect_code(
        client.stat("/big/t0/m0/f0").await,
        ErrorCode::NotFound,
        "a file under /big",
    );
    let root = ok(client.list("/").await, "list /");
    assert!(root.iter().all(|e| e.name != "big"), "/big still listed");
    let after = ok(client.content_summary("/").await, "content summary");
    assert_eq!(
        after.files,
        before.files - (TOP * MIDDLE * FILES) as u64,
        "files under /"
    );
    assert_eq!(
        after.directories,
        before.directories - (1 + TOP + TOP * MIDDLE) as u64
    );
    took
}

/// Whether any row of the tree is still in the metastore.
async fn rows_left(rows: &Rows, tree: &Tree) -> usize {
    let mut wanted = Vec::new();
    for &ino in &tree.dirs {
        wanted.extend([keys::inode(ino), keys::counter(ino), keys::todelete(ino)]);
    }
    wanted.extend(tree.files.iter().map(|&ino| keys::inode(ino)));
    let mut left = rows
        .get_many(&wanted)
        .await
        .iter()
        .filter(|r| r.version != 0)
        .count();
    for &ino in &tree.dirs {
        let route = keys::route_of(ino);
        left += rows
            .scan_prefix(route, &keys::dentry_prefix(ino))
            .await
            .len();
        left += rows
            .scan_prefix(route, &keys::xattr_prefix(ino))
            .await
            .len();
    }
    for &ino in tree.files.iter().step_by(10) {
        left += rows
            .scan_prefix(keys::route_of(ino), &keys::xattr_prefix(ino))
            .await
            .len();
    }
    left
}

/// Every row of the tree is gone, and no detached subtree is pending anywhere.
async fn assert_all_rows_gone(rows: &Rows, tree: &Tree) {
    assert_eq!(
        rows_left(rows, tree).await,
        0,
        "rows of the deleted tree remain"
    );
    let pending = rows.scan_all_shards(&[keys::TODELETE]).await;
    assert!(pending.is_empty(), "{} todelete rows remain", pending.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleted_tree_vanishes_at_once_and_its_rows_follow() {
    let cluster = TestCluster::start(Config::default()).await;
    within(secs(300), async {
        let client = cluster.client().await;
        ok(client.create("/keep", 0o644, false).await, "create /keep");
        let tree = build(&cluster, &client).await;
        let rows = Rows::open(&cluster).await;
        let took = remove(&cluster, &client).await;
        eprintln!(
            "-rm -r of {} entries took {took:?}",
            tree.dirs.len() + tree.files.len()
        );

        let deadline = Instant::now() + secs(120);
        let report = loop {
            let report = cluster.fsck().await;
            if report.pending_deletes == 0 {
                break report;
            }
            assert!(
                Instant::now() < deadline,
                "deletion still pending: {report:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        // fsck scans shard by shard: the report that first sees no pending delete may have
        // read a shard before the last step's two-phase commit reached it. Once no intent
        // is open, the namespace stands still and fsck must find it whole.
        let settled = cluster.wait_no_open_intents(secs(30)).await;
        assert_eq!(settled.pending_deletes, 0, "{report:?}");
        let report = cluster.fsck().await;
        assert!(report.healthy, "fsck: {report:?}");
        assert_eq!(report.files, 1, "only /keep is left: {report:?}");
        assert_all_rows_gone(&rows, &tree).await;
        ok(client.stat("/keep").await, "/keep");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn background_deletion_finishes_after_its_namenode_is_killed() {
    // Whichever namenode leads kills itself right after its fifth deleter commit; restarted
    // namenodes run without the fault, so one of them finishes the job.
    let fault = "after_commit:deleter@5".to_string();
    let cluster = TestCluster::start(Config {
        namenode_env: vec![
            (0, "ARBOR_FAULT".into(), fault.clone()),
            (1, "ARBOR_FAULT".into(), fault.clone()),
        ],
        ..Config::default()
    })
    .await;
    within(secs(300), async {
        let client = cluster.client().await;
        let tree = build(&cluster, &client).await;
        let rows = Rows::open(&cluster).await;
        remove(&cluster, &client).await;
        // Detached, not deleted: the namespace lost it, its rows are still being removed.
        assert!(
            rows_left(&rows, &tree).await > 0,
            "-rm -r removed every row synchronously"
        );

        let mut killed = Vec::new();
        let deadline = Instant::now() + secs(180);
        loop {
            for i in 0..2 {
                if !cluster.namenode_running(i) {
                    let log = cluster.namenode_log_since_start(i);
                    assert!(
                        log.contains("fault injected at after_commit:deleter"),
                        "namenode {i} died, but not at the deleter's fault point:\n{}",
                        arbor_tests::process::tail(&cluster.namenode_log(i), 30)
                    );
                    killed.push(i);
                    cluster.restart_namenode(i, &[]).await;
                }
            }
            let running = (0..2).find(|&i| cluster.namenode_running(i)).unwrap_or(0);
            let on = cluster.client_on(running).await;
            if let Ok(Ok(report)) = tokio::time::timeout(secs(10), on.fsck("/")).await
                && report.pending_deletes == 0
                && !killed.is_empty()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "deletion did not finish; namenodes killed by the fault: {killed:?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        eprintln!("namenodes killed during the deletion: {killed:?}");

        let report = cluster.fsck().await;
        assert!(report.healthy, "fsck: {report:?}");
        assert_eq!(report.pending_deletes, 0);
        assert_eq!(report.files, 0, "{report:?}");
        assert_all_rows_gone(&rows, &tree).await;
    })
    .await;
}
