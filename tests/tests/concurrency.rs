//! Concurrent creates in one directory: the directory's child count and mtime change by
//! commutative updates, so eight writers on two namenodes all succeed, and every file is listed
//! and counted exactly once.

use std::collections::BTreeSet;

use arbor_tests::namespace::ok;
use arbor_tests::{Config, TestCluster, secs, within};
use tokio::task::JoinSet;

const WRITERS: usize = 8;
const FILES_EACH: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_writers_create_eight_thousand_files_in_one_directory() {
    let cluster = TestCluster::start(Config::default()).await;
    within(secs(300), async {
        let client = cluster.client().await;
        ok(client.mkdir("/many", 0o755, false).await, "mkdir /many");

        let started = std::time::Instant::now();
        let mut writers = JoinSet::new();
        for w in 0..WRITERS {
            // Half the writers on each namenode: the commutative counter updates must hold
            // across coordinators, not only within one.
            let client = cluster.client_on(w % 2).await;
            writers.spawn(async move {
                for i in 0..FILES_EACH {
                    let path = format!("/many/w{w}-{i:04}");
                    ok(client.create(&path, 0o644, false).await, &path);
                }
            });
        }
        while let Some(done) = writers.join_next().await {
            done.expect("writer task");
        }
        let took = started.elapsed();
        eprintln!(
            "{} creates in {took:?}: {:.0}/s",
            WRITERS * FILES_EACH,
            (WRITERS * FILES_EACH) as f64 / took.as_secs_f64()
        );

        let expected: BTreeSet<String> = (0..WRITERS)
            .flat_map(|w| (0..FILES_EACH).map(move |i| format!("w{w}-{i:04}")))
            .collect();
        let listed = ok(client.list("/many").await, "list /many");
        let names: Vec<String> = listed.iter().map(|e| e.name.clone()).collect();
        assert_eq!(names.len(), WRITERS * FILES_EACH, "entries listed");
        let unique: BTreeSet<String> = names.iter().cloned().collect();
        assert_eq!(unique.len(), names.len(), "a name was listed twice");
        assert_eq!(
            unique, expected,
            "the listing is not the set of created files"
        );
        assert!(
            names.windows(2).all(|w| w[0] < w[1]),
            "the listing is not in name order"
        );

        // Page by page, each page within its limit and continuing after the previous one.
        let mut paged = Vec::new();
        let mut after = String::new();
        loop {
            let (page, more) = ok(client.list_page("/many", &after, 777).await, "list_page");
            assert!(
                page.len() <= 777,
                "a page of {} entries for limit 777",
                page.len()
            );
            if let Some(first) = page.first() {
                assert!(
                    first.name > after,
                    "page starts at {:?} after {after:?}",
                    first.name
                );
            }
            paged.extend(page.iter().map(|e| e.name.clone()));
            if !more {
                break;
            }
            after = page
                .last()
                .expect("a page with more has entries")
                .name
                .clone();
        }
        assert_eq!(paged, names, "paged listing differs from the full listing");

        let dir = ok(client.stat("/many").await, "stat /many");
        assert_eq!(
            dir.children,
            (WRITERS * FILES_EACH) as u64,
            "children of /many"
        );

        let report = cluster.fsck().await;
        assert!(report.healthy, "fsck: {report:?}");
        assert_eq!(
            report.files,
            (WRITERS * FILES_EACH) as u64,
            "fsck file count"
        );
    })
    .await;
}
