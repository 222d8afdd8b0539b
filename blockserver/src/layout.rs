//! Stripe geometry of a block: which shard and shard offset hold each data byte.
//!
//! A block of `length` bytes is cut into stripes of `k * cell` data bytes. Shard `i < k` holds
//! data cell `i` of every stripe; parity shard `k + j` holds parity cell `j`. A partial last
//! stripe of `r` bytes uses the shorter cell `round_up(ceil(r / k), 64)`, so every shard of a
//! block is `full_stripes * cell + last` bytes. Everything that reads or writes shards goes
//! through this module; nothing else does this arithmetic.

use crate::error::Error;
use arbor_proto::namenode::EcPolicy;

/// Alignment of the partial last stripe's cell.
pub const LAST_CELL_ALIGN: u64 = 64;

/// Most shards a block may have (the Reed-Solomon code works over GF(2^8)).
pub const MAX_SHARDS: usize = 256;

/// k data shards, m parity shards, cell bytes; replication: shards 1..=m copy shard 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub k: usize,
    pub m: usize,
    pub cell: usize,
    pub replication: bool,
}

/// One stripe of a particular block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stripe {
    pub index: u64,
    /// Block offset of the stripe's first data byte.
    pub data_offset: u64,
    /// Data bytes of the block in this stripe (less than `k * cell_len` only in the last).
    pub data_len: u64,
    /// Bytes of each shard in this stripe.
    pub cell_len: u64,
    /// Shard offset of this stripe's cells.
    pub shard_offset: u64,
}

impl Layout {
    /// Validates and builds a layout.
    pub fn new(k: usize, m: usize, cell: usize, replication: bool) -> Result<Layout, Error> {
        if k == 0 || k + m > MAX_SHARDS {
            return Err(Error::InvalidArgument(format!(
                "bad shard counts k={k} m={m} (1 <= k, k+m <= {MAX_SHARDS})"
            )));
        }
        if cell == 0 || !(cell as u64).is_multiple_of(LAST_CELL_ALIGN) {
            return Err(Error::InvalidArgument(format!(
                "cell size {cell} is not a positive multiple of {LAST_CELL_ALIGN}"
            )));
        }
        if replication && k != 1 {
            return Err(Error::InvalidArgument(format!(
                "replication needs k=1, got k={k}"
            )));
        }
        Ok(Layout {
            k,
            m,
            cell,
            replication,
        })
    }

    pub fn from_policy(p: &EcPolicy) -> Result<Layout, Error> {
        Layout::new(
            p.data_shards as usize,
            p.parity_shards as usize,
            p.cell_size as usize,
            p.replication,
        )
    }

    /// k + m.
    pub fn shards(&self) -> usize {
        self.k + self.m
    }

    /// Data bytes in a full stripe: k * cell.
    pub fn stripe_data(&self) -> usize {
        self.k * self.cell
    }

    /// Full stripes of a block of `block_len` bytes.
    pub fn full_stripes(&self, block_len: u64) -> u64 {
        block_len / self.stripe_data() as u64
    }

    /// Cell length of the partial last stripe, 0 when the block ends on a stripe boundary.
    pub fn last_cell(&self, block_len: u64) -> u64 {
        let r = block_len % self.stripe_data() as u64;
        if r == 0 {
            return 0;
        }
        r.div_ceil(self.k as u64).div_ceil(LAST_CELL_ALIGN) * LAST_CELL_ALIGN
    }

    /// Bytes of every shard of a block of `block_len` bytes.
    pub fn shard_len(&self, block_len: u64) -> u64 {
        self.full_stripes(block_len) * self.cell as u64 + self.last_cell(block_len)
    }

    /// Stripes of a block, the partial one included.
    pub fn stripe_count(&self, block_len: u64) -> u64 {
        self.full_stripes(block_len) + u64::from(self.last_cell(block_len) > 0)
    }

    /// Stripe `s` of a block of `block_len` bytes (`s < stripe_count`).
    pub fn stripe(&self, s: u64, block_len: u64) -> Stripe {
        let full = self.full_stripes(block_len);
        let sd = self.stripe_data() as u64;
        let (data_len, cell_len) = if s < full {
            (sd, self.cell as u64)
        } else {
            (block_len - full * sd, self.last_cell(block_len))
        };
        Stripe {
            index: s,
            data_offset: s * sd,
            data_len,
            cell_len,
            shard_offset: s * self.cell as u64,
        }
    }

    /// The stripe holding block byte `o`.
    pub fn stripe_of(&self, o: u64) -> u64 {
        o / self.stripe_data() as u64
    }

