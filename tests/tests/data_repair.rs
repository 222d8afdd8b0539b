//! A block server killed for good: reads keep working (degraded) the whole time, the namenodes
//! declare it dead, and the leader rebuilds every shard it held onto the other servers, until
//! fsck reports every block at full strength with no shard left on the dead server. Then one
//! more server dies and every file still reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use arbor_tests::blockservers;
use arbor_tests::data::{assert_same, blocks, get, pattern, put};
use arbor_tests::{Config, MIB, TestCluster, secs, within};

#[tokio::test]
async fn dead_server_is_repaired_while_reads_go_on() {
    within(secs(240), async {
        // Seven servers: RS(4,2) blocks use six, so a rebuilt shard has somewhere to go.
        let cluster = TestCluster::start(Config::data(7)).await;
        let client = cluster.client().await;
        let files: Vec<(String, Vec<u8>)> = vec![
            ("/a".into(), pattern(1, 3 * MIB as usize + 99)),
            ("/b".into(), pattern(2, 300_000)),
            ("/c".into(), pattern(3, MIB as usize)),
            ("/d".into(), pattern(4, 2 * MIB as usize + MIB as usize / 3)),
        ];
        for (path, data) in &files {
            put(&client, path, data).await;
        }
        let total_blocks: usize = {
            let mut n = 0;
            for (path, _) in &files {
                n += blocks(&cluster, path).await.len();
            }
            n
        };

        // The server holding the most shards goes for good.
        let mut held = Vec::new();
        for i in 0..7 {
            held.push(cluster.list_shards(i).await.len());
        }
        let victim = (0..7).max_by_key(|&i| held[i]).unwrap();
        assert!(held[victim] > 0, "{held:?}");
        let victim_id = cluster.blockserver_id(victim).await;
        cluster.kill_blockserver(victim);

        // Readers run during detection and repair; every read must return the file's bytes.
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        let reader = {
            let client = cluster.client().await;
            let files = files.clone();
            let stop = stop.clone();
            let reads = reads.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    for (path, data) in &files {
                        assert_same(
                            &format!("{path} during repair"),
                            data,
                            &get(&client, path).await,
                        );
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };

        cluster.wait_block_server_dead(victim_id, secs(30)).await;
        let report = cluster
            .wait_fsck(secs(90), "every block at full strength", |r| {
                r.under_strength_blocks == 0 && r.dead_block_servers == 1
            })
            .await;
        stop.store(true, Ordering::Relaxed);
        reader.await.expect("the reader saw every file intact");
        assert!(
            reads.load(Ordering::Relaxed) >= files.len(),
            "reads ran during the repair"
        );
        assert!(report.healthy, "{report:?}");
        assert_eq!(report.blocks, total_blocks as u64, "{report:?}");
        assert_eq!(report.missing_blocks, 0, "{report:?}");
        assert_eq!(report.live_block_servers, 6, "{report:?}");

        // No shard is on the dead server any more; every shard is where the namenode says,
        // intact, and the blocks still use six distinct servers.
        for (path, _) in &files {
            for b in blocks(&cluster, path).await {
                let mut servers: Vec<u64> = b.shards.iter().map(|s| s.server_id).collect();
                assert!(
                    !servers.contains(&victim_id) && !servers.contains(&0),
                    "{path}: block {} still lacks a live shard: {b:?}",
                    b.block_id
                );
                servers.sort_unstable();
                servers.dedup();
                assert_eq!(
                    servers.len(),
                    6,
                    "{path}: block {} shards share a server",
                    b.block_id
                );
                for s in &b.shards {
                    let fetched = blockservers::get_shard(&s.addr, b.block_id, s.index)
                        .await
                        .unwrap_or_else(|e| {
                            panic!("{path}: shard {}/{}: {e}", b.block_id, s.index)
                        });
                    assert!(
                        fetched.intact(),
                        "{path}: shard {}/{} is corrupt",
                        b.block_id,
                        s.index
                    );
                }
            }
        }

        // A second server dies: one shard of each block lost again, and every file reads.
        let second = (0..7).find(|&i| i != victim).unwrap();
        cluster.kill_blockserver(second);
        let fresh = cluster.client().await;
        for (path, data) in &files {
            assert_same(
                &format!("{path}, two servers gone"),
                data,
                &get(&fresh, path).await,
            );
        }
    })
    .await;
}
