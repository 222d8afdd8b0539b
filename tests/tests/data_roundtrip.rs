//! File data round trips on a cluster with six block servers (RS(4,2), 64 KiB cells, 1 MiB
//! blocks, 64 KiB inline threshold): every size around the inline threshold and the block size,
//! through the client library and through `arbor dfs -put/-get/-cat/-head/-tail/-cp`; ranged
//! reads; appends across the inline threshold and across blocks; truncate shrinking and
//! growing. Contents are compared by sha256; fsck stays HEALTHY throughout.

use arbor_tests::data::{
    append, assert_same, blocks, file_blocks, get, pattern, put, read_range, sha256_hex,
};
use arbor_tests::namespace::ok;
use arbor_tests::{Config, KIB, MIB, TestCluster, secs, within};

const INLINE: u64 = 64 * KIB;
const BLOCK: u64 = MIB;
/// RS(4,2): k + m shards per block.
const SHARDS: usize = 6;

/// Checks what the namenode keeps for a file of `len` bytes: inline bytes up to the threshold
/// (no blocks), else contiguous blocks of at most the block size, each with k + m shards on
/// distinct servers.
async fn check_layout(cluster: &TestCluster, path: &str, len: u64) {
    let reply = file_blocks(cluster, path).await;
    let status = reply.status.as_ref().expect("GetBlocks carries the status");
    assert_eq!(status.size, len, "{path}: size");
    if len <= INLINE {
        assert!(
            reply.blocks.is_empty(),
            "{path} ({len} bytes) is small enough to be inline: {reply:?}"
        );
        assert_eq!(reply.inline_data.len() as u64, len, "{path}: inline bytes");
        return;
    }
    assert!(
        !reply.inline,
        "{path} ({len} bytes) is past the inline threshold"
    );
    let mut offset = 0;
    for (i, b) in reply.blocks.iter().enumerate() {
        assert_eq!(b.index, i as u64, "{path}: block indexes are contiguous");
        assert_eq!(
            b.offset, offset,
            "{path}: block {i} starts where the last ended"
        );
        assert!(
            b.length > 0 && b.length <= BLOCK,
            "{path}: block {i} length {}",
            b.length
        );
        offset += b.length;
        if b.shards.is_empty() {
            // A small block may be kept in the metastore itself.
            assert_eq!(
                b.data.len() as u64,
                b.length,
                "{path}: block {i} has no shards: {b:?}"
            );
            continue;
        }
        assert_eq!(b.shards.len(), SHARDS, "{path}: block {i} shards: {b:?}");
        let mut servers: Vec<u64> = b.shards.iter().map(|s| s.server_id).collect();
        assert!(
            servers.iter().all(|&s| s != 0),
            "{path}: block {i} lost a shard: {b:?}"
        );
        servers.sort_unstable();
        servers.dedup();
        assert_eq!(
            servers.len(),
            SHARDS,
            "{path}: block {i} shards share a server"
        );
    }
    assert_eq!(offset, len, "{path}: the blocks add up to the size");
    assert_eq!(
        reply.blocks.len() as u64,
        len.div_ceil(BLOCK),
        "{path}: a file written in one go fills whole blocks"
    );
}

