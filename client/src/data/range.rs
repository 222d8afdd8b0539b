//! Offset arithmetic of the data path, kept pure so it is tested on its own: which blocks a
//! byte range of a file touches, how a read is clipped to the file, and how sequential reads
//! are cut into aligned readahead chunks.
//!
//! Invariant: blocks are contiguous (`offset` of block i+1 = end of block i), so a range maps
//! to consecutive pieces whose lengths add up to the clipped range.

/// Where a block sits in its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub offset: u64,
    pub length: u64,
}

impl Extent {
    pub fn end(&self) -> u64 {
        self.offset + self.length
    }
}

/// One block's share of a range: block position in the list, offset inside the block, and
/// byte count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub block: usize,
    pub offset: u64,
    pub len: u64,
}

/// `[offset, offset+len)` clipped to a file of `size` bytes, as (start, length).
pub fn clip(offset: u64, len: u64, size: u64) -> (u64, u64) {
    if offset >= size {
        return (offset, 0);
    }
    (offset, len.min(size - offset))
}

/// The index of the extent holding byte `offset`, if any.
pub fn find(extents: &[Extent], offset: u64) -> Option<usize> {
    let i = extents.partition_point(|e| e.end() <= offset);
    (i < extents.len() && extents[i].offset <= offset).then_some(i)
}

/// The pieces of `[offset, offset+len)` over contiguous extents (bytes past the last extent
/// are not covered).
pub fn pieces(extents: &[Extent], offset: u64, len: u64) -> Vec<Piece> {
    let mut out = Vec::new();
    let end = offset.saturating_add(len);
    let Some(mut i) = find(extents, offset) else {
        return out;
    };
    let mut pos = offset;
    while pos < end && i < extents.len() {
        let e = extents[i];
        if e.length > 0 {
            let n = end.min(e.end()) - pos;
            out.push(Piece {
                block: i,
                offset: pos - e.offset,
                len: n,
            });
            pos += n;
        }
        i += 1;
    }
    out
}

/// The readahead chunks (numbers, `chunk` bytes each, aligned on multiples of `chunk`) that
/// cover `[offset, offset+len)`, inclusive bounds.
pub fn chunks(offset: u64, len: u64, chunk: u64) -> (u64, u64) {
    let chunk = chunk.max(1);
    let first = offset / chunk;
    let last = (offset + len.max(1) - 1) / chunk;
    (first, last)
}

/// Parses a size with an optional binary suffix: `4096`, `64k`, `256M`, `1G`, `1.5g`, `2KiB`.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let value: f64 = num.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.trim_end_matches("ib").trim_end_matches('b');
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    let bytes = value * mult as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(v: &[(u64, u64)]) -> Vec<Extent> {
        v.iter()
            .map(|&(offset, length)| Extent { offset, length })
            .collect()
    }

    #[test]
    fn clipping_to_the_file() {
        assert_eq!(clip(0, 10, 5), (0, 5));
        assert_eq!(clip(5, 10, 5), (5, 0));
        assert_eq!(clip(7, 10, 5), (7, 0));
        assert_eq!(clip(2, 2, 5), (2, 2));
    }

    #[test]
    fn finding_the_block_of_an_offset() {
        let e = ext(&[(0, 10), (10, 0), (10, 5), (15, 20)]);
        assert_eq!(find(&e, 0), Some(0));
        assert_eq!(find(&e, 9), Some(0));
        assert_eq!(find(&e, 10), Some(2));
        assert_eq!(find(&e, 34), Some(3));
        assert_eq!(find(&e, 35), None);
        assert_eq!(find(&[], 0), None);
    }

    #[test]
    fn ranges_split_over_blocks() {
        let e = ext(&[(0, 10), (10, 5), (15, 20)]);
        assert_eq!(
            pieces(&e, 8, 10),
            vec![
                Piece {
                    block: 0,
                    offset: 8,
                    len: 2
                },
                Piece {
                    block: 1,
                    offset: 0,
                    len: 5
                },
                Piece {
                    block: 2,
                    offset: 0,
                    len: 3
                },
            ]
        );
        assert_eq!(
            pieces(&e, 0, 100).iter().map(|p| p.len).sum::<u64>(),
            35,
            "bytes past the end are not covered"
        );
        assert!(pieces(&e, 35, 1).is_empty());
        assert_eq!(
            pieces(&e, 12, 2),
            vec![Piece {
                block: 1,
                offset: 2,
                len: 2
            }]
        );
    }

    #[test]
    fn readahead_chunks_are_aligned() {
        assert_eq!(chunks(0, 1, 100), (0, 0));
        assert_eq!(chunks(99, 2, 100), (0, 1));
        assert_eq!(chunks(100, 100, 100), (1, 1));
        assert_eq!(chunks(250, 0, 100), (2, 2));
    }

    #[test]
    fn sizes_with_suffixes() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64k"), Some(65536));
        assert_eq!(parse_size("256M"), Some(256 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("1.5g"), Some(3 << 29));
        assert_eq!(parse_size("2KiB"), Some(2048));
        assert_eq!(parse_size("10 MB"), Some(10 << 20));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("5q"), None);
        assert_eq!(parse_size(""), None);
    }
}
