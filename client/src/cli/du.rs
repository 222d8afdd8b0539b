//! The space reports of the data path: `-du` (`SIZE  DISK_SPACE_CONSUMED  PATH`, where disk
//! space counts parity shards: the namenode's content summary gives it, else it is computed
//! from the policy) and `-df` (`Filesystem  Size  Used  Available  Use%` over the live block
//! servers).

use arbor_proto::namenode::{BlockServerInfo, ContentSummaryReply, FileStatus};

use crate::cli::count::{disk_consumed, du_table};
use crate::cli::format::{left, right, size};
use crate::cli::messages::Subject;
use crate::cli::shell::{Shell, is_dir};
use crate::paths::SCHEME;

/// Bytes on disk for what a summary covers: the namenode's figure when it gave one, else
/// computed from the length and the entry's policy.
pub fn consumed(summary: &ContentSummaryReply, st: &FileStatus) -> u64 {
    if summary.space_consumed > 0 || summary.length == 0 {
        summary.space_consumed
    } else {
        disk_consumed(summary.length, &st.ec_policy)
    }
}

/// Runs `-du`: a directory argument reports each entry, or itself with `-s`.
pub async fn du(sh: &mut Shell, summary: bool, human: bool, header: bool, paths: Vec<String>) {
    let paths = if paths.is_empty() {
        vec![".".into()]
    } else {
        paths
    };
    let mut rows: Vec<[String; 3]> = Vec::new();
    if header {
        rows.push([
            "SIZE".into(),
            "DISK_SPACE_CONSUMED_WITH_ALL_REPLICAS".into(),
            "FULL_PATH_NAME".into(),
        ]);
    }
    let mut args = Vec::new();
    for typed in paths {
        args.extend(sh.expand("du", &typed).await);
    }
    for arg in args {
        let st = match sh.client.stat(&arg.abs).await {
            Ok(st) => st,
            Err(e) => {
                sh.fail("du", &e, Subject::Path(&arg.shown));
                continue;
            }
        };
        let targets = if is_dir(&st) && !summary {
            match sh.client.list(&arg.abs).await {
                Ok(entries) => entries
                    .into_iter()
                    .filter_map(|e| {
                        let child = arg.child(&e.name);
                        e.status.map(|s| (child, s))
                    })
                    .collect(),
                Err(e) => {
                    sh.fail("du", &e, Subject::Path(&arg.shown));
                    continue;
                }
            }
        } else {
            vec![(arg, st)]
        };
        for (target, st) in targets {
            match sh.client.content_summary(&target.abs).await {
                Ok(s) => rows.push([
                    size(s.length, human),
                    size(consumed(&s, &st), human),
                    target.shown,
                ]),
                Err(e) => sh.fail("du", &e, Subject::Path(&target.shown)),
            }
        }
    }
    for line in du_table(&rows) {
        sh.println(&line);
    }
}

/// Capacity, used and available bytes over the live servers.
pub fn totals(servers: &[BlockServerInfo]) -> (u64, u64, u64) {
    servers
        .iter()
        .filter(|s| s.alive)
        .fold((0, 0, 0), |(c, u, a), s| {
            (
                c + s.capacity_bytes,
                u + s.used_bytes,
                a + s.capacity_bytes.saturating_sub(s.used_bytes),
            )
        })
}

/// The `-df` table: a header and one row.
pub fn df_lines(fs: &str, servers: &[BlockServerInfo], human: bool) -> Vec<String> {
    let (cap, used, avail) = totals(servers);
    let pct = if cap == 0 {
        0
    } else {
        (u128::from(used) * 100 / u128::from(cap)) as u64
    };
    let header = ["Filesystem", "Size", "Used", "Available", "Use%"];
    let row = [
        fs.to_string(),
        size(cap, human),
        size(used, human),
        size(avail, human),
        format!("{pct}%"),
    ];
    let widths: Vec<usize> = (0..5)
        .map(|i| header[i].len().max(row[i].chars().count()))
        .collect();
    let line = |cells: [&str; 5]| {
        let mut s = left(cells[0], widths[0]);
        for i in 1..5 {
            s.push_str("  ");
            s.push_str(&right(cells[i], widths[i]));
        }
        s
    };
    vec![
        line(header),
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]),
    ]
}

/// Runs `-df`.
pub async fn df(sh: &mut Shell, human: bool, _paths: Vec<String>) {
    match sh.client.block_servers().await {
        Ok(servers) => {
            let fs = format!("{SCHEME}{}", sh.client.current_namenode());
            for l in df_lines(&fs, &servers, human) {
                sh.println(&l);
            }
        }
        Err(e) => sh.fail("df", &e, Subject::Path("/")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(cap: u64, used: u64, alive: bool) -> BlockServerInfo {
        BlockServerInfo {
            capacity_bytes: cap,
            used_bytes: used,
            alive,
            ..Default::default()
        }
    }

    #[test]
    fn df_counts_live_servers_only() {
        let s = [
            server(1000, 100, true),
            server(1000, 300, true),
            server(5000, 0, false),
        ];
        assert_eq!(totals(&s), (2000, 400, 1600));
        let lines = df_lines("arbor://h:1", &s, false);
        assert_eq!(lines[0], "Filesystem   Size  Used  Available  Use%");
        assert_eq!(lines[1], "arbor://h:1  2000   400       1600   20%");
        let lines = df_lines("arbor://h:1", &[], true);
        assert!(lines[1].ends_with("0%"));
    }

    #[test]
    fn consumed_space_prefers_the_namenode_figure() {
        let st = FileStatus {
            ec_policy: "RS-4-2-1024k".into(),
            ..Default::default()
        };
        let mut s = ContentSummaryReply {
            length: 400,
            space_consumed: 650,
            ..Default::default()
        };
        assert_eq!(consumed(&s, &st), 650);
        s.space_consumed = 0;
        assert_eq!(consumed(&s, &st), 600);
        s.length = 0;
        assert_eq!(consumed(&s, &st), 0);
    }
}
