//! The data path on object stores: six block servers keeping their shards in S3 (a moto
//! server) or in Azure Blob (Azurite), each under its own prefix of one bucket / container.
//! Round trips of every kind of size through the library and the CLI, shards visible as
//! objects in the emulator, degraded reads with two servers down, and deleted files' shards
//! removed from the store.

use std::time::Duration;

use arbor_tests::data::{assert_same, blocks, get, pattern, put};
use arbor_tests::{Config, MIB, StoreBackend, TestCluster, secs, within};

async fn scenario(store: StoreBackend) {
    let cluster = TestCluster::start(Config {
        store,
        ..Config::data(6)
    })
    .await;
    let client = cluster.client().await;
    let files: Vec<(String, Vec<u8>)> = vec![
        ("/empty".into(), Vec::new()),
        ("/inline".into(), pattern(1, 5000)),
        ("/past-inline".into(), pattern(2, 70_000)),
        ("/block-plus-one".into(), pattern(3, MIB as usize + 1)),
        (
            "/several".into(),
            pattern(4, 2 * MIB as usize + MIB as usize / 2),
        ),
    ];
    for (path, data) in &files {
        put(&client, path, data).await;
        assert_same(path, data, &get(&client, path).await);
    }
    let out = cluster.cli(&["dfs", "-cat", "/several"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_same("-cat /several", &files[4].1, &out.stdout_bytes);

    // The shards are objects in the emulator, under each server's prefix.
    let several = blocks(&cluster, "/several").await;
    assert_eq!(several.len(), 3);
    let mut objects = Vec::new();
    for i in 0..6 {
        let prefix = format!("bs-{i}/");
        let names = match store {
            StoreBackend::S3 => cluster.moto().unwrap().list_keys(&prefix).await,
            StoreBackend::Azure => cluster.azurite().unwrap().list_blobs(&prefix).await,
            StoreBackend::Local => unreachable!(),
        };
        assert!(
            names.iter().any(|n| n.contains("shards/")),
            "server {i} stores its shards under {prefix}: {names:?}"
        );
        objects.extend(names);
        let url = cluster.blockserver_store_url(i);
        let listed = cluster.list_shards(i).await;
        assert!(!listed.is_empty(), "server {i} ({url}) lists its shards");
    }
    let block_hex = format!("{:016x}", several[0].block_id);
    assert_eq!(
        objects.iter().filter(|n| n.contains(&block_hex)).count(),
        6,
        "one object per shard of block {block_hex}: {objects:?}"
    );

    // Two servers down: still every byte.
    cluster.kill_blockserver(0);
    cluster.kill_blockserver(3);
    let fresh = cluster.client().await;
    for (path, data) in &files {
        assert_same(
            &format!("{path}, 2 servers down"),
            data,
            &get(&fresh, path).await,
        );
    }
    cluster.restart_blockserver(0).await;
    cluster.restart_blockserver(3).await;
    cluster.wait_block_servers_alive(6, secs(30)).await;

    // A deleted file's shards leave the store.
    let freed: Vec<u64> = several.iter().map(|b| b.block_id).collect();
    assert!(fresh.delete("/several", false).await.unwrap());
    let deadline = tokio::time::Instant::now() + secs(40);
    loop {
        let mut left = 0;
        for i in 0..6 {
            left += cluster
                .list_shards(i)
                .await
                .iter()
                .filter(|e| e.id.is_some_and(|id| freed.contains(&id.block_id)))
                .count();
        }
        if left == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{left} shards of the deleted file still stored"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Healthy: the two servers that were down are back with their shards (whether the shards
    // readers reported unreachable meanwhile are already rebuilt is data_degraded's concern).
    let report = cluster
        .wait_fsck(secs(30), "healthy, nothing missing", |r| {
            r.healthy && r.missing_blocks == 0 && r.pending_deletes == 0
        })
        .await;
    assert_eq!(report.files, 4, "{report:?}");
    assert_eq!(report.blocks, 3, "{report:?}");
    assert_eq!(report.live_block_servers, 6, "{report:?}");
}

#[tokio::test]
async fn round_trips_on_s3() {
    within(secs(240), scenario(StoreBackend::S3)).await;
}

#[tokio::test]
async fn round_trips_on_azure_blob() {
    within(secs(240), scenario(StoreBackend::Azure)).await;
}
