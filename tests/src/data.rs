//! File data through the client library, for the data-path scenarios: deterministic contents,
//! whole-file put/get/append over `FileWriter`/`FileReader`, ranged reads, the block list of a
//! file as the namenode keeps it, and comparisons that report where two contents differ.
//!
//! Invariant: every helper goes through the public client API (or the namenode's public RPCs),
//! never around it, so a scenario proves what users get.

use arbor_client::{Client, FileStatus, WriteOptions};
use arbor_proto::namenode::{BlockInfo, GetBlocksReply, GetBlocksRequest};
use sha2::{Digest, Sha256};

use crate::cluster::TestCluster;
use crate::raw::Caller;

/// Bytes handed to one `write` call: odd-sized on purpose, so writes straddle cells, stripes
/// and blocks.
const WRITE_PIECE: usize = 100_003;
/// Bytes asked of one `read_at` call when reading a whole file.
const READ_PIECE: usize = 300_007;

/// `len` pseudo-random bytes, the same for the same seed (xorshift64*): failures reproduce, and
/// no two blocks or files of a scenario look alike.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Lowercase hex sha256.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Asserts `got == expected` by length and sha256; on a mismatch names the first differing
/// offset instead of printing megabytes.
#[track_caller]
pub fn assert_same(what: &str, expected: &[u8], got: &[u8]) {
    if expected.len() == got.len() && sha256_hex(expected) == sha256_hex(got) {
        return;
    }
    let first = expected
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(got.len()));
    panic!(
        "{what}: {} bytes (sha256 {}) expected, got {} bytes (sha256 {}); first difference at \
         offset {first}",
        expected.len(),
        sha256_hex(expected),
        got.len(),
        sha256_hex(got)
    );
}

/// Writes `data` as the whole content of `path` (created, or overwritten), in odd-sized
/// pieces, and closes it.
pub async fn put(client: &Client, path: &str, data: &[u8]) -> FileStatus {
    let opts = WriteOptions {
        overwrite: true,
        ..WriteOptions::default()
    };
    write_with(client, path, opts, data).await
}

/// Appends `data` to `path` (which must exist) and closes it.
pub async fn append(client: &Client, path: &str, data: &[u8]) -> FileStatus {
    let opts = WriteOptions {
        create: false,
        append: true,
        ..WriteOptions::default()
    };
    write_with(client, path, opts, data).await
}

async fn write_with(client: &Client, path: &str, opts: WriteOptions, data: &[u8]) -> FileStatus {
    let mut writer = client
        .open_write(path, opts)
        .await
        .unwrap_or_else(|e| panic!("open {path} for writing: {:?}: {}", e.code, e.message));
    for piece in data.chunks(WRITE_PIECE) {
        writer
            .write(piece)
            .await
            .unwrap_or_else(|e| panic!("write {path}: {:?}: {}", e.code, e.message));
    }
    writer
        .close()
        .await
        .unwrap_or_else(|e| panic!("close {path}: {:?}: {}", e.code, e.message))
}

/// The whole content of `path`, or the first error.
pub async fn try_get(client: &Client, path: &str) -> arbor_client::Result<Vec<u8>> {
    let reader = client.open_read(path).await?;
    let len = reader.len();
    let mut out = Vec::with_capacity(len as usize);
    while (out.len() as u64) < len {
        let got = reader.read_at(out.len() as u64, READ_PIECE).await?;
        if got.is_empty() {
            break;
        }
        out.extend_from_slice(&got);
    }
    Ok(out)
}

/// The whole content of `path`.
pub async fn get(client: &Client, path: &str) -> Vec<u8> {
    try_get(client, path)
        .await
        .unwrap_or_else(|e| panic!("read {path}: {:?}: {}", e.code, e.message))
}

/// Bytes `[offset, offset + len)` of `path` (short only at the end of the file).
pub async fn read_range(client: &Client, path: &str, offset: u64, len: usize) -> Vec<u8> {
    let reader = client
        .open_read(path)
        .await
        .unwrap_or_else(|e| panic!("open {path} for reading: {:?}: {}", e.code, e.message));
    reader
        .read_at(offset, len)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "read {path} [{offset}, +{len}): {:?}: {}",
                e.code, e.message
            )
        })
        .to_vec()
}

/// What the namenode keeps for `path`: GetBlocks, all pages, merged.
pub async fn file_blocks(cluster: &TestCluster, path: &str) -> GetBlocksReply {
    let caller = Caller::new();
    let mut namenode = cluster.raw_namenode(0);
    let mut merged: Option<GetBlocksReply> = None;
    loop {
        let from_index = merged.as_ref().map_or(0, |m| m.blocks.len() as u64);
        let page = namenode
            .get_blocks(GetBlocksRequest {
                ctx: Some(caller.fresh()),
                path: path.to_string(),
                ino: 0,
                from_index,
                limit: 0,
            })
            .await
            .unwrap_or_else(|e| panic!("GetBlocks {path}: {e}"))
            .into_inner();
        let more = page.more && !page.blocks.is_empty();
        match merged.as_mut() {
            None => merged = Some(page),
            Some(m) => m.blocks.extend(page.blocks),
        }
        if !more {
            let mut reply = merged.expect("one page at least");
            reply.more = false;
            return reply;
        }
    }
}

/// The blocks of `path`.
pub async fn blocks(cluster: &TestCluster, path: &str) -> Vec<BlockInfo> {
    file_blocks(cluster, path).await.blocks
}

/// `(block id, shard index, server address)` of every shard of `path` that has a server.
pub async fn shard_locations(cluster: &TestCluster, path: &str) -> Vec<(u64, u32, String)> {
    blocks(cluster, path)
        .await
        .iter()
        .flat_map(|b| {
            b.shards
                .iter()
                .filter(|s| s.server_id != 0)
                .map(move |s| (b.block_id, s.index, s.addr.clone()))
        })
        .collect()
}

/// Whether `message` names block `id` (in decimal or in hex, as errors may print it).
pub fn names_block(message: &str, id: u64) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains(&id.to_string())
        || lower.contains(&format!("{id:x}"))
        || lower.contains(&format!("{id:016x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_deterministic_and_distinct() {
        assert_eq!(pattern(7, 1000), pattern(7, 1000));
        assert_ne!(pattern(7, 1000), pattern(8, 1000));
        assert_eq!(pattern(7, 13), pattern(7, 1000)[..13]);
        assert!(pattern(1, 0).is_empty());
        // Not constant: a shard of zeros would hide a wrong offset.
        let p = pattern(3, 4096);
        assert!(p.iter().filter(|&&b| b == p[0]).count() < 100);
    }

    #[test]
    fn sha256_of_abc() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn block_names_in_either_base() {
        assert!(names_block("block 4096 of /f is missing", 4096));
        assert!(names_block("block 0x1000 of /f is missing", 4096));
        assert!(!names_block("block 17 of /f is missing", 4096));
    }
}
