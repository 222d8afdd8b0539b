//! Whole blocks across real block servers: BlockWriter + read_range round trips for every
//! length class and layout, degraded reads, corrupt shards, writes with a server down,
//! rebuild onto a new server, and deleting shards.

mod common;

use arbor_blockserver::fetch::fetch_shard;
use arbor_blockserver::shardfile::ShardKey;
use arbor_blockserver::{BlockRef, Error, Layout, ShardPool, delete_shards, read_range, rebuild};
use common::*;

/// Reads the whole block and a set of awkward ranges, and checks them against `bytes`.
async fn check_reads(pool: &ShardPool, block: &BlockRef, bytes: &[u8]) {
    let len = bytes.len();
    let got = read_range(pool, block, 0, len + 10)
        .await
        .expect("whole block");
    assert_eq!(got.data.len(), len);
    assert!(got.data[..] == bytes[..], "whole block differs (len {len})");
    assert!(got.bad.is_empty(), "{:?}", got.bad);
    let sd = block.layout.stripe_data();
    let c = block.layout.cell;
    let mut ranges = vec![
        (0, 1),
        (len / 2, 1),
        (len.saturating_sub(1), 5),
        (c - 1, 2),
        (sd - 3, 7),
        (1, c + 5),
        (c / 2, 2 * sd),
    ];
    ranges.push((len, 4));
    for (off, n) in ranges {
        let r = read_range(pool, block, off as u64, n).await.expect("range");
        let end = (off + n).min(len);
        let want = if off >= len {
            &[][..]
        } else {
            &bytes[off..end]
        };
        assert!(r.data[..] == want[..], "range {off}+{n} of {len}");
    }
}

