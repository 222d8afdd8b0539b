//! The fast path keeps its promises: each namespace operation costs the durable rounds it
//! should (counted by the namenode, per operation), and answering early weakens nothing — a
//! change committed through one namenode is seen at once through the other, and a directory
//! removed while another namenode adds to it never ends up with orphans.

use std::time::Duration;

use arbor_client::{Client, ErrorCode, Identity, WriteOptions};
use arbor_tests::mount::Mount;
use arbor_tests::{Commits, Config, TestCluster, commits_between, secs, within};

fn counts(pairs: &[(&str, (u64, u64))]) -> Commits {
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
        let before = cluster.commits().await;
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
            commits_between(&before, &cluster.commits().await),
            counts(&[("mkdir", (20, 0)), ("create", (40, 0))])
        );

        // A file renamed within its directory is one shard's commit too.
        let before = cluster.commits().await;
        for i in 0..20 {
            a.rename(&format!("/top/g{i}"), &format!("/top/h{i}"))
                .await
                .expect("rename");
        }
        assert_eq!(
            commits_between(&before, &cluster.commits().await),
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
        let before = cluster.commits().await;
        let scans_before = shard_reads(&cluster, 0).await.1;
        for i in 0..20 {
            std::fs::write(dir.join(format!("f{i}")), format!("file {i}\n")).expect("write");
        }
        // create + write + close: the create, then the close's commit of the bytes (the
        // writer never needed the lease).
        assert_eq!(
            commits_between(&before, &cluster.commits().await),
            counts(&[("create", (20, 0)), ("commit_write", (20, 0))])
        );
        // A file inline since its creation has no blocks to look for: neither step scans.
        assert_eq!(
            shard_reads(&cluster, 0).await.1 - scans_before,
            0,
            "shard scans"
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_set_on_an_open_file_ride_on_its_close_commit() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::time::{Duration as D, SystemTime, UNIX_EPOCH};

    within(secs(300), async {
        let cluster = TestCluster::start(Config {
            shards: 2,
            namenodes: 1,
            ..Config::default()
        })
        .await;
        let mount = Mount::start(&cluster, "");
        let dir = mount.path().join("x");
        std::fs::create_dir(&dir).expect("mkdir");
        let when = UNIX_EPOCH + D::from_secs(1_600_000_000);
        let before = cluster.commits().await;
        // What tar does for each file as root: create, write, futimens, fchown, fchmod, close.
        for i in 0..10 {
            let path = dir.join(format!("f{i}"));
            let mut f = std::fs::File::create(&path).expect("create");
            std::io::Write::write_all(&mut f, format!("file {i}\n").as_bytes()).expect("write");
            f.set_times(std::fs::FileTimes::new().set_modified(when))
                .expect("futimens");
            std::os::unix::fs::fchown(&f, Some(4321), Some(4322)).expect("fchown");
            f.set_permissions(std::fs::Permissions::from_mode(0o640))
                .expect("fchmod");
            // Seen at once through the same mount, before the close.
            let m = f.metadata().expect("fstat");
            assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (4321, 4322, 0o640));
            assert_eq!(m.modified().expect("mtime"), when);
            drop(f);
        }
        assert_eq!(
            commits_between(&before, &cluster.commits().await),
            counts(&[("create", (10, 0)), ("commit_write", (10, 0))]),
            "the attribute changes must not cost rounds of their own"
        );
        // Durable and seen through the library after the close.
        let client = cluster.client().await;
        for i in 0..10 {
            let st = client.stat(&format!("/x/f{i}")).await.expect("stat");
            assert_eq!(
                (st.uid, st.gid, st.mode & 0o7777),
                (4321, 4322, 0o640),
                "f{i}"
            );
            let mtime = UNIX_EPOCH + D::from_nanos(st.mtime_ns as u64);
            assert_eq!(mtime, when, "f{i}: the close kept the time set before it");
            assert_eq!(st.size, format!("file {i}\n").len() as u64);
        }
        // A write after futimens moves the mtime to the close's time again.
        let path = dir.join("late");
        let mut f = std::fs::File::create(&path).expect("create");
        f.set_times(std::fs::FileTimes::new().set_modified(when))
            .expect("futimens");
        std::io::Write::write_all(&mut f, b"later\n").expect("write");
        drop(f);
        let st = client.stat("/x/late").await.expect("stat");
        let mtime = UNIX_EPOCH + D::from_nanos(st.mtime_ns as u64);
        assert!(
            mtime > SystemTime::now() - D::from_secs(600),
            "mtime {mtime:?} is the futimens time, not the write's"
        );
        drop(mount);
        assert!(cluster.fsck().await.healthy);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_made_or_moved_in_one_mount_show_in_another_long_before_the_entry_timeout() {
    within(secs(300), async {
        let (_cluster, a, b) = two_mounts().await;
        std::fs::create_dir(a.at("d1")).expect("mkdir");
        // B looks the names up first: d1 exists, "new" does not (the kernel now remembers
        // both, the absence too).
        assert!(b.at("d1").is_dir());
        assert!(!b.at("new").exists());
        assert!(!b.at("d2").exists());
        std::fs::write(a.at("new"), b"made in A\n").expect("create in A");
        std::fs::rename(a.at("d1"), a.at("d2")).expect("rename in A");
        // B's kernel may keep entries for 30 s; the change streams tell B to drop them, so
        // B sees both changes at once.
        soon("A's new name and rename", || {
            b.at("new").exists() && b.at("d2").is_dir() && !b.at("d1").exists()
        });
        // Close-to-open: the bytes are there as soon as the name is.
        assert_eq!(
            std::fs::read_to_string(b.at("new")).expect("read in B"),
            "made in A\n"
        );

        // A directory B just made: B answers lookups of new names in it itself for a
        // moment, but never hides a name B made there, even once the kernel forgot it.
        std::fs::create_dir(b.at("fresh")).expect("mkdir in B");
        for i in 0..50 {
            std::fs::write(b.at(&format!("fresh/own{i}")), b"own\n").expect("create in B");
        }
        std::fs::create_dir(b.at("fresh/sub")).expect("mkdir in B");
        std::fs::rename(b.at("fresh/own0"), b.at("fresh/moved")).expect("rename in B");
        std::fs::write("/proc/sys/vm/drop_caches", b"2").expect("drop the dentry cache");
        for i in 1..50 {
            assert!(b.at(&format!("fresh/own{i}")).exists(), "own{i} hidden");
        }
        assert!(b.at("fresh/sub").is_dir() && b.at("fresh/moved").exists());
        assert!(!b.at("fresh/own0").exists());
        // A name made there through A shows in B at once.
        std::fs::write(a.at("fresh/from_a"), b"from A\n").expect("create in A");
        soon("A's file in B's fresh directory", || {
            b.at("fresh/from_a").exists()
        });
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_file_made_renamed_over_and_made_again_keeps_working() {
    // git's pattern for every change of .git/config: make config.lock (exclusively), write
    // it, rename it over config, and soon make config.lock again. The change streams deliver
    // each step a moment later, when the names already mean something else here.
    within(secs(300), async {
        let (cluster, m, _) = two_mounts().await;
        let dir = m.at("repo");
        std::fs::create_dir(&dir).expect("mkdir");
        let (lock, config) = (dir.join("config.lock"), dir.join("config"));
        for i in 0..100 {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock)
                .unwrap_or_else(|e| panic!("round {i}: making config.lock: {e}"));
            std::io::Write::write_all(&mut f, format!("round {i}\n").as_bytes())
                .unwrap_or_else(|e| panic!("round {i}: writing config.lock: {e}"));
            drop(f);
            std::fs::rename(&lock, &config)
                .unwrap_or_else(|e| panic!("round {i}: renaming over config: {e}"));
        }
        assert_eq!(
            std::fs::read_to_string(&config).expect("read"),
            "round 99\n"
        );
        assert!(!lock.exists());
        drop(m);
        assert!(cluster.fsck().await.healthy);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_keeps_following_changes_across_shard_restarts() {
    within(secs(300), async {
        let (cluster, a, b) = two_mounts().await;
        std::fs::create_dir(a.at("d")).expect("mkdir");
        std::fs::write(a.at("d/f"), b"one\n").expect("write in A");
        assert_eq!(std::fs::metadata(b.at("d/f")).expect("stat in B").len(), 4);
        // Every shard goes down and comes back (SIGKILL): B's streams break and resume where
        // they stopped, so changes made afterwards still reach B long before its timeouts.
        for i in 0..2 {
            cluster.restart_shard(i).await;
        }
        std::fs::write(a.at("d/f"), b"two, longer\n").expect("rewrite in A");
        std::fs::write(a.at("d/g"), b"new\n").expect("create in A");
        // Resubscribing backs off up to 3 s after the shards' deaths.
        soon_within(
            "A's changes in B after the shards restarted",
            Duration::from_secs(10),
            || {
                std::fs::metadata(b.at("d/f")).map(|m| m.len()).ok() == Some(12)
                    && b.at("d/g").exists()
            },
        );
        drop((a, b));
        assert!(cluster.fsck().await.healthy);
    })
    .await;
}

/// Waits up to 3 s (a tenth of the mount's 30 s cache timeouts) for `seen`.
fn soon(what: &str, seen: impl FnMut() -> bool) {
    soon_within(what, Duration::from_secs(3), seen)
}

/// Waits up to `limit` for `seen`.
fn soon_within(what: &str, limit: Duration, mut seen: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !seen() {
        assert!(
            start.elapsed() < limit,
            "{what}: not seen after {:?}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A cluster of two shards and two namenodes, and two mounts of it with default options.
async fn two_mounts() -> (TestCluster, Mount, Mount) {
    let cluster = TestCluster::start(Config {
        shards: 2,
        namenodes: 2,
        ..Config::default()
    })
    .await;
    let a = Mount::start(&cluster, "");
    let b = Mount::start(&cluster, "");
    (cluster, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_and_contents_changed_elsewhere_reach_a_mount_that_caches_for_long() {
    use std::os::unix::fs::PermissionsExt;
    within(secs(300), async {
        let (cluster, a, b) = two_mounts().await;
        let other = cluster.client_on(1).await;
        std::fs::create_dir(a.at("d")).expect("mkdir");
        std::fs::write(a.at("d/f"), b"one\n").expect("write in A");
        // B caches the name, the attributes and the pages.
        assert_eq!(std::fs::read(b.at("d/f")).expect("read in B"), b"one\n");
        assert_eq!(std::fs::metadata(b.at("d/f")).expect("stat").len(), 4);

        // Close-to-open holds without waiting for anything: the open asks the namenode.
        std::fs::write(a.at("d/f"), b"two, longer\n").expect("rewrite in A");
        assert_eq!(
            std::fs::read(b.at("d/f")).expect("read in B"),
            b"two, longer\n"
        );
        // Read again, unchanged: B's kernel may keep the pages. Rewritten elsewhere with the
        // same size: the next open in B must not serve the kept pages.
        assert_eq!(
            std::fs::read(b.at("d/f")).expect("read in B"),
            b"two, longer\n"
        );
        std::fs::write(a.at("d/f"), b"TWO, LONGER\n").expect("same-size rewrite in A");
        assert_eq!(
            std::fs::read(b.at("d/f")).expect("read in B"),
            b"TWO, LONGER\n"
        );
        // A size changed elsewhere shows in B's stat (no open in B).
        std::fs::write(a.at("d/f"), b"three, longer still\n").expect("rewrite in A");
        soon("the new size", || {
            std::fs::metadata(b.at("d/f")).map(|m| m.len()).ok() == Some(20)
        });
        // A mode set through another namenode.
        other.chmod("/d/f", 0o600).await.expect("chmod");
        soon("the new mode", || {
            std::fs::metadata(b.at("d/f"))
                .map(|m| m.permissions().mode() & 0o7777)
                .ok()
                == Some(0o600)
        });
        // A directory's times, moved by an entry made in it elsewhere.
        let before = std::fs::metadata(b.at("d"))
            .and_then(|m| m.modified())
            .expect("stat d");
        std::thread::sleep(Duration::from_millis(10));
        std::fs::create_dir(a.at("d/sub")).expect("mkdir in A");
        soon("the directory's new mtime", || {
            std::fs::metadata(b.at("d"))
                .and_then(|m| m.modified())
                .expect("stat d")
                > before
        });
        // A file removed elsewhere.
        std::fs::remove_file(a.at("d/f")).expect("unlink in A");
        soon("the removal", || !b.at("d/f").exists());
        // B's own changes still cost nothing extra: made, written, stat-ed from its caches.
        std::fs::write(b.at("d/own"), b"own\n").expect("create in B");
        assert_eq!(std::fs::metadata(b.at("d/own")).expect("stat").len(), 4);
        // A made d, so A answered for the names in it; B's new name reaches A soon.
        soon("B's file in A", || a.at("d/own").exists());
        assert_eq!(std::fs::read(a.at("d/own")).expect("read in A"), b"own\n");
        drop((a, b));
        assert!(cluster.fsck().await.healthy);
    })
    .await;
}

/// (Get calls, Scan calls) the namenode `i` has sent to the shards so far.
async fn shard_reads(cluster: &TestCluster, i: usize) -> (u64, u64) {
    let info = cluster
        .client_on(i)
        .await
        .cluster_info()
        .await
        .expect("cluster info");
    (info.shard_gets, info.shard_scans)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_kept_under_lease_never_hide_a_change_made_through_another_namenode() {
    within(secs(300), async {
        let cluster = TestCluster::start(Config {
            shards: 4,
            namenodes: 2,
            ..Config::default()
        })
        .await;
        let a = cluster.client_on(0).await;
        let b = cluster.client_on(1).await;
        let bob = Identity {
            uid: 1000,
            gids: vec![1000],
            user: "bob".into(),
        };
        let b_bob = cluster.client_on(1).await.with_identity(bob);

        // A deep path: through B, each stat reads only its last component once the
        // directories above it are kept.
        let deep = "/l/a/b/c/d";
        a.mkdir(deep, 0o755, true).await.expect("mkdir -p");
        a.create(&format!("{deep}/f"), 0o644, false)
            .await
            .expect("create");
        b.stat(&format!("{deep}/f")).await.expect("stat");
        let before = shard_reads(&cluster, 1).await.0;
        let stats = 50;
        for _ in 0..stats {
            b.stat(&format!("{deep}/f")).await.expect("stat");
        }
        let gets = shard_reads(&cluster, 1).await.0 - before;
        assert!(
            gets * 2 <= stats * 3,
            "{gets} shard reads for {stats} stats of a path six directories deep"
        );

        for round in 0..8 {
            let d = format!("/l/d{round}");
            let e = format!("/l/e{round}");
            a.mkdir(&format!("{d}/s"), 0o755, true)
                .await
                .expect("mkdir -p");
            a.create(&format!("{d}/s/f"), 0o644, false)
                .await
                .expect("create");
            // B and bob through B walk through d and d/s, and keep them.
            for _ in 0..3 {
                b.stat(&format!("{d}/s/f")).await.expect("stat through B");
                b_bob
                    .stat(&format!("{d}/s/f"))
                    .await
                    .expect("bob's stat through B");
            }

            // Moved through A: B no longer finds the old path, the moment A has answered.
            a.rename(&d, &e).await.expect("rename");
            let gone = b.stat(&format!("{d}/s/f")).await;
            assert_eq!(
                gone.map(|s| s.ino).map_err(|e| e.code),
                Err(ErrorCode::NotFound),
                "round {round}: the moved directory still resolves through B"
            );
            b.stat(&format!("{e}/s/f"))
                .await
                .expect("new path through B");
            b_bob
                .stat(&format!("{e}/s/f"))
                .await
                .expect("bob's stat of the new path");

            // Closed to others through A: bob through B is refused at once.
            a.chmod(&e, 0o700).await.expect("chmod");
            let refused = b_bob.stat(&format!("{e}/s/f")).await;
            assert_eq!(
                refused.map(|s| s.ino).map_err(|e| e.code),
                Err(ErrorCode::PermissionDenied),
                "round {round}: bob still walks through a directory closed to him"
            );

            // Removed through A: gone through B at once.
            assert!(a.delete(&e, true).await.expect("delete"));
            let gone = b.stat(&format!("{e}/s/f")).await;
            assert_eq!(
                gone.map(|s| s.ino).map_err(|e| e.code),
                Err(ErrorCode::NotFound),
                "round {round}: a removed directory still resolves through B"
            );
        }
        assert!(cluster.fsck().await.healthy);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_made_through_the_mount_and_closed_unwritten_costs_its_create_alone() {
    within(secs(300), async {
        let cluster = TestCluster::start(Config {
            shards: 2,
            namenodes: 1,
            ..Config::default()
        })
        .await;
        let mount = Mount::start(&cluster, "");
        let dir = mount.path().join("touched");
        std::fs::create_dir(&dir).expect("mkdir");
        let before = cluster.commits().await;
        for i in 0..20 {
            std::fs::File::create(dir.join(format!("f{i}"))).expect("create");
        }
        assert_eq!(
            commits_between(&before, &cluster.commits().await),
            counts(&[("create", (20, 0))]),
            "a create and close of an unwritten file is the create's commit only"
        );
        // Nothing holds the files: another writer opens each at once.
        let client = cluster.client().await;
        for i in 0..20 {
            let path = format!("/touched/f{i}");
            let opts = WriteOptions {
                create: false,
                ..WriteOptions::default()
            };
            let mut w = client.open_write(&path, opts).await.expect("open_write");
            w.write(b"second writer\n").await.expect("write");
            w.close().await.expect("close");
        }
        for i in 0..20 {
            let got = std::fs::read(dir.join(format!("f{i}"))).expect("read");
            assert_eq!(got, b"second writer\n", "f{i}");
        }
        drop(mount);
        assert!(cluster.fsck().await.healthy);
    })
    .await;
}

/// A writer that created its file holds no lease while the file stays inline: past the
/// inline threshold it takes the lease by inode number (even of a file it made read-only),
/// and when the file changed under it, its close takes the lease first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_file_writer_takes_its_lease_when_it_needs_one() {
    within(secs(300), async {
        let cluster = TestCluster::start(Config::data(6)).await;
        let root = cluster.client().await;
        root.mkdir("/w", 0o777, false).await.expect("mkdir");
        let user = cluster.client().await.with_identity(Identity {
            uid: 1000,
            gids: vec![1000],
            user: "alice".into(),
        });
        let new = WriteOptions {
            mode: 0o444,
            ..WriteOptions::default()
        };

        // Read-only and past the threshold: the creator may write it all the same.
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut w = user
            .create_for_write("/w/ro", new.clone())
            .await
            .expect("create");
        for piece in big.chunks(40_000) {
            w.write(piece)
                .await
                .expect("write past the inline threshold");
        }
        let st = w.close().await.expect("close");
        assert_eq!(st.size, big.len() as u64);
        assert_eq!(arbor_tests::data::get(&root, "/w/ro").await, big);
        let again = WriteOptions {
            create: false,
            ..WriteOptions::default()
        };
        let Err(err) = user.open_write("/w/ro", again.clone()).await else {
            panic!("a later open of the read-only file is refused");
        };
        assert_eq!(err.code, ErrorCode::PermissionDenied, "{}", err.message);

        // Another writer held the file and let go: this writer's bytes win over the inline
        // file, through the lease it takes at close.
        let mut a = user
            .create_for_write("/w/shared", new.clone())
            .await
            .expect("create");
        a.write(b"from the creator\n").await.expect("write");
        let mut b = root
            .open_write("/w/shared", again.clone())
            .await
            .expect("open");
        b.write(b"from another writer\n").await.expect("write");
        b.close().await.expect("close");
        a.close()
            .await
            .expect("the creator's close takes the lease");
        assert_eq!(
            arbor_tests::data::get(&root, "/w/shared").await,
            b"from the creator\n"
        );

        // Another writer holds it: the creator's close is refused, the other one's bytes stay.
        let mut a = user.create_for_write("/w/held", new).await.expect("create");
        a.write(b"from the creator\n").await.expect("write");
        let mut b = root.open_write("/w/held", again).await.expect("open");
        b.write(b"from the holder\n").await.expect("write");
        let err = a.close().await.expect_err("the lease is held");
        assert_eq!(err.code, ErrorCode::LeaseHeld, "{}", err.message);
        b.close().await.expect("close");
        assert_eq!(
            arbor_tests::data::get(&root, "/w/held").await,
            b"from the holder\n"
        );
        assert!(cluster.fsck().await.healthy);
    })
    .await;
}

/// New names are presumed absent rather than read: creates in a directory whose rows the
/// namenode keeps cost no shard read at all; a name that exists after all is still found.
/// Deleting a file the namenode knows is one read round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_names_are_presumed_absent_and_existing_ones_still_found() {
    within(secs(300), async {
        let cluster = TestCluster::start(Config {
            shards: 2,
            namenodes: 1,
            ..Config::default()
        })
        .await;
        let client = cluster.client().await;
        client.mkdir("/p", 0o755, false).await.expect("mkdir");
        client
            .create("/p/warm", 0o644, false)
            .await
            .expect("create");
        let gets = shard_reads(&cluster, 0).await.0;
        for i in 0..20 {
            client
                .create(&format!("/p/f{i}"), 0o644, false)
                .await
                .expect("create");
        }
        let (after, _) = shard_reads(&cluster, 0).await;
        // Reading each new name would be 20 Gets; the directory's rows may have to be
        // fetched again a few times when their lease runs out between creates.
        assert!(
            after - gets <= 5,
            "{} shard Gets for 20 creates",
            after - gets
        );

        // A delete of a file this namenode made reads the file's own rows in its walk's one
        // round: one Get each (two if they were read apart).
        let gets = shard_reads(&cluster, 0).await.0;
        for i in 10..20 {
            let gone = client
                .delete(&format!("/p/f{i}"), false)
                .await
                .expect("delete");
            assert!(gone);
        }
        let (after, _) = shard_reads(&cluster, 0).await;
        assert!(
            after - gets <= 13,
            "{} shard Gets for 10 deletes",
            after - gets
        );

        // Wrong presumptions: each is found on the next attempt, with the right answer.
        let err = client
            .create("/p/f3", 0o644, false)
            .await
            .expect_err("exists");
        assert_eq!(err.code, ErrorCode::AlreadyExists, "{}", err.message);
        let err = client
            .mkdir("/p/f4", 0o755, false)
            .await
            .expect_err("exists");
        assert_eq!(err.code, ErrorCode::AlreadyExists, "{}", err.message);
        let err = client.symlink("/x", "/p/f5").await.expect_err("exists");
        assert_eq!(err.code, ErrorCode::AlreadyExists, "{}", err.message);
        arbor_tests::data::put(&client, "/p/kept", b"kept bytes\n").await;
        let mut w = client
            .open_write("/p/kept", WriteOptions::default())
            .await
            .expect("open an existing file with create set");
        w.write_at(0, b"KEPT").await.expect("write");
        w.close().await.expect("close");
        assert_eq!(
            arbor_tests::data::get(&client, "/p/kept").await,
            b"KEPT bytes\n"
        );
        let st = client
            .create("/p/kept", 0o600, true)
            .await
            .expect("overwrite");
        assert_eq!(st.size, 0);
        let names = client.list("/p").await.expect("list");
        assert_eq!(names.len(), 12, "warm, f0..f9 and kept");
        assert!(cluster.fsck().await.healthy);
    })
    .await;
}

/// A delete of a file this namenode knows reads the file's own rows beside the walk; a
/// writer adding blocks and xattrs at the same moment never leaves rows behind (before the
/// delete checked the lease, an allocation racing it left pending rows of a missing file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_racing_writers_leave_no_rows_behind() {
    within(secs(300), async {
        let cluster = TestCluster::start(Config::data(6)).await;
        let client = cluster.client_on(0).await;
        client.mkdir("/race", 0o755, false).await.expect("mkdir");
        let piece: Vec<u8> = (0..70_000u32).map(|i| (i % 241) as u8).collect();
        let mut deleted_while_open = 0;
        for round in 0..30 {
            let path = format!("/race/f{round}");
            let mut w = client
                .open_write(&path, WriteOptions::default())
                .await
                .expect("open");
            w.write(&piece).await.expect("write");
            w.hsync().await.expect("hsync");
            let writer = async {
                for _ in 0..3 {
                    if w.write(&piece).await.is_err() || w.hsync().await.is_err() {
                        return;
                    }
                    let _ = client.set_xattr(&path, "user.k", b"v").await;
                }
                let _ = w.close().await;
            };
            let remover = async {
                tokio::time::sleep(Duration::from_millis(round % 7)).await;
                client.delete(&path, false).await
            };
            let ((), removed) = futures::join!(writer, remover);
            match removed {
                Ok(true) => deleted_while_open += 1,
                other => panic!("delete {path}: {other:?}"),
            }
        }
        assert_eq!(deleted_while_open, 30);
        let report = cluster.fsck().await;
        assert!(report.healthy, "{report:?}");
    })
    .await;
}

/// The namenode's side of a writer without a lease: an unleased commit goes through only to
/// a file unchanged since the ctime it names, owned by the caller, with no lease; an open by
/// inode number lets the owner past the file's mode only with the file's creation time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unleased_commits_and_opens_by_inode_are_checked_by_the_namenode() {
    use arbor_client::proto::namenode::{CallContext, CommitWriteRequest, OpenWriteRequest};

    within(secs(300), async {
        let cluster = TestCluster::start(Config {
            shards: 2,
            namenodes: 1,
            ..Config::default()
        })
        .await;
        let root = cluster.client().await;
        root.mkdir("/u", 0o777, false).await.expect("mkdir");
        let alice = Identity {
            uid: 1000,
            gids: vec![1000],
            user: "alice".into(),
        };
        let st = root
            .clone()
            .with_identity(alice)
            .create("/u/f", 0o444, false)
            .await
            .expect("create");
        let mut rpc = cluster.raw_namenode(0);
        let mut call = 0;
        let mut ctx = |uid: u32| {
            call += 1;
            Some(CallContext {
                client_id: b"checker".to_vec(),
                call_id: call,
                uid,
                gids: vec![uid],
                user: format!("u{uid}"),
            })
        };
        let commit = |ctx, ctime| CommitWriteRequest {
            ctx,
            ino: st.ino,
            inline_data: Some(b"bytes".to_vec()),
            size: 5,
            unleased_ctime_ns: ctime,
            ..Default::default()
        };
        // The error code of a refused call (ERROR_UNSPECIFIED: it was not refused).
        let code = |refusal: Option<tonic::Status>| match refusal {
            None => ErrorCode::ErrorUnspecified,
            Some(s) => arbor_client::Error::from(s).code,
        };

        // Not the owner, or a ctime the file no longer has: refused.
        let r = rpc.commit_write(commit(ctx(2000), st.ctime_ns)).await;
        assert_eq!(code(r.err()), ErrorCode::LeaseExpired, "another user");
        let r = rpc.commit_write(commit(ctx(1000), st.ctime_ns - 1)).await;
        assert_eq!(code(r.err()), ErrorCode::LeaseExpired, "a stale ctime");
        // The owner with the create's ctime: accepted, and the ctime moves on.
        let after = rpc
            .commit_write(commit(ctx(1000), st.ctime_ns))
            .await
            .expect("unleased commit")
            .into_inner()
            .status
            .expect("status");
        assert_eq!(after.size, 5);
        let r = rpc.commit_write(commit(ctx(1000), st.ctime_ns)).await;
        assert_eq!(
            code(r.err()),
            ErrorCode::LeaseExpired,
            "the ctime of before"
        );

        // Open by inode number of the 0444 file: only its creation time lets the owner in.
        let open = |ctx, btime| OpenWriteRequest {
            ctx,
            ino: st.ino,
            created_btime_ns: btime,
            ..Default::default()
        };
        let r = rpc.open_write(open(ctx(1000), 0)).await;
        assert_eq!(
            code(r.err()),
            ErrorCode::PermissionDenied,
            "no creation time"
        );
        let r = rpc.open_write(open(ctx(2000), st.btime_ns)).await;
        assert_eq!(code(r.err()), ErrorCode::PermissionDenied, "not the owner");
        let lease = rpc
            .open_write(open(ctx(1000), st.btime_ns))
            .await
            .expect("the creator opens it")
            .into_inner();
        assert!(!lease.lease.is_empty());
        // Now a lease is held: an unleased commit is refused even with the current ctime.
        let r = rpc.commit_write(commit(ctx(1000), after.ctime_ns)).await;
        assert_eq!(code(r.err()), ErrorCode::LeaseExpired, "a lease is held");
        assert_eq!(arbor_tests::data::get(&root, "/u/f").await, b"bytes");
    })
    .await;
}
