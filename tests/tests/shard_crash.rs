//! A metastore shard SIGKILLed in the middle of a stream of creates, mkdirs and cross-shard
//! renames, then restarted on its data: every operation that was acknowledged is there
//! afterwards (a commit is durable before it is acknowledged), operations that got no answer
//! are all-or-nothing, and the namespace is consistent.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arbor_proto::namenode::ErrorCode;
use arbor_tests::namespace::{is_dir, join, ok, walk};
use arbor_tests::{Config, TestCluster, secs, within};
use rand::Rng;
use tokio::task::JoinSet;

const WORKERS: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
}

/// What one worker knows of its subtree.
#[derive(Default, Debug)]
struct Model {
    /// Acknowledged: path -> (kind, inode).
    known: BTreeMap<String, (Kind, u64)>,
    /// Creates and mkdirs that got no answer: they may or may not have happened.
    maybe_created: Vec<(String, Kind)>,
    /// Renames that got no answer: (src, dst, inode); the file is at exactly one of the two.
    maybe_renamed: Vec<(String, String, u64)>,
    acked: usize,
}

fn ambiguous(e: &arbor_client::Error) -> bool {
    matches!(e.code, ErrorCode::Unavailable | ErrorCode::Busy)
}

async fn work(client: arbor_client::Client, base: String, stop: Arc<AtomicBool>) -> Model {
    let mut model = Model::default();
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let dirs: Vec<String> = std::iter::once(base.clone())
            .chain(
                model
                    .known
                    .iter()
                    .filter(|(_, (k, _))| *k == Kind::Dir)
                    .map(|(p, _)| p.clone()),
            )
            .collect();
        let files: Vec<(String, u64)> = model
            .known
            .iter()
            .filter(|(_, (k, _))| *k == Kind::File)
            .map(|(p, (_, ino))| (p.clone(), *ino))
            .collect();
        let (choice, parent, target, file) = {
            let mut rng = rand::rng();
            (
                rng.random_range(0..100),
                dirs[rng.random_range(0..dirs.len())].clone(),
                dirs[rng.random_range(0..dirs.len())].clone(),
                (!files.is_empty()).then(|| files[rng.random_range(0..files.len())].clone()),
            )
        };
        if choice < 35 || (choice >= 60 && file.is_none()) {
            let path = join(&parent, &format!("f{n}"));
            match client.create(&path, 0o644, false).await {
                Ok(s) => {
                    model.known.insert(path, (Kind::File, s.ino));
                    model.acked += 1;
                }
                Err(e) if ambiguous(&e) => model.maybe_created.push((path, Kind::File)),
                Err(e) => panic!("create {path}: {:?}: {}", e.code, e.message),
            }
        } else if choice < 60 {
            let path = join(&parent, &format!("d{n}"));
            match client.mkdir(&path, 0o755, false).await {
                Ok(s) => {
                    model.known.insert(path, (Kind::Dir, s.ino));
                    model.acked += 1;
                }
                Err(e) if ambiguous(&e) => model.maybe_created.push((path, Kind::Dir)),
                Err(e) => panic!("mkdir {path}: {:?}: {}", e.code, e.message),
            }
        } else {
            let (src, ino) = file.expect("a file to move");
            let name = src.rsplit('/').next().expect("a name").to_string();
            let dst = join(&target, &name);
            if dst == src {
                continue;
            }
            match client.rename(&src, &dst).await {
                Ok(()) => {
                    model.known.remove(&src);
                    model.known.insert(dst, (Kind::File, ino));
                    model.acked += 1;
                }
                Err(e) if ambiguous(&e) => {
                    model.known.remove(&src);
                    model.maybe_renamed.push((src, dst, ino));
                }
                Err(e) => panic!("rename {src} {dst}: {:?}: {}", e.code, e.message),
            }
        }
    }
    model
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_operations_survive_a_shard_kill() {
    let cluster = Arc::new(TestCluster::start(Config::default()).await);
    let c = cluster.clone();
    within(secs(400), async move {
        let cluster = c;
        let client = cluster.client().await;
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = JoinSet::new();
        for w in 0..WORKERS {
            let base = format!("/w{w}");
            ok(client.mkdir(&base, 0o755, false).await, &base);
            let client = cluster.client().await;
            let stop = stop.clone();
            workers.spawn(async move { (base.clone(), work(client, base, stop).await) });
        }

        // Shard 1 first, then shard 0 (which also holds the root and the cluster's own rows),
        // each killed while the stream runs and restarted on the same directory and port.
        for shard in [1, 0] {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let status = cluster.kill_shard(shard);
            assert_eq!(
                status.and_then(|s| s.signal()),
                Some(libc::SIGKILL),
                "shard {shard} should have been running until killed: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(1000)).await;
            cluster.restart_shard(shard).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.store(true, Ordering::Relaxed);

        let mut models = Vec::new();
        while let Some(done) = workers.join_next().await {
            models.push(done.expect("worker task"));
        }
        let acked: usize = models.iter().map(|(_, m)| m.acked).sum();
        let unanswered: usize = models
            .iter()
            .map(|(_, m)| m.maybe_created.len() + m.maybe_renamed.len())
            .sum();
        eprintln!("{acked} operations acknowledged, {unanswered} unanswered");
        assert!(acked > 0, "no operation was acknowledged");

        let limit = cluster.intent_timeout() + secs(15);
        let report = cluster.wait_no_open_intents(limit).await;
        assert!(report.healthy, "fsck: {report:?}");

        for (base, model) in &models {
            let actual: BTreeMap<String, (Kind, u64)> = walk(&client, base)
                .await
                .into_iter()
                .map(|(p, s)| (p, (if is_dir(&s) { Kind::Dir } else { Kind::File }, s.ino)))
                .collect();
            let mut accounted: Vec<&String> = Vec::new();
            for (path, want) in &model.known {
                assert_eq!(
                    actual.get(path),
                    Some(want),
                    "acknowledged {path} ({want:?}) is missing or changed"
                );
                accounted.push(path);
            }
            for (path, kind) in &model.maybe_created {
                if let Some((k, _)) = actual.get(path) {
                    assert_eq!(k, kind, "{path} exists with the wrong kind");
                    accounted.push(path);
                }
            }
            for (src, dst, ino) in &model.maybe_renamed {
                let at: Vec<&String> = [src, dst]
                    .into_iter()
                    .filter(|p| actual.get(*p) == Some(&(Kind::File, *ino)))
                    .collect();
                assert_eq!(
                    at.len(),
                    1,
                    "unanswered rename {src} -> {dst}: file at {at:?}"
                );
                accounted.push(at[0]);
            }
            // Workers create only under acknowledged directories: nothing else may exist.
            let extra: Vec<&String> = actual.keys().filter(|p| !accounted.contains(p)).collect();
            assert!(
                extra.is_empty(),
                "entries nobody created under {base}: {extra:?}"
            );
        }

        let report = cluster.fsck().await;
        assert!(report.healthy, "final fsck: {report:?}");
    })
    .await;
}
