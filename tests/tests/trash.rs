//! Trash as `hdfs dfs -rm` users know it: with the cluster's trash interval set, `-rm` moves
//! a path into `/user/NAME/.Trash/Current/` under its full path in one rename, `-mv` brings it
//! back, `-skipTrash` and removals inside the trash delete, `-expunge` checkpoints and
//! deletes old checkpoints, and the leader empties checkpoints older than the interval.

use std::time::{Duration, Instant};

use arbor_tests::{Config, TestCluster, commits_between, secs, within};

const TRASH: &str = "/user/root/.Trash";

fn cluster_config(interval: &str) -> Config {
    Config {
        shards: 2,
        namenodes: 2,
        trash_interval: Some(interval.to_string()),
        ..Config::default()
    }
}

async fn exists(cluster: &TestCluster, path: &str) -> bool {
    cluster.cli(&["dfs", "-test", "-e", path]).await.code == 0
}

/// Writes `text` to `path`, making its directories first.
async fn put(cluster: &TestCluster, text: &str, path: &str) {
    let parent = path.rsplit_once('/').map_or("/", |(p, _)| p);
    if !parent.is_empty() {
        assert_eq!(cluster.cli(&["dfs", "-mkdir", "-p", parent]).await.code, 0);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("f");
    std::fs::write(&local, text).expect("local file");
    let out = cluster
        .cli(&["dfs", "-put", "-f", local.to_str().expect("utf-8"), path])
        .await;
    assert_eq!(out.code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_paths_go_to_the_trash_and_come_back_with_mv() {
    within(secs(300), async {
        let cluster = TestCluster::start(cluster_config("1d")).await;
        assert_eq!(cluster.cli(&["dfs", "-mkdir", "/data"]).await.code, 0);
        put(&cluster, "first\n", "/data/f").await;

        let out = cluster.cli(&["dfs", "-rm", "/data/f"]).await;
        assert_eq!(out.code, 0, "{out}");
        assert_eq!(
            out.stdout,
            format!("Moved: '/data/f' to trash at: {TRASH}/Current/data/f\n")
        );
        assert!(!exists(&cluster, "/data/f").await);
        let out = cluster
            .cli(&["dfs", "-mv", &format!("{TRASH}/Current/data/f"), "/data/f"])
            .await;
        assert_eq!(out.code, 0, "{out}");
        assert_eq!(
            cluster.cli(&["dfs", "-cat", "/data/f"]).await.stdout,
            "first\n"
        );

        // The same name removed twice: the second takes the time as a suffix.
        assert_eq!(cluster.cli(&["dfs", "-rm", "/data/f"]).await.code, 0);
        put(&cluster, "second\n", "/data/f").await;
        let out = cluster.cli(&["dfs", "-rm", "/data/f"]).await;
        assert_eq!(out.code, 0, "{out}");
        let at = out
            .stdout
            .trim()
            .strip_prefix(&format!(
                "Moved: '/data/f' to trash at: {TRASH}/Current/data/f"
            ))
            .unwrap_or_else(|| panic!("{out}"))
            .to_string();
        assert!(
            !at.is_empty() && at.bytes().all(|b| b.is_ascii_digit()),
            "{out}"
        );
        let second = format!("{TRASH}/Current/data/f{at}");
        assert_eq!(
            cluster.cli(&["dfs", "-cat", &second]).await.stdout,
            "second\n"
        );

        // A directory needs -r, as without trash; with it, the tree moves whole.
        put(&cluster, "in a tree\n", "/data/sub/g").await;
        let out = cluster.cli(&["dfs", "-rm", "/data"]).await;
        assert_eq!(out.code, 1, "{out}");
        assert_eq!(out.stderr, "rm: `/data': Is a directory\n");
        assert!(exists(&cluster, "/data/sub/g").await);
        let out = cluster.cli(&["dfs", "-rm", "-r", "/data"]).await;
        assert_eq!(out.code, 0, "{out}");
        assert!(!exists(&cluster, "/data").await);
        // Current/data holds the files removed before: the tree takes a suffix too.
        let tree = out
            .stdout
            .trim()
            .strip_prefix("Moved: '/data' to trash at: ")
            .unwrap_or_else(|| panic!("{out}"))
            .to_string();
        assert!(tree.starts_with(&format!("{TRASH}/Current/data")), "{out}");
        assert_eq!(
            cluster
                .cli(&["dfs", "-cat", &format!("{tree}/sub/g")])
                .await
                .stdout,
            "in a tree\n"
        );

        // -skipTrash deletes; so does removing what is in the trash already.
        put(&cluster, "gone\n", "/other").await;
        let out = cluster.cli(&["dfs", "-rm", "-skipTrash", "/other"]).await;
        assert_eq!(out.stdout, "Deleted /other\n", "{out}");
        assert!(!exists(&cluster, &format!("{TRASH}/Current/other")).await);
        let out = cluster.cli(&["dfs", "-rm", &second]).await;
        assert_eq!(out.stdout, format!("Deleted {second}\n"), "{out}");
        assert!(!exists(&cluster, &second).await);
        // The trash itself, or what holds it, is refused.
        let out = cluster.cli(&["dfs", "-rm", "-r", "/user/root"]).await;
        assert_eq!(out.code, 1, "{out}");
        assert!(
            out.stderr
                .contains("Cannot move \"/user/root\" to the trash, as it contains the trash"),
            "{out}"
        );
        assert!(exists(&cluster, TRASH).await);
        // -rm -f of a missing path stays silent.
        let out = cluster.cli(&["dfs", "-rm", "-f", "/nothing"]).await;
        assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out}");

        // -expunge: the current trash becomes a checkpoint; -immediate deletes them all.
        let out = cluster.cli(&["dfs", "-expunge"]).await;
        assert_eq!(out.code, 0, "{out}");
        let checkpoint = out
            .stdout
            .trim()
            .strip_prefix("Created trash checkpoint: ")
            .unwrap_or_else(|| panic!("{out}"))
            .to_string();
        let name = checkpoint.rsplit('/').next().unwrap_or_default();
        assert!(
            name.len() == 12 && name.bytes().all(|b| b.is_ascii_digit()),
            "{out}"
        );
        assert!(!exists(&cluster, &format!("{TRASH}/Current")).await);
        let moved_tree = tree.replace("/Current/", &format!("/{name}/"));
        assert!(exists(&cluster, &format!("{moved_tree}/sub/g")).await);
        let out = cluster.cli(&["dfs", "-expunge", "-immediate"]).await;
        assert_eq!(
            out.stdout,
            format!("Deleted trash checkpoint: {checkpoint}\n"),
            "{out}"
        );
        assert!(!exists(&cluster, &checkpoint).await);
        assert!(cluster.fsck().await.healthy);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_empties_the_trash_once_the_interval_has_passed() {
    within(secs(300), async {
        let cluster = TestCluster::start(cluster_config("2s")).await;
        put(&cluster, "old\n", "/x/f").await;
        assert_eq!(cluster.cli(&["dfs", "-rm", "-r", "/x"]).await.code, 0);
        assert!(exists(&cluster, &format!("{TRASH}/Current/x/f")).await);
        // Checkpointed within one interval, deleted one interval later.
        let client = cluster.client().await;
        let start = Instant::now();
        loop {
            let listed: Vec<String> = client
                .list(TRASH)
                .await
                .expect("list the trash")
                .into_iter()
                .map(|e| e.name)
                .collect();
            if listed.is_empty() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the trash still holds {listed:?} after {:?}",
                start.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(!exists(&cluster, "/x").await);
        assert!(cluster.fsck().await.healthy);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_of_ten_thousand_files_moves_to_the_trash_in_one_rename() {
    within(secs(600), async {
        let cluster = TestCluster::start(cluster_config("1d")).await;
        let client = cluster.client().await;
        client.mkdir("/big", 0o755, false).await.expect("mkdir");
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let client = client.clone();
                tokio::spawn(async move {
                    for i in (t..10_000).step_by(16) {
                        client
                            .create(&format!("/big/f{i:05}"), 0o644, false)
                            .await
                            .expect("create");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("creating task");
        }
        // The trash's directories exist already, so only the move is left to do.
        assert_eq!(cluster.cli(&["dfs", "-mkdir", "/small"]).await.code, 0);
        assert_eq!(cluster.cli(&["dfs", "-rm", "-r", "/small"]).await.code, 0);

        let before = cluster.commits().await;
        let out = cluster.cli(&["dfs", "-rm", "-r", "/big"]).await;
        assert_eq!(out.code, 0, "{out}");
        let moved = commits_between(&before, &cluster.commits().await);
        let renames = moved.get("rename").map_or(0, |(s, t)| s + t);
        assert_eq!(renames, 1, "one rename moves the tree: {moved:?}");
        assert!(
            moved.keys().all(|op| op == "rename" || op == "mkdir"),
            "nothing but the move and its parents: {moved:?}"
        );
        let summary = client
            .content_summary(&format!("{TRASH}/Current/big"))
            .await
            .expect("count in the trash");
        assert_eq!(summary.files, 10_000);
        assert!(!exists(&cluster, "/big").await);
    })
    .await;
}
