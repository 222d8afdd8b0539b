//! crc32c per checksum chunk. A shard's bytes are cut into chunks of `chunk` bytes from its
//! start (the last one may be short); each chunk has one crc32c. Writers compute them,
//! servers verify them before storing, readers verify them after fetching.

use crate::error::Error;

/// Checksum chunk size of shards whose cell is at least this large.
pub const DEFAULT_CHUNK: usize = 64 * 1024;

/// The checksum chunk for shards cut in cells of `cell` bytes: 64 KiB, or the cell if smaller.
pub fn chunk_for_cell(cell: usize) -> usize {
    cell.clamp(1, DEFAULT_CHUNK)
}

/// crc32c of each `chunk`-byte piece of `data`.
pub fn crcs(data: &[u8], chunk: usize) -> Vec<u32> {
    data.chunks(chunk.max(1)).map(crc32c::crc32c).collect()
}

/// Checks `data` against one crc per `chunk`-byte piece; `what` names the data in the error.
pub fn verify(data: &[u8], chunk: usize, expected: &[u32], what: &str) -> Result<(), Error> {
    let chunks = data.len().div_ceil(chunk.max(1));
    if chunks != expected.len() {
        return Err(Error::Corrupt(format!(
            "{what}: {} checksums for {chunks} chunks",
            expected.len()
        )));
    }
    for (i, (piece, want)) in data.chunks(chunk.max(1)).zip(expected).enumerate() {
        let got = crc32c::crc32c(piece);
        if got != *want {
            return Err(Error::Corrupt(format!(
                "{what}: checksum mismatch in chunk {i} (crc {got:#010x}, expected {want:#010x})"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flipped_bit_is_caught_and_named() {
        let mut data = vec![7u8; 3 * 1000 + 5];
        let sums = crcs(&data, 1000);
        assert_eq!(sums.len(), 4);
        verify(&data, 1000, &sums, "x").unwrap();
        data[2500] ^= 1;
        let err = verify(&data, 1000, &sums, "x").unwrap_err();
        assert!(
            matches!(err, Error::Corrupt(ref m) if m.contains("chunk 2")),
            "{err}"
        );
        assert!(verify(&data[..10], 1000, &sums, "x").is_err());
    }

    #[test]
    fn chunk_is_the_cell_when_smaller() {
        assert_eq!(chunk_for_cell(1 << 20), DEFAULT_CHUNK);
        assert_eq!(chunk_for_cell(4096), 4096);
    }
}
