//! `arbor dfs`: parses the words, then runs one command over its path arguments. The listing
//! and report commands live in their own modules (ls, stat, count, du, xattr), the data
//! commands too (transfer: put/get/cp/appendToFile; cat: cat/head/tail; truncate); the namespace edits
//! (mkdir, mv, rm, rmdir, chmod/chown/chgrp, touchz), `-test` and `-find` are here. Every
//! command reports a failing argument and goes on with the next (see [`Shell`]).

use std::io::Write;

use arbor_proto::namenode::{ErrorCode, FileStatus};
use arbor_proto::records::InodeKind;

use crate::cli::args::{self, DfsCommand, TestCheck};
use crate::cli::chmod::ModeChange;
use crate::cli::glob::Glob;
use crate::cli::messages::{Subject, error_text};
use crate::cli::shell::{PathArg, Shell, is_dir};
use crate::cli::{cat, count, du, ls, stat, transfer, truncate, xattr};
use crate::client::Client;
use crate::paths::{basename, join};
use crate::trash::{Trashed, trash_root};

/// Permission bits of directories made by `-mkdir` (0777 less the customary umask 022).
pub const DIR_MODE: u32 = 0o755;
/// Permission bits of files made by `-touchz`.
pub const FILE_MODE: u32 = 0o644;

/// Runs `arbor dfs WORDS…`, writing to `out`/`err`; returns the exit status.
pub async fn run(
    client: Client,
    words: &[String],
    out: Box<dyn Write + Send>,
    err: Box<dyn Write + Send>,
) -> i32 {
    run_shell(Shell::new(client, out, err), words).await
}

/// Runs `arbor dfs WORDS…` on a prepared shell; returns the exit status.
pub async fn run_shell(mut sh: Shell, words: &[String]) -> i32 {
    let command = match args::parse(words) {
        Ok(c) => c,
        Err(e) => {
            sh.fail_line(&e.to_string());
            let hint = args::usage(&e.command)
                .unwrap_or_else(|| "Usage: arbor dfs -help [cmd] (lists the commands)".into());
            sh.fail_line(&hint);
            return sh.finish();
        }
    };
    execute(&mut sh, command).await;
    sh.finish()
}

/// Runs one parsed command.
pub async fn execute(sh: &mut Shell, command: DfsCommand) {
    match command {
        DfsCommand::Ls(opts, paths) => ls::run(sh, &opts, paths).await,
        DfsCommand::Mkdir { parents, paths } => mkdir(sh, parents, paths).await,
        DfsCommand::Mv { srcs, dst } => mv(sh, srcs, &dst).await,
        DfsCommand::Rm {
            recursive,
            force,
            skip_trash,
            paths,
        } => rm(sh, recursive, force, skip_trash, paths).await,
        DfsCommand::Expunge { immediate } => expunge(sh, immediate).await,
        DfsCommand::Rmdir {
            ignore_non_empty,
            paths,
        } => rmdir(sh, ignore_non_empty, paths).await,
        DfsCommand::Stat { format, paths } => stat::run(sh, &format, paths).await,
        DfsCommand::Count {
            quotas,
            human,
            header,
            paths,
        } => count::run_count(sh, quotas, human, header, paths).await,
        DfsCommand::Du {
            summary,
            human,
            header,
            paths,
        } => du::du(sh, summary, human, header, paths).await,
        DfsCommand::Df { human, paths } => du::df(sh, human, paths).await,
        DfsCommand::Put {
            force,
            preserve,
            srcs,
            dst,
        } => transfer::put(sh, force, preserve, srcs, &dst).await,
        DfsCommand::Get { force, srcs, dst } => transfer::get(sh, force, srcs, &dst).await,
        DfsCommand::Cp {
            force,
            preserve,
            srcs,
            dst,
        } => transfer::cp(sh, force, preserve, srcs, &dst).await,
        DfsCommand::AppendToFile { srcs, dst } => transfer::append_to_file(sh, srcs, &dst).await,
        DfsCommand::Cat { paths } => cat::cat(sh, paths).await,
        DfsCommand::Head { path } => cat::head(sh, &path).await,
        DfsCommand::Tail { follow, path } => cat::tail(sh, follow, &path).await,
        DfsCommand::Truncate {
            wait,
            length,
            paths,
        } => truncate::run(sh, wait, length, paths).await,
        DfsCommand::Chmod {
            recursive,
            mode,
            paths,
        } => chmod(sh, recursive, &mode, paths).await,
        DfsCommand::Chown {
            recursive,
            owner,
            group,
            paths,
        } => {
            chown(
                sh,
                "chown",
                recursive,
                owner.as_deref(),
                group.as_deref(),
                paths,
            )
            .await
        }
        DfsCommand::Chgrp {
            recursive,
            group,
            paths,
        } => chown(sh, "chgrp", recursive, None, Some(&group), paths).await,
        DfsCommand::Touchz { paths } => touchz(sh, paths).await,
        DfsCommand::Test { check, path } => test(sh, check, &path).await,
        DfsCommand::SetXattr { action, path } => xattr::run_set(sh, &action, &path).await,
        DfsCommand::GetXattr {
            recursive,
            dump: _,
            name,
            encoding,
            path,
        } => xattr::run_get(sh, recursive, name.as_deref(), encoding, &path).await,
        DfsCommand::Find { paths, name, iname } => find(sh, paths, name, iname).await,
        DfsCommand::Help(cmd) => {
            let text = args::help(cmd.as_deref());
            sh.println(text.trim_end());
        }
    }
}