#[tokio::test]
async fn library_round_trips_every_size() {
    within(secs(240), async {
        let cluster = TestCluster::start(Config::data(6)).await;
        let client = cluster.client().await;
        ok(
            client.mkdir("/rt", 0o755, false).await,
            "mkdir(/rt, 0o755, false)",
        );

        let sizes = [
            0,
            1,
            INLINE - 1,
            INLINE,
            INLINE + 1,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            3 * BLOCK + BLOCK / 2 + 3,
        ];
        let mut total = 0;
        for (n, &size) in sizes.iter().enumerate() {
            let path = format!("/rt/f{size}");
            let data = pattern(n as u64 + 1, size as usize);
            let shards_before: usize = shard_count(&cluster).await;
            let status = put(&client, &path, &data).await;
            assert_eq!(status.size, size, "{path}: close reports the size");
            if size <= INLINE {
                assert_eq!(
                    shard_count(&cluster).await,
                    shards_before,
                    "{path}: a small file touches no block server"
                );
            }
            assert_same(&path, &data, &get(&client, &path).await);
            // A second client (no cache of anything the writer did) reads the same bytes.
            let other = cluster.client_on(1).await;
            assert_same(
                &format!("{path} via namenode 1"),
                &data,
                &get(&other, &path).await,
            );
            assert_eq!(ok(client.stat(&path).await, "stat(&path)").size, size);
            check_layout(&cluster, &path, size).await;
            total += size;
        }

        // Ranged reads of the multi-block file: within a cell, across cells, stripes and
        // blocks, up to and past the end.
        let big = *sizes.last().unwrap();
        let path = format!("/rt/f{big}");
        let data = pattern(sizes.len() as u64, big as usize);
        let ranges: [(u64, usize); 8] = [
            (0, 1),
            (5, 100),
            (64 * 1024 - 10, 20),
            (4 * 64 * 1024 - 1, 64 * 1024 + 2),
            (BLOCK - 7, 14),
            (BLOCK / 2, 2 * BLOCK as usize),
            (big - 5, 5),
            (big - 5, 100),
        ];
        for (offset, len) in ranges {
            let got = read_range(&client, &path, offset, len).await;
            let end = (offset as usize + len).min(data.len());
            assert_same(
                &format!("{path} [{offset}, +{len})"),
                &data[offset as usize..end],
                &got,
            );
        }
        assert!(
            read_range(&client, &path, big, 10).await.is_empty(),
            "a read at the end of the file is empty"
        );
        assert!(read_range(&client, &path, big + 1000, 10).await.is_empty());

        let report = cluster.fsck().await;
        assert!(report.healthy, "{report:?}");
        assert_eq!(report.files, sizes.len() as u64);
        assert_eq!(report.total_size, total);
        let expected_blocks: u64 = sizes
            .iter()
            .filter(|&&s| s > INLINE)
            .map(|s| s.div_ceil(BLOCK))
            .sum();
        assert_eq!(report.blocks, expected_blocks, "{report:?}");
        assert_eq!(report.under_strength_blocks, 0, "{report:?}");
        assert_eq!(report.missing_blocks, 0, "{report:?}");
        assert_eq!(report.live_block_servers, 6, "{report:?}");
    })
    .await;
}

async fn shard_count(cluster: &TestCluster) -> usize {
    let mut n = 0;
    for i in 0..cluster.config().blockservers {
        n += cluster.list_shards(i).await.len();
    }
    n
}

