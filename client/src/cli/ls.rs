//! `-ls`: rows as HDFS prints them (permissions, replication or `-`, owner, group, size, local
//! `yyyy-MM-dd HH:mm`, path), every column padded to the widest value of the batch being printed
//! (one directory's entries), with HDFS's minimum widths (3 for replication, 10 for size) so
//! short listings line up as users are used to. A listed directory starts with `Found N items`
//! unless recursive or paths-only.

use std::cmp::Ordering;
use std::future::Future;
use std::pin::Pin;

use arbor_proto::namenode::FileStatus;
use arbor_proto::records::InodeKind;

use crate::cli::args::LsOptions;
use crate::cli::format::{left, local_minute, permission_string, right, size};
use crate::cli::messages::Subject;
use crate::cli::names::Names;
use crate::cli::shell::{PathArg, Shell, is_dir};

const MIN_REPL_WIDTH: usize = 3;
const MIN_SIZE_WIDTH: usize = 10;

/// One `-ls` line, field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsRow {
    pub perms: String,
    pub replication: String,
    pub owner: String,
    pub group: String,
    pub size: String,
    pub time: String,
    pub path: String,
}

impl LsRow {
    pub fn new(shown: &str, st: &FileStatus, opts: &LsOptions, names: &mut Names) -> LsRow {
        let kind = st.kind();
        let time_ns = if opts.access_time {
            st.atime_ns
        } else {
            st.mtime_ns
        };
        let path = if kind == InodeKind::Symlink {
            format!("{shown} -> {}", st.symlink_target)
        } else {
            shown.to_string()
        };
        LsRow {
            perms: permission_string(kind, st.mode),
            // Files are erasure coded: like HDFS for such files, the column shows 1.
            replication: if kind == InodeKind::File {
                "1".into()
            } else {
                "-".into()
            },
            owner: names.user(st.uid),
            group: names.group(st.gid),
            size: size(if is_dir(st) { 0 } else { st.size }, opts.human),
            time: local_minute(time_ns),
            path,
        }
    }
}

/// Formats a batch of rows with shared column widths.
pub fn format_rows(rows: &[LsRow]) -> Vec<String> {
    let width = |f: fn(&LsRow) -> &str, min: usize| {
        rows.iter()
            .map(|r| f(r).chars().count())
            .max()
            .unwrap_or(0)
            .max(min)
    };
    let repl = width(|r| &r.replication, MIN_REPL_WIDTH);
    let owner = width(|r| &r.owner, 0);
    let group = width(|r| &r.group, 0);
    let size = width(|r| &r.size, MIN_SIZE_WIDTH);
    rows.iter()
        .map(|r| {
            format!(
                "{} {} {} {} {} {} {}",
                r.perms,
                right(&r.replication, repl),
                left(&r.owner, owner),
                left(&r.group, group),
                right(&r.size, size),
                r.time,
                r.path
            )
        })
        .collect()
}

/// Orders a listing: by name, or newest first (`-t`), or largest first (`-S`); `-r` reverses.
pub fn sort_entries(items: &mut [(PathArg, FileStatus)], opts: &LsOptions) {
    let by_name = |a: &(PathArg, FileStatus), b: &(PathArg, FileStatus)| {
        a.1.name.as_bytes().cmp(b.1.name.as_bytes())
    };
    items.sort_by(|a, b| {
        let primary = if opts.by_time {
            let (ta, tb) = if opts.access_time {
                (a.1.atime_ns, b.1.atime_ns)
            } else {
                (a.1.mtime_ns, b.1.mtime_ns)
            };
            tb.cmp(&ta)
        } else if opts.by_size {
            b.1.size.cmp(&a.1.size)
        } else {
            Ordering::Equal
        };
        primary.then_with(|| by_name(a, b))
    });
    if opts.reverse {
        items.reverse();
    }
}

