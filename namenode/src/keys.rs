//! The key schema: how namespace rows are laid out in the metastore and which shard each
//! lives on. Integers are big-endian so that key order is numeric order, and every row of a
//! directory's children shares the prefix `D ‖ parent`, on the parent's content shard: `ls` is
//! one range scan on one shard.
//!
//! A directory has two homes. Its *entry* partition, `vpart(ino)`, holds its own inode row
//! beside the dentry that names it: a new directory takes its parent's content partition, so
//! mkdir is a single-shard commit. Its *content* partition ([`content_vpart`], a hash of its
//! id) holds what changes with its children: their dentries, its counter row (created by the
//! first child's commutative update) and, once it is removed, its tombstone. Adding an entry
//! checks the tombstone is absent instead of validating the parent's inode, so a create
//! touches one shard whatever shard the parent's inode is on.
//!
//! | key | value | route |
//! |---|---|---|
//! | `D ‖ parent ‖ name` | `DentryRecord` | content(parent) |
//! | `I ‖ ino` | `InodeRecord` | vpart(ino) |
//! | `C ‖ ino` | directory counter row (see [`DirCounter`]) | content(ino) |
//! | `T ‖ ino` | a removed directory's tombstone: removal time (i64, big-endian) | content(ino) |
//! | `X ‖ ino ‖ name` | xattr value | vpart(ino) |
//! | `B ‖ ino ‖ index` | `BlockRecord` (index big-endian u64: blocks in file order) | vpart(ino) |
//! | `L ‖ ino` | inline file data: the whole file's bytes | vpart(ino) |
//! | `W ‖ ino` | `WriteLease`: the file's one writer | vpart(ino) |
//! | `P ‖ ino ‖ block id` | `PendingBlock`: allocated, not yet committed | vpart(ino) |
//! | `G ‖ block id` | `FreedBlock`: shards waiting for deletion on block servers | vpart(file) |
//! | `Q ‖ block id ‖ index` | `BadShardRecord`: a shard a reader found bad | vpart(file) |
//! | `S ‖ server id` | `BlockServerRecord` | shard 0 |
//! | `Z ‖ ino` | `DeleteRecord`: a detached subtree being removed | vpart(ino) |
//! | `R ‖ client id (16) ‖ call id` | `RetryRecord` | the operation's home vpart |
//! | `M ‖ name` | cluster-wide rows (partition map, id sequence, leader lease) | shard 0 |
//!
//! Every data-path row of a file lives on the file's shard, so a write, a truncate or a delete
//! that frees blocks stays a single-shard transaction; the leader finds the `G`, `Q`, `P`
//! and `W` rows by scanning each shard's table prefix.

use crate::txn::{Key, Route};

/// An inode id: virtual partition (high 16 bits) ‖ sequence (low 48 bits).
pub type Ino = u64;

/// The root directory: virtual partition 0, sequence 1. It is its own parent.
pub const ROOT_INO: Ino = 1;
/// The first sequence the id allocator hands out (those below are reserved).
pub const FIRST_SEQ: u64 = 16;
/// Bits of an inode id that hold the sequence.
pub const SEQ_BITS: u32 = 48;

pub const DENTRY: u8 = b'D';
pub const INODE: u8 = b'I';
pub const COUNTER: u8 = b'C';
pub const TOMBSTONE: u8 = b'T';
pub const XATTR: u8 = b'X';
pub const BLOCK: u8 = b'B';
pub const INLINE: u8 = b'L';
pub const TODELETE: u8 = b'Z';
pub const RETRY: u8 = b'R';
pub const META: u8 = b'M';
pub const WRITE_LEASE: u8 = b'W';
pub const PENDING: u8 = b'P';
pub const FREED: u8 = b'G';
pub const BAD_SHARD: u8 = b'Q';
pub const BLOCK_SERVER: u8 = b'S';

/// Names of the cluster-wide rows on shard 0.
pub const META_PARTMAP: &[u8] = b"partmap";
pub const META_SEQUENCE: &[u8] = b"sequence";
pub const META_LEADER: &[u8] = b"leader";

pub fn vpart(ino: Ino) -> u16 {
    (ino >> SEQ_BITS) as u16
}

pub fn make_ino(vpart: u16, seq: u64) -> Ino {
    ((vpart as u64) << SEQ_BITS) | (seq & ((1u64 << SEQ_BITS) - 1))
}

pub fn route_of(ino: Ino) -> Route {
    Route::Vpart(vpart(ino))
}

