//! What a transaction will ask of each shard at commit: its validated reads, required-empty
//! prefixes and buffered writes, grouped by shard. Invariants: one read check per key (the
//! first read's version, so a row that changed between two reads fails the commit), and at
//! most one write per key (a later put or delete replaces an earlier write; counter updates
//! accumulate, and a counter update after a put or delete is folded into that write).

use std::collections::BTreeMap;

use arbor_proto::metastore::{self as pb, write::Op};

use crate::txn::CounterOp;

/// One buffered write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOp {
    Put(Vec<u8>),
    Delete,
    Counter {
        width: u32,
        fields: Vec<(u32, CounterOp, i64)>,
    },
}

/// Everything a transaction asks of one shard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardPart {
    pub reads: BTreeMap<Vec<u8>, u64>,
    pub empty_prefixes: Vec<Vec<u8>>,
    pub writes: BTreeMap<Vec<u8>, WriteOp>,
}

impl ShardPart {
    /// The request body for this shard.
    pub fn body(&self) -> pb::TxnBody {
        pb::TxnBody {
            reads: self
                .reads
                .iter()
                .map(|(key, version)| pb::ReadCheck {
                    key: key.clone(),
                    version: *version,
                })
                .collect(),
            empty_prefixes: self.empty_prefixes.clone(),
            writes: self
                .writes
                .iter()
                .map(|(key, op)| pb::Write {
                    key: key.clone(),
                    op: Some(write_op(op)),
                })
                .collect(),
        }
    }
}

fn write_op(op: &WriteOp) -> Op {
    match op {
        WriteOp::Put(value) => Op::Put(value.clone()),
        WriteOp::Delete => Op::Delete(pb::Empty {}),
        WriteOp::Counter { width, fields } => Op::Counter(pb::CounterUpdate {
            width: *width,
            fields: fields
                .iter()
                .map(|(index, op, value)| pb::CounterField {
                    index: *index,
                    op: counter_op(*op) as i32,
                    value: *value,
                })
                .collect(),
        }),
    }
}

fn counter_op(op: CounterOp) -> pb::CounterOp {
    match op {
        CounterOp::Add => pb::CounterOp::CounterAdd,
        CounterOp::Max => pb::CounterOp::CounterMax,
        CounterOp::Set => pb::CounterOp::CounterSet,
    }
}

/// Applies counter updates to a row value the way a shard does: `width` little-endian i64
/// fields, missing ones zero, updates in order.
pub fn apply_counter(value: &[u8], width: u32, fields: &[(u32, CounterOp, i64)]) -> Vec<u8> {
    let n = (width as usize).max(value.len() / 8);
    let mut cells = vec![0i64; n];
    for (i, chunk) in value.chunks_exact(8).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        cells[i] = i64::from_le_bytes(b);
    }
    for &(index, op, v) in fields {
        let index = index as usize;
        if index >= cells.len() {
            cells.resize(index + 1, 0);
        }
        let cell = &mut cells[index];
        *cell = match op {
            CounterOp::Add => cell.wrapping_add(v),
            CounterOp::Max => (*cell).max(v),
            CounterOp::Set => v,
        };
    }
    cells.iter().flat_map(|c| c.to_le_bytes()).collect()
}

/// A transaction's reads and writes, by shard.
#[derive(Clone, Debug, Default)]
pub struct TxnBuffer {
    parts: BTreeMap<u32, ShardPart>,
}

impl TxnBuffer {
    pub fn part(&self, shard: u32) -> Option<&ShardPart> {
        self.parts.get(&shard)
    }

    /// Records a validated read; a key already in the read set keeps its first version.
    pub fn record_read(&mut self, shard: u32, key: Vec<u8>, version: u64) {
        self.parts
            .entry(shard)
            .or_default()
            .reads
            .entry(key)
            .or_insert(version);
    }

    pub fn put(&mut self, shard: u32, key: Vec<u8>, value: Vec<u8>) {
        self.parts
            .entry(shard)
            .or_default()
            .writes
            .insert(key, WriteOp::Put(value));
    }

