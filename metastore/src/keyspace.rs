//! How the shard lays its state out in the engine's one ordered key space, and how a log record
//! becomes engine writes. Every engine key starts with a one-byte namespace, so one atomic batch
//! can change user rows, intents, transaction records and the applied marker together:
//!
//! | namespace | key | value |
//! |---|---|---|
//! | `d` | user key | version (u64 BE) ‖ payload |
//! | `i` | txn id | `intent::Intent::encode` |
//! | `t` | txn id | `intent::TxnRecord::encode` |
//! | `m` | `applied` | highest seq applied (u64 BE) |
//!
//! The writes of a record depend only on the record, so applying it again changes nothing:
//! that is what makes replay idempotent.

use crate::engine::WriteBatch;
use crate::error::{Error, Result};
use crate::wal::{LogRecord, Op};

pub const DATA: u8 = b'd';
pub const INTENT: u8 = b'i';
pub const TXN: u8 = b't';
pub const META: u8 = b'm';

/// The key of the "applied up to seq" marker.
pub const APPLIED: &[u8] = b"mapplied";

pub fn key(namespace: u8, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(namespace);
    k.extend_from_slice(key);
    k
}

/// The first key after every key that starts with `prefix`, or `None` if there is none (the
/// prefix is all 0xff).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The engine range `[start, end)` of user keys `[start, end)`; an empty user `end` means the
/// end of the user key space.
pub fn data_range(start: &[u8], end: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let start = key(DATA, start);
    let end = if end.is_empty() {
        vec![DATA + 1]
    } else {
        key(DATA, end)
    };
    (start, end)
}

pub fn encode_row(version: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + payload.len());
    v.extend_from_slice(&version.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// The version and payload of a stored user row.
pub fn decode_row(value: &[u8]) -> Result<(u64, &[u8])> {
    if value.len() < 8 {
        return Err(Error::corrupt("row", format!("{} bytes", value.len())));
    }
    let (v, payload) = value.split_at(8);
    let mut b = [0u8; 8];
    b.copy_from_slice(v);
    Ok((u64::from_be_bytes(b), payload))
}

pub fn encode_marker(seq: u64) -> Vec<u8> {
    seq.to_be_bytes().to_vec()
}

pub fn decode_marker(value: Option<&[u8]>) -> Result<u64> {
    match value {
        None => Ok(0),
        Some(v) => {
            let b: [u8; 8] = v
                .try_into()
                .map_err(|_| Error::corrupt("applied marker", format!("{} bytes", v.len())))?;
            Ok(u64::from_be_bytes(b))
        }
    }
}

/// The engine writes of `record`, in order.
pub fn mutations(record: &LogRecord) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    record
        .ops
        .iter()
        .map(|op| match op {
            Op::Put { key: k, value } => (key(DATA, k), Some(encode_row(record.seq, value))),
            Op::Delete { key: k } => (key(DATA, k), None),
            Op::PutIntent { txn_id, intent } => (key(INTENT, txn_id), Some(intent.clone())),
            Op::DropIntent { txn_id } => (key(INTENT, txn_id), None),
            Op::PutTxnRecord { txn_id, record } => (key(TXN, txn_id), Some(record.clone())),
            Op::DropTxnRecord { txn_id } => (key(TXN, txn_id), None),
        })
        .collect()
}

/// Adds the marker write that says everything up to `seq` is applied.
pub fn mark_applied(batch: &mut WriteBatch, seq: u64) {
    batch.put(APPLIED.to_vec(), encode_marker(seq));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn rows_and_markers_round_trip() {
        let v = encode_row(42, b"payload");
        assert_eq!(decode_row(&v).unwrap(), (42, &b"payload"[..]));
        assert!(decode_row(&[1, 2]).is_err());
        assert_eq!(decode_marker(None).unwrap(), 0);
        assert_eq!(decode_marker(Some(&encode_marker(7))).unwrap(), 7);
        assert!(decode_marker(Some(&[1])).is_err());
    }

    #[test]
    fn user_ranges_stay_in_the_data_namespace() {
        let (s, e) = data_range(b"a", b"");
        assert_eq!(s, b"da".to_vec());
        assert_eq!(e, vec![DATA + 1]);
        let (_, e) = data_range(b"a", b"b");
        assert_eq!(e, b"db".to_vec());
    }
}
