//! Namenodes dying in the middle of two-phase commits.
//!
//! - A storm of cross-shard renames from clients that prefer namenode 0 while namenode 0 is
//!   SIGKILLed and restarted at random moments: clients fail over to namenode 1 with the same
//!   call id, so every acknowledged rename is in effect, nothing is lost or duplicated, the
//!   shards resolve what the dead coordinator left prepared, and namenode 1 serves throughout.
//! - For each step of the protocol, namenode 0 kills itself there (ARBOR_FAULT) during one
//!   cross-shard rename: through namenode 1 the rename is then all or nothing (all when the
//!   primary had committed), no intent stays open, and the same call retried on namenode 1
//!   gets an answer instead of a spurious error.
//! - An answer is an answer: once a retried call is acknowledged after such a crash, the next
//!   call sees its effect at once, even while the shards are still finishing the transaction
//!   the dead coordinator left.

use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use arbor_client::Client;
use arbor_proto::namenode::{ErrorCode, RenameRequest};
use arbor_tests::namespace::{join, ok};
use arbor_tests::raw::Caller;
use arbor_tests::rows::{Rows, dirs_on_distinct_shards, dirs_on_shards};
use arbor_tests::{Config, TestCluster, secs, superuser, within};
use rand::Rng;
use tokio::task::JoinSet;

const DIRS: usize = 4;
const WORKERS: usize = 3;
const FILES_EACH: usize = 12;
const KILLS: usize = 5;