/// Runs `-ls` over the paths (the home directory when none).
pub async fn run(sh: &mut Shell, opts: &LsOptions, paths: Vec<String>) {
    let paths = if paths.is_empty() {
        vec![".".to_string()]
    } else {
        paths
    };
    for typed in paths {
        for arg in sh.expand("ls", &typed).await {
            match sh.client.stat(&arg.abs).await {
                Err(e) => sh.fail("ls", &e, Subject::Path(&arg.shown)),
                Ok(st) if is_dir(&st) && !opts.dir_itself => list_dir(sh, opts, arg).await,
                Ok(st) => print_batch(sh, opts, &[(arg, st)]),
            }
        }
    }
}

fn print_batch(sh: &mut Shell, opts: &LsOptions, items: &[(PathArg, FileStatus)]) {
    if opts.paths_only {
        for (arg, _) in items {
            sh.println(&arg.shown);
        }
        return;
    }
    let rows: Vec<LsRow> = items
        .iter()
        .map(|(arg, st)| LsRow::new(&arg.shown, st, opts, &mut sh.names))
        .collect();
    for line in format_rows(&rows) {
        sh.println(&line);
    }
}

fn list_dir<'a>(
    sh: &'a mut Shell,
    opts: &'a LsOptions,
    dir: PathArg,
) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
    Box::pin(async move {
        let entries = match sh.client.list(&dir.abs).await {
            Ok(entries) => entries,
            Err(e) => {
                sh.fail("ls", &e, Subject::Path(&dir.shown));
                return;
            }
        };
        let mut items: Vec<(PathArg, FileStatus)> = entries
            .into_iter()
            .filter_map(|e| {
                let arg = dir.child(&e.name);
                e.status.map(|st| (arg, st))
            })
            .collect();
        sort_entries(&mut items, opts);
        if !opts.recursive {
            if !items.is_empty() && !opts.paths_only {
                sh.println(&format!("Found {} items", items.len()));
            }
            print_batch(sh, opts, &items);
            return;
        }
        // Recursive: each entry, then (for a directory) its subtree, widths per directory.
        let lines: Vec<String> = if opts.paths_only {
            items.iter().map(|(a, _)| a.shown.clone()).collect()
        } else {
            let rows: Vec<LsRow> = items
                .iter()
                .map(|(arg, st)| LsRow::new(&arg.shown, st, opts, &mut sh.names))
                .collect();
            format_rows(&rows)
        };
        for ((arg, st), line) in items.into_iter().zip(lines) {
            sh.println(&line);
            if is_dir(&st) {
                list_dir(sh, opts, arg).await;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::names::tests::fake_names;

    fn st(
        kind: InodeKind,
        name: &str,
        mode: u32,
        uid: u32,
        gid: u32,
        size: u64,
        mtime_s: i64,
    ) -> FileStatus {
        FileStatus {
            kind: kind as i32,
            name: name.into(),
            mode,
            uid,
            gid,
            size,
            mtime_ns: mtime_s * 1_000_000_000,
            atime_ns: (1000 - mtime_s) * 1_000_000_000,
            ..Default::default()
        }
    }

    fn arg(p: &str) -> PathArg {
        PathArg {
            shown: p.into(),
            abs: p.into(),
        }
    }

    #[test]
    fn rows_pad_every_column_to_the_batch() {
        let mut names = fake_names();
        let opts = LsOptions::default();
        let f = st(InodeKind::File, "f.txt", 0o644, 1001, 50, 1366, 0);
        let d = st(InodeKind::Directory, "logs", 0o755, 4242, 100, 0, 0);
        let rows = vec![
            LsRow::new("/user/alice/f.txt", &f, &opts, &mut names),
            LsRow::new("/user/alice/logs", &d, &opts, &mut names),
        ];
        let lines = format_rows(&rows);
        let time = local_minute(0);
        assert_eq!(
            lines[0],
            format!("-rw-r--r--   1 alice staff       1366 {time} /user/alice/f.txt")
        );
        assert_eq!(
            lines[1],
            format!("drwxr-xr-x   - 4242  users          0 {time} /user/alice/logs")
        );
    }

    #[test]
    fn wide_values_widen_their_column() {
        let mut names = fake_names();
        let opts = LsOptions::default();
        let big = st(
            InodeKind::File,
            "big",
            0o600,
            1002,
            7,
            123_456_789_012_345,
            0,
        );
        let small = st(InodeKind::File, "s", 0o600, 1001, 100, 5, 0);
        let lines = format_rows(&[
            LsRow::new("/big", &big, &opts, &mut names),
            LsRow::new("/s", &small, &opts, &mut names),
        ]);
        let time = local_minute(0);
        assert_eq!(
            lines[0],
            format!("-rw-------   1 bob   7     123456789012345 {time} /big")
        );
        assert_eq!(
            lines[1],
            format!("-rw-------   1 alice users               5 {time} /s")
        );
    }

    #[test]
    fn human_sizes_and_symlinks() {
        let mut names = fake_names();
        let opts = LsOptions {
            human: true,
            ..Default::default()
        };
        let f = st(InodeKind::File, "f", 0o644, 1001, 100, 1536, 0);
        let mut l = st(InodeKind::Symlink, "l", 0o777, 1001, 100, 2, 0);
        l.symlink_target = "/f".into();
        let rows = [
            LsRow::new("/f", &f, &opts, &mut names),
            LsRow::new("/l", &l, &opts, &mut names),
        ];
        assert_eq!(rows[0].size, "1.5 K");
        assert_eq!(rows[1].path, "/l -> /f");
        assert_eq!(rows[1].perms, "lrwxrwxrwx");
        assert_eq!(rows[1].replication, "-");
        let lines = format_rows(&rows);
        assert!(
            lines[0].contains(" alice users      1.5 K "),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn access_time_column_with_u() {
        let mut names = fake_names();
        let f = st(InodeKind::File, "f", 0o644, 1001, 100, 1, 100);
        let opts = LsOptions {
            access_time: true,
            ..Default::default()
        };
        assert_eq!(
            LsRow::new("/f", &f, &opts, &mut names).time,
            local_minute(900 * 1_000_000_000)
        );
    }

    #[test]
    fn sorting_by_name_time_size_and_reversed() {
        let items = || {
            vec![
                (arg("/b"), st(InodeKind::File, "b", 0o644, 0, 0, 10, 300)),
                (arg("/a"), st(InodeKind::File, "a", 0o644, 0, 0, 30, 100)),
                (arg("/c"), st(InodeKind::File, "c", 0o644, 0, 0, 20, 200)),
            ]
        };
        let names = |v: &[(PathArg, FileStatus)]| {
            v.iter().map(|(a, _)| a.shown.clone()).collect::<Vec<_>>()
        };
        let mut v = items();
        sort_entries(&mut v, &LsOptions::default());
        assert_eq!(names(&v), ["/a", "/b", "/c"]);
        let mut v = items();
        sort_entries(
            &mut v,
            &LsOptions {
                by_time: true,
                ..Default::default()
            },
        );
        assert_eq!(names(&v), ["/b", "/c", "/a"]);
        let mut v = items();
        sort_entries(
            &mut v,
            &LsOptions {
                by_size: true,
                ..Default::default()
            },
        );
        assert_eq!(names(&v), ["/a", "/c", "/b"]);
        let mut v = items();
        sort_entries(
            &mut v,
            &LsOptions {
                by_size: true,
                reverse: true,
                ..Default::default()
            },
        );
        assert_eq!(names(&v), ["/b", "/c", "/a"]);
        let mut v = items();
        sort_entries(
            &mut v,
            &LsOptions {
                by_time: true,
                access_time: true,
                ..Default::default()
            },
        );
        assert_eq!(names(&v), ["/a", "/c", "/b"]);
    }
}
