//! The copy commands: `-put`/`-copyFromLocal` (local → cluster), `-get`/`-copyToLocal`
//! (cluster → local), `-cp` (cluster → cluster, the bytes go through this client) and
//! `-appendToFile`. Directories are copied recursively.
//!
//! Invariant (as HDFS): a copy never leaves a half-written file under its final name. The bytes
//! go to `NAME._COPYING_` first and are renamed into place once complete; without `-f` an
//! existing target is `File exists`, and the rename itself refuses to replace one that appeared
//! meanwhile. A failed copy removes its temporary file.

use std::path::{Path, PathBuf};

use arbor_proto::namenode::{ErrorCode, FileStatus};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::cli::messages::Subject;
use crate::cli::progress::Progress;
use crate::cli::shell::{PathArg, Shell, is_dir};
use crate::data::{FileReader, FileWriter, WriteOptions};
use crate::error::Error;
use crate::paths::basename;

/// Bytes moved per read or write call.
pub const CHUNK: usize = 4 << 20;
/// Suffix of a file being copied.
pub const COPYING: &str = "._COPYING_";

/// Why one copy failed: on the local side (named by its local path) or in the cluster.
pub enum Failure {
    Local(PathBuf, std::io::Error),
    Cluster(Error),
    /// A ready-made message (after `<command>: `).
    Text(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Cluster(e)
    }
}

/// The OS wording of an I/O error, without Rust's "(os error N)" suffix.
pub fn io_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn report(sh: &mut Shell, command: &str, shown: &str, f: Failure) {
    match f {
        Failure::Local(path, e) => {
            sh.fail_line(&format!("{command}: `{}': {}", path.display(), io_text(&e)))
        }
        Failure::Cluster(e) => sh.fail(command, &e, Subject::Path(shown)),
        Failure::Text(t) => sh.fail_line(&format!("{command}: {t}")),
    }
}

/// Where the bytes of one copy come from.
enum Source {
    Local(tokio::fs::File, PathBuf),
    Stdin(tokio::io::Stdin),
    Cluster(FileReader, u64),
}

impl Source {
    /// The next piece, empty at the end.
    async fn next(&mut self, buf: &mut Vec<u8>) -> Result<usize, Failure> {
        match self {
            Source::Local(f, p) => fill(f, buf).await.map_err(|e| Failure::Local(p.clone(), e)),
            Source::Stdin(s) => fill(s, buf)
                .await
                .map_err(|e| Failure::Local(PathBuf::from("-"), e)),
            Source::Cluster(r, at) => {
                let data = r.read_at(*at, CHUNK).await?;
                buf.clear();
                buf.extend_from_slice(&data);
                *at += data.len() as u64;
                Ok(data.len())
            }
        }
    }
}

/// Reads until `buf` holds a whole chunk or the input ends.
async fn fill<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.resize(CHUNK, 0);
    let mut n = 0;
    while n < CHUNK {
        let got = r.read(&mut buf[n..]).await?;
        if got == 0 {
            break;
        }
        n += got;
    }
    buf.truncate(n);
    Ok(n)
}

