//! One shard on one server: put/get round trips, range reads, checksums on disk, listing,
//! stat, deletion, and the server id surviving a restart.

mod common;

use arbor_blockserver::fetch::fetch_shard;
use arbor_blockserver::sender::ShardSender;
use arbor_blockserver::shardfile::ShardKey;
use arbor_blockserver::{Error, delete_shards};
use bytes::Bytes;
use common::*;

async fn put(
    pool: &arbor_blockserver::ShardPool,
    addr: &str,
    key: ShardKey,
    bytes: &[u8],
    chunk: usize,
) {
    let mut s = ShardSender::start(pool, addr, key, chunk);
    // Uneven pieces: the sender must cut them into whole checksum chunks.
    for piece in bytes.chunks(100_003) {
        s.send(Bytes::copy_from_slice(piece)).await.expect("send");
    }
    assert_eq!(s.finish().await.expect("finish"), bytes.len() as u64);
}

#[tokio::test]
async fn shard_round_trip_and_range_reads() {
    let server = Server::start();
    let pool = pool();
    let key = ShardKey {
        block_id: 0xabc,
        index: 3,
    };
    let bytes = data(1_000_000, 1);
    put(&pool, &server.addr, key, &bytes, 65536).await;

    let all = fetch_shard(
        &pool,
        &server.addr,
        key,
        0..bytes.len() as u64,
        Some(bytes.len() as u64),
    )
    .await
    .expect("whole shard");
    assert_eq!(&all[..], &bytes[..]);
    for (a, b) in [
        (0u64, 1u64),
        (1, 2),
        (65535, 65537),
        (70_000, 400_123),
        (999_999, 1_000_000),
        (123, 123),
    ] {
        let got = fetch_shard(&pool, &server.addr, key, a..b, None)
            .await
            .expect("range");
        assert_eq!(&got[..], &bytes[a as usize..b as usize], "range {a}..{b}");
    }
    // A reader that expects another length is told the shard is not what it wants.
    let err = fetch_shard(&pool, &server.addr, key, 0..10, Some(999))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
    // Absent shard.
    let other = ShardKey {
        block_id: 0xabc,
        index: 4,
    };
    let err = fetch_shard(&pool, &server.addr, other, 0..10, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");

    // The stored object is data, crc table, footer.
    let meta = std::fs::metadata(server.shard_file(0xabc, 3)).expect("stored object");
    assert_eq!(meta.len(), 1_000_000 + 4 * 16 + 40);
    let stat = pool.stat(&server.addr).await.expect("stat");
    assert_eq!(stat.server_id, server.id);
    assert_eq!(stat.shards, 1);
    assert_eq!(stat.used_bytes, meta.len());
    assert!(stat.capacity_bytes > stat.used_bytes);
}

#[tokio::test]
async fn empty_and_small_chunk_shards() {
    let server = Server::start();
    let pool = pool();
    let empty = ShardKey {
        block_id: 1,
        index: 0,
    };
    put(&pool, &server.addr, empty, &[], 65536).await;
    let got = fetch_shard(&pool, &server.addr, empty, 0..0, Some(0))
        .await
        .expect("empty");
    assert!(got.is_empty());
    let small = ShardKey {
        block_id: 2,
        index: 0,
    };
    let bytes = data(4096 * 3 + 64, 2);
    put(&pool, &server.addr, small, &bytes, 4096).await;
    let got = fetch_shard(&pool, &server.addr, small, 4000..12_300, None)
        .await
        .expect("range");
    assert_eq!(&got[..], &bytes[4000..12_300]);
}

#[tokio::test]
async fn a_corrupted_byte_on_disk_is_detected() {
    let server = Server::start();
    let pool = pool();
    let key = ShardKey {
        block_id: 77,
        index: 1,
    };
    let bytes = data(300_000, 3);
    put(&pool, &server.addr, key, &bytes, 65536).await;
    let path = server.shard_file(77, 1);
    let mut raw = std::fs::read(&path).expect("read object");
    raw[200_000] ^= 0x04;
    std::fs::write(&path, &raw).expect("write object");
    // Reads that cover the damaged chunk fail; others still succeed.
    let err = fetch_shard(&pool, &server.addr, key, 199_990..200_010, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
    let err = fetch_shard(&pool, &server.addr, key, 0..300_000, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
    let ok = fetch_shard(&pool, &server.addr, key, 0..65536, None)
        .await
        .expect("clean chunk");
    assert_eq!(&ok[..], &bytes[..65536]);
    // A damaged footer makes the whole shard unreadable, not misread.
    let n = raw.len();
    raw[200_000] ^= 0x04;
    raw[n - 30] ^= 0x01;
    std::fs::write(&path, &raw).expect("write object");
    let err = fetch_shard(&pool, &server.addr, key, 0..10, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
}

#[tokio::test]
async fn list_delete_and_restart() {
    let mut server = Server::start();
    let pool = pool();
    let mut keys = Vec::new();
    for block_id in [5u64, 300, 2] {
        for index in 0..3 {
            let key = ShardKey { block_id, index };
            put(
                &pool,
                &server.addr,
                key,
                &data(1000, block_id + u64::from(index)),
                65536,
            )
            .await;
            keys.push(key);
        }
    }
    keys.sort();
    let page = pool.list_shards(&server.addr, None, 4).await.expect("list");
    assert!(page.more);
    let listed: Vec<(u64, u32)> = page
        .shards
        .iter()
        .map(|s| s.id.map(|i| (i.block_id, i.index)).expect("id"))
        .collect();
    assert_eq!(
        listed,
        keys[..4]
            .iter()
            .map(|k| (k.block_id, k.index))
            .collect::<Vec<_>>()
    );
    let rest = pool
        .list_shards(&server.addr, Some(listed[3]), 100)
        .await
        .expect("list");
    assert!(!rest.more);
    assert_eq!(rest.shards.len(), 5);

    let deleted = delete_shards(&pool, &server.addr, &[(300, 0), (300, 1), (999, 0)])
        .await
        .expect("delete");
    assert_eq!(deleted, 2);
    assert!(!server.shard_file(300, 0).exists());
    assert!(server.shard_file(300, 2).exists());
    assert_eq!(
        delete_shards(&pool, &server.addr, &[(300, 0)])
            .await
            .expect("delete"),
        0
    );
    let stat = pool.stat(&server.addr).await.expect("stat");
    assert_eq!(stat.shards, 7);

    // The index and the used bytes are rebuilt from the store at start.
    let used = stat.used_bytes;
    server.restart();
    let stat = pool.stat(&server.addr).await.expect("stat after restart");
    assert_eq!(stat.server_id, server.id);
    assert_eq!(stat.shards, 7);
    assert_eq!(stat.used_bytes, used);
    let got = fetch_shard(
        &pool,
        &server.addr,
        ShardKey {
            block_id: 2,
            index: 1,
        },
        0..1000,
        None,
    )
    .await
    .expect("read after restart");
    assert_eq!(&got[..], &data(1000, 3)[..]);
}

#[tokio::test]
async fn a_put_cancelled_midway_publishes_nothing() {
    let server = Server::start();
    let pool = pool();
    let key = ShardKey {
        block_id: 42,
        index: 0,
    };
    let mut s = ShardSender::start(&pool, &server.addr, key, 65536);
    s.send(Bytes::from(data(3 << 20, 4))).await.expect("send");
    drop(s);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let err = fetch_shard(&pool, &server.addr, key, 0..10, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    assert_eq!(pool.stat(&server.addr).await.expect("stat").shards, 0);
}

#[tokio::test]
async fn namenodes_that_fail_or_lack_heartbeats_are_not_fatal() {
    // A block server answers UNIMPLEMENTED to a namenode call; port 1 refuses connections.
    let other = Server::start();
    let mut server = Server::start_with_namenode(&format!("127.0.0.1:1,{}", other.addr), 50);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert!(
        server.is_running(),
        "the server exited for want of a namenode"
    );
    let stat = pool().stat(&server.addr).await.expect("still serving");
    assert_eq!(stat.server_id, server.id);
    assert!(stat.store_url.contains("://"), "{}", stat.store_url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_shard_streams_through_bounded_memory() {
    let server = Server::start();
    let pool = pool();
    let before = server.peak_rss();
    let key = ShardKey {
        block_id: 0xb16,
        index: 0,
    };
    let len = 48 << 20;
    let piece = data(1 << 20, 5);
    let mut s = ShardSender::start(&pool, &server.addr, key, 65536);
    for i in 0..48u8 {
        let mut p = piece.clone();
        p[0] = i;
        s.send(Bytes::from(p)).await.expect("send");
    }
    assert_eq!(s.finish().await.expect("finish"), len as u64);
    let grown = server.peak_rss().saturating_sub(before);
    eprintln!(
        "peak RSS grew by {} KiB for a {} MiB shard",
        grown >> 10,
        len >> 20
    );
    // Local parts are 1 MiB; S3 needs 5 MiB parts (two in memory) plus its HTTP client.
    let bound = if std::env::var_os("ARBOR_TEST_STORE_BASE").is_some() {
        40 << 20
    } else {
        24 << 20
    };
    assert!(
        grown < bound,
        "server grew by {grown} bytes for a {len}-byte shard"
    );
    for i in [0u64, 17, 47] {
        let at = i << 20;
        let got = fetch_shard(
            &pool,
            &server.addr,
            key,
            at..at + (1 << 20),
            Some(len as u64),
        )
        .await
        .expect("read back");
        assert_eq!(got[0], i as u8);
        assert_eq!(&got[1..], &piece[1..]);
    }
}
