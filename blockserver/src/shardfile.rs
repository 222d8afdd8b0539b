//! The stored object of one shard, and its name in the store.
//!
//! ```text
//! shards/<block_id low byte, 2 hex>/<block_id, 16 hex>.<index>      (object name)
//!
//! +--------------------------+----------------------------+-------------------+
//! | data: data_len bytes     | crc table: crc_count x u32 | footer: 40 bytes  |
//! +--------------------------+----------------------------+-------------------+
//! footer (little endian):
//!   0  magic     "ARBSHD01"
//!   8  data_len  u64
//!  16  block_id  u64
//!  24  index     u32
//!  28  chunk     u32   bytes per checksum chunk
//!  32  crc_count u32   = ceil(data_len / chunk)
//!  36  crc32c of bytes 0..36
//! ```
//!
//! Data comes first so a shard streams straight into the store; the footer, written last,
//! makes a shard self-describing, and a reader fetches it with one suffix read. The crc
//! table entry `i` covers data bytes `[i*chunk, min((i+1)*chunk, data_len))`. The fan-out
//! directory keeps local directories small even when block ids are sequential.

use crate::error::Error;
use object_store::path::Path;
use std::ops::Range;

pub const MAGIC: &[u8; 8] = b"ARBSHD01";
pub const FOOTER_LEN: u64 = 40;
/// The directory (prefix) under which all shards live.
pub const SHARDS_DIR: &str = "shards";

/// (block id, shard index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardKey {
    pub block_id: u64,
    pub index: u32,
}

impl std::fmt::Display for ShardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shard {:#x}/{}", self.block_id, self.index)
    }
}

/// The object name of a shard.
pub fn object_path(key: ShardKey) -> Path {
    Path::from(format!(
        "{SHARDS_DIR}/{:02x}/{:016x}.{}",
        key.block_id & 0xff,
        key.block_id,
        key.index
    ))
}

/// The shard an object name stands for; None for anything else in the store.
pub fn parse_object_path(p: &Path) -> Option<ShardKey> {
    let mut parts = p.parts();
    if parts.next()?.as_ref() != SHARDS_DIR {
        return None;
    }
    let fan = parts.next()?;
    let name = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let (id, index) = name.as_ref().split_once('.')?;
    if id.len() != 16 {
        return None;
    }
    let block_id = u64::from_str_radix(id, 16).ok()?;
    let index = index.parse().ok()?;
    if fan.as_ref() != format!("{:02x}", block_id & 0xff) {
        return None;
    }
    Some(ShardKey { block_id, index })
}

/// A decoded footer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footer {
    pub key: ShardKey,
    pub data_len: u64,
    pub chunk: u32,
    pub crc_count: u32,
}

impl Footer {
    pub fn new(key: ShardKey, data_len: u64, chunk: u32) -> Footer {
        Footer {
            key,
            data_len,
            chunk,
            crc_count: data_len.div_ceil(u64::from(chunk.max(1))) as u32,
        }
    }