/// The virtual partition of directory `dir`'s content, out of `vparts`: a mix of its id, so
/// directories made in one parent (which share their entry partition) spread their children
/// over the shards.
pub fn content_vpart(dir: Ino, vparts: u32) -> u16 {
    // splitmix64's finaliser: every bit of the id moves every bit of the result.
    let mut z = dir.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z % u64::from(vparts.max(1))) as u16
}

/// Where directory `dir`'s content lives.
pub fn content_route(dir: Ino) -> Route {
    Route::Content(dir)
}

fn with_ino(table: u8, ino: Ino, extra: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + extra.len());
    k.push(table);
    k.extend_from_slice(&ino.to_be_bytes());
    k.extend_from_slice(extra);
    k
}

pub fn dentry(parent: Ino, name: &str) -> Key {
    Key::new(
        content_route(parent),
        with_ino(DENTRY, parent, name.as_bytes()),
    )
}

/// The prefix of every dentry of `parent`'s children.
pub fn dentry_prefix(parent: Ino) -> Vec<u8> {
    with_ino(DENTRY, parent, &[])
}

/// The child name in a dentry key.
pub fn dentry_name(key: &[u8]) -> Option<&str> {
    key.get(9..).and_then(|b| std::str::from_utf8(b).ok())
}

/// The parent in a dentry key.
pub fn dentry_parent(key: &[u8]) -> Option<Ino> {
    key.get(1..9)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
}

pub fn inode(ino: Ino) -> Key {
    Key::new(route_of(ino), with_ino(INODE, ino, &[]))
}

pub fn counter(ino: Ino) -> Key {
    Key::new(content_route(ino), with_ino(COUNTER, ino, &[]))
}

/// Written when directory `ino` is removed, in the same transaction: every operation that adds
/// an entry to a directory expects it absent, so a late add fails instead of orphaning a row.
pub fn tombstone(ino: Ino) -> Key {
    Key::new(content_route(ino), with_ino(TOMBSTONE, ino, &[]))
}

pub fn xattr(ino: Ino, name: &str) -> Key {
    Key::new(route_of(ino), with_ino(XATTR, ino, name.as_bytes()))
}

pub fn xattr_prefix(ino: Ino) -> Vec<u8> {
    with_ino(XATTR, ino, &[])
}

pub fn todelete(ino: Ino) -> Key {
    Key::new(route_of(ino), with_ino(TODELETE, ino, &[]))
}

/// The exactly-once record of a call, kept on the operation's home shard (the content shard
/// of the directory the operation changes first, or the shard of the inode it changes).
pub fn retry(home: Route, client_id: &[u8], call_id: u64) -> Key {
    let mut k = Vec::with_capacity(1 + 16 + 8);
    k.push(RETRY);
    let mut id = [0u8; 16];
    let n = client_id.len().min(16);
    id[..n].copy_from_slice(&client_id[..n]);
    k.extend_from_slice(&id);
    k.extend_from_slice(&call_id.to_be_bytes());
    Key::new(home, k)
}

pub fn meta(name: &[u8]) -> Key {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(META);
    k.extend_from_slice(name);
    Key::new(Route::Shard(0), k)
}

pub fn block(ino: Ino, index: u64) -> Key {
    Key::new(route_of(ino), with_ino(BLOCK, ino, &index.to_be_bytes()))
}

/// The prefix of every block row of `ino`.
pub fn block_prefix(ino: Ino) -> Vec<u8> {
    with_ino(BLOCK, ino, &[])
}

/// The (ino, index) in a block row's key.
pub fn block_key_parts(key: &[u8]) -> Option<(Ino, u64)> {
    let ino = u64::from_be_bytes(key.get(1..9)?.try_into().ok()?);
    let index = u64::from_be_bytes(key.get(9..17)?.try_into().ok()?);
    Some((ino, index))
}

pub fn inline(ino: Ino) -> Key {
    Key::new(route_of(ino), with_ino(INLINE, ino, &[]))
}

pub fn write_lease(ino: Ino) -> Key {
    Key::new(route_of(ino), with_ino(WRITE_LEASE, ino, &[]))
}

/// The ino in a `W`, `L`, `I`, `C` or `X` row's key.
pub fn ino_of(key: &[u8]) -> Option<Ino> {
    key.get(1..9)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
}

pub fn pending(ino: Ino, block_id: u64) -> Key {
    Key::new(
        route_of(ino),
        with_ino(PENDING, ino, &block_id.to_be_bytes()),
    )
}

pub fn pending_prefix(ino: Ino) -> Vec<u8> {
    with_ino(PENDING, ino, &[])
}

