//! A shard's bytes corrupted on a block server's disk: readers (library and CLI) detect it by
//! its checksum and still return the file's bytes, decoded from the other shards; they report
//! it, and the leader's repair rewrites the shard, so its stored bytes are the original ones
//! again, fsck counts no corrupt shard and the cluster is at full strength.

use std::time::Duration;

use arbor_tests::blockservers::{self, flip_byte};
use arbor_tests::data::{assert_same, blocks, get, pattern, put};
use arbor_tests::{Config, MIB, TestCluster, secs, within};

/// With exactly k + m = 6 servers (the `arbor dev` cluster) every server already holds a shard
/// of the block, so the repair must rewrite the shard where it is.
#[tokio::test]
async fn corrupt_shard_is_repaired_in_place_with_k_plus_m_servers() {
    within(secs(240), scenario(6)).await;
}

/// With a spare server the repair may also move the shard there.
#[tokio::test]
async fn corrupt_shard_is_repaired_with_a_spare_server() {
    within(secs(240), scenario(7)).await;
}

async fn scenario(servers: usize) {
    {
        let cluster = TestCluster::start(Config::data(servers)).await;
        let client = cluster.client().await;
        let data = pattern(77, MIB as usize + MIB as usize / 2);
        put(&client, "/f", &data).await;

        // Data shard 1 of block 0: on the fast path of every read of the first block.
        let block = blocks(&cluster, "/f").await[0].clone();
        let shard = &block.shards[1];
        let server = cluster
            .blockserver_index(&shard.addr)
            .expect("a cluster server");
        let original = blockservers::get_shard(&shard.addr, block.block_id, 1)
            .await
            .expect("read the shard before corrupting it");
        assert!(
            original.intact() && !original.data.is_empty(),
            "{original:?}"
        );

        let file = cluster.shard_file(server, block.block_id, 1);
        flip_byte(&file, 1000);
        // The server sees it too: it refuses the shard or sends bytes that fail their crc.
        match blockservers::get_shard(&shard.addr, block.block_id, 1).await {
            Ok(fetched) => assert!(!fetched.intact(), "the corruption is on disk"),
            Err(status) => assert!(!status.message().is_empty()),
        }

        // Both readers return the right bytes, and report the bad shard.
        let out = cluster.cli(&["dfs", "-cat", "/f"]).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_same("-cat over a corrupt shard", &data, &out.stdout_bytes);
        assert_same(
            "read over a corrupt shard",
            &data,
            &get(&client, "/f").await,
        );

        // Repair: the shard (wherever it now lives) holds the original bytes again.
        let deadline = tokio::time::Instant::now() + secs(40);
        loop {
            let now = blocks(&cluster, "/f").await[0].clone();
            assert_eq!(now.block_id, block.block_id, "the block itself is kept");
            let home = &now.shards[1];
            if home.server_id != 0
                && let Ok(fetched) = blockservers::get_shard(&home.addr, block.block_id, 1).await
                && fetched.intact()
            {
                assert_same("the repaired shard", &original.data, &fetched.data);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "shard 1 of block {} not repaired in time: {now:?}",
                block.block_id
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let report = cluster
            .wait_fsck(secs(30), "no corrupt shard, full strength", |r| {
                r.corrupt_shards == 0 && r.under_strength_blocks == 0
            })
            .await;
        assert!(report.healthy, "{report:?}");
        assert_eq!(report.blocks, 2, "{report:?}");
        assert_same(
            "read after repair",
            &data,
            &get(&cluster.client().await, "/f").await,
        );
    }
}
