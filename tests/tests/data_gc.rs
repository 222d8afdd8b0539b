//! Freed blocks leave the block servers: after a file is deleted, a directory is deleted
//! recursively, a file is overwritten or truncated shorter, the leader deletes the freed
//! blocks' shards within a few repair intervals (ListShards no longer shows them), while the
//! blocks still in use keep every shard.

use std::collections::BTreeSet;
use std::time::Duration;

use arbor_tests::data::{assert_same, blocks, get, pattern, put};
use arbor_tests::namespace::ok;
use arbor_tests::{Config, MIB, TestCluster, secs, within};

/// Every `(block id, index)` stored on any server.
async fn stored(cluster: &TestCluster) -> BTreeSet<(u64, u32)> {
    let mut all = BTreeSet::new();
    for i in 0..cluster.config().blockservers {
        for e in cluster.list_shards(i).await {
            let id = e.id.expect("a listed shard has an id");
            all.insert((id.block_id, id.index));
        }
    }
    all
}

async fn block_ids(cluster: &TestCluster, path: &str) -> Vec<u64> {
    blocks(cluster, path)
        .await
        .iter()
        .map(|b| b.block_id)
        .collect()
}

/// Waits until no server stores a shard of `freed`; panics after `limit`.
async fn wait_freed(cluster: &TestCluster, freed: &[u64], limit: Duration, what: &str) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let left: Vec<(u64, u32)> = stored(cluster)
            .await
            .into_iter()
            .filter(|(id, _)| freed.contains(id))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: shards of freed blocks still stored after {limit:?}: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn freed_blocks_leave_the_block_servers() {
    within(secs(240), async {
        let cluster = TestCluster::start(Config::data(6)).await;
        let client = cluster.client().await;
        ok(
            client.mkdir("/dir/sub", 0o755, true).await,
            "mkdir(/dir/sub, 0o755, true)",
        );
        let keep = pattern(1, 2 * MIB as usize + 5);
        put(&client, "/keep", &keep).await;
        put(
            &client,
            "/gone",
            &pattern(2, MIB as usize + MIB as usize / 2),
        )
        .await;
        put(&client, "/dir/sub/x", &pattern(3, 700_000)).await;
        put(&client, "/dir/y", &pattern(4, 1_300_000)).await;
        put(&client, "/over", &pattern(5, 2 * MIB as usize)).await;
        let short = pattern(6, 3 * MIB as usize);
        put(&client, "/short", &short).await;

        let kept = block_ids(&cluster, "/keep").await;
        let all = stored(&cluster).await;
        for (path, ids) in [
            ("/keep", kept.clone()),
            ("/gone", block_ids(&cluster, "/gone").await),
            ("/dir/y", block_ids(&cluster, "/dir/y").await),
        ] {
            for id in ids {
                assert_eq!(
                    (0..6).filter(|&i| all.contains(&(id, i))).count(),
                    6,
                    "{path}: every shard of block {id} is stored"
                );
            }
        }

        // Unlink, recursive delete, overwrite, and truncate.
        let mut freed = block_ids(&cluster, "/gone").await;
        ok(client.delete("/gone", false).await, "delete(/gone, false)");
        freed.extend(block_ids(&cluster, "/dir/sub/x").await);
        freed.extend(block_ids(&cluster, "/dir/y").await);
        ok(client.delete("/dir", true).await, "delete(/dir, true)");
        freed.extend(block_ids(&cluster, "/over").await);
        let replacement = pattern(7, 100_000);
        put(&client, "/over", &replacement).await;
        let short_blocks = block_ids(&cluster, "/short").await;
        assert_eq!(short_blocks.len(), 3);
        freed.extend(&short_blocks[2..]);
        ok(
            client.truncate("/short", MIB + 10).await,
            "truncate(/short, MIB + 10)",
        );

        wait_freed(
            &cluster,
            &freed,
            secs(40),
            "after delete, overwrite and truncate",
        )
        .await;

        // What is still in use kept every shard, and reads.
        let now = stored(&cluster).await;
        for id in kept.iter().chain(&short_blocks[..2]) {
            assert_eq!(
                (0..6).filter(|&i| now.contains(&(*id, i))).count(),
                6,
                "block {id} of a live file lost shards"
            );
        }
        assert_same("/keep", &keep, &get(&client, "/keep").await);
        assert_same("/over", &replacement, &get(&client, "/over").await);
        // (Reading the truncated file back is data_roundtrip's truncate scenario.)
        assert_eq!(
            ok(client.stat("/short").await, "stat /short").size,
            MIB + 10
        );

        let report = cluster
            .wait_fsck(secs(20), "no pending deletes", |r| r.pending_deletes == 0)
            .await;
        assert!(report.healthy, "{report:?}");
        let expected_blocks = kept.len() + block_ids(&cluster, "/over").await.len() + 2;
        assert_eq!(report.blocks, expected_blocks as u64, "{report:?}");
    })
    .await;
}