/// A freed block's row, kept on the shard of the file it belonged to.
pub fn freed(file: Ino, block_id: u64) -> Key {
    let mut k = Vec::with_capacity(9);
    k.push(FREED);
    k.extend_from_slice(&block_id.to_be_bytes());
    Key::new(route_of(file), k)
}

/// A reported bad shard's row, kept on the shard of the file it belongs to.
pub fn bad_shard(file: Ino, block_id: u64, index: u32) -> Key {
    let mut k = Vec::with_capacity(13);
    k.push(BAD_SHARD);
    k.extend_from_slice(&block_id.to_be_bytes());
    k.extend_from_slice(&index.to_be_bytes());
    Key::new(route_of(file), k)
}

pub fn block_server(server_id: u64) -> Key {
    let mut k = Vec::with_capacity(9);
    k.push(BLOCK_SERVER);
    k.extend_from_slice(&server_id.to_be_bytes());
    Key::new(Route::Shard(0), k)
}

/// The fields of a directory's counter row (`C ‖ ino`): updated commutatively at commit so that
/// concurrent creates in one directory never conflict with each other.
pub struct DirCounter;

impl DirCounter {
    pub const WIDTH: u32 = 4;
    /// Number of entries.
    pub const CHILDREN: u32 = 0;
    /// Number of entries that are directories (for nlink = 2 + subdirs).
    pub const SUBDIRS: u32 = 1;
    /// Latest modification time of the entry list, ns (max).
    pub const MTIME_NS: u32 = 2;
    /// Latest change time, ns (max).
    pub const CTIME_NS: u32 = 3;

    /// Decodes a counter row's value (missing fields read as 0).
    pub fn decode(value: &[u8]) -> [i64; 4] {
        let mut out = [0i64; 4];
        for (i, chunk) in value.chunks_exact(8).take(4).enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            out[i] = i64::from_le_bytes(b);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ino_packs_vpart_and_sequence() {
        let ino = make_ino(4095, 123_456);
        assert_eq!(vpart(ino), 4095);
        assert_eq!(ino & ((1 << SEQ_BITS) - 1), 123_456);
        assert_eq!(vpart(ROOT_INO), 0);
    }

    #[test]
    fn dentry_keys_sort_by_parent_then_name() {
        let a = dentry(7, "a").bytes;
        let b = dentry(7, "b").bytes;
        let c = dentry(8, "a").bytes;
        assert!(a < b && b < c);
        assert!(a.starts_with(&dentry_prefix(7)));
        assert_eq!(dentry_name(&a), Some("a"));
        assert_eq!(dentry_parent(&a), Some(7));
    }

    #[test]
    fn block_keys_sort_by_file_then_index() {
        let a = block(make_ino(3, 20), 1).bytes;
        let b = block(make_ino(3, 20), 256).bytes;
        let c = block(make_ino(3, 21), 0).bytes;
        assert!(a < b && b < c);
        assert!(a.starts_with(&block_prefix(make_ino(3, 20))));
        assert_eq!(block_key_parts(&b), Some((make_ino(3, 20), 256)));
        assert_eq!(block(make_ino(3, 20), 0).route, Route::Vpart(3));
        assert_eq!(freed(make_ino(3, 20), 9).route, Route::Vpart(3));
        assert_eq!(block_server(7).route, Route::Shard(0));
    }

    #[test]
    fn a_directory_s_content_lives_apart_from_its_inode() {
        let dir = make_ino(5, 77);
        assert_eq!(inode(dir).route, Route::Vpart(5));
        assert_eq!(dentry(dir, "x").route, Route::Content(dir));
        assert_eq!(counter(dir).route, Route::Content(dir));
        assert_eq!(tombstone(dir).route, Route::Content(dir));
        // Content partitions spread: 64 directories of one parent land on many partitions.
        let parts: std::collections::HashSet<u16> = (0..64)
            .map(|s| content_vpart(make_ino(5, 1000 + s), 4096))
            .collect();
        assert!(parts.len() > 48, "{} partitions", parts.len());
        assert!((0..1000).all(|s| content_vpart(s, 12) < 12));
        assert_eq!(
            Route::Content(dir).resolve(4096),
            Route::Vpart(content_vpart(dir, 4096))
        );
    }

    #[test]
    fn counter_rows_decode_little_endian_fields() {
        let mut v = Vec::new();
        for x in [3i64, 1, 99, -5] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        assert_eq!(DirCounter::decode(&v), [3, 1, 99, -5]);
        assert_eq!(DirCounter::decode(&[]), [0, 0, 0, 0]);
    }
}