/// Where one worker's file is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Place {
    /// In this directory, by its last acknowledged rename.
    Known(usize),
    /// A rename of it ended without an answer: in one of these two directories.
    Either(usize, usize),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn renames_survive_namenode_kills_at_random_moments() {
    let cluster = Arc::new(TestCluster::start(Config::default()).await);
    let c = cluster.clone();
    within(secs(400), async move {
        let cluster = c;
        let client = cluster.client_on(1).await;
        let rows = Rows::open(&cluster).await;
        let dirs = Arc::new(dirs_on_distinct_shards(&client, &rows, "/", "d", DIRS).await);
        let addrs = cluster.namenode_addrs();
        let stop = Arc::new(AtomicBool::new(false));
        let in_flight = Arc::new(AtomicUsize::new(0));

        let mut workers = JoinSet::new();
        for w in 0..WORKERS {
            let mut inos = Vec::new();
            for k in 0..FILES_EACH {
                let path = join(&dirs[k % DIRS], &format!("w{w}-{k:02}"));
                inos.push(ok(client.create(&path, 0o644, false).await, &path).ino);
            }
            let (dirs, addrs, stop, in_flight) =
                (dirs.clone(), addrs.clone(), stop.clone(), in_flight.clone());
            workers.spawn(async move {
                let mut places: Vec<Place> =
                    (0..FILES_EACH).map(|k| Place::Known(k % DIRS)).collect();
                let (mut acked, mut unanswered) = (0usize, 0usize);
                let mut wrong: Vec<(usize, String)> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    // Only files whose place is known move on.
                    let movable: Vec<(usize, usize)> = places
                        .iter()
                        .enumerate()
                        .filter_map(|(k, p)| match p {
                            Place::Known(d) => Some((k, *d)),
                            Place::Either(..) => None,
                        })
                        .collect();
                    if movable.is_empty() {
                        break;
                    }
                    let ((k, from), step) = {
                        let mut rng = rand::rng();
                        (
                            movable[rng.random_range(0..movable.len())],
                            rng.random_range(1..DIRS),
                        )
                    };
                    let to = (from + step) % DIRS;
                    let name = format!("w{w}-{k:02}");
                    let (src, dst) = (join(&dirs[from], &name), join(&dirs[to], &name));
                    // A new client per call starts with namenode 0 whenever it is up, so the
                    // kills land on renames in flight there.
                    let client = Client::connect(&addrs)
                        .await
                        .expect("connect")
                        .with_identity(superuser());
                    in_flight.fetch_add(1, Ordering::SeqCst);
                    let result = client.rename(&src, &dst).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    match result {
                        Ok(()) => {
                            places[k] = Place::Known(to);
                            acked += 1;
                        }
                        // No answer within the client's failover budget: either outcome.
                        Err(e) if matches!(e.code, ErrorCode::Unavailable | ErrorCode::Busy) => {
                            eprintln!("rename {src} {dst} unanswered: {:?}: {}", e.code, e.message);
                            places[k] = Place::Either(from, to);
                            unanswered += 1;
                        }
                        // A wrong answer: noted, and checked against where the file really
                        // is once everything has settled.
                        Err(e) => {
                            let why = format!("rename {src} {dst}: {:?}: {}", e.code, e.message);
                            wrong.push((k, why));
                            places[k] = Place::Either(from, to);
                        }
                    }
                }
                (w, inos, places, acked, unanswered, wrong)
            });
        }

        // Namenode 1 must answer throughout, each call promptly.
        let watcher = {
            let client = cluster.client_on(1).await;
            let (dirs, stop) = (dirs.clone(), stop.clone());
            tokio::spawn(async move {
                let mut calls = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let dir = &dirs[calls as usize % DIRS];
                    let listed = tokio::time::timeout(secs(10), client.list(dir)).await;
                    match listed {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => panic!("namenode 1: list {dir}: {:?}: {}", e.code, e.message),
                        Err(_) => panic!("namenode 1: list {dir} took over 10 s"),
                    }
                    let root = tokio::time::timeout(secs(10), client.stat("/")).await;
                    assert!(
                        matches!(root, Ok(Ok(_))),
                        "namenode 1: stat / failed: {root:?}"
                    );
                    calls += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                calls
            })
        };

        let mut in_flight_at_kill = Vec::new();
        for _ in 0..KILLS {
            let (before, down) = {
                let mut rng = rand::rng();
                (rng.random_range(300..1500), rng.random_range(100..800))
            };
            tokio::time::sleep(Duration::from_millis(before)).await;
            in_flight_at_kill.push(in_flight.load(Ordering::SeqCst));
            let status = cluster.kill_namenode(0);
            assert_eq!(
                status.and_then(|s| s.signal()),
                Some(libc::SIGKILL),
                "namenode 0 should have been running until killed: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(down)).await;
            cluster.restart_namenode(0, &[]).await;
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
        stop.store(true, Ordering::Relaxed);

        let mut results = Vec::new();
        while let Some(done) = workers.join_next().await {
            results.push(done.expect("worker task"));
        }
        let watched = watcher.await.expect("namenode 1 kept serving");
        let acked: usize = results.iter().map(|r| r.3).sum();
        let unanswered: usize = results.iter().map(|r| r.4).sum();
        eprintln!(
            "{acked} renames acknowledged, {unanswered} unanswered, renames in flight at each \
             kill: {in_flight_at_kill:?}, namenode 1 answered {watched} watcher rounds"
        );
        assert!(acked > 0, "no rename was acknowledged");

        // What the dead coordinators left prepared is resolved by the shards.
        let limit = cluster.intent_timeout() + secs(10);
        let report = cluster.wait_no_open_intents(limit).await;
        let mut problems = Vec::new();
        if !report.healthy || report.files != (WORKERS * FILES_EACH) as u64 {
            problems.push(format!("fsck: {report:?}"));
        }

        let client = cluster.client().await;
        let mut listed = Vec::new();
        for dir in dirs.iter() {
            let names: Vec<String> = ok(client.list(dir).await, dir)
                .into_iter()
                .map(|e| e.name)
                .collect();
            listed.push(names);
        }
        for (w, inos, places, _, _, wrong) in &results {
            for (k, why) in wrong {
                let name = format!("w{w}-{k:02}");
                let found: Vec<&str> = (0..DIRS)
                    .filter(|&d| listed[d].contains(&name))
                    .map(|d| dirs[d].as_str())
                    .collect();
                problems.push(format!(
                    "{why} (a retried call must get its first answer; after settling, {name} is \
                     in {found:?}, where the worker's last acknowledged rename had put it before \
                     this call)"
                ));
            }
            for (k, place) in places.iter().enumerate() {
                let name = format!("w{w}-{k:02}");
                let found: Vec<usize> = (0..DIRS).filter(|&d| listed[d].contains(&name)).collect();
                if found.len() != 1 {
                    problems.push(format!("{name} found in directories {found:?}"));
                    continue;
                }
                match *place {
                    Place::Known(d) if found[0] != d => problems.push(format!(
                        "{name} is in {}, but its last acknowledged rename put it in {}",
                        dirs[found[0]], dirs[d]
                    )),
                    Place::Either(a, b) if found[0] != a && found[0] != b => {
                        problems.push(format!(
                            "{name} is in {}, neither source nor target of its last rename",
                            dirs[found[0]]
                        ))
                    }
                    _ => {}
                }
                let status = ok(client.stat(&join(&dirs[found[0]], &name)).await, &name);
                if status.ino != inos[k] {
                    problems.push(format!("{name} changed identity"));
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    })
    .await;
}

/// Namenode 0 runs with ARBOR_FAULT=POINT:rename and gets one cross-shard rename.
async fn crash_during_rename_at(point: &str, committed: bool) {
    let cluster = TestCluster::start(Config {
        namenode_env: vec![(0, "ARBOR_FAULT".into(), format!("{point}:rename"))],
        ..Config::default()
    })
    .await;
    within(secs(120), async {
        let client = cluster.client_on(1).await;
        let rows = Rows::open(&cluster).await;
        let dirs = dirs_on_distinct_shards(&client, &rows, "/", "d", 2).await;
        let (src, dst) = (join(&dirs[0], "f"), join(&dirs[1], "f"));
        let ino = ok(client.create(&src, 0o644, false).await, &src).ino;

        let caller = Caller::new();
        let request = RenameRequest {
            ctx: Some(caller.ctx(7)),
            src: src.clone(),
            dst: dst.clone(),
            noreplace: false,
        };
        let sent = tokio::time::timeout(secs(30), cluster.raw_namenode(0).rename(request.clone()))
            .await
            .expect("namenode 0 neither answered nor died within 30 s");
        assert!(
            sent.is_err(),
            "namenode 0 answered the rename although it should have died at {point}"
        );
        let status = cluster.wait_namenode_exit(0, secs(10)).await;
        assert_eq!(
            status.and_then(|s| s.signal()),
            Some(libc::SIGKILL),
            "namenode 0 should have killed itself at {point}: {status:?}"
        );
        let log = std::fs::read_to_string(cluster.namenode_log(0)).unwrap_or_default();
        assert!(
            log.contains(&format!("fault injected at {point}")),
            "namenode 0's log does not show the fault at {point}"
        );

        // Namenode 1 answers at once, before the intents are resolved.
        ok(
            client.stat("/").await,
            "stat / on namenode 1 right after the crash",
        );

        let limit = cluster.intent_timeout() + secs(10);
        let report = cluster.wait_no_open_intents(limit).await;
        assert!(
            report.healthy,
            "fsck after the crash at {point}: {report:?}"
        );

        let at_src = client.stat(&src).await;
        let at_dst = client.stat(&dst).await;
        match (&at_src, &at_dst) {
            (Ok(s), Err(e)) if e.code == ErrorCode::NotFound => {
                assert!(
                    !committed,
                    "{point}: the primary committed, yet {src} is still there"
                );
                assert_eq!(s.ino, ino, "{src} changed identity");
            }
            (Err(e), Ok(d)) if e.code == ErrorCode::NotFound => {
                assert!(
                    committed,
                    "{point}: nothing was committed, yet {dst} exists"
                );
                assert_eq!(d.ino, ino, "{dst} is not the renamed file");
            }
            _ => panic!(
                "{point}: the rename is half done: {src}: {:?}, {dst}: {:?}",
                at_src.as_ref().map(|s| s.ino).map_err(|e| e.code),
                at_dst.as_ref().map(|s| s.ino).map_err(|e| e.code)
            ),
        }

        // The client would retry the same call on namenode 1: it gets an answer, not NOT_FOUND,
        // and the file ends at the target exactly once.
        let retried = cluster.raw_namenode(1).rename(request).await;
        if let Err(status) = &retried {
            panic!(
                "{point}: the retried rename on namenode 1 failed: {:?}: {}",
                arbor_tests::raw::code(status),
                status.message()
            );
        }
        expect_absent(&client, &src).await;
        assert_eq!(
            ok(client.stat(&dst).await, &dst).ino,
            ino,
            "{dst} after the retry"
        );

        // And namenode 1 moves the same file on.
        let again = join(&dirs[0], "g");
        ok(client.rename(&dst, &again).await, "rename on namenode 1");
        assert_eq!(ok(client.stat(&again).await, &again).ino, ino);
        expect_absent(&client, &dst).await;

        let report = cluster.fsck().await;
        assert!(report.healthy, "final fsck: {report:?}");
        assert_eq!(report.open_intents, 0, "open intents: {report:?}");
    })
    .await;
}

async fn expect_absent(client: &Client, path: &str) {
    arbor_tests::namespace::expect_code(client.stat(path).await, ErrorCode::NotFound, path);
}

/// Namenode 0 dies right after the primary's commit point. The source directory's entries live
/// on shard 0, which is then the primary (the lowest participant): it has applied its part
/// (the source dentry gone, the retry record written) while the target's shard still holds the
/// committed intent, until it resolves it after the intent timeout. The client's retry on
/// namenode 1 is answered from the retry record: from then on the rename must be visible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_acknowledged_after_a_crash_is_visible_at_once() {
    let cluster = TestCluster::start(Config {
        namenode_env: vec![(
            0,
            "ARBOR_FAULT".into(),
            "after_primary_commit:rename".into(),
        )],
        ..Config::default()
    })
    .await;
    within(secs(120), async {
        let client = cluster.client_on(1).await;
        let rows = Rows::open(&cluster).await;
        let dirs = dirs_on_shards(&client, &rows, "/", "d", &[0, 1]).await;
        let (src, dst) = (join(&dirs[0], "f"), join(&dirs[1], "f"));
        let ino = ok(client.create(&src, 0o644, false).await, &src).ino;

        let request = RenameRequest {
            ctx: Some(Caller::new().ctx(7)),
            src: src.clone(),
            dst: dst.clone(),
            noreplace: false,
        };
        let sent = tokio::time::timeout(secs(30), cluster.raw_namenode(0).rename(request.clone()))
            .await
            .expect("namenode 0 neither answered nor died within 30 s");
        assert!(
            sent.is_err(),
            "namenode 0 answered although it should have died"
        );
        let status = cluster.wait_namenode_exit(0, secs(10)).await;
        assert_eq!(
            status.and_then(|s| s.signal()),
            Some(libc::SIGKILL),
            "{status:?}"
        );

        // At once, as a failing-over client does: the same call on namenode 1.
        if let Err(s) = cluster.raw_namenode(1).rename(request).await {
            panic!(
                "the retried rename failed: {:?}: {}",
                arbor_tests::raw::code(&s),
                s.message()
            );
        }
        // Acknowledged: the next calls see it.
        let at_dst = client.stat(&dst).await;
        assert!(
            matches!(&at_dst, Ok(s) if s.ino == ino),
            "the rename was acknowledged, but stat {dst} gives {:?} (the target's shard has not \
             applied the committed transaction yet)",
            at_dst.map(|s| s.ino).map_err(|e| (e.code, e.message))
        );
        expect_absent(&client, &src).await;
        let next = join(&dirs[1], "g");
        ok(
            client.rename(&dst, &next).await,
            "the next rename of the file",
        );

        let report = cluster
            .wait_no_open_intents(cluster.intent_timeout() + secs(10))
            .await;
        assert!(report.healthy, "fsck: {report:?}");
        assert_eq!(ok(client.stat(&next).await, &next).ino, ino);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_before_prepare_leaves_the_rename_undone() {
    crash_during_rename_at("before_prepare", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_prepare_is_rolled_back_by_the_shards() {
    crash_during_rename_at("after_prepare", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_primary_commit_is_finished_by_the_shards() {
    crash_during_rename_at("after_primary_commit", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_commit_keeps_the_rename() {
    crash_during_rename_at("after_commit", true).await;
}
