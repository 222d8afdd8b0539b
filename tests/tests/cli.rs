//! The `arbor dfs` and `arbor fsck` output formats against a real cluster, as `hdfs dfs` users
//! know them: `-ls` rows and their padding, `Found N items`, `-stat` specifiers, `-count`
//! columns, `-test` exit codes, `-getfattr`, the messages of `-rm`, and fsck's report.

use arbor_proto::namenode::{SetAttrRequest, StatusReply};
use arbor_tests::namespace::ok;
use arbor_tests::raw::Caller;
use arbor_tests::{Config, Output, TestCluster, secs, within};

/// 2026-11-25 15:33:07 UTC, in ns.
const DATA_MTIME: i64 = 1_795_620_787_000_000_000;
/// 2026-11-25 09:05:00 UTC, in ns.
const EMPTY_MTIME: i64 = 1_795_597_500_000_000_000;

/// One `-ls` row, split on whitespace (paths here have no spaces).
#[derive(Debug)]
struct Row<'a> {
    line: &'a str,
    perms: &'a str,
    replication: &'a str,
    owner: &'a str,
    group: &'a str,
    size: &'a str,
    date: &'a str,
    time: &'a str,
    path: &'a str,
}

fn row(line: &str) -> Row<'_> {
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f.len(), 8, "an -ls row has 8 fields: {line:?}");
    Row {
        line,
        perms: f[0],
        replication: f[1],
        owner: f[2],
        group: f[3],
        size: f[4],
        date: f[5],
        time: f[6],
        path: f[7],
    }
}

/// Byte offset where field `i` (0-based, whitespace-separated) starts / ends in `line`.
fn field_span(line: &str, i: usize) -> (usize, usize) {
    let mut n = 0;
    let mut start = None;
    for (pos, ch) in line
        .char_indices()
        .chain(std::iter::once((line.len(), ' ')))
    {
        match (ch.is_whitespace(), start) {
            (false, None) => start = Some(pos),
            (true, Some(s)) => {
                if n == i {
                    return (s, pos);
                }
                n += 1;
                start = None;
            }
            _ => {}
        }
    }
    panic!("no field {i} in {line:?}");
}

fn is_date(s: &str) -> bool {
    s.len() == 10
        && s.chars().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        })
}

fn is_minute(s: &str) -> bool {
    s.len() == 5
        && s.chars()
            .enumerate()
            .all(|(i, c)| if i == 2 { c == ':' } else { c.is_ascii_digit() })
}

#[track_caller]
fn success(out: &Output, what: &str) {
    assert_eq!(out.code, 0, "{what}\n{out}");
    assert!(out.stderr.is_empty(), "{what}: stderr\n{out}");
}

