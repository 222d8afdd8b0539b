//! Every Arbor server accepts its connections with TCP_NODELAY. With Nagle's algorithm on, a
//! reply that h2 writes in two pieces waits for the peer's delayed ACK (~40 ms a call), so a
//! server built without it is slow in a way no functional test notices. The sockets are read
//! from the running processes themselves.

use std::time::Duration;

use arbor_proto::search::search_client::SearchClient;
use arbor_tests::search::SearchService;
use arbor_tests::sockets::accepted_nodelay;
use arbor_tests::{Config, TestCluster, secs, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_accepts_with_nodelay() {
    within(secs(300), async {
        let cluster = TestCluster::start(Config::data(6)).await;
        let search = SearchService::start(&cluster, &[]).await;
        let client = cluster.client().await;
        // Traffic to every kind of server: namenodes (this client), shards (the namenodes),
        // block servers (raw calls), search (a query).
        client.mkdir("/d", 0o755, false).await.expect("mkdir");
        // Kept until the end: a dropped client closes its connection.
        let mut per_namenode = Vec::new();
        for i in 0..cluster.config().namenodes {
            let c = cluster.client_on(i).await;
            c.stat("/d").await.expect("stat");
            per_namenode.push(c);
        }
        let mut raw_servers = Vec::new();
        for i in 0..cluster.config().blockservers {
            let mut raw = cluster.raw_blockserver(i);
            raw.stat(arbor_proto::blockserver::StatRequest {})
                .await
                .expect("block server stat");
            raw_servers.push(raw);
        }
        for i in 0..cluster.config().shards {
            cluster
                .raw_metastore(i)
                .status(arbor_proto::metastore::StatusRequest {})
                .await
                .expect("shard status");
        }
        search.wait_caught_up(&client, secs(60)).await;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", search.addr()))
            .expect("search address")
            .connect()
            .await
            .expect("connect to search");
        let mut raw_search = SearchClient::new(channel);
        raw_search
            .status(arbor_proto::search::StatusRequest {})
            .await
            .expect("search status");
        tokio::time::sleep(Duration::from_millis(200)).await;

        let mut servers = cluster.processes();
        let (pid, port) = search.process().expect("search runs");
        servers.push(("search".into(), pid, port));
        for (name, pid, port) in servers {
            let sockets = accepted_nodelay(pid, port).expect("inspect sockets");
            assert!(
                !sockets.is_empty(),
                "{name} (pid {pid}) has no accepted connection on port {port}"
            );
            assert!(
                sockets.iter().all(|&on| on),
                "{name} (pid {pid}, port {port}) accepted a socket with Nagle on: {sockets:?}"
            );
        }
        drop((per_namenode, raw_servers, raw_search));
    })
    .await;
}
