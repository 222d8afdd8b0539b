//! Erasure-coding policies: the fixed set a cluster knows, their short aliases, and which one
//! applies where. A directory may name a policy (`InodeRecord.ec_policy`); a file takes the
//! nearest ancestor's when it is created and keeps it; with none set anywhere, the cluster
//! default applies. Names are always stored in their full form.

use arbor_proto::namenode::EcPolicy;
use arbor_proto::records::{BlockPolicy, InodeRecord};

use crate::error::NnError;

pub const DEFAULT_POLICY: &str = "RS-6-3-1024k";

/// (name, k, m, replication)
const POLICIES: &[(&str, u32, u32, bool)] = &[
    ("RS-6-3-1024k", 6, 3, false),
    ("RS-3-2-1024k", 3, 2, false),
    ("RS-4-2-1024k", 4, 2, false),
    ("REPLICATION-3", 1, 2, true),
];

/// The policy `name` (full or short: "RS-6-3") with cells of `cell_size` bytes.
pub fn lookup(name: &str, cell_size: u32) -> Option<EcPolicy> {
    POLICIES.iter().find_map(|&(full, k, m, replication)| {
        let short = full.strip_suffix("-1024k").unwrap_or(full);
        (name.eq_ignore_ascii_case(full) || name.eq_ignore_ascii_case(short)).then(|| EcPolicy {
            name: full.to_string(),
            data_shards: k,
            parity_shards: m,
            cell_size,
            replication,
        })
    })
}

/// Every known policy.
pub fn all(cell_size: u32) -> Vec<EcPolicy> {
    POLICIES
        .iter()
        .filter_map(|(name, ..)| lookup(name, cell_size))
        .collect()
}

/// The known names, for error messages.
pub fn known_names() -> String {
    POLICIES
        .iter()
        .map(|(n, ..)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `name` as a policy, or INVALID_ARGUMENT naming the known ones.
pub fn parse(name: &str, cell_size: u32, path: &str) -> Result<EcPolicy, NnError> {
    lookup(name, cell_size).ok_or_else(|| {
        NnError::invalid(
            path,
            format!(
                "unknown erasure coding policy {name:?}; known policies: {}",
                known_names()
            ),
        )
    })
}

/// The policy of a file under `chain` (ancestors from the root down, the file last): the file's
/// own when it has one, else the nearest ancestor's, else `default`. Returns the policy's full
/// name and the index in `chain` it was set on (None for the default).
pub fn effective<'a>(
    chain: impl DoubleEndedIterator<Item = &'a InodeRecord>,
    default: &str,
) -> (String, Option<usize>) {
    let chain: Vec<&InodeRecord> = chain.collect();
    for (i, inode) in chain.iter().enumerate().rev() {
        if !inode.ec_policy.is_empty() {
            return (inode.ec_policy.clone(), Some(i));
        }
    }
    (default.to_string(), None)
}

pub fn to_record(p: &EcPolicy) -> BlockPolicy {
    BlockPolicy {
        name: p.name.clone(),
        data_shards: p.data_shards,
        parity_shards: p.parity_shards,
        cell_size: p.cell_size,
        replication: p.replication,
    }
}

pub fn from_record(p: &BlockPolicy) -> EcPolicy {
    EcPolicy {
        name: p.name.clone(),
        data_shards: p.data_shards,
        parity_shards: p.parity_shards,
        cell_size: p.cell_size,
        replication: p.replication,
    }
}

/// Shards per block: k + m.
pub fn width(p: &BlockPolicy) -> usize {
    (p.data_shards + p.parity_shards) as usize
}

/// Bytes stored for `length` bytes of data under `p`: × (k+m)/k (for replication k = 1, so
/// × copies).
pub fn stored_bytes(p: &BlockPolicy, length: u64) -> u64 {
    let k = u64::from(p.data_shards.max(1));
    let n = u64::from(p.data_shards + p.parity_shards).max(1);
    ((length as u128 * n as u128).div_ceil(k as u128)).min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases() {
        let p = lookup("RS-6-3", 65536).unwrap();
        assert_eq!(p.name, "RS-6-3-1024k");
        assert_eq!((p.data_shards, p.parity_shards, p.cell_size), (6, 3, 65536));
        assert_eq!(lookup("rs-4-2-1024k", 1).unwrap().name, "RS-4-2-1024k");
        let r = lookup("REPLICATION-3", 1 << 20).unwrap();
        assert!(r.replication && r.data_shards == 1 && r.parity_shards == 2);
        assert!(lookup("RS-10-4", 1).is_none());
        let e = parse("XOR-2-1", 1, "/d").unwrap_err();
        assert!(e.to_string().contains("RS-3-2-1024k"), "{e}");
        assert_eq!(all(1).len(), 4);
    }

    #[test]
    fn nearest_setting_wins() {
        let mut a = InodeRecord::default();
        let mut b = InodeRecord::default();
        let c = InodeRecord::default();
        assert_eq!(
            effective([&a, &b, &c].into_iter(), "D"),
            ("D".to_string(), None)
        );
        a.ec_policy = "RS-3-2-1024k".into();
        assert_eq!(effective([&a, &b, &c].into_iter(), "D").1, Some(0));
        b.ec_policy = "REPLICATION-3".into();
        assert_eq!(
            effective([&a, &b, &c].into_iter(), "D"),
            ("REPLICATION-3".to_string(), Some(1))
        );
    }

    #[test]
    fn stored_bytes_scale_by_width() {
        let rs63 = to_record(&lookup("RS-6-3", 1).unwrap());
        assert_eq!(stored_bytes(&rs63, 600), 900);
        let rep = to_record(&lookup("REPLICATION-3", 1).unwrap());
        assert_eq!(stored_bytes(&rep, 100), 300);
    }
}