    pub fn encode(&self) -> [u8; FOOTER_LEN as usize] {
        let mut b = [0u8; FOOTER_LEN as usize];
        b[0..8].copy_from_slice(MAGIC);
        b[8..16].copy_from_slice(&self.data_len.to_le_bytes());
        b[16..24].copy_from_slice(&self.key.block_id.to_le_bytes());
        b[24..28].copy_from_slice(&self.key.index.to_le_bytes());
        b[28..32].copy_from_slice(&self.chunk.to_le_bytes());
        b[32..36].copy_from_slice(&self.crc_count.to_le_bytes());
        let crc = crc32c::crc32c(&b[0..36]);
        b[36..40].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a footer read from an object of `object_len` bytes named `key`.
    pub fn decode(b: &[u8], object_len: u64, key: ShardKey) -> Result<Footer, Error> {
        let bad = |why: &str| Error::Corrupt(format!("{key}: {why}"));
        if b.len() != FOOTER_LEN as usize {
            return Err(bad("object too short for a footer"));
        }
        if &b[0..8] != MAGIC {
            return Err(bad("bad footer magic"));
        }
        let word = |r: Range<usize>| {
            let mut a = [0u8; 8];
            a[..r.len()].copy_from_slice(&b[r]);
            u64::from_le_bytes(a)
        };
        if word(36..40) as u32 != crc32c::crc32c(&b[0..36]) {
            return Err(bad("footer checksum mismatch"));
        }
        let f = Footer {
            key: ShardKey {
                block_id: word(16..24),
                index: word(24..28) as u32,
            },
            data_len: word(8..16),
            chunk: word(28..32) as u32,
            crc_count: word(32..36) as u32,
        };
        if f.key != key {
            return Err(bad(&format!("footer names {}", f.key)));
        }
        if f.chunk == 0 || u64::from(f.crc_count) != f.data_len.div_ceil(u64::from(f.chunk)) {
            return Err(bad("footer crc count does not match its length"));
        }
        if f.object_len() != object_len {
            return Err(bad(&format!(
                "object is {object_len} bytes, footer says {}",
                f.object_len()
            )));
        }
        Ok(f)
    }

    /// Size of the whole object.
    pub fn object_len(&self) -> u64 {
        self.data_len + 4 * u64::from(self.crc_count) + FOOTER_LEN
    }

    /// The data range widened to whole checksum chunks and clipped to the data; an empty
    /// range when `range` starts at or past the end.
    pub fn widen(&self, range: Range<u64>) -> Range<u64> {
        let c = u64::from(self.chunk);
        let end = range.end.min(self.data_len);
        if range.start >= end {
            return end..end;
        }
        let start = range.start / c * c;
        let end = end.div_ceil(c).saturating_mul(c).min(self.data_len);
        start..end
    }

    /// Byte range, in the object, of the crcs covering the chunk-aligned data range `data`.
    pub fn crc_range(&self, data: &Range<u64>) -> Range<u64> {
        let c = u64::from(self.chunk);
        let first = data.start / c;
        let last = data.end.div_ceil(c);
        self.data_len + 4 * first..self.data_len + 4 * last
    }
}

/// Little-endian crc table bytes.
pub fn encode_crcs(crcs: &[u32]) -> Vec<u8> {
    crcs.iter().flat_map(|c| c.to_le_bytes()).collect()
}

pub fn decode_crcs(b: &[u8]) -> Vec<u32> {
    b.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_within_a_block() {
        let key = ShardKey {
            block_id: 0x1234_5678_9abc_def0,
            index: 7,
        };
        let p = object_path(key);
        assert_eq!(p.as_ref(), "shards/f0/123456789abcdef0.7");
        assert_eq!(parse_object_path(&p), Some(key));
        assert_eq!(parse_object_path(&Path::from("server-id")), None);
        assert_eq!(
            parse_object_path(&Path::from("shards/00/123456789abcdef0.7")),
            None
        );
    }

    #[test]
    fn footer_round_trips_and_rejects_damage() {
        let key = ShardKey {
            block_id: 9,
            index: 2,
        };
        let f = Footer::new(key, 200_000, 65536);
        assert_eq!(f.crc_count, 4);
        let b = f.encode();
        assert_eq!(Footer::decode(&b, f.object_len(), key).unwrap(), f);
        assert!(Footer::decode(&b, f.object_len() + 1, key).is_err());
        let other = ShardKey {
            block_id: 9,
            index: 3,
        };
        assert!(Footer::decode(&b, f.object_len(), other).is_err());
        for i in 0..40 {
            let mut d = b;
            d[i] ^= 0x10;
            assert!(Footer::decode(&d, f.object_len(), key).is_err(), "byte {i}");
        }
    }

    #[test]
    fn ranges_widen_to_chunks() {
        let f = Footer::new(
            ShardKey {
                block_id: 1,
                index: 0,
            },
            1000,
            64,
        );
        assert_eq!(f.widen(70..130), 64..192);
        assert_eq!(f.widen(990..5000), 960..1000);
        assert_eq!(f.widen(1000..1001), 1000..1000);
        assert_eq!(f.crc_range(&(64..192)), 1004..1012);
        assert_eq!(f.crc_range(&(960..1000)), 1000 + 60..1000 + 64);
    }
}
