//! Block servers seen from outside, the way the data-path scenarios inspect them: raw
//! BlockServer gRPC calls (Stat, ListShards, GetShard with the shard's checksums checked here,
//! independently of the server and of the client library), and the on-disk file of a shard in
//! a local store, for corrupting it.
//!
//! The shard object layout this module relies on is the block server's (blockserver/README.md,
//! `shardfile`): object `shards/<block id & 0xff, 2 hex>/<block id, 16 hex>.<index>`, holding
//! the shard's data first, then its crc table and a footer. So bytes `[0, shard length)` of the
//! file are the shard's data, and flipping one of them is a corruption readers must catch.

use std::path::{Path, PathBuf};
use std::time::Duration;

use arbor_proto::blockserver::block_server_client::BlockServerClient;
use arbor_proto::blockserver::{
    GetShardRequest, ListShardsRequest, ShardEntry, ShardId, StatReply, StatRequest,
};
use tonic::transport::{Channel, Endpoint};

/// Deadline of one call to a block server.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

fn client(addr: &str) -> BlockServerClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("a valid endpoint")
        .connect_timeout(Duration::from_secs(5))
        .timeout(CALL_TIMEOUT)
        .connect_lazy();
    BlockServerClient::new(channel).max_decoding_message_size(64 << 20)
}

/// The server's Stat (id, store URL, capacity and use).
pub async fn stat(addr: &str) -> Result<StatReply, tonic::Status> {
    Ok(client(addr).stat(StatRequest {}).await?.into_inner())
}

/// Every shard the server stores, in (block id, index) order, all pages.
pub async fn list_shards(addr: &str) -> Result<Vec<ShardEntry>, tonic::Status> {
    let mut client = client(addr);
    let mut all: Vec<ShardEntry> = Vec::new();
    loop {
        let start_after = all.last().and_then(|e| e.id);
        let reply = client
            .list_shards(ListShardsRequest {
                start_after,
                limit: 1000,
            })
            .await?
            .into_inner();
        let got = reply.shards.len();
        all.extend(reply.shards);
        if !reply.more || got == 0 {
            return Ok(all);
        }
    }
}

/// `(block id, index)` of every shard the server stores.
pub async fn shard_ids(addr: &str) -> Result<Vec<(u64, u32)>, tonic::Status> {
    Ok(list_shards(addr)
        .await?
        .into_iter()
        .filter_map(|e| e.id.map(|id| (id.block_id, id.index)))
        .collect())
}

/// A whole shard as the server returns it, with every checksum chunk checked against the
/// crc32c the server sent beside it.
#[derive(Debug)]
pub struct FetchedShard {
    pub data: Vec<u8>,
    pub checksum_chunk: u32,
    /// Indexes of the checksum chunks whose crc did not match.
    pub bad_chunks: Vec<usize>,
}

impl FetchedShard {
    pub fn intact(&self) -> bool {
        self.bad_chunks.is_empty()
    }
}

/// Reads shard `(block_id, index)` whole (GetShard from offset 0 to the end). A server that
/// refuses to serve a shard it found corrupt answers with an error status.
pub async fn get_shard(
    addr: &str,
    block_id: u64,
    index: u32,
) -> Result<FetchedShard, tonic::Status> {
    let mut stream = client(addr)
        .get_shard(GetShardRequest {
            id: Some(ShardId { block_id, index }),
            offset: 0,
            length: 0,
        })
        .await?
        .into_inner();
    let mut data = Vec::new();
    let mut crcs = Vec::new();
    let mut chunk = 0u32;
    let mut first = true;
    while let Some(part) = stream.message().await? {
        if first {
            chunk = part.checksum_chunk;
            first = false;
        }
        data.extend_from_slice(&part.data);
        crcs.extend_from_slice(&part.crcs);
    }
    let size = chunk.max(1) as usize;
    let bad_chunks = data
        .chunks(size)
        .enumerate()
        .filter(|(i, piece)| crcs.get(*i) != Some(&crc32c::crc32c(piece)))
        .map(|(i, _)| i)
        .collect();
    Ok(FetchedShard {
        data,
        checksum_chunk: chunk,
        bad_chunks,
    })
}

/// The path of shard `(block_id, index)` in a local store rooted at `store_dir`, if that file
/// exists.
pub fn shard_file(store_dir: &Path, block_id: u64, index: u32) -> Option<PathBuf> {
    let path = store_dir
        .join("shards")
        .join(format!("{:02x}", block_id & 0xff))
        .join(format!("{block_id:016x}.{index}"));
    path.is_file().then_some(path)
}

/// Flips every bit of the byte at `offset` of `file` in place; returns the byte it held.
pub fn flip_byte(file: &Path, offset: u64) -> u8 {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .unwrap_or_else(|e| panic!("open {}: {e}", file.display()));
    let mut byte = [0u8; 1];
    f.seek(SeekFrom::Start(offset)).expect("seek");
    f.read_exact(&mut byte).expect("read the byte to flip");
    f.seek(SeekFrom::Start(offset)).expect("seek");
    f.write_all(&[!byte[0]]).expect("write the flipped byte");
    f.sync_all().expect("sync the corrupted file");
    byte[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_file_follows_the_object_layout() {
        let dir = tempfile::tempdir().unwrap();
        let id = 0x0123_4567_89ab_cdefu64;
        assert_eq!(shard_file(dir.path(), id, 3), None);
        let expected = dir.path().join("shards/ef/0123456789abcdef.3");
        std::fs::create_dir_all(expected.parent().unwrap()).unwrap();
        std::fs::write(&expected, b"data").unwrap();
        assert_eq!(shard_file(dir.path(), id, 3), Some(expected.clone()));
        assert_eq!(shard_file(dir.path(), id, 4), None);
        assert_eq!(flip_byte(&expected, 1), b'a');
        assert_eq!(std::fs::read(&expected).unwrap(), b"d\x9eta");
    }
}
