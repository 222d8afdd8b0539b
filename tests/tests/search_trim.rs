//! A search service whose cursor fell behind the shards' trim point is told so (the shard
//! answers OUT_OF_RANGE) and rebuilds its index from a scan plus the log. The shards run with
//! a 1 MiB change-log bound and 1 MiB segments (set through their environment, which the
//! cluster's processes inherit: this file holds one test so nothing else shares it).

use std::time::Duration;

use arbor_proto::metastore::{Empty, StatusRequest};
use arbor_tests::namespace::{ok, walk};
use arbor_tests::search::SearchService;
use arbor_tests::{Config, TestCluster, secs, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_behind_the_trim_point_rebuilds() {
    // SAFETY: set before any thread of this test process reads the environment.
    unsafe {
        std::env::set_var("ARBOR_METASTORE_CHANGES_RETAIN_MB", "1");
        std::env::set_var("ARBOR_METASTORE_LOG_RETAIN_MB", "1");
        std::env::set_var("ARBOR_METASTORE_SEGMENT_MB", "1");
    }
    within(secs(600), async {
        let cluster = TestCluster::start(Config {
            shards: 1,
            namenodes: 1,
            ..Config::default()
        })
        .await;
        let mut search = SearchService::start(&cluster, &[]).await;
        let client = cluster.client().await;
        ok(client.mkdir("/t", 0o755, false).await, "mkdir");
        ok(client.create("/t/early", 0o644, false).await, "create");
        search.wait_caught_up(&client, secs(60)).await;
        search.kill();

        // About 6 MiB of log while the service is down: big xattr values.
        let big = vec![b'z'; 60 << 10];
        for i in 0..100 {
            let p = format!("/t/f{i}");
            ok(client.create(&p, 0o644, false).await, "create");
            ok(client.set_xattr(&p, "user.blob", &big).await, "setxattr");
        }
        ok(client.delete("/t/early", false).await, "rm");
        let mut raw = cluster.raw_metastore(0);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let cursors = raw
            .list_cursors(Empty {})
            .await
            .expect("cursors")
            .into_inner();
        let cursor = cursors
            .cursors
            .iter()
            .find(|c| c.consumer == "search")
            .map(|c| c.seq)
            .expect("the service registered its cursor");
        loop {
            let st = raw
                .status(StatusRequest {})
                .await
                .expect("status")
                .into_inner();
            if st.first_retained_seq > cursor {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "shard did not trim its log: first retained {}",
                st.first_retained_seq
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }

        search.restart(&[]).await;
        search.wait_caught_up(&client, secs(120)).await;
        let log = search.log_text();
        assert!(
            log.contains("change log trimmed past the index: rebuilding"),
            "{log}"
        );
        assert_eq!(log.matches("index rebuilt from a scan").count(), 2, "{log}");
        let got = search.paths(&client, "*", "/").await;
        let want: Vec<String> = walk(&client, "/").await.into_keys().collect();
        assert_eq!(got, want);
        assert!(search.paths(&client, "early", "/").await.is_empty());
        assert_eq!(search.paths(&client, "xattr.blob", "/t").await.len(), 100);
    })
    .await;
}