    pub fn delete(&mut self, shard: u32, key: Vec<u8>) {
        self.parts
            .entry(shard)
            .or_default()
            .writes
            .insert(key, WriteOp::Delete);
    }

    pub fn counter(
        &mut self,
        shard: u32,
        key: Vec<u8>,
        width: u32,
        fields: Vec<(u32, CounterOp, i64)>,
    ) {
        let writes = &mut self.parts.entry(shard).or_default().writes;
        let merged = match writes.remove(&key) {
            None => WriteOp::Counter { width, fields },
            Some(WriteOp::Counter {
                width: w0,
                fields: mut f0,
            }) => {
                f0.extend(fields);
                WriteOp::Counter {
                    width: w0.max(width),
                    fields: f0,
                }
            }
            // The row's whole value is already decided here: fold the update into it.
            Some(WriteOp::Put(value)) => WriteOp::Put(apply_counter(&value, width, &fields)),
            Some(WriteOp::Delete) => WriteOp::Put(apply_counter(&[], width, &fields)),
        };
        writes.insert(key, merged);
    }

    pub fn require_empty(&mut self, shard: u32, prefix: Vec<u8>) {
        let prefixes = &mut self.parts.entry(shard).or_default().empty_prefixes;
        if !prefixes.contains(&prefix) {
            prefixes.push(prefix);
        }
    }

    /// The keys whose rows this transaction replaces or deletes (counter updates aside).
    pub fn replaced_keys(&self) -> impl Iterator<Item = &[u8]> {
        self.parts.values().flat_map(|p| {
            p.writes
                .iter()
                .filter(|(_, w)| !matches!(w, WriteOp::Counter { .. }))
                .map(|(k, _)| k.as_slice())
        })
    }

    pub fn has_writes(&self) -> bool {
        self.parts.values().any(|p| !p.writes.is_empty())
    }

    /// Shards the commit involves (writes, validated reads or empty prefixes), ascending.
    pub fn participants(&self) -> Vec<u32> {
        self.parts
            .iter()
            .filter(|(_, p)| {
                !p.writes.is_empty() || !p.reads.is_empty() || !p.empty_prefixes.is_empty()
            })
            .map(|(s, _)| *s)
            .collect()
    }