/// Pre-order walk of a tree: yields each entry, then (when recursive) lists a directory only
/// after the caller has handled it, as HDFS's `-R` does (so `chmod -R` fixes a directory
/// before reading it).
struct Walk {
    stack: Vec<(PathArg, FileStatus)>,
    pending: Option<PathArg>,
    recursive: bool,
}

impl Walk {
    fn new(root: PathArg, st: FileStatus, recursive: bool) -> Walk {
        Walk {
            stack: vec![(root, st)],
            pending: None,
            recursive,
        }
    }

    async fn next(&mut self, sh: &mut Shell, command: &str) -> Option<(PathArg, FileStatus)> {
        if let Some(dir) = self.pending.take() {
            match sh.client.list(&dir.abs).await {
                Ok(entries) => {
                    for e in entries.into_iter().rev() {
                        let child = dir.child(&e.name);
                        if let Some(st) = e.status {
                            self.stack.push((child, st));
                        }
                    }
                }
                Err(e) => sh.fail(command, &e, Subject::Path(&dir.shown)),
            }
        }
        let (arg, st) = self.stack.pop()?;
        if self.recursive && is_dir(&st) {
            self.pending = Some(arg.clone());
        }
        Some((arg, st))
    }
}

/// The paths a typed argument names (patterns expanded), with their status; failures are
/// reported for `command`.
async fn stat_args(sh: &mut Shell, command: &str, typed: &str) -> Vec<(PathArg, FileStatus)> {
    let mut out = Vec::new();
    for arg in sh.expand(command, typed).await {
        match sh.client.stat(&arg.abs).await {
            Ok(st) => out.push((arg, st)),
            Err(e) => sh.fail(command, &e, Subject::Path(&arg.shown)),
        }
    }
    out
}

async fn mkdir(sh: &mut Shell, parents: bool, paths: Vec<String>) {
    for typed in paths {
        let arg = sh.arg(&typed);
        if let Err(e) = sh.client.mkdir(&arg.abs, DIR_MODE, parents).await {
            sh.fail("mkdir", &e, Subject::Path(&arg.shown));
        }
    }
}