async fn round_trips(layout: Layout, servers: &[Server], pool: &ShardPool) {
    let c = CELL;
    let k = layout.k;
    let lens = [
        0,
        1,
        c - 1,
        c,
        c + 1,
        k * c - 1,
        k * c,
        k * c + 1,
        3 * k * c + 4321,
    ];
    for (n, len) in lens.into_iter().enumerate() {
        let block_id = 1000 * layout.shards() as u64 + n as u64;
        let bytes = data(len, block_id);
        let written = write_block(pool, block_id, layout, targets(servers, layout), &bytes).await;
        assert_eq!(written.length, len as u64);
        assert!(written.failed.is_empty(), "{:?}", written.failed);
        assert_eq!(written.shards, targets(servers, layout));
        // Every shard has exactly the length the layout says.
        for (i, s) in servers.iter().enumerate().take(layout.shards()) {
            let key = ShardKey {
                block_id,
                index: i as u32,
            };
            let shard = fetch_shard(
                pool,
                &s.addr,
                key,
                0..u64::MAX,
                Some(layout.shard_len(len as u64)),
            )
            .await
            .expect("shard");
            assert_eq!(shard.len() as u64, layout.shard_len(len as u64));
            if layout.replication && i > 0 {
                let first = fetch_shard(
                    pool,
                    &servers[0].addr,
                    ShardKey { block_id, index: 0 },
                    0..u64::MAX,
                    None,
                )
                .await
                .expect("shard 0");
                assert_eq!(shard, first, "replica {i} differs");
            }
        }
        let block = block_ref(block_id, len as u64, layout, written.shards);
        check_reads(pool, &block, &bytes).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_and_reader_round_trip_every_layout() {
    let servers = servers(9);
    let pool = pool();
    round_trips(rs(4, 2), &servers, &pool).await;
    round_trips(rs(6, 3), &servers, &pool).await;
    round_trips(replication(), &servers, &pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn degraded_reads_survive_m_lost_servers_and_name_the_block_past_that() {
    let mut servers = servers(6);
    let pool = pool();
    let layout = rs(4, 2);
    let len = 5 * layout.stripe_data() + 777;
    let bytes = data(len, 7);
    let written = write_block(&pool, 7, layout, targets(&servers, layout), &bytes).await;
    let block = block_ref(7, len as u64, layout, written.shards);

    servers[1].kill();
    servers[4].kill();
    let got = read_range(&pool, &block, 0, len)
        .await
        .expect("degraded read");
    assert!(got.data[..] == bytes[..]);
    assert!(
        got.bad
            .iter()
            .any(|b| b.index == 1 && b.reason == "unreachable"),
        "{:?}",
        got.bad
    );
    // A range inside one cell of a dead data shard.
    let off = CELL + 100;
    let got = read_range(&pool, &block, off as u64, 1000)
        .await
        .expect("degraded range");
    assert!(got.data[..] == bytes[off..off + 1000]);
    // A range that only needs live shards takes the fast path and reports nothing.
    let got = read_range(&pool, &block, 0, 1000)
        .await
        .expect("fast range");
    assert!(got.data[..] == bytes[..1000]);
    assert!(got.bad.is_empty());

    servers[2].kill();
    let err = read_range(&pool, &block, 0, len).await.unwrap_err();
    assert_eq!(
        err,
        Error::NotEnoughShards {
            block_id: 7,
            good: 3,
            needed: 4
        }
    );
    assert!(err.to_string().contains("0x7"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_shard_is_decoded_around_and_reported() {
    let servers = servers(9);
    let pool = pool();
    let layout = rs(6, 3);
    let len = 2 * layout.stripe_data() + 5000;
    let bytes = data(len, 8);
    let written = write_block(&pool, 8, layout, targets(&servers, layout), &bytes).await;
    let block = block_ref(8, len as u64, layout, written.shards);
    // Flip one byte of data shard 2 in its second stripe.
    let path = servers[2].shard_file(8, 2);
    let mut raw = std::fs::read(&path).expect("read");
    raw[CELL + 10] ^= 0xff;
    std::fs::write(&path, &raw).expect("write");
    let got = read_range(&pool, &block, 0, len).await.expect("read");
    assert!(got.data[..] == bytes[..], "wrong bytes returned");
    assert_eq!(got.bad.len(), 1, "{:?}", got.bad);
    assert_eq!((got.bad[0].index, got.bad[0].server_id), (2, servers[2].id));
    assert_eq!(got.bad[0].reason, "corrupt");
    // A shard deleted behind the server's back is "missing".
    std::fs::remove_file(servers[0].shard_file(8, 0)).expect("remove");
    let got = read_range(&pool, &block, 0, 100).await.expect("read");
    assert!(got.data[..] == bytes[..100]);
    assert_eq!(got.bad[0].reason, "missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_with_a_server_down_commits_with_that_shard_lost() {
    let mut servers = servers(6);
    let pool = pool();
    let layout = rs(4, 2);
    servers[3].kill();
    let len = 3 * layout.stripe_data() + 99;
    let bytes = data(len, 9);
    let written = write_block(&pool, 9, layout, targets(&servers, layout), &bytes).await;
    assert_eq!(written.failed.len(), 1);
    assert_eq!(written.failed[0].index, 3);
    assert_eq!(written.failed[0].server_id, servers[3].id);
    assert_eq!(written.shards[3].server_id, 0);
    assert_eq!(written.shards[3].addr, "");
    assert_eq!(written.shards[0], servers[0].target(0));
    let block = block_ref(9, len as u64, layout, written.shards);
    let got = read_range(&pool, &block, 0, len).await.expect("read");
    assert!(got.data[..] == bytes[..]);
    // The lost shard is known already: not reported again.
    assert!(got.bad.is_empty(), "{:?}", got.bad);

    // With m+1 servers down the block cannot be written.
    servers[4].kill();
    servers[5].kill();
    let mut w =
        arbor_blockserver::BlockWriter::new(pool.clone(), 10, layout, targets(&servers, layout));
    let r = async {
        w.write(&bytes).await?;
        w.finish().await
    }
    .await;
    assert!(
        matches!(
            r,
            Err(Error::NotEnoughShards {
                block_id: 10,
                needed: 4,
                ..
            })
        ),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_restores_a_lost_shard_on_a_new_server() {
    let mut servers = servers(6);
    let pool = pool();
    let layout = rs(4, 2);
    // Big enough for several rebuild batches (4 MiB of shard per batch).
    let len = 70 * layout.stripe_data() + 12345;
    let bytes = data(len, 11);
    let written = write_block(&pool, 11, layout, targets(&servers, layout), &bytes).await;
    let shard_len = layout.shard_len(len as u64);
    let mut originals = Vec::new();
    for i in [1u32, 5] {
        let s = &servers[i as usize];
        originals.push(
            fetch_shard(
                &pool,
                &s.addr,
                ShardKey {
                    block_id: 11,
                    index: i,
                },
                0..shard_len,
                Some(shard_len),
            )
            .await
            .expect("original"),
        );
    }
    servers[1].kill();
    servers[5].kill();
    let fresh = [Server::start(), Server::start()];
    let mut block = block_ref(11, len as u64, layout, written.shards.clone());
    let new_targets = vec![fresh[0].target(1), fresh[1].target(5)];
    rebuild(&pool, &block, &new_targets).await.expect("rebuild");
    for (n, (i, orig)) in [1u32, 5].into_iter().zip(&originals).enumerate() {
        let got = fetch_shard(
            &pool,
            &fresh[n].addr,
            ShardKey {
                block_id: 11,
                index: i,
            },
            0..shard_len,
            Some(shard_len),
        )
        .await
        .expect("rebuilt shard");
        assert!(got == *orig, "rebuilt shard {i} differs");
    }
    block.shards[1] = fresh[0].target(1);
    block.shards[5] = fresh[1].target(5);
    servers[0].kill();
    servers[2].kill();
    // Only shards 1, 3, 4 (data), 5 (parity) remain: two of them rebuilt.
    let got = read_range(&pool, &block, 0, len)
        .await
        .expect("read after rebuild");
    assert!(got.data[..] == bytes[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_shards_removes_a_block() {
    let servers = servers(3);
    let pool = pool();
    let layout = replication();
    let bytes = data(100_000, 12);
    let written = write_block(&pool, 12, layout, targets(&servers, layout), &bytes).await;
    let block = block_ref(12, bytes.len() as u64, layout, written.shards);
    for (i, s) in servers.iter().enumerate() {
        let n = delete_shards(&pool, &s.addr, &[(12, i as u32), (12, 99)])
            .await
            .expect("delete");
        assert_eq!(n, 1);
        assert!(!s.shard_file(12, i as u32).exists());
        assert_eq!(pool.stat(&s.addr).await.expect("stat").shards, 0);
    }
    let err = read_range(&pool, &block, 0, 10).await.unwrap_err();
    assert_eq!(
        err,
        Error::NotEnoughShards {
            block_id: 12,
            good: 0,
            needed: 1
        }
    );
}