/// Streams `src` into `writer`.
async fn pump(
    src: &mut Source,
    writer: &mut FileWriter,
    progress: &mut Progress,
) -> Result<u64, Failure> {
    let mut buf = Vec::with_capacity(CHUNK);
    let mut total = 0u64;
    loop {
        let n = src.next(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        writer.write(&buf[..n]).await?;
        total += n as u64;
        progress.advance(n as u64);
    }
}

/// Copies `src` to the cluster file `target` through `target._COPYING_`.
async fn copy_in(
    sh: &Shell,
    mut src: Source,
    size: Option<u64>,
    target: &PathArg,
    force: bool,
) -> Result<FileStatus, Failure> {
    let client = &sh.client;
    if !force && client.exists(&target.abs).await? {
        return Err(Failure::Cluster(Error::new(
            ErrorCode::AlreadyExists,
            "File exists",
        )));
    }
    let tmp = format!("{}{COPYING}", target.abs);
    let opts = WriteOptions {
        overwrite: true,
        ..WriteOptions::default()
    };
    let result = async {
        let mut writer = client.open_write(&tmp, opts).await?;
        let mut progress = Progress::new(basename(&target.shown), size);
        let moved = pump(&mut src, &mut writer, &mut progress).await;
        progress.finish();
        moved?;
        writer.close().await?;
        if force {
            client.rename(&tmp, &target.abs).await?;
        } else {
            client.rename_noreplace(&tmp, &target.abs).await?;
        }
        Ok(client.stat(&target.abs).await?)
    }
    .await;
    if result.is_err() {
        let _ = client.delete(&tmp, false).await;
    }
    result
}

/// `-put` / `-copyFromLocal`.
pub async fn put(sh: &mut Shell, force: bool, preserve: bool, srcs: Vec<String>, dst: &str) {
    let command = "put";
    let dst = sh.arg(dst);
    let dst_is_dir = match sh.client.stat(&dst.abs).await {
        Ok(st) => Some(is_dir(&st)),
        Err(e) if e.code == ErrorCode::NotFound => None,
        Err(e) => return sh.fail(command, &e, Subject::Path(&dst.shown)),
    };
    if srcs.len() > 1 && dst_is_dir != Some(true) {
        let why = if dst_is_dir.is_none() {
            "No such file or directory"
        } else {
            "Is not a directory"
        };
        return sh.fail_line(&format!("{command}: `{}': {why}", dst.shown));
    }
    for src in srcs {
        if src == "-" {
            if dst_is_dir == Some(true) {
                sh.fail_line(&format!("{command}: `{}': Is a directory", dst.shown));
                continue;
            }
            let source = Source::Stdin(tokio::io::stdin());
            if let Err(f) = copy_in(sh, source, None, &dst, force).await {
                report(sh, command, &dst.shown, f);
            }
            continue;
        }
        let local = PathBuf::from(&src);
        let meta = match tokio::fs::metadata(&local).await {
            Ok(m) => m,
            Err(e) => {
                report(sh, command, &src, Failure::Local(local, e));
                continue;
            }
        };
        let target = if dst_is_dir == Some(true) {
            dst.child(&file_name(&local))
        } else {
            dst.clone()
        };
        if meta.is_dir() {
            put_tree(sh, force, preserve, local, target).await;
        } else {
            put_file(sh, force, preserve, &local, &meta, &target).await;
        }
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

async fn put_file(
    sh: &mut Shell,
    force: bool,
    preserve: bool,
    local: &Path,
    meta: &std::fs::Metadata,
    target: &PathArg,
) {
    let file = match tokio::fs::File::open(local).await {
        Ok(f) => f,
        Err(e) => return report(sh, "put", &target.shown, Failure::Local(local.into(), e)),
    };
    let source = Source::Local(file, local.to_path_buf());
    match copy_in(sh, source, Some(meta.len()), target, force).await {
        Ok(_) if preserve => {
            if let Err(e) = preserve_local(sh, meta, &target.abs).await {
                sh.fail("put", &e, Subject::Path(&target.shown));
            }
        }
        Ok(_) => {}
        Err(f) => report(sh, "put", &target.shown, f),
    }
}

/// `-p`: the local file's times and permission bits.
async fn preserve_local(sh: &Shell, meta: &std::fs::Metadata, abs: &str) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
    sh.client
        .set_times(
            abs,
            Some(ns(meta.mtime(), meta.mtime_nsec())),
            Some(ns(meta.atime(), meta.atime_nsec())),
        )
        .await?;
    sh.client.chmod(abs, meta.mode() & 0o7777).await?;
    Ok(())
}

async fn put_tree(sh: &mut Shell, force: bool, preserve: bool, local: PathBuf, target: PathArg) {
    let mut work = vec![(local, target)];
    while let Some((dir, target)) = work.pop() {
        match sh.client.mkdir(&target.abs, 0o755, false).await {
            Ok(_) => {}
            Err(e) if e.code == ErrorCode::AlreadyExists && force => {}
            Err(e) => {
                sh.fail("put", &e, Subject::Path(&target.shown));
                continue;
            }
        }
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(rd) => rd,
            Err(e) => {
                report(sh, "put", &target.shown, Failure::Local(dir, e));
                continue;
            }
        };
        let mut children = Vec::new();
        loop {
            match entries.next_entry().await {
                Ok(Some(entry)) => children.push(entry.path()),
                Ok(None) => break,
                Err(e) => {
                    report(sh, "put", &target.shown, Failure::Local(dir.clone(), e));
                    break;
                }
            }
        }
        children.sort();
        let mut subdirs = Vec::new();
        for child in children {
            let child_target = target.child(&file_name(&child));
            match tokio::fs::metadata(&child).await {
                Ok(m) if m.is_dir() => subdirs.push((child, child_target)),
                Ok(m) => put_file(sh, force, preserve, &child, &m, &child_target).await,
                Err(e) => report(sh, "put", &child_target.shown, Failure::Local(child, e)),
            }
        }
        if preserve && let Ok(m) = tokio::fs::metadata(&dir).await {
            let _ = preserve_local(sh, &m, &target.abs).await;
        }
        // Depth first, in name order.
        work.extend(subdirs.into_iter().rev());
    }
}

/// `-get` / `-copyToLocal`.
pub async fn get(sh: &mut Shell, force: bool, srcs: Vec<String>, dst: &str) {
    let command = "get";
    let dst = PathBuf::from(dst);
    let dst_is_dir = tokio::fs::metadata(&dst).await.is_ok_and(|m| m.is_dir());
    let mut sources = Vec::new();
    for typed in &srcs {
        for arg in sh.expand(command, typed).await {
            match sh.client.stat(&arg.abs).await {
                Ok(st) => sources.push((arg, st)),
                Err(e) => sh.fail(command, &e, Subject::Path(&arg.shown)),
            }
        }
    }
    if sources.len() > 1 && !dst_is_dir {
        return sh.fail_line(&format!(
            "{command}: `{}': Is not a directory",
            dst.display()
        ));
    }
    for (src, st) in sources {
        let target = if dst_is_dir {
            dst.join(basename(&src.abs))
        } else {
            dst.clone()
        };
        if is_dir(&st) {
            get_tree(sh, force, src, target).await;
        } else if let Err(f) = get_file(sh, force, &src, &target).await {
            report(sh, command, &src.shown, f);
        }
    }
}

async fn get_file(sh: &Shell, force: bool, src: &PathArg, target: &Path) -> Result<(), Failure> {
    if !force && tokio::fs::symlink_metadata(target).await.is_ok() {
        return Err(Failure::Text(format!(
            "`{}': File exists",
            target.display()
        )));
    }
    let reader = sh.client.open_read(&src.abs).await?;
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(COPYING);
    let tmp = PathBuf::from(tmp);
    let result = async {
        // A failure to create names the target the user gave, not the temporary name.
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| Failure::Local(target.to_path_buf(), e))?;
        let mut progress = Progress::new(basename(&src.shown), Some(reader.len()));
        let mut at = 0u64;
        let copied: Result<(), Failure> = async {
            while at < reader.len() {
                let data = reader.read_at(at, CHUNK).await?;
                if data.is_empty() {
                    break;
                }
                file.write_all(&data)
                    .await
                    .map_err(|e| Failure::Local(tmp.clone(), e))?;
                at += data.len() as u64;
                progress.advance(data.len() as u64);
            }
            file.flush()
                .await
                .map_err(|e| Failure::Local(tmp.clone(), e))
        }
        .await;
        progress.finish();
        copied?;
        tokio::fs::rename(&tmp, target)
            .await
            .map_err(|e| Failure::Local(target.to_path_buf(), e))
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

async fn get_tree(sh: &mut Shell, force: bool, src: PathArg, target: PathBuf) {
    let mut work = vec![(src, target)];
    while let Some((dir, target)) = work.pop() {
        match tokio::fs::create_dir(&target).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && force => {}
            Err(e) => {
                report(sh, "get", &dir.shown, Failure::Local(target, e));
                continue;
            }
        }
        let entries = match sh.client.list(&dir.abs).await {
            Ok(e) => e,
            Err(e) => {
                sh.fail("get", &e, Subject::Path(&dir.shown));
                continue;
            }
        };
        let mut subdirs = Vec::new();
        for e in entries {
            let child = dir.child(&e.name);
            let local = target.join(&e.name);
            match e.status {
                Some(st) if is_dir(&st) => subdirs.push((child, local)),
                Some(_) => {
                    if let Err(f) = get_file(sh, force, &child, &local).await {
                        report(sh, "get", &child.shown, f);
                    }
                }
                None => {}
            }
        }
        work.extend(subdirs.into_iter().rev());
    }
}

/// `-cp`: cluster to cluster, through this client.
pub async fn cp(sh: &mut Shell, force: bool, preserve: bool, srcs: Vec<String>, dst: &str) {
    let command = "cp";
    let dst = sh.arg(dst);
    let dst_is_dir = match sh.client.stat(&dst.abs).await {
        Ok(st) => Some(is_dir(&st)),
        Err(e) if e.code == ErrorCode::NotFound => None,
        Err(e) => return sh.fail(command, &e, Subject::Path(&dst.shown)),
    };
    let mut sources = Vec::new();
    for typed in &srcs {
        for arg in sh.expand(command, typed).await {
            match sh.client.stat(&arg.abs).await {
                Ok(st) => sources.push((arg, st)),
                Err(e) => sh.fail(command, &e, Subject::Path(&arg.shown)),
            }
        }
    }
    if srcs.len() > 1 && dst_is_dir != Some(true) {
        let why = if dst_is_dir.is_none() {
            "No such file or directory"
        } else {
            "Is not a directory"
        };
        return sh.fail_line(&format!("{command}: `{}': {why}", dst.shown));
    }
    for (src, st) in sources {
        let target = if dst_is_dir == Some(true) {
            dst.child(basename(&src.abs))
        } else {
            dst.clone()
        };
        if is_dir(&st) {
            if is_inside(&target.abs, &src.abs) {
                sh.fail_line(&format!(
                    "{command}: `{}' to `{}': is a subdirectory of itself",
                    src.shown, target.shown
                ));
                continue;
            }
            cp_tree(sh, force, preserve, src, target).await;
        } else {
            cp_file(sh, force, preserve, &src, &st, &target).await;
        }
    }
}

/// Whether `path` is `dir` or below it.
pub fn is_inside(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path == dir || path.starts_with(&format!("{dir}/")) || dir.is_empty()
}

async fn cp_file(
    sh: &mut Shell,
    force: bool,
    preserve: bool,
    src: &PathArg,
    st: &FileStatus,
    target: &PathArg,
) {
    let reader = match sh.client.open_read(&src.abs).await {
        Ok(r) => r,
        Err(e) => return sh.fail("cp", &e, Subject::Path(&src.shown)),
    };
    let size = reader.len();
    match copy_in(sh, Source::Cluster(reader, 0), Some(size), target, force).await {
        Ok(_) if preserve => {
            let c = &sh.client;
            let r = async {
                c.set_times(&target.abs, Some(st.mtime_ns), Some(st.atime_ns))
                    .await?;
                c.chmod(&target.abs, st.mode & 0o7777).await?;
                Ok::<(), Error>(())
            }
            .await;
            if let Err(e) = r {
                sh.fail("cp", &e, Subject::Path(&target.shown));
            }
        }
        Ok(_) => {}
        Err(f) => report(sh, "cp", &target.shown, f),
    }
}

async fn cp_tree(sh: &mut Shell, force: bool, preserve: bool, src: PathArg, target: PathArg) {
    let mut work = vec![(src, target)];
    while let Some((dir, target)) = work.pop() {
        match sh.client.mkdir(&target.abs, 0o755, false).await {
            Ok(_) => {}
            Err(e) if e.code == ErrorCode::AlreadyExists && force => {}
            Err(e) => {
                sh.fail("cp", &e, Subject::Path(&target.shown));
                continue;
            }
        }
        let entries = match sh.client.list(&dir.abs).await {
            Ok(e) => e,
            Err(e) => {
                sh.fail("cp", &e, Subject::Path(&dir.shown));
                continue;
            }
        };
        let mut subdirs = Vec::new();
        for e in entries {
            let (child, child_target) = (dir.child(&e.name), target.child(&e.name));
            match e.status {
                Some(st) if is_dir(&st) => subdirs.push((child, child_target)),
                Some(st) => cp_file(sh, force, preserve, &child, &st, &child_target).await,
                None => {}
            }
        }
        work.extend(subdirs.into_iter().rev());
    }
}

/// `-appendToFile`: local files (or stdin) appended to one file, created when missing.
pub async fn append_to_file(sh: &mut Shell, srcs: Vec<String>, dst: &str) {
    let command = "appendToFile";
    let dst = sh.arg(dst);
    // Local sources are checked before the file is touched.
    let mut sources = Vec::new();
    for src in &srcs {
        if src == "-" {
            sources.push((src.clone(), None));
            continue;
        }
        match tokio::fs::File::open(src).await {
            Ok(f) => {
                let len = f.metadata().await.ok().map(|m| m.len());
                sources.push((src.clone(), Some((f, len))));
            }
            Err(e) => {
                return report(sh, command, src, Failure::Local(PathBuf::from(src), e));
            }
        }
    }
    let opts = WriteOptions {
        append: true,
        ..WriteOptions::default()
    };
    let mut writer = match sh.client.open_write(&dst.abs, opts).await {
        Ok(w) => w,
        Err(e) => return sh.fail(command, &e, Subject::Path(&dst.shown)),
    };
    for (name, file) in sources {
        let (mut source, len) = match file {
            None => (Source::Stdin(tokio::io::stdin()), None),
            Some((f, len)) => (Source::Local(f, PathBuf::from(&name)), len),
        };
        let mut progress = Progress::new(&name, len);
        let moved = pump(&mut source, &mut writer, &mut progress).await;
        progress.finish();
        if let Err(f) = moved {
            // What was appended so far stays; the lease is released by close below.
            report(sh, command, &dst.shown, f);
            break;
        }
    }
    if let Err(e) = writer.close().await {
        sh.fail(command, &e, Subject::Path(&dst.shown));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_error_suffixes_are_dropped() {
        let e = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(io_text(&e), "No such file or directory");
        let e = std::io::Error::other("plain");
        assert_eq!(io_text(&e), "plain");
    }

    #[test]
    fn subtree_containment() {
        assert!(is_inside("/a/b", "/a"));
        assert!(is_inside("/a", "/a"));
        assert!(is_inside("/a/b", "/a/"));
        assert!(!is_inside("/ab", "/a"));
        assert!(is_inside("/x", "/"));
    }

    #[tokio::test]
    async fn fill_reads_whole_chunks_until_the_end() {
        let data = vec![7u8; CHUNK + 10];
        let mut r = &data[..];
        let mut buf = Vec::new();
        assert_eq!(fill(&mut r, &mut buf).await.unwrap(), CHUNK);
        assert_eq!(fill(&mut r, &mut buf).await.unwrap(), 10);
        assert_eq!(buf, vec![7u8; 10]);
        assert_eq!(fill(&mut r, &mut buf).await.unwrap(), 0);
    }
}