async fn mv(sh: &mut Shell, srcs: Vec<String>, dst_typed: &str) {
    let dst = sh.arg(dst_typed);
    let dst_is_dir = match sh.client.stat(&dst.abs).await {
        Ok(st) => is_dir(&st),
        Err(e) if e.code == ErrorCode::NotFound => {
            if srcs.len() > 1 {
                sh.fail("mv", &e, Subject::Path(&dst.shown));
                return;
            }
            false
        }
        Err(e) => {
            sh.fail("mv", &e, Subject::Path(&dst.shown));
            return;
        }
    };
    if srcs.len() > 1 && !dst_is_dir {
        sh.fail_line(&format!("mv: `{}': Is not a directory", dst.shown));
        return;
    }
    // Sources are checked first so a missing source is reported under its own name.
    let mut sources = Vec::new();
    for typed in &srcs {
        sources.extend(stat_args(sh, "mv", typed).await);
    }
    for (src, _) in sources {
        let target = PathArg {
            shown: move_target(&src.abs, &dst.shown, dst_is_dir),
            abs: move_target(&src.abs, &dst.abs, dst_is_dir),
        };
        if let Err(e) = sh.client.rename_noreplace(&src.abs, &target.abs).await {
            sh.fail(
                "mv",
                &e,
                Subject::Move {
                    src: &src.shown,
                    dst: &target.shown,
                },
            );
        }
    }
}

async fn rm(sh: &mut Shell, recursive: bool, force: bool, skip_trash: bool, paths: Vec<String>) {
    let mut args = Vec::new();
    for typed in &paths {
        // `-f`: a missing path, or a pattern matching nothing, is not an error.
        args.extend(sh.expand_with("rm", typed, !force).await);
    }
    let trash =
        !skip_trash && !args.is_empty() && sh.client.trash_interval_ms().await.unwrap_or(0) > 0;
    for arg in args {
        if trash && to_trash(sh, recursive, force, &arg).await {
            continue;
        }
        let result = if recursive {
            sh.client.delete(&arg.abs, true).await
        } else {
            sh.client.unlink(&arg.abs).await
        };
        match result {
            Ok(true) => sh.println(&format!("Deleted {}", arg.shown)),
            Ok(false) if force => {}
            Ok(false) => sh.fail_line(&format!("rm: `{}': No such file or directory", arg.shown)),
            Err(e) if force && e.code == ErrorCode::NotFound => {}
            Err(e) => sh.fail("rm", &e, Subject::Path(&arg.shown)),
        }
    }
}

/// Moves one `-rm` argument into the trash; false when it is to be deleted instead (it is
/// in the trash already).
async fn to_trash(sh: &mut Shell, recursive: bool, force: bool, arg: &PathArg) -> bool {
    match sh.client.stat(&arg.abs).await {
        Ok(st) if is_dir(&st) && !recursive => {
            let e = crate::Error::new(ErrorCode::IsADirectory, "");
            sh.fail("rm", &e, Subject::Path(&arg.shown));
            return true;
        }
        Ok(_) => {}
        Err(e) if force && e.code == ErrorCode::NotFound => return true,
        Err(e) => {
            sh.fail("rm", &e, Subject::Path(&arg.shown));
            return true;
        }
    }
    match sh.client.move_to_trash(&arg.abs).await {
        Ok(Trashed::Moved(at)) => {
            sh.println(&format!("Moved: '{}' to trash at: {at}", arg.abs));
            true
        }
        Ok(Trashed::InTrash) => false,
        Err(e) if e.code == ErrorCode::InvalidArgument => {
            sh.fail_line(&format!("rm: {}", e.message));
            true
        }
        Err(e) => {
            let why = error_text("rm", &e, Subject::Path(&arg.shown));
            sh.fail_line(&format!("rm: Failed to move to trash: {why}"));
            true
        }
    }
}