#[tokio::test]
async fn cli_put_get_cat_head_tail_cp() {
    within(secs(240), async {
        let cluster = TestCluster::start(Config::data(6)).await;
        let local = tempfile::tempdir().unwrap();
        let size = 2 * BLOCK as usize + 300_007;
        let data = pattern(42, size);
        let src = local.path().join("src.bin");
        std::fs::write(&src, &data).unwrap();
        let small = pattern(43, 5000);
        let small_src = local.path().join("small.bin");
        std::fs::write(&small_src, &small).unwrap();

        let out = cluster.cli(&["dfs", "-mkdir", "/cli"]).await;
        assert_eq!(out.code, 0, "{out}");
        let out = cluster
            .cli(&["dfs", "-put", src.to_str().unwrap(), "/cli/big"])
            .await;
        assert_eq!(out.code, 0, "{out}");
        // Into a directory: keeps the local name.
        let out = cluster
            .cli(&["dfs", "-put", small_src.to_str().unwrap(), "/cli"])
            .await;
        assert_eq!(out.code, 0, "{out}");
        let client = cluster.client().await;
        assert_same(
            "library read of -put",
            &data,
            &get(&client, "/cli/big").await,
        );
        assert_same(
            "small -put into a dir",
            &small,
            &get(&client, "/cli/small.bin").await,
        );

        // -put onto an existing file needs -f.
        let out = cluster
            .cli(&["dfs", "-put", small_src.to_str().unwrap(), "/cli/big"])
            .await;
        assert_eq!(out.code, 1, "{out}");
        assert!(out.stderr.contains("File exists"), "{out}");
        assert_same(
            "unchanged after a refused -put",
            &data,
            &get(&client, "/cli/big").await,
        );

        // -get, and -get onto an existing local file needs -f.
        let dst = local.path().join("dst.bin");
        let out = cluster
            .cli(&["dfs", "-get", "/cli/big", dst.to_str().unwrap()])
            .await;
        assert_eq!(out.code, 0, "{out}");
        assert_same("-get", &data, &std::fs::read(&dst).unwrap());
        let out = cluster
            .cli(&["dfs", "-get", "/cli/small.bin", dst.to_str().unwrap()])
            .await;
        assert_eq!(out.code, 1, "{out}");
        assert!(out.stderr.contains("File exists"), "{out}");
        let out = cluster
            .cli(&["dfs", "-get", "-f", "/cli/small.bin", dst.to_str().unwrap()])
            .await;
        assert_eq!(out.code, 0, "{out}");
        assert_same("-get -f", &small, &std::fs::read(&dst).unwrap());

        // -cat, byte for byte; of two files, one after the other.
        let out = cluster.cli(&["dfs", "-cat", "/cli/big"]).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_same("-cat", &data, &out.stdout_bytes);
        let out = cluster
            .cli(&["dfs", "-cat", "/cli/small.bin", "/cli/big"])
            .await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_same(
            "-cat of two files",
            &[small.clone(), data.clone()].concat(),
            &out.stdout_bytes,
        );

        // -head and -tail: the first and the last KiB.
        let out = cluster.cli(&["dfs", "-head", "/cli/big"]).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_same("-head", &data[..1024], &out.stdout_bytes);
        let out = cluster.cli(&["dfs", "-tail", "/cli/big"]).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_same("-tail", &data[size - 1024..], &out.stdout_bytes);
        let out = cluster.cli(&["dfs", "-tail", "/cli/small.bin"]).await;
        assert_same(
            "-tail of 5000 bytes",
            &small[5000 - 1024..],
            &out.stdout_bytes,
        );

        // -cp copies the data (a new file with its own blocks).
        let out = cluster.cli(&["dfs", "-cp", "/cli/big", "/cli/copy"]).await;
        assert_eq!(out.code, 0, "{out}");
        assert_same("-cp", &data, &get(&client, "/cli/copy").await);
        let original: Vec<u64> = blocks(&cluster, "/cli/big")
            .await
            .iter()
            .map(|b| b.block_id)
            .collect();
        let copied: Vec<u64> = blocks(&cluster, "/cli/copy")
            .await
            .iter()
            .map(|b| b.block_id)
            .collect();
        assert_eq!(copied.len(), original.len());
        assert!(
            copied.iter().all(|id| !original.contains(id)),
            "a copy has blocks of its own: {original:?} {copied:?}"
        );

        // -du counts parity: RS(4,2) consumes 1.5x the size (plus the padding of last stripes).
        let out = cluster.cli(&["dfs", "-du", "-s", "/cli"]).await;
        assert_eq!(out.code, 0, "{out}");
        let fields: Vec<&str> = out.stdout.split_whitespace().collect();
        assert_eq!(fields.len(), 3, "{out}");
        let logical: u64 = fields[0].parse().unwrap();
        let consumed: u64 = fields[1].parse().unwrap();
        assert_eq!(logical, 2 * size as u64 + small.len() as u64, "{out}");
        assert_eq!(fields[2], "/cli", "{out}");
        let minimum = 2 * size as u64 * 3 / 2 + small.len() as u64;
        assert!(
            consumed >= minimum && consumed <= minimum + 6 * 64 * 10,
            "disk space consumed {consumed}, expected about {minimum}: {out}"
        );

        // -df: the block servers' capacity, as their heartbeats report it (every few
        // seconds: the shards just written show from the next one on).
        let start = std::time::Instant::now();
        loop {
            let out = cluster.cli(&["dfs", "-df"]).await;
            assert_eq!(out.code, 0, "{out}");
            let lines = out.stdout_lines();
            assert!(lines[0].starts_with("Filesystem"), "{out}");
            let row: Vec<&str> = lines[1].split_whitespace().collect();
            let capacity: u64 = row[1].parse().unwrap();
            let used: u64 = row[2].parse().unwrap();
            assert!(capacity > 0, "{out}");
            if used >= 2 * size as u64 * 3 / 2 {
                break;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(15),
                "used space never reached what was written: {out}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }

        let report = cluster.fsck().await;
        assert!(report.healthy, "{report:?}");
        assert_eq!(report.files, 3);
        assert_eq!(
            sha256_hex(&get(&client, "/cli/copy").await),
            sha256_hex(&data)
        );
    })
    .await;
}

#[tokio::test]
async fn append_across_the_inline_threshold_and_blocks() {
    within(secs(240), async {
        let cluster = TestCluster::start(Config::data(6)).await;
        let client = cluster.client().await;
        let path = "/log";
        let mut model = pattern(1, 10_000);
        put(&client, path, &model).await;
        check_layout(&cluster, path, model.len() as u64).await;

        // Still inline, then past the threshold, then across a block boundary, then a byte.
        for (seed, len) in [(2, 50_000), (3, 10_000), (4, 1_200_000), (5, 1)] {
            let more = pattern(seed, len);
            let status = append(&client, path, &more).await;
            model.extend_from_slice(&more);
            assert_eq!(status.size, model.len() as u64);
            assert_same(
                &format!("after appending {len} bytes"),
                &model,
                &get(&client, path).await,
            );
        }
        let layout = file_blocks(&cluster, path).await;
        assert!(!layout.inline && !layout.blocks.is_empty(), "{layout:?}");
        let sum: u64 = layout.blocks.iter().map(|b| b.length).sum();
        assert_eq!(sum, model.len() as u64);

        // -appendToFile from local files, one after the other.
        let local = tempfile::tempdir().unwrap();
        let a = local.path().join("a");
        let b = local.path().join("b");
        let (da, db) = (pattern(6, 70_000), pattern(7, 900_000));
        std::fs::write(&a, &da).unwrap();
        std::fs::write(&b, &db).unwrap();
        let out = cluster
            .cli(&[
                "dfs",
                "-appendToFile",
                a.to_str().unwrap(),
                b.to_str().unwrap(),
                path,
            ])
            .await;
        assert_eq!(out.code, 0, "{out}");
        model.extend_from_slice(&da);
        model.extend_from_slice(&db);
        assert_same("after -appendToFile", &model, &get(&client, path).await);

        // -appendToFile creates a missing file.
        let out = cluster
            .cli(&["dfs", "-appendToFile", a.to_str().unwrap(), "/fresh"])
            .await;
        assert_eq!(out.code, 0, "{out}");
        assert_same(
            "-appendToFile of a new file",
            &da,
            &get(&client, "/fresh").await,
        );

        let report = cluster.fsck().await;
        assert!(report.healthy, "{report:?}");
        assert_eq!(report.under_strength_blocks, 0, "{report:?}");
        assert_eq!(report.total_size, model.len() as u64 + da.len() as u64);
    })
    .await;
}

#[tokio::test]
async fn truncate_shrinks_and_grows() {
    within(secs(240), async {
        let cluster = TestCluster::start(Config::data(6)).await;
        let client = cluster.client().await;
        let path = "/t";
        let data = pattern(9, 2 * BLOCK as usize + BLOCK as usize / 2);
        put(&client, path, &data).await;

        // Shrink inside the second block: the third block is gone, the second is shorter.
        let cut = BLOCK + BLOCK / 2 + 3;
        let status = ok(client.truncate(path, cut).await, "truncate(path, cut)");
        assert_eq!(status.size, cut);
        assert_same("shrunk", &data[..cut as usize], &get(&client, path).await);
        let layout = blocks(&cluster, path).await;
        assert_eq!(layout.len(), 2, "{layout:?}");
        assert_eq!(layout[1].length, BLOCK / 2 + 3);

        // Grow: the new bytes read as zeros.
        let grown = 2 * BLOCK + 17;
        ok(client.truncate(path, grown).await, "truncate(path, grown)");
        let mut model = data[..cut as usize].to_vec();
        model.resize(grown as usize, 0);
        assert_same("grown", &model, &get(&client, path).await);
        assert_same(
            "a range across the hole's start",
            &model[cut as usize - 10..cut as usize + 10],
            &read_range(&client, path, cut - 10, 20).await,
        );

        // Appending after a grow writes past the zeros.
        let tail = pattern(10, 100_000);
        append(&client, path, &tail).await;
        model.extend_from_slice(&tail);
        assert_same("appended after the hole", &model, &get(&client, path).await);

        // The CLI: down to a size inside the first cell, then to zero.
        let out = cluster.cli(&["dfs", "-truncate", "-w", "100", path]).await;
        assert_eq!(out.code, 0, "{out}");
        assert_same("-truncate 100", &data[..100], &get(&client, path).await);
        let out = cluster.cli(&["dfs", "-truncate", "0", path]).await;
        assert_eq!(out.code, 0, "{out}");
        assert!(get(&client, path).await.is_empty());

        // An inline file grows with zeros and shrinks.
        let small = pattern(11, 10_000);
        put(&client, "/s", &small).await;
        ok(client.truncate("/s", 20_000).await, "truncate(/s, 20_000)");
        let mut model = small.clone();
        model.resize(20_000, 0);
        assert_same("inline grown", &model, &get(&client, "/s").await);
        ok(client.truncate("/s", 5).await, "truncate(/s, 5)");
        assert_same("inline shrunk", &small[..5], &get(&client, "/s").await);

        let report = cluster.fsck().await;
        assert!(report.healthy, "{report:?}");
        assert_eq!(report.total_size, 5, "{report:?}");
        assert_eq!(report.missing_blocks, 0, "{report:?}");
    })
    .await;
}
