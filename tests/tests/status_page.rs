//! The namenode's status page, loaded in a real headless browser (Debian's Chromium): it shows
//! every process of the cluster, and a killed block server turns dead on it within the
//! heartbeat timeout. A screenshot of the page is kept under `target/test-artifacts/`.

use std::time::{Duration, Instant};

use arbor_tests::browser::{artifacts, rendered, screenshot};
use arbor_tests::{Config, DataConfig, TestCluster, secs, within};

/// The table row of block server `addr`, as rendered.
fn row_of<'a>(dom: &'a str, addr: &str) -> Option<&'a str> {
    dom.split("<tr")
        .find(|r| r.contains("blockserver") && r.contains(&format!(">{addr}<")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_every_process_and_a_dead_block_server() {
    within(secs(300), async {
        let cluster = TestCluster::start(Config {
            namenode_http: true,
            ..Config::data(6)
        })
        .await;
        let url = format!("http://{}/", cluster.namenode_http(0));
        // The namenodes renew their rows every 2 s: wait until both are listed.
        let start = Instant::now();
        let dom = loop {
            let dom = rendered(&url).await;
            if cluster
                .namenode_addrs()
                .iter()
                .all(|a| dom.contains(&format!("<td>{a}")))
            {
                break dom;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "not every namenode is listed:\n{dom}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        assert!(dom.contains("<h1>Arbor cluster"), "{dom}");
        for addr in cluster.metastore_addrs() {
            assert!(
                dom.contains(&format!("<td>{addr}</td><td class=\"up\">up</td>")),
                "shard {addr}:\n{dom}"
            );
        }
        for addr in cluster.blockserver_addrs() {
            let row = row_of(&dom, &addr).unwrap_or_else(|| panic!("block server {addr}:\n{dom}"));
            assert!(row.contains("live"), "{addr} is live: {row}");
        }
        assert!(dom.contains("id=\"namespace\""), "{dom}");
        assert!(dom.contains("id=\"under-strength\""), "{dom}");

        // A killed block server shows dead once it missed the heartbeat timeout.
        let victim = cluster.blockserver_addrs()[2].clone();
        cluster.kill_blockserver(2);
        let dead_after = Duration::from_millis(DataConfig::default().dead_after_ms);
        let killed = Instant::now();
        loop {
            let dom = rendered(&url).await;
            let row = row_of(&dom, &victim).unwrap_or_else(|| panic!("{victim}:\n{dom}"));
            if row.contains("dead") {
                break;
            }
            assert!(
                killed.elapsed() < dead_after + Duration::from_secs(10),
                "{victim} still shows live {:?} after it was killed: {row}",
                killed.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(
            killed.elapsed() >= dead_after - Duration::from_millis(600),
            "dead before the heartbeat timeout ({:?})",
            killed.elapsed()
        );

        // A screenshot, for people (not committed: target/ is build output).
        screenshot(&url, &artifacts().join("status-page.png")).await;
    })
    .await;
}
