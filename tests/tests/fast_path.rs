//! The fast path keeps its promises: each namespace operation costs the durable rounds it
//! should (counted by the namenode, per operation), and answering early weakens nothing — a
//! change committed through one namenode is seen at once through the other, and a directory
//! removed while another namenode adds to it never ends up with orphans.

use std::collections::BTreeMap;
use std::time::Duration;

use arbor_client::Client;
use arbor_tests::mount::Mount;
use arbor_tests::{Config, TestCluster, secs, within};

/// (single-shard, two-phase) commits per operation, summed over every namenode.
async fn commits(cluster: &TestCluster) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for i in 0..cluster.config().namenodes {
        let info = cluster
            .client_on(i)
            .await
            .cluster_info()
            .await
            .expect("cluster info");
        for c in info.commits {
            let e = out.entry(c.op).or_default();
            e.0 += c.single_shard;
            e.1 += c.two_phase;
        }
    }
    out
}

/// Commits of each operation between two counts, leaving out the namenodes' own background
/// work (leader lease, sweeps), which runs on its own clock.
fn delta(
    before: &BTreeMap<String, (u64, u64)>,
    after: &BTreeMap<String, (u64, u64)>,
) -> BTreeMap<String, (u64, u64)> {
    let background = ["leader", "sweep", "heartbeat", "renew_lease", "deleter"];
    after
        .iter()
        .filter(|(op, _)| !background.iter().any(|b| op.contains(b)))
        .filter_map(|(op, &(s, t))| {
            let (s0, t0) = before.get(op).copied().unwrap_or_default();
            (s != s0 || t != t0).then(|| (op.clone(), (s - s0, t - t0)))
        })
        .collect()
}

fn counts(pairs: &[(&str, (u64, u64))]) -> BTreeMap<String, (u64, u64)> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mkdir_and_create_are_one_single_shard_commit_each() {
    within(secs(300), async {
        let cluster = TestCluster::start(Config {
            shards: 4,
            namenodes: 2,
            ..Config::default()
        })
        .await;
        let a = cluster.client_on(0).await;
        let b = cluster.client_on(1).await;
        a.mkdir("/top", 0o755, false).await.expect("mkdir");
        let before = commits(&cluster).await;
        for i in 0..20 {
            a.mkdir(&format!("/top/d{i}"), 0o755, false)
                .await
                .expect("mkdir");
            a.create(&format!("/top/d{i}/f"), 0o644, false)
                .await
                .expect("create");
            a.create(&format!("/top/g{i}"), 0o644, false)
                .await
                .expect("create");
            // Through the other namenode at once: the commit was answered only when durable
            // and readable.
            let st = b
                .stat(&format!("/top/d{i}/f"))
                .await
                .expect("stat through B");
            assert_eq!(st.size, 0);
            let dir = b.stat(&format!("/top/d{i}")).await.expect("stat through B");
            assert_eq!(dir.children, 1, "d{i}'s child count through B");
        }
        // Four shards: a directory's content lands away from its inode most of the time, and
        // still every mkdir and create is one shard's commit.
        assert_eq!(
            delta(&before, &commits(&cluster).await),
            counts(&[("mkdir", (20, 0)), ("create", (40, 0))])
        );

        // A file renamed within its directory is one shard's commit too.
        let before = commits(&cluster).await;
        for i in 0..20 {
            a.rename(&format!("/top/g{i}"), &format!("/top/h{i}"))
                .await
                .expect("rename");
        }
        assert_eq!(
            delta(&before, &commits(&cluster).await),
            counts(&[("rename", (20, 0))])
        );
        let top = b.stat("/top").await.expect("stat");
        assert_eq!(top.children, 40);
        assert!(cluster.fsck().await.healthy);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_removed_under_concurrent_creates_keeps_no_orphans() {
    within(secs(300), async {
        let cluster = TestCluster::start(Config {
            shards: 3,
            namenodes: 2,
            ..Config::default()
        })
        .await;
        let a = cluster.client_on(0).await;
        let b = cluster.client_on(1).await;
        for round in 0..30 {
            let dir = format!("/race{round}");
            a.mkdir(&dir, 0o755, false).await.expect("mkdir");
            // B keeps creating in the directory while A removes it whenever it is empty.
            let creator = {
                let b: Client = b.clone();
                let dir = dir.clone();
                tokio::spawn(async move {
                    let mut made = 0;
                    for i in 0..10 {
                        let path = format!("{dir}/f{i}");
                        match b.create(&path, 0o644, false).await {
                            Ok(_) => {
                                made += 1;
                                b.delete(&path, false).await.expect("delete");
                            }
                            Err(_) => break,
                        }
                    }
                    made
                })
            };
            let mut removed = false;
            for _ in 0..50 {
                if a.rmdir(&dir).await.is_ok() {
                    removed = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            creator.await.expect("creator");
            if !removed {
                a.rmdir(&dir).await.expect("rmdir once the creator is done");
            }
            // A create after the removal is refused: the directory is gone.
            assert!(
                b.create(&format!("{dir}/late"), 0o644, false)
                    .await
                    .is_err()
            );
        }
        let report = cluster.fsck().await;
        assert!(report.healthy, "{report:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_made_through_the_mount_costs_one_create_and_one_data_commit() {
    within(secs(300), async {
        let cluster = TestCluster::start(Config {
            shards: 2,
            namenodes: 1,
            ..Config::default()
        })
        .await;
        let mount = Mount::start(&cluster, "");
        let dir = mount.path().join("many");
        std::fs::create_dir(&dir).expect("mkdir");
        let before = commits(&cluster).await;
        for i in 0..20 {
            std::fs::write(dir.join(format!("f{i}")), format!("file {i}\n")).expect("write");
        }
        // create + write + close: the create opened the file for writing in the same
        // transaction, and close committed the bytes and released the lease in one round.
        assert_eq!(
            delta(&before, &commits(&cluster).await),
            counts(&[("open_write", (20, 0)), ("commit_write", (20, 0))])
        );
        for i in 0..20 {
            let got = std::fs::read_to_string(dir.join(format!("f{i}"))).expect("read");
            assert_eq!(got, format!("file {i}\n"));
        }
        // Seen through the library as well, with the right size.
        let client = cluster.client().await;
        let st = client.stat("/many/f7").await.expect("stat");
        assert_eq!(st.size, "file 7\n".len() as u64);
        drop(mount);
        assert!(cluster.fsck().await.healthy);
    })
    .await;
}