    /// Where data byte `o` of a block of `block_len` bytes lives: (shard, shard offset).
    pub fn locate(&self, o: u64, block_len: u64) -> (usize, u64) {
        let st = self.stripe(self.stripe_of(o), block_len);
        let q = o - st.data_offset;
        (
            (q / st.cell_len) as usize,
            st.shard_offset + q % st.cell_len,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CELL: usize = 64 * 1024;

    fn rs(k: usize, m: usize) -> Layout {
        Layout::new(k, m, CELL, false).unwrap()
    }

    /// Places every byte by brute force, stripe by stripe, and checks `locate` and `shard_len`
    /// agree: each data byte maps to a distinct in-bounds shard position.
    fn check_exhaustive(l: Layout, len: u64) {
        let shard_len = l.shard_len(len);
        let mut seen = std::collections::HashSet::new();
        let mut o = 0u64;
        for s in 0..l.stripe_count(len) {
            let st = l.stripe(s, len);
            assert_eq!(st.data_offset, o);
            assert!(st.data_len <= st.cell_len * l.k as u64);
            assert!(st.cell_len <= l.cell as u64);
            let mut qs: Vec<u64> = (0..st.data_len).step_by(997).collect();
            if qs.last() != Some(&(st.data_len - 1)) {
                qs.push(st.data_len - 1);
            }
            for q in qs {
                let (shard, off) = l.locate(o + q, len);
                assert_eq!(shard as u64, q / st.cell_len);
                assert!(shard < l.k);
                assert!(off < shard_len, "offset {off} beyond shard of {shard_len}");
                assert!(
                    seen.insert((shard, off)),
                    "two bytes at shard {shard} off {off}"
                );
            }
            o += st.data_len;
        }
        assert_eq!(o, len);
    }

    #[test]
    fn shard_lengths_follow_the_partial_stripe_rule() {
        let l = rs(4, 2);
        let c = CELL as u64;
        assert_eq!(l.shard_len(0), 0);
        assert_eq!(l.stripe_count(0), 0);
        // One byte: ceil(1/4) = 1, rounded up to 64.
        assert_eq!(l.shard_len(1), 64);
        assert_eq!(l.shard_len(c - 1), (c - 1).div_ceil(4).div_ceil(64) * 64);
        assert_eq!(l.shard_len(c), c / 4);
        assert_eq!(l.shard_len(4 * c), c);
        assert_eq!(l.stripe_count(4 * c), 1);
        assert_eq!(l.shard_len(4 * c - 1), c);
        assert_eq!(l.shard_len(4 * c + 1), c + 64);
        assert_eq!(l.stripe_count(4 * c + 1), 2);
        assert_eq!(l.shard_len(3 * 4 * c + 1000), 3 * c + 256);
        let l63 = rs(6, 3);
        assert_eq!(l63.shard_len(6 * c + 6 * 64 + 1), c + 128);
    }

    #[test]
    fn every_byte_has_one_place() {
        let c = CELL as u64;
        for l in [rs(4, 2), rs(6, 3), Layout::new(1, 2, CELL, true).unwrap()] {
            let k = l.k as u64;
            for len in [
                1,
                c - 1,
                c,
                c + 1,
                k * c - 1,
                k * c,
                k * c + 1,
                3 * k * c + 12345,
            ] {
                check_exhaustive(l, len);
            }
        }
    }

    #[test]
    fn locate_matches_the_formula_in_full_and_last_stripes() {
        let l = rs(6, 3);
        let c = CELL as u64;
        let len = 2 * 6 * c + 1000;
        // Full stripe 1, cell 2, byte 5.
        assert_eq!(l.locate(6 * c + 2 * c + 5, len), (2, c + 5));
        // Last stripe: 1000 bytes over 6 shards, last = round_up(167, 64) = 192.
        assert_eq!(l.last_cell(len), 192);
        assert_eq!(l.locate(2 * 6 * c + 192 * 3 + 7, len), (3, 2 * c + 7));
        assert_eq!(l.locate(len - 1, len), (5, 2 * c + 999 - 5 * 192));
    }

    #[test]
    fn replication_copies_need_k_one() {
        assert!(Layout::new(2, 2, CELL, true).is_err());
        let l = Layout::new(1, 2, CELL, true).unwrap();
        assert_eq!(l.stripe_data(), CELL);
        assert_eq!(l.shard_len(100), 128);
        assert_eq!(l.shards(), 3);
    }

    #[test]
    fn bad_policies_are_refused() {
        assert!(Layout::new(0, 2, CELL, false).is_err());
        assert!(Layout::new(200, 100, CELL, false).is_err());
        assert!(Layout::new(4, 2, 100, false).is_err());
        assert!(Layout::new(4, 2, 0, false).is_err());
        let p = EcPolicy {
            name: "RS-6-3-1024k".into(),
            data_shards: 6,
            parity_shards: 3,
            cell_size: 1 << 20,
            replication: false,
        };
        assert_eq!(
            Layout::from_policy(&p).unwrap(),
            Layout::new(6, 3, 1 << 20, false).unwrap()
        );
    }
}
