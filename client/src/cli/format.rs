//! How values look on a terminal, the way `hdfs dfs` prints them: human sizes (base 1024, one
//! decimal unless exact), permission strings, and timestamps (local minutes for `-ls`, UTC
//! seconds for `-stat`). Pure functions of their inputs.

use arbor_proto::records::InodeKind;
use chrono::{DateTime, Local, TimeZone, Utc};

const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];

/// `512`, `1 K`, `1.5 K`, `128 M`, `2 G`: base 1024, a space before the unit, one decimal
/// unless the size is an exact multiple of the unit.
pub fn human_size(n: u64) -> String {
    if n < 1024 {
        return n.to_string();
    }
    let mut unit = 0;
    let mut div: u128 = 1024;
    while unit + 1 < UNITS.len() && u128::from(n) >= div * 1024 {
        div *= 1024;
        unit += 1;
    }
    let n = u128::from(n);
    if n % div == 0 {
        format!("{} {}", n / div, UNITS[unit])
    } else {
        format!("{:.1} {}", n as f64 / div as f64, UNITS[unit])
    }
}

/// A size as a plain number, or human-readable with `human`.
pub fn size(n: u64, human: bool) -> String {
    if human { human_size(n) } else { n.to_string() }
}

/// `drwxr-xr-x`, `-rw-r--r--`, `lrwxrwxrwx`; setuid/setgid as `s`/`S`, sticky as `t`/`T`.
pub fn permission_string(kind: InodeKind, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(match kind {
        InodeKind::Directory => 'd',
        InodeKind::Symlink => 'l',
        _ => '-',
    });
    let special = [(0o4000, 's', 'S'), (0o2000, 's', 'S'), (0o1000, 't', 'T')];
    for (i, (bit, set_x, set_no_x)) in special.iter().enumerate() {
        let shift = 6 - 3 * i as u32;
        let triple = (mode >> shift) & 7;
        s.push(if triple & 4 != 0 { 'r' } else { '-' });
        s.push(if triple & 2 != 0 { 'w' } else { '-' });
        let x = triple & 1 != 0;
        s.push(match (mode & bit != 0, x) {
            (true, true) => *set_x,
            (true, false) => *set_no_x,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

fn utc(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

/// `yyyy-MM-dd HH:mm` in the local time zone (the `-ls` column).
pub fn local_minute(ns: i64) -> String {
    Local
        .from_utc_datetime(&utc(ns).naive_utc())
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// `yyyy-MM-dd HH:mm:ss` in UTC (`-stat %y`).
pub fn utc_second(ns: i64) -> String {
    utc(ns).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Milliseconds since the epoch (`-stat %Y`).
pub fn epoch_ms(ns: i64) -> i64 {
    ns.div_euclid(1_000_000)
}

/// Right-aligns `s` in `width` columns.
pub fn right(s: &str, width: usize) -> String {
    format!("{s:>width$}")
}

/// Left-aligns `s` in `width` columns.
pub fn left(s: &str, width: usize) -> String {
    format!("{s:<width$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_follow_hdfs() {
        assert_eq!(human_size(0), "0");
        assert_eq!(human_size(512), "512");
        assert_eq!(human_size(1023), "1023");
        assert_eq!(human_size(1024), "1 K");
        assert_eq!(human_size(1536), "1.5 K");
        assert_eq!(human_size(1366), "1.3 K");
        assert_eq!(human_size(128 << 20), "128 M");
        assert_eq!(human_size(2 << 30), "2 G");
        assert_eq!(human_size((3 << 40) + (1 << 39)), "3.5 T");
        assert_eq!(human_size(u64::MAX), "16.0 E");
        assert_eq!(size(2048, false), "2048");
        assert_eq!(size(2048, true), "2 K");
    }

    #[test]
    fn permission_strings() {
        assert_eq!(permission_string(InodeKind::Directory, 0o755), "drwxr-xr-x");
        assert_eq!(permission_string(InodeKind::File, 0o644), "-rw-r--r--");
        assert_eq!(permission_string(InodeKind::Symlink, 0o777), "lrwxrwxrwx");
        assert_eq!(
            permission_string(InodeKind::Directory, 0o1777),
            "drwxrwxrwt"
        );
        assert_eq!(
            permission_string(InodeKind::Directory, 0o1770),
            "drwxrwx--T"
        );
        assert_eq!(permission_string(InodeKind::File, 0o6700), "-rws--S---");
        assert_eq!(permission_string(InodeKind::File, 0), "----------");
    }

    #[test]
    fn timestamps() {
        // 2026-11-25 15:33:07.5 UTC
        let ns = 1_795_620_787_500_000_000;
        assert_eq!(utc_second(ns), "2026-11-25 15:33:07");
        assert_eq!(epoch_ms(ns), 1_795_620_787_500);
        assert_eq!(epoch_ms(-1), -1);
        let local = local_minute(ns);
        assert_eq!(local.len(), 16);
        assert!(local.starts_with("2026-11-2"), "{local}");
    }

    #[test]
    fn alignment() {
        assert_eq!(right("3", 3), "  3");
        assert_eq!(left("ab", 4), "ab  ");
        assert_eq!(right("toolong", 3), "toolong");
    }
}
