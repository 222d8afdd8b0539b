//! The search service SIGKILLed in the middle of a burst of changes and restarted resumes
//! from its committed position: afterwards the index equals the namespace, with no missed and
//! no duplicated entry. A rebuild from a scan (`--rebuild`) gives the same index.

use std::collections::BTreeSet;
use std::time::Duration;

use arbor_tests::namespace::{ok, walk};
use arbor_tests::search::SearchService;
use arbor_tests::{Config, TestCluster, secs, within};
use futures::StreamExt;

async fn assert_index_equals_namespace(search: &SearchService, client: &arbor_client::Client) {
    let got = search.paths(client, "*", "/").await;
    let unique: BTreeSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "duplicated results");
    let want: Vec<String> = walk(client, "/").await.into_keys().collect();
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
    // Attributes too: the sizes and owners the index holds are the namespace's.
    let r = search.query(client, "xattr.burst", "/").await;
    for h in &r.hits {
        let st = ok(client.stat(&h.path).await, "stat");
        assert_eq!((h.uid, h.mode), (st.uid, st.mode), "{}", h.path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_mid_burst_the_index_misses_and_duplicates_nothing() {
    within(secs(900), async {
        let cluster = TestCluster::start(Config {
            shards: 3,
            namenodes: 1,
            ..Config::default()
        })
        .await;
        let mut search = SearchService::start(&cluster, &["--commit-interval-ms", "20"]).await;
        let client = cluster.client().await;
        for d in 0..10 {
            ok(
                client.mkdir(&format!("/w/d{d}"), 0o755, true).await,
                "mkdir",
            );
        }
        let burst = {
            let client = client.clone();
            tokio::spawn(async move {
                futures::stream::iter(0..3000)
                    .map(|i| {
                        let c = client.clone();
                        async move {
                            let p = format!("/w/d{}/f{i}", i % 10);
                            ok(c.create(&p, 0o644, false).await, "create");
                            match i % 5 {
                                0 => ok(c.set_xattr(&p, "user.burst", b"x").await, "setxattr"),
                                1 => ok(
                                    c.rename(&p, &format!("/w/d{}/r{i}", (i + 3) % 10)).await,
                                    "mv",
                                ),
                                2 => {
                                    ok(c.chmod(&p, 0o600).await, "chmod");
                                }
                                3 => {
                                    ok(c.delete(&p, false).await, "rm");
                                }
                                _ => {}
                            }
                        }
                    })
                    .buffer_unordered(16)
                    .collect::<Vec<()>>()
                    .await;
            })
        };
        // Kill it twice while the burst runs.
        for pause in [3, 4] {
            tokio::time::sleep(Duration::from_secs(pause)).await;
            search.kill();
            tokio::time::sleep(Duration::from_millis(500)).await;
            search.restart(&["--commit-interval-ms", "20"]).await;
        }
        burst.await.expect("burst");
        // A directory rename while the restarted service catches up.
        ok(client.rename("/w/d9", "/w/d0/nine").await, "mv dir");
        search.wait_caught_up(&client, secs(180)).await;
        assert_index_equals_namespace(&search, &client).await;
        assert!(search.paths(&client, "*", "/w/d9").await.is_empty());
        let log = search.log_text();
        assert!(
            log.matches("index opened").count() >= 3,
            "three starts:\n{log}"
        );
        // Restarts resumed from the index, they did not rebuild.
        assert_eq!(log.matches("index rebuilt from a scan").count(), 1, "{log}");

        // A rebuild from a scan gives the same answers.
        search.restart(&["--rebuild"]).await;
        search.wait_caught_up(&client, secs(120)).await;
        assert_index_equals_namespace(&search, &client).await;
        assert_eq!(
            search
                .log_text()
                .matches("index rebuilt from a scan")
                .count(),
            2
        );
    })
    .await;
}
