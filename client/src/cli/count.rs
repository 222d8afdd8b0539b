//! `-count` and `-du`, the two space reports. `-count` prints HDFS's fixed widths
//! (`DIR_COUNT` 12, `FILE_COUNT` 12, `CONTENT_SIZE` 18, then the path; with `-q` the four quota
//! columns 12/15/15/15 first, `none`/`inf` since Arbor has no quotas yet). `-du` prints
//! `SIZE  DISK_SPACE_CONSUMED  PATH`, left-aligned columns two spaces apart, where disk space
//! counts parity shards as the file's erasure-coding policy does (RS(6,3) and RS(4,2): 1.5x).

use arbor_proto::namenode::ContentSummaryReply;

use crate::cli::format::{left, size};
use crate::cli::messages::Subject;
use crate::cli::shell::Shell;

/// The `-count -v` header line.
pub fn count_header(quotas: bool) -> String {
    let mut s = String::new();
    if quotas {
        s.push_str(&format!(
            "{:>12} {:>15} {:>15} {:>15} ",
            "QUOTA", "REM_QUOTA", "SPACE_QUOTA", "REM_SPACE_QUOTA"
        ));
    }
    s.push_str(&format!(
        "{:>12} {:>12} {:>18} PATHNAME",
        "DIR_COUNT", "FILE_COUNT", "CONTENT_SIZE"
    ));
    s
}

/// One `-count` line. Symlinks count as files, as in HDFS's content summary.
pub fn count_line(s: &ContentSummaryReply, quotas: bool, human: bool, path: &str) -> String {
    let mut line = String::new();
    if quotas {
        line.push_str(&format!(
            "{:>12} {:>15} {:>15} {:>15} ",
            "none", "inf", "none", "inf"
        ));
    }
    line.push_str(&format!(
        "{:>12} {:>12} {:>18} {path}",
        s.directories,
        s.files + s.symlinks,
        size(s.length, human)
    ));
    line
}

/// Bytes on disk for `length` bytes under the erasure-coding policy `policy` (`RS-k-m-…`),
/// counting parity. Unknown or empty policies use the default RS(6,3).
pub fn disk_consumed(length: u64, policy: &str) -> u64 {
    let (k, m) = parse_policy(policy).unwrap_or((6, 3));
    let total = u128::from(length) * u128::from(k + m);
    u64::try_from(total.div_ceil(u128::from(k))).unwrap_or(u64::MAX)
}

/// `(k, m)` of a policy name such as `RS-6-3-1024k`.
pub fn parse_policy(policy: &str) -> Option<(u64, u64)> {
    let mut parts = policy.split('-');
    let _codec = parts.next()?;
    let k: u64 = parts.next()?.parse().ok()?;
    let m: u64 = parts.next()?.parse().ok()?;
    (k > 0).then_some((k, m))
}

/// The `-du` table: columns padded to their widest value, two spaces apart.
pub fn du_table(rows: &[[String; 3]]) -> Vec<String> {
    let w0 = rows.iter().map(|r| r[0].chars().count()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r[1].chars().count()).max().unwrap_or(0);
    rows.iter()
        .map(|r| format!("{}  {}  {}", left(&r[0], w0), left(&r[1], w1), r[2]))
        .collect()
}

/// Runs `-count`.
pub async fn run_count(
    sh: &mut Shell,
    quotas: bool,
    human: bool,
    header: bool,
    paths: Vec<String>,
) {
    let paths = if paths.is_empty() {
        vec![".".into()]
    } else {
        paths
    };
    if header {
        sh.println(&count_header(quotas));
    }
    for typed in paths {
        for arg in sh.expand("count", &typed).await {
            match sh.client.content_summary(&arg.abs).await {
                Ok(s) => sh.println(&count_line(&s, quotas, human, &arg.shown)),
                Err(e) => sh.fail("count", &e, Subject::Path(&arg.shown)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(d: u64, f: u64, l: u64, len: u64) -> ContentSummaryReply {
        ContentSummaryReply {
            directories: d,
            files: f,
            symlinks: l,
            length: len,
            ..Default::default()
        }
    }

    #[test]
    fn count_columns_have_hdfs_widths() {
        let s = summary(3, 10, 2, 1366);
        assert_eq!(
            count_line(&s, false, false, "/a"),
            "           3           12               1366 /a"
        );
        assert_eq!(
            count_header(false),
            "   DIR_COUNT   FILE_COUNT       CONTENT_SIZE PATHNAME"
        );
        let line = count_line(&s, false, true, "/a");
        assert_eq!(line, "           3           12              1.3 K /a");
        let line = count_line(&s, false, false, "/a");
        assert_eq!(line.find("/a"), Some(12 + 1 + 12 + 1 + 18 + 1));
    }

    #[test]
    fn quota_columns_come_first() {
        let s = summary(1, 0, 0, 0);
        assert_eq!(
            count_line(&s, true, false, "/q"),
            "        none             inf            none             inf            1            0                  0 /q"
        );
        assert_eq!(
            count_header(true),
            "       QUOTA       REM_QUOTA     SPACE_QUOTA REM_SPACE_QUOTA    DIR_COUNT   FILE_COUNT       CONTENT_SIZE PATHNAME"
        );
    }

    #[test]
    fn disk_space_counts_parity() {
        assert_eq!(disk_consumed(600, "RS-6-3-1024k"), 900);
        assert_eq!(disk_consumed(400, "RS-4-2-256k"), 600);
        assert_eq!(disk_consumed(1000, "RS-10-4-1024k"), 1400);
        assert_eq!(disk_consumed(1, ""), 2);
        assert_eq!(disk_consumed(0, ""), 0);
        assert_eq!(parse_policy("XOR-2-1-1024k"), Some((2, 1)));
        assert_eq!(parse_policy("RS-0-3"), None);
        assert_eq!(parse_policy("weird"), None);
    }

    #[test]
    fn du_columns_align_left() {
        let rows = [
            ["1366".to_string(), "2049".to_string(), "/a/f".to_string()],
            ["0".to_string(), "0".to_string(), "/a/logs".to_string()],
        ];
        assert_eq!(
            du_table(&rows),
            vec!["1366  2049  /a/f", "0     0     /a/logs"]
        );
    }
}