    /// The shard that holds the transaction record: the lowest participant.
    pub fn primary(&self) -> Option<u32> {
        self.participants().first().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    fn cells(v: &[i64]) -> Vec<u8> {
        v.iter().flat_map(|c| c.to_le_bytes()).collect()
    }

    #[test]
    fn later_put_or_delete_replaces_earlier_write() {
        let mut b = TxnBuffer::default();
        b.put(1, k("a"), k("one"));
        b.put(1, k("a"), k("two"));
        assert_eq!(b.part(1).unwrap().writes[&k("a")], WriteOp::Put(k("two")));
        b.delete(1, k("a"));
        assert_eq!(b.part(1).unwrap().writes[&k("a")], WriteOp::Delete);
        b.put(1, k("a"), k("three"));
        assert_eq!(b.part(1).unwrap().writes[&k("a")], WriteOp::Put(k("three")));
        b.counter(1, k("c"), 4, vec![(0, CounterOp::Add, 1)]);
        b.put(1, k("c"), k("x"));
        assert_eq!(b.part(1).unwrap().writes[&k("c")], WriteOp::Put(k("x")));
        assert_eq!(b.part(1).unwrap().writes.len(), 2);
    }

    #[test]
    fn counters_on_one_key_append_fields() {
        let mut b = TxnBuffer::default();
        b.counter(2, k("c"), 2, vec![(0, CounterOp::Add, 1)]);
        b.counter(
            2,
            k("c"),
            4,
            vec![(3, CounterOp::Max, 9), (0, CounterOp::Add, 1)],
        );
        assert_eq!(
            b.part(2).unwrap().writes[&k("c")],
            WriteOp::Counter {
                width: 4,
                fields: vec![
                    (0, CounterOp::Add, 1),
                    (3, CounterOp::Max, 9),
                    (0, CounterOp::Add, 1)
                ]
            }
        );
        let body = b.part(2).unwrap().body();
        let Some(Op::Counter(update)) = &body.writes[0].op else {
            panic!("not a counter: {body:?}");
        };
        assert_eq!(update.width, 4);
        assert_eq!(update.fields[1].op, pb::CounterOp::CounterMax as i32);
        assert_eq!(update.fields[1].index, 3);
    }

    #[test]
    fn a_counter_after_a_put_or_delete_folds_into_it() {
        let mut b = TxnBuffer::default();
        b.put(0, k("c"), cells(&[5, 7]));
        b.counter(
            0,
            k("c"),
            2,
            vec![(0, CounterOp::Add, 2), (1, CounterOp::Max, 3)],
        );
        assert_eq!(
            b.part(0).unwrap().writes[&k("c")],
            WriteOp::Put(cells(&[7, 7]))
        );
        b.delete(0, k("c"));
        b.counter(0, k("c"), 3, vec![(2, CounterOp::Set, -4)]);
        assert_eq!(
            b.part(0).unwrap().writes[&k("c")],
            WriteOp::Put(cells(&[0, 0, -4]))
        );
    }

    #[test]
    fn the_first_validated_read_of_a_key_wins() {
        let mut b = TxnBuffer::default();
        b.record_read(0, k("a"), 3);
        b.record_read(0, k("a"), 5);
        b.record_read(0, k("b"), 0);
        let body = b.part(0).unwrap().body();
        assert_eq!(body.reads.len(), 2);
        assert_eq!(
            body.reads[0],
            pb::ReadCheck {
                key: k("a"),
                version: 3
            }
        );
        assert_eq!(
            body.reads[1],
            pb::ReadCheck {
                key: k("b"),
                version: 0
            }
        );
        assert!(!b.has_writes());
    }

    #[test]
    fn empty_prefixes_are_kept_once() {
        let mut b = TxnBuffer::default();
        b.require_empty(1, k("D1"));
        b.require_empty(1, k("D1"));
        b.require_empty(1, k("D2"));
        assert_eq!(b.part(1).unwrap().empty_prefixes, vec![k("D1"), k("D2")]);
    }

    #[test]
    fn participants_are_every_shard_with_reads_writes_or_prefixes() {
        let mut b = TxnBuffer::default();
        assert_eq!(b.participants(), Vec::<u32>::new());
        assert_eq!(b.primary(), None);
        b.put(3, k("a"), k("1"));
        assert_eq!(b.participants(), vec![3]);
        b.record_read(2, k("b"), 1);
        b.require_empty(5, k("p"));
        b.counter(4, k("c"), 1, vec![(0, CounterOp::Add, 1)]);
        assert_eq!(b.participants(), vec![2, 3, 4, 5]);
        // A shard that is only read still locks its reads, so it leads when it is lowest.
        assert_eq!(b.primary(), Some(2));
        assert!(b.has_writes());
    }

    #[test]
    fn bodies_carry_puts_and_deletes() {
        let mut b = TxnBuffer::default();
        b.put(0, k("a"), k("v"));
        b.delete(0, k("b"));
        let body = b.part(0).unwrap().body();
        assert_eq!(body.writes.len(), 2);
        assert_eq!(body.writes[0].op, Some(Op::Put(k("v"))));
        assert_eq!(body.writes[1].op, Some(Op::Delete(pb::Empty {})));
    }

    #[test]
    fn counter_application_matches_the_shard_rules() {
        let v = apply_counter(&[], 4, &[(2, CounterOp::Max, 10), (2, CounterOp::Max, 4)]);
        assert_eq!(v, cells(&[0, 0, 10, 0]));
        let v = apply_counter(
            &cells(&[1, 2]),
            2,
            &[(0, CounterOp::Add, -3), (1, CounterOp::Set, 8)],
        );
        assert_eq!(v, cells(&[-2, 8]));
    }
}