async fn expunge(sh: &mut Shell, immediate: bool) {
    match sh.client.expunge(immediate).await {
        Ok(reply) => {
            if !reply.checkpoint.is_empty() {
                sh.println(&format!("Created trash checkpoint: {}", reply.checkpoint));
            }
            for path in reply.deleted {
                sh.println(&format!("Deleted trash checkpoint: {path}"));
            }
        }
        Err(e) => {
            let root = trash_root(&sh.client.identity().user);
            sh.fail("expunge", &e, Subject::Path(&root));
        }
    }
}

async fn rmdir(sh: &mut Shell, ignore_non_empty: bool, paths: Vec<String>) {
    let mut args = Vec::new();
    for typed in &paths {
        args.extend(sh.expand("rmdir", typed).await);
    }
    for arg in args {
        match sh.client.rmdir(&arg.abs).await {
            Ok(true) => {}
            Ok(false) => sh.fail_line(&format!(
                "rmdir: `{}': No such file or directory",
                arg.shown
            )),
            Err(e) if ignore_non_empty && e.code == ErrorCode::NotEmpty => {}
            Err(e) => sh.fail("rmdir", &e, Subject::Path(&arg.shown)),
        }
    }
}

async fn chmod(sh: &mut Shell, recursive: bool, mode: &str, paths: Vec<String>) {
    let change = match ModeChange::parse(mode) {
        Ok(c) => c,
        Err(msg) => {
            sh.fail_line(&format!("chmod: {msg}"));
            return;
        }
    };
    for typed in paths {
        for (root, st) in stat_args(sh, "chmod", &typed).await {
            let mut walk = Walk::new(root, st, recursive);
            while let Some((arg, st)) = walk.next(sh, "chmod").await {
                let new_mode = change.apply(st.mode, is_dir(&st));
                if let Err(e) = sh.client.chmod(&arg.abs, new_mode).await {
                    sh.fail("chmod", &e, Subject::Path(&arg.shown));
                }
            }
        }
    }
}

async fn chown(
    sh: &mut Shell,
    command: &str,
    recursive: bool,
    owner: Option<&str>,
    group: Option<&str>,
    paths: Vec<String>,
) {
    let uid = match owner.map(|o| (o, sh.names.uid_of(o))) {
        None => None,
        Some((_, Some(uid))) => Some(uid),
        Some((o, None)) => {
            sh.fail_line(&format!("{command}: invalid user: '{o}'"));
            return;
        }
    };
    let gid = match group.map(|g| (g, sh.names.gid_of(g))) {
        None => None,
        Some((_, Some(gid))) => Some(gid),
        Some((g, None)) => {
            sh.fail_line(&format!("{command}: invalid group: '{g}'"));
            return;
        }
    };
    for typed in paths {
        for (root, st) in stat_args(sh, command, &typed).await {
            let mut walk = Walk::new(root, st, recursive);
            while let Some((arg, _)) = walk.next(sh, command).await {
                if let Err(e) = sh.client.chown(&arg.abs, uid, gid).await {
                    sh.fail(command, &e, Subject::Path(&arg.shown));
                }
            }
        }
    }
}

