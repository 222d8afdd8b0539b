//! `arbor fsck [PATH]`: asks a namenode to check the namespace and prints the report the way
//! `hdfs fsck` does — problems first, `Status: HEALTHY|CORRUPT`, tab-aligned counts, the
//! elapsed time, and the closing `The filesystem under path 'P' is HEALTHY|CORRUPT` line. The
//! exit status is 0 for healthy, 1 for corrupt or when the check could not run.

use std::io::Write;

use arbor_proto::namenode::{ClusterInfoReply, ErrorCode, FsckReply};

use crate::client::Client;

/// The report lines for a finished check.
pub fn report_lines(path: &str, reply: &FsckReply, info: Option<&ClusterInfoReply>) -> Vec<String> {
    let mut lines = Vec::new();
    for problem in &reply.problems {
        lines.push(problem.clone());
    }
    if !reply.problems.is_empty() {
        lines.push(String::new());
    }
    let status = status_word(reply);
    lines.push(format!("Status: {status}"));
    if let Some(info) = info {
        lines.push(format!(" Number of metastore shards:\t{}", info.shards));
    }
    lines.push(format!(" Total dirs:\t\t\t{}", reply.directories));
    lines.push(format!(" Total symlinks:\t\t{}", reply.symlinks));
    lines.push(format!(" Total files:\t\t\t{}", reply.files));
    lines.push(format!(" Total size:\t\t\t{} B", reply.total_size));
    lines.push(format!(" Total block groups:\t\t{}", reply.blocks));
    lines.push(format!(
        " Under-strength block groups:\t{}",
        reply.under_strength_blocks
    ));
    lines.push(format!(
        " Missing block groups:\t\t{}",
        reply.missing_blocks
    ));
    lines.push(format!(" Corrupt shards:\t\t{}", reply.corrupt_shards));
    lines.push(format!(
        " Block servers:\t\t\t{} live, {} dead",
        reply.live_block_servers, reply.dead_block_servers
    ));
    lines.push(format!(" Pending deletes:\t\t{}", reply.pending_deletes));
    lines.push(format!(" Open intents:\t\t\t{}", reply.open_intents));
    lines.push(format!(" Problems found:\t\t{}", reply.problems.len()));
    lines.push(format!(
        "FSCK ended at {} in {} milliseconds",
        now_string(),
        reply.elapsed_ms
    ));
    lines.push(String::new());
    lines.push(String::new());
    lines.push(format!("The filesystem under path '{path}' is {status}"));
    lines
}

fn status_word(reply: &FsckReply) -> &'static str {
    if reply.healthy { "HEALTHY" } else { "CORRUPT" }
}

fn now_string() -> String {
    chrono::Local::now()
        .format("%a %b %d %H:%M:%S %Z %Y")
        .to_string()
}

/// Runs the check and prints the report; returns the exit status.
pub async fn run(client: &Client, path: &str, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let _ = writeln!(
        out,
        "Connecting to namenode via {}",
        client.current_namenode()
    );
    let _ = writeln!(
        out,
        "FSCK started by {} (uid {}) for path {path} at {}",
        client.identity().user,
        client.identity().uid,
        now_string()
    );
    match client.fsck(path).await {
        Ok(reply) => {
            let info = client.cluster_info().await.ok();
            for line in report_lines(path, &reply, info.as_ref()) {
                let _ = writeln!(out, "{line}");
            }
            i32::from(!reply.healthy)
        }
        Err(e) if e.code == ErrorCode::NotFound => {
            let _ = writeln!(out, "Path '{path}' does not exist");
            1
        }
        Err(e) => {
            let _ = out.flush();
            let _ = writeln!(err, "Fsck on path '{path}' FAILED: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(healthy: bool, problems: Vec<String>) -> FsckReply {
        FsckReply {
            healthy,
            directories: 12,
            files: 10,
            symlinks: 1,
            total_size: 1366,
            pending_deletes: 2,
            open_intents: 0,
            problems,
            elapsed_ms: 5,
            ..Default::default()
        }
    }

    #[test]
    fn healthy_report() {
        let lines = report_lines("/", &reply(true, vec![]), None);
        assert_eq!(lines[0], "Status: HEALTHY");
        assert!(lines.contains(&" Total dirs:\t\t\t12".to_string()));
        assert!(lines.contains(&" Total files:\t\t\t10".to_string()));
        assert!(lines.contains(&" Total size:\t\t\t1366 B".to_string()));
        assert!(lines.contains(&" Pending deletes:\t\t2".to_string()));
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("FSCK ended at ") && l.ends_with(" in 5 milliseconds"))
        );
        assert_eq!(
            lines.last().unwrap(),
            "The filesystem under path '/' is HEALTHY"
        );
    }

    #[test]
    fn corrupt_report_lists_problems_first() {
        let info = ClusterInfoReply {
            shards: 4,
            ..Default::default()
        };
        let lines = report_lines(
            "/data",
            &reply(false, vec!["dentry /data/x names missing inode 42".into()]),
            Some(&info),
        );
        assert_eq!(lines[0], "dentry /data/x names missing inode 42");
        assert_eq!(lines[1], "");
        assert_eq!(lines[2], "Status: CORRUPT");
        assert_eq!(lines[3], " Number of metastore shards:\t4");
        assert!(lines.contains(&" Problems found:\t\t1".to_string()));
        assert_eq!(
            lines.last().unwrap(),
            "The filesystem under path '/data' is CORRUPT"
        );
    }
}
