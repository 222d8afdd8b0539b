//! Degraded reads. With RS(4,2) every file still reads correctly, through the library and the
//! CLI, while any two of the six block servers are down; with a third one down a read fails
//! with an error naming the missing block (the CLI exits 1 and says so), and never returns
//! wrong bytes. Once the servers come back, everything reads again and fsck is HEALTHY.

use arbor_proto::namenode::ErrorCode;
use arbor_tests::data::{assert_same, blocks, get, names_block, pattern, put, try_get};
use arbor_tests::namespace::ok;
use arbor_tests::{Config, MIB, TestCluster, secs, within};

#[tokio::test]
async fn m_servers_down_still_read_and_m_plus_one_fail_cleanly() {
    within(secs(240), async {
        let cluster = TestCluster::start(Config::data(6)).await;
        let client = cluster.client().await;
        ok(
            client.mkdir("/rep", 0o755, false).await,
            "mkdir(/rep, 0o755, false)",
        );
        ok(
            client.set_ec_policy("/rep", "REPLICATION-3").await,
            "set_ec_policy(/rep, REPLICATION-3)",
        );

        let files: Vec<(String, Vec<u8>)> = vec![
            ("/big".into(), pattern(1, 3 * MIB as usize + 12_345)),
            ("/one-block".into(), pattern(2, MIB as usize + 1)),
            ("/partial-stripe".into(), pattern(3, 200_000)),
            ("/small".into(), pattern(4, 1000)),
            ("/rep/copies".into(), pattern(5, 1_500_000)),
        ];
        for (path, data) in &files {
            put(&client, path, data).await;
        }
        let rep = blocks(&cluster, "/rep/copies").await;
        assert_eq!(
            rep[0].shards.len(),
            3,
            "REPLICATION-3 keeps 3 copies: {rep:?}"
        );

        // Two servers down (the data shards 0 and 1 of the big file's first block, so the fast
        // path has to decode): every file reads, through a fresh client and the CLI.
        let first = &blocks(&cluster, "/big").await[0];
        let victims: Vec<usize> = first.shards[..2]
            .iter()
            .map(|s| {
                cluster
                    .blockserver_index(&s.addr)
                    .expect("a cluster server")
            })
            .collect();
        for &v in &victims {
            cluster.kill_blockserver(v);
        }
        let fresh = cluster.client().await;
        for (path, data) in &files {
            assert_same(
                &format!("{path}, 2 servers down"),
                data,
                &get(&fresh, path).await,
            );
            let out = cluster.cli(&["dfs", "-cat", path]).await;
            assert_eq!(out.code, 0, "{path}: {}", out.stderr);
            assert_same(
                &format!("-cat {path}, 2 servers down"),
                data,
                &out.stdout_bytes,
            );
        }

        // A third server down: RS(4,2) blocks have 3 of 6 shards left. Inline files still read.
        let third = (0..6).find(|i| !victims.contains(i)).unwrap();
        cluster.kill_blockserver(third);
        let (path, data) = &files[0];
        let err = try_get(&cluster.client().await, path)
            .await
            .expect_err("a block with 3 of 6 shards cannot be read");
        assert_eq!(err.code, ErrorCode::BlockMissing, "{err:?}");
        assert!(
            names_block(&err.message, first.block_id),
            "the error names block {} ({:#x}): {:?}",
            first.block_id,
            first.block_id,
            err.message
        );
        let out = cluster.cli(&["dfs", "-cat", path]).await;
        assert_eq!(out.code, 1, "{out}");
        assert!(
            names_block(&out.stderr, first.block_id),
            "-cat names the missing block {}: {}",
            first.block_id,
            out.stderr
        );
        assert!(
            data.starts_with(&out.stdout_bytes),
            "-cat printed {} bytes that are not the file's",
            out.stdout_bytes.len()
        );
        assert_same("inline file", &files[3].1, &get(&client, "/small").await);
        // Three copies minus at most three servers: a copy may remain or not, but the bytes
        // that come back are the file's.
        if let Ok(got) = try_get(&client, "/rep/copies").await {
            assert_same("replicated file", &files[4].1, &got);
        }

        // fsck sees it once the servers are declared dead.
        let report = cluster
            .wait_fsck(secs(30), "missing blocks", |r| r.missing_blocks > 0)
            .await;
        assert!(!report.healthy, "{report:?}");
        assert!(
            report.problems.iter().any(|p| p.contains("/big")),
            "fsck names the file: {report:?}"
        );

        // The servers come back with their shards: all reads work again, fsck is HEALTHY.
        for v in victims.iter().copied().chain([third]) {
            cluster.restart_blockserver(v).await;
        }
        cluster.wait_block_servers_alive(6, secs(30)).await;
        let report = cluster
            .wait_fsck(secs(30), "healthy, full strength", |r| {
                r.healthy && r.missing_blocks == 0 && r.under_strength_blocks == 0
            })
            .await;
        assert_eq!(report.dead_block_servers, 0, "{report:?}");
        let fresh = cluster.client().await;
        for (path, data) in &files {
            assert_same(
                &format!("{path}, servers back"),
                data,
                &get(&fresh, path).await,
            );
        }
    })
    .await;
}