/// Columns are padded to the widest value: sizes end, and dates and paths start, at the same
/// column in every row of one listing.
#[track_caller]
fn assert_aligned(rows: &[&str]) {
    for field in [4usize, 5, 7] {
        let spans: Vec<(usize, usize)> = rows.iter().map(|r| field_span(r, field)).collect();
        let edge = |s: &(usize, usize)| if field == 4 { s.1 } else { s.0 };
        assert!(
            spans.iter().all(|s| edge(s) == edge(&spans[0])),
            "column {field} not aligned:\n{}",
            rows.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dfs_commands_print_what_hdfs_users_expect() {
    let cluster = TestCluster::start(Config {
        shards: 2,
        namenodes: 2,
        ..Config::default()
    })
    .await;
    within(secs(240), async {
        let client = cluster.client().await;
        ok(client.mkdir("/cli", 0o755, false).await, "mkdir /cli");
        ok(
            client.mkdir("/cli/sub", 0o750, false).await,
            "mkdir /cli/sub",
        );
        ok(
            client.create("/cli/sub/x", 0o600, false).await,
            "create /cli/sub/x",
        );
        ok(
            client.create("/cli/empty", 0o644, false).await,
            "create /cli/empty",
        );
        ok(
            client.create("/cli/data", 0o640, false).await,
            "create /cli/data",
        );
        let caller = Caller::new();
        let sized: StatusReply = cluster
            .raw_namenode(0)
            .set_attr(SetAttrRequest {
                ctx: Some(caller.fresh()),
                path: "/cli/data".into(),
                size: Some(1366),
                ..Default::default()
            })
            .await
            .expect("set the size of /cli/data")
            .into_inner();
        assert_eq!(sized.status.map(|s| s.size), Some(1366));
        ok(
            client.set_times("/cli/data", Some(DATA_MTIME), None).await,
            "utimes data",
        );
        ok(
            client
                .set_times("/cli/empty", Some(EMPTY_MTIME), None)
                .await,
            "utimes empty",
        );
        ok(
            client.set_xattr("/cli/data", "user.color", b"blue").await,
            "setfattr",
        );

        // -ls of a directory.
        let out = cluster.cli(&["dfs", "-ls", "/cli"]).await;
        success(&out, "-ls /cli");
        let lines = out.stdout_lines();
        assert_eq!(lines.first(), Some(&"Found 3 items"), "{out}");
        assert_eq!(lines.len(), 4, "{out}");
        let rows: Vec<Row> = lines[1..].iter().map(|l| row(l)).collect();
        let paths: Vec<&str> = rows.iter().map(|r| r.path).collect();
        assert_eq!(paths, ["/cli/data", "/cli/empty", "/cli/sub"], "{out}");
        let (data, empty, sub) = (&rows[0], &rows[1], &rows[2]);
        assert_eq!(data.perms, "-rw-r-----", "{}", data.line);
        assert_eq!(empty.perms, "-rw-r--r--", "{}", empty.line);
        assert_eq!(sub.perms, "drwxr-x---", "{}", sub.line);
        assert!(
            data.replication.chars().all(|c| c.is_ascii_digit()),
            "{}",
            data.line
        );
        assert_eq!(
            sub.replication, "-",
            "directories have no replication: {}",
            sub.line
        );
        for r in &rows {
            assert_eq!(
                (r.owner, r.group),
                ("root", "root"),
                "uid/gid 0 by name: {}",
                r.line
            );
            assert!(
                is_date(r.date) && is_minute(r.time),
                "yyyy-MM-dd HH:mm: {}",
                r.line
            );
        }
        assert_eq!(
            (data.size, data.date, data.time),
            ("1366", "2026-11-25", "15:33"),
            "{}",
            data.line
        );
        assert_eq!(
            (empty.size, empty.date, empty.time),
            ("0", "2026-11-25", "09:05"),
            "{}",
            empty.line
        );
        assert_eq!(sub.size, "0", "{}", sub.line);
        assert_aligned(&lines[1..]);

        // -ls -h: sizes in base 1024 with a space before the unit.
        let out = cluster.cli(&["dfs", "-ls", "-h", "/cli"]).await;
        success(&out, "-ls -h /cli");
        let data_line = out
            .stdout_lines()
            .into_iter()
            .find(|l| l.ends_with(" /cli/data"));
        let data_line = data_line.unwrap_or_else(|| panic!("no /cli/data row\n{out}"));
        assert!(
            data_line.contains(" 1.3 K 2026-11-25 15:33 "),
            "{data_line:?}"
        );

        // -ls -d, and -ls of a file: the entry itself, no header.
        let out = cluster.cli(&["dfs", "-ls", "-d", "/cli"]).await;
        success(&out, "-ls -d /cli");
        assert_eq!(out.stdout_lines().len(), 1, "{out}");
        let r = row(out.stdout_lines()[0]);
        assert_eq!(
            (r.perms, r.replication, r.path),
            ("drwxr-xr-x", "-", "/cli"),
            "{out}"
        );
        let out = cluster.cli(&["dfs", "-ls", "/cli/data"]).await;
        success(&out, "-ls /cli/data");
        assert_eq!(out.stdout_lines().len(), 1, "{out}");
        assert_eq!(row(out.stdout_lines()[0]).size, "1366", "{out}");

        // -ls -R: every entry below, each directory's entries after its own row, no headers.
        let out = cluster.cli(&["dfs", "-ls", "-R", "/cli"]).await;
        success(&out, "-ls -R /cli");
        let paths: Vec<&str> = out
            .stdout_lines()
            .into_iter()
            .map(|l| row(l).path)
            .collect();
        assert_eq!(
            paths,
            ["/cli/data", "/cli/empty", "/cli/sub", "/cli/sub/x"],
            "{out}"
        );

        // Missing paths: one message each, the others still listed, exit 1.
        let out = cluster.cli(&["dfs", "-ls", "/cli/nope", "/cli/data"]).await;
        assert_eq!(out.code, 1, "{out}");
        assert_eq!(
            out.stderr_lines(),
            ["ls: `/cli/nope': No such file or directory"],
            "{out}"
        );
        assert_eq!(out.stdout_lines().len(), 1, "{out}");
        assert_eq!(row(out.stdout_lines()[0]).path, "/cli/data", "{out}");

        // -stat.
        let out = cluster
            .cli(&["dfs", "-stat", "%F|%u|%g|%b|%a|%A|%n|%y|%Y", "/cli/data"])
            .await;
        success(&out, "-stat");
        let f: Vec<&str> = out.stdout.trim_end().split('|').collect();
        assert_eq!(f.len(), 9, "{out}");
        assert_eq!(
            &f[..5],
            ["regular file", "root", "root", "1366", "640"],
            "{out}"
        );
        assert!(
            f[5].ends_with("rw-r-----"),
            "%A symbolic permissions: {out}"
        );
        assert_eq!(
            &f[6..],
            ["data", "2026-11-25 15:33:07", "1795620787000"],
            "{out}"
        );
        let out = cluster.cli(&["dfs", "-stat", "/cli/data"]).await;
        success(&out, "-stat default");
        assert_eq!(out.stdout, "2026-11-25 15:33:07\n", "default format is %y");
        let out = cluster
            .cli(&["dfs", "-stat", "%F %n", "/cli/sub", "/cli/empty"])
            .await;
        success(&out, "-stat two paths");
        assert_eq!(
            out.stdout_lines(),
            ["directory sub", "regular file empty"],
            "{out}"
        );

        // -count: DIR_COUNT FILE_COUNT CONTENT_SIZE PATHNAME, right-aligned in 12, 12, 18.
        let out = cluster.cli(&["dfs", "-count", "/cli"]).await;
        success(&out, "-count");
        let line = out.stdout.trim_end_matches('\n');
        let hadoop = format!("{:>12} {:>12} {:>18} {}", 2, 3, 1366, "/cli");
        let packed = format!("{:>12}{:>12}{:>18} {}", 2, 3, 1366, "/cli");
        assert!(
            line == hadoop || line == packed,
            "-count line {line:?}, expected {hadoop:?}"
        );
        let out = cluster.cli(&["dfs", "-count", "-v", "/cli"]).await;
        success(&out, "-count -v");
        let header: Vec<&str> = out.stdout_lines()[0].split_whitespace().collect();
        assert_eq!(
            header,
            ["DIR_COUNT", "FILE_COUNT", "CONTENT_SIZE", "PATHNAME"],
            "{out}"
        );

        // -test: no output, the answer is the exit status.
        for (flag, path, want) in [
            ("-e", "/cli/data", 0),
            ("-e", "/cli/nope", 1),
            ("-d", "/cli/sub", 0),
            ("-d", "/cli/data", 1),
            ("-f", "/cli/data", 0),
            ("-f", "/cli/sub", 1),
            ("-z", "/cli/empty", 0),
            ("-z", "/cli/data", 1),
            ("-s", "/cli/data", 0),
            ("-s", "/cli/empty", 1),
        ] {
            let out = cluster.cli(&["dfs", "-test", flag, path]).await;
            assert_eq!(out.code, want, "-test {flag} {path}\n{out}");
            assert!(
                out.stdout.is_empty() && out.stderr.is_empty(),
                "-test prints nothing\n{out}"
            );
        }

        // Extended attributes.
        let out = cluster.cli(&["dfs", "-getfattr", "-d", "/cli/data"]).await;
        success(&out, "-getfattr -d");
        let lines: Vec<&str> = out
            .stdout_lines()
            .into_iter()
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines, ["# file: /cli/data", "user.color=\"blue\""], "{out}");
        let out = cluster
            .cli(&[
                "dfs",
                "-setfattr",
                "-n",
                "user.size",
                "-v",
                "big",
                "/cli/data",
            ])
            .await;
        success(&out, "-setfattr");
        assert_eq!(
            ok(
                client.get_xattr("/cli/data", "user.size").await,
                "get_xattr"
            ),
            b"big"
        );
        let out = cluster
            .cli(&["dfs", "-getfattr", "-n", "user.size", "/cli/data"])
            .await;
        success(&out, "-getfattr -n");
        let lines: Vec<&str> = out
            .stdout_lines()
            .into_iter()
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines, ["# file: /cli/data", "user.size=\"big\""], "{out}");
        let out = cluster
            .cli(&["dfs", "-setfattr", "-x", "user.size", "/cli/data"])
            .await;
        success(&out, "-setfattr -x");
        let out = cluster
            .cli(&["dfs", "-getfattr", "-n", "user.size", "/cli/data"])
            .await;
        assert_eq!(out.code, 1, "a removed attribute\n{out}");

        // Changing things: -mkdir -p, -touchz, -mv into a directory, -chmod, -rm.
        success(
            &cluster.cli(&["dfs", "-mkdir", "-p", "/cli/new/deep"]).await,
            "-mkdir -p",
        );
        success(
            &cluster.cli(&["dfs", "-mkdir", "-p", "/cli/new/deep"]).await,
            "-mkdir -p again",
        );
        success(
            &cluster.cli(&["dfs", "-touchz", "/cli/new/deep/t"]).await,
            "-touchz",
        );
        success(
            &cluster
                .cli(&["dfs", "-mv", "/cli/new/deep/t", "/cli/sub"])
                .await,
            "-mv into dir",
        );
        assert!(
            ok(client.exists("/cli/sub/t").await, "exists"),
            "-mv did not move into /cli/sub"
        );
        success(
            &cluster
                .cli(&["dfs", "-chmod", "g+w,o-r", "/cli/data"])
                .await,
            "-chmod symbolic",
        );
        success(
            &cluster.cli(&["dfs", "-chmod", "700", "/cli/empty"]).await,
            "-chmod octal",
        );
        let out = cluster
            .cli(&["dfs", "-stat", "%a", "/cli/data", "/cli/empty"])
            .await;
        assert_eq!(out.stdout_lines(), ["660", "700"], "{out}");
        let out = cluster.cli(&["dfs", "-rm", "/cli/sub/t"]).await;
        success(&out, "-rm");
        assert_eq!(out.stdout_lines(), ["Deleted /cli/sub/t"], "{out}");
        let out = cluster.cli(&["dfs", "-rm", "-f", "/cli/missing"]).await;
        success(&out, "-rm -f of a missing path");
        assert!(out.stdout.is_empty(), "{out}");
        let out = cluster.cli(&["dfs", "-rm", "-r", "/cli/new"]).await;
        success(&out, "-rm -r");
        assert_eq!(out.stdout_lines(), ["Deleted /cli/new"], "{out}");
        assert!(
            !ok(client.exists("/cli/new").await, "exists"),
            "/cli/new still there"
        );

        // fsck.
        let out = cluster.cli(&["fsck", "/"]).await;
        assert_eq!(out.code, 0, "{out}");
        assert!(out.stdout_lines().contains(&"Status: HEALTHY"), "{out}");
        assert_eq!(
            out.stdout_lines().last(),
            Some(&"The filesystem under path '/' is HEALTHY"),
            "{out}"
        );
        let out = cluster.cli(&["fsck", "/nope"]).await;
        assert!(
            out.stdout.contains("Path '/nope' does not exist")
                || out.stderr.contains("Path '/nope' does not exist"),
            "{out}"
        );
    })
    .await;
}