async fn touchz(sh: &mut Shell, paths: Vec<String>) {
    for typed in paths {
        let arg = sh.arg(&typed);
        // Creating is the common case: one call; an existing path is examined after.
        let err = match sh.client.create(&arg.abs, FILE_MODE, false).await {
            Ok(_) => continue,
            Err(e) => e,
        };
        if err.code != ErrorCode::AlreadyExists {
            sh.fail("touchz", &err, Subject::Path(&arg.shown));
            continue;
        }
        let result = match sh.client.stat(&arg.abs).await {
            Ok(st) if is_dir(&st) => {
                sh.fail_line(&format!("touchz: `{}': Is a directory", arg.shown));
                continue;
            }
            Ok(st) if st.size != 0 => {
                sh.fail_line(&format!("touchz: `{}': Not a zero-length file", arg.shown));
                continue;
            }
            Ok(_) => {
                let now = now_ns();
                sh.client
                    .set_times(&arg.abs, Some(now), Some(now))
                    .await
                    .map(drop)
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            sh.fail("touchz", &e, Subject::Path(&arg.shown));
        }
    }
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Whether `st` passes a `-test` check.
pub fn test_passes(check: TestCheck, st: &FileStatus) -> bool {
    match check {
        TestCheck::Exists => true,
        TestCheck::Directory => is_dir(st),
        TestCheck::File => st.kind() == InodeKind::File,
        TestCheck::ZeroLength => st.size == 0,
        TestCheck::NonEmpty => st.size > 0,
    }
}

async fn test(sh: &mut Shell, check: TestCheck, typed: &str) {
    let arg = sh.arg(typed);
    match sh.client.stat(&arg.abs).await {
        Ok(st) if test_passes(check, &st) => {}
        Ok(_) => sh.set_failed(),
        Err(e) if matches!(e.code, ErrorCode::NotFound | ErrorCode::NotADirectory) => {
            sh.set_failed()
        }
        // A cluster that cannot answer is not an answer: say so.
        Err(e) => sh.fail("test", &e, Subject::Path(&arg.shown)),
    }
}

async fn find(sh: &mut Shell, paths: Vec<String>, name: Option<String>, iname: Option<String>) {
    let compile = |p: Option<String>, fold| p.map(|p| Glob::new(&p, fold)).transpose();
    let (name, iname) = match (compile(name, false), compile(iname, true)) {
        (Ok(n), Ok(i)) => (n, i),
        (Err(msg), _) | (_, Err(msg)) => {
            sh.fail_line(&format!("find: {msg}"));
            return;
        }
    };
    let paths = if paths.is_empty() {
        vec![".".to_string()]
    } else {
        paths
    };
    for typed in paths {
        for (root, st) in stat_args(sh, "find", &typed).await {
            let mut walk = Walk::new(root, st, true);
            while let Some((arg, st)) = walk.next(sh, "find").await {
                let entry_name = if st.name.is_empty() {
                    basename(&arg.abs).to_string()
                } else {
                    st.name.clone()
                };
                let ok = name.as_ref().is_none_or(|g| g.matches(&entry_name))
                    && iname.as_ref().is_none_or(|g| g.matches(&entry_name));
                if ok {
                    sh.println(&arg.shown);
                }
            }
        }
    }
}

/// The full path a move of `src` lands on: inside `dst` when it is a directory.
pub fn move_target(src: &str, dst: &str, dst_is_dir: bool) -> String {
    if dst_is_dir {
        join(dst, basename(src))
    } else {
        dst.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(kind: InodeKind, size: u64) -> FileStatus {
        FileStatus {
            kind: kind as i32,
            size,
            ..Default::default()
        }
    }

    #[test]
    fn test_checks() {
        let dir = status(InodeKind::Directory, 0);
        let empty = status(InodeKind::File, 0);
        let full = status(InodeKind::File, 3);
        assert!(test_passes(TestCheck::Exists, &dir));
        assert!(test_passes(TestCheck::Directory, &dir));
        assert!(!test_passes(TestCheck::Directory, &empty));
        assert!(test_passes(TestCheck::File, &empty));
        assert!(!test_passes(TestCheck::File, &dir));
        assert!(test_passes(TestCheck::ZeroLength, &empty));
        assert!(!test_passes(TestCheck::ZeroLength, &full));
        assert!(test_passes(TestCheck::NonEmpty, &full));
        assert!(!test_passes(TestCheck::NonEmpty, &empty));
    }

    #[test]
    fn moves_into_directories_keep_the_name() {
        assert_eq!(move_target("/a/b", "/d", true), "/d/b");
        assert_eq!(move_target("/a/b/", "/d/", true), "/d/b");
        assert_eq!(move_target("/a/b", "/d/c", false), "/d/c");
    }
}
