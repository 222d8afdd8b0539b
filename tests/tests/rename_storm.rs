//! Files moved between directories on different shards by concurrent renames (two-phase
//! commits), while other tasks stat and list: at the end every file is in exactly one place,
//! the place of its last acknowledged rename, with its identity kept.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arbor_proto::namenode::ErrorCode;
use arbor_tests::namespace::{is_file, join, ok};
use arbor_tests::rows::{Rows, dirs_on_distinct_shards};
use arbor_tests::{Config, TestCluster, secs, within};
use rand::Rng;
use tokio::task::JoinSet;

const DIRS: usize = 4;
const FILES: usize = 64;
const MOVERS: usize = 4;
const MOVES_EACH: usize = 120;

fn file_name(i: usize) -> String {
    format!("f{i:03}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cross_shard_renames_keep_every_file_exactly_once() {
    let cluster = TestCluster::start(Config::default()).await;
    within(secs(300), async {
        let client = cluster.client().await;
        let rows = Rows::open(&cluster).await;
        let dirs = Arc::new(dirs_on_distinct_shards(&client, &rows, "/", "dir", DIRS).await);

        // File i starts in directory i % DIRS; `inos[i]` is its identity for good.
        let mut inos = Vec::new();
        for i in 0..FILES {
            let path = join(&dirs[i % DIRS], &file_name(i));
            inos.push(ok(client.create(&path, 0o644, false).await, &path).ino);
        }
        let inos = Arc::new(inos);
        // Where each file is after its last acknowledged rename. A mover reads a file's place
        // here, so a successful rename from place P always follows the update that put P here:
        // updates happen in the order of the renames.
        let place = Arc::new(Mutex::new((0..FILES).map(|i| i % DIRS).collect::<Vec<_>>()));
        let stop = Arc::new(AtomicBool::new(false));

        let mut movers = JoinSet::new();
        for m in 0..MOVERS {
            let client = cluster.client_on(m % 2).await;
            let (dirs, place) = (dirs.clone(), place.clone());
            movers.spawn(async move {
                let (mut moved, mut lost_races) = (0, 0);
                for n in 0..MOVES_EACH {
                    let (i, to) = {
                        let mut rng = rand::rng();
                        (rng.random_range(0..FILES), rng.random_range(1..DIRS))
                    };
                    let from = place.lock().unwrap()[i];
                    let to = (from + to) % DIRS;
                    let src = join(&dirs[from], &file_name(i));
                    let dst = join(&dirs[to], &file_name(i));
                    // Alternate replacing and non-replacing renames: the target never exists
                    // (a file is in one place), so a non-replacing one would expose a duplicate.
                    let result = if n % 2 == 0 {
                        client.rename(&src, &dst).await
                    } else {
                        client.rename_noreplace(&src, &dst).await
                    };
                    match result {
                        Ok(()) => {
                            place.lock().unwrap()[i] = to;
                            moved += 1;
                        }
                        // Another mover moved it first.
                        Err(e) if e.code == ErrorCode::NotFound => lost_races += 1,
                        Err(e) => panic!("rename {src} {dst}: {:?}: {}", e.code, e.message),
                    }
                }
                (moved, lost_races)
            });
        }

        let mut readers = JoinSet::new();
        for r in 0..2 {
            let client = cluster.client_on(r % 2).await;
            let (dirs, place, inos, stop) =
                (dirs.clone(), place.clone(), inos.clone(), stop.clone());
            readers.spawn(async move {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let (i, d) = {
                        let mut rng = rand::rng();
                        (rng.random_range(0..FILES), rng.random_range(0..DIRS))
                    };
                    let at = place.lock().unwrap()[i];
                    let path = join(&dirs[at], &file_name(i));
                    match client.stat(&path).await {
                        Ok(s) => {
                            assert!(is_file(&s), "{path} is not a file: {s:?}");
                            assert_eq!(s.ino, inos[i], "{path} has another file's inode");
                        }
                        Err(e) if e.code == ErrorCode::NotFound => {}
                        Err(e) => panic!("stat {path}: {:?}: {}", e.code, e.message),
                    }
                    let listed = ok(client.list(&dirs[d]).await, &dirs[d]);
                    for pair in listed.windows(2) {
                        assert!(
                            pair[0].name < pair[1].name,
                            "listing of {} unsorted",
                            dirs[d]
                        );
                    }
                    for entry in &listed {
                        let i: usize = entry.name[1..].parse().expect("a file name we made");
                        let status = entry.status.clone().unwrap_or_default();
                        assert_eq!(
                            status.ino, inos[i],
                            "{} listed with a wrong inode",
                            entry.name
                        );
                    }
                    reads += 1;
                }
                reads
            });
        }

        let (mut moved, mut lost_races) = (0, 0);
        while let Some(done) = movers.join_next().await {
            let (m, l) = done.expect("mover task");
            moved += m;
            lost_races += l;
        }
        stop.store(true, Ordering::Relaxed);
        let mut reads = 0;
        while let Some(done) = readers.join_next().await {
            reads += done.expect("reader task");
        }
        eprintln!("{moved} renames acknowledged, {lost_races} lost races, {reads} reader rounds");
        assert!(moved > 0, "no rename succeeded");

        // Every file exactly once over all directories, where its last rename put it.
        let mut seen: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (d, dir) in dirs.iter().enumerate() {
            let listed = ok(client.list(dir).await, dir);
            let stat = ok(client.stat(dir).await, dir);
            assert_eq!(stat.children, listed.len() as u64, "child count of {dir}");
            for entry in listed {
                seen.entry(entry.name).or_default().push(d);
            }
        }
        let place = place.lock().unwrap().clone();
        for i in 0..FILES {
            let name = file_name(i);
            let found = seen.remove(&name).unwrap_or_default();
            assert_eq!(found.len(), 1, "{name} found in directories {found:?}");
            assert_eq!(
                found[0], place[i],
                "{name} is not where its last rename put it"
            );
            let status = ok(client.stat(&join(&dirs[found[0]], &name)).await, &name);
            assert_eq!(status.ino, inos[i], "{name} changed identity");
        }
        assert!(seen.is_empty(), "unexpected entries: {seen:?}");

        let report = cluster.fsck().await;
        assert!(report.healthy, "fsck: {report:?}");
        assert_eq!(report.files, FILES as u64, "fsck file count");
    })
    .await;
}
