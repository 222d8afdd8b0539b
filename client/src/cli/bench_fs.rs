//! `arbor bench fs --dir DIR [--threads T] [--files N] [--size S] [--json]`: an mdtest-like
//! metadata benchmark and a sequential data benchmark of any directory, through plain file
//! system calls: run it on an Arbor mount and on a local directory (tmpfs) to compare.
//!
//! Metadata phases, each timed over all threads: create (create + write `--file-size` bytes +
//! close), stat, read (open + read + close), remove; then mkdir and rmdir of directories.
//! Data phases: one file of `--size` bytes written in 1 MiB writes and fsynced, then read
//! back. Everything happens under a fresh `DIR/arbor-bench-fs-PID` removed at the end.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct FsArgs {
    /// Directory to benchmark (a mount point or any local directory).
    #[arg(long)]
    pub dir: PathBuf,
    /// Threads running the metadata phases.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Small files (and directories) in the metadata phases, over all threads.
    #[arg(long, default_value_t = 1000)]
    pub files: usize,
    /// Bytes written into each small file.
    #[arg(long, default_value = "1k", value_parser = size_arg)]
    pub file_size: u64,
    /// Size of the large file of the data phases (e.g. 256M).
    #[arg(long, default_value = "256M", value_parser = size_arg)]
    pub size: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn size_arg(s: &str) -> Result<u64, String> {
    crate::data::range::parse_size(s).ok_or_else(|| format!("bad size '{s}'"))
}

/// One timed phase.
#[derive(Clone, Debug)]
pub struct Phase {
    pub name: &'static str,
    /// Operations, or bytes for data phases.
    pub count: u64,
    pub elapsed: Duration,
    pub bytes: bool,
}

impl Phase {
    /// Operations per second, or MiB per second for data phases.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        if self.bytes {
            self.count as f64 / (1024.0 * 1024.0) / secs
        } else {
            self.count as f64 / secs
        }
    }
}

pub async fn run(args: FsArgs) -> anyhow::Result<i32> {
    let a = args.clone();
    let phases = tokio::task::spawn_blocking(move || bench(&a))
        .await
        .context("benchmark thread")??;
    if args.json {
        let list: Vec<serde_json::Value> = phases
            .iter()
            .map(|p| {
                serde_json::json!({
                    "phase": p.name,
                    "count": p.count,
                    "seconds": p.elapsed.as_secs_f64(),
                    if p.bytes { "mib_per_s" } else { "ops_per_s" }: p.rate(),
                })
            })
            .collect();
        let doc = serde_json::json!({
            "dir": args.dir.display().to_string(),
            "threads": args.threads,
            "files": args.files,
            "file_size": args.file_size,
            "size": args.size,
            "phases": list,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!(
            "arbor bench fs: {} ({} threads, {} files of {} B, {} MiB file)",
            args.dir.display(),
            args.threads,
            args.files,
            args.file_size,
            args.size / (1024 * 1024)
        );
        println!(
            "{:<8} {:>12} {:>10} {:>14}",
            "phase", "count", "seconds", "rate"
        );
        for p in &phases {
            let (count, rate) = if p.bytes {
                (
                    format!("{} MiB", p.count / (1024 * 1024)),
                    format!("{:.1} MiB/s", p.rate()),
                )
            } else {
                (p.count.to_string(), format!("{:.0} ops/s", p.rate()))
            };
            println!(
                "{:<8} {:>12} {:>10.3} {:>14}",
                p.name,
                count,
                p.elapsed.as_secs_f64(),
                rate
            );
        }
    }
    Ok(0)
}

/// Runs every phase under a fresh directory in `args.dir` and removes it afterwards.
pub fn bench(args: &FsArgs) -> anyhow::Result<Vec<Phase>> {
    let threads = args.threads.max(1);
    let root = args
        .dir
        .join(format!("arbor-bench-fs-{}", std::process::id()));
    std::fs::create_dir(&root).with_context(|| format!("creating {}", root.display()))?;
    let result = phases(&root, threads, args);
    let cleanup = std::fs::remove_dir_all(&root);
    let phases = result?;
    cleanup.with_context(|| format!("removing {}", root.display()))?;
    Ok(phases)
}

fn phases(root: &Path, threads: usize, args: &FsArgs) -> anyhow::Result<Vec<Phase>> {
    let per = args.files.div_ceil(threads).max(1);
    let dirs: Vec<PathBuf> = (0..threads).map(|t| root.join(format!("t{t}"))).collect();
    for d in &dirs {
        std::fs::create_dir(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let payload = vec![0x5au8; args.file_size as usize];
    let file = |d: &Path, i: usize| d.join(format!("f{i}"));
    let sub = |d: &Path, i: usize| d.join(format!("d{i}"));
    let total = (per * threads) as u64;
    let mut out = Vec::new();

    out.push(parallel("create", &dirs, total, |d| {
        for i in 0..per {
            let path = file(d, i);
            let mut f = std::fs::File::create(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            f.write_all(&payload)?;
        }
        Ok(())
    })?);
    out.push(parallel("stat", &dirs, total, |d| {
        for i in 0..per {
            let path = file(d, i);
            let meta =
                std::fs::metadata(&path).with_context(|| format!("stat {}", path.display()))?;
            anyhow::ensure!(
                meta.len() == payload.len() as u64,
                "{}: wrong size",
                path.display()
            );
        }
        Ok(())
    })?);
    out.push(parallel("read", &dirs, total, |d| {
        let mut buf = Vec::with_capacity(payload.len());
        for i in 0..per {
            let path = file(d, i);
            buf.clear();
            std::fs::File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut buf))
                .with_context(|| format!("reading {}", path.display()))?;
            anyhow::ensure!(buf == payload, "{}: wrong contents", path.display());
        }
        Ok(())
    })?);
    out.push(parallel("remove", &dirs, total, |d| {
        for i in 0..per {
            let path = file(d, i);
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
        Ok(())
    })?);
    out.push(parallel("mkdir", &dirs, total, |d| {
        for i in 0..per {
            let path = sub(d, i);
            std::fs::create_dir(&path).with_context(|| format!("mkdir {}", path.display()))?;
        }
        Ok(())
    })?);
    out.push(parallel("rmdir", &dirs, total, |d| {
        for i in 0..per {
            let path = sub(d, i);
            std::fs::remove_dir(&path).with_context(|| format!("rmdir {}", path.display()))?;
        }
        Ok(())
    })?);

    if args.size > 0 {
        let big = root.join("big");
        let chunk: Vec<u8> = (0..1 << 20).map(|i| (i * 7 + 3) as u8).collect();
        let start = Instant::now();
        let mut f = std::fs::File::create(&big)?;
        let mut left = args.size;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            f.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        f.sync_all()?;
        drop(f);
        out.push(Phase {
            name: "write",
            count: args.size,
            elapsed: start.elapsed(),
            bytes: true,
        });
        let start = Instant::now();
        let mut f = std::fs::File::open(&big)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut read = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            read += n as u64;
        }
        anyhow::ensure!(read == args.size, "read {read} of {} bytes", args.size);
        out.push(Phase {
            name: "read",
            count: read,
            elapsed: start.elapsed(),
            bytes: true,
        });
    }
    Ok(out)
}

/// Runs `work` on each directory in its own thread and times the whole.
fn parallel(
    name: &'static str,
    dirs: &[PathBuf],
    count: u64,
    work: impl Fn(&Path) -> anyhow::Result<()> + Sync,
) -> anyhow::Result<Phase> {
    let start = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = dirs.iter().map(|d| s.spawn(|| work(d))).collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("{name}: a benchmark thread panicked"))??;
        }
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(Phase {
        name,
        count,
        elapsed: start.elapsed(),
        bytes: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_every_phase_on_a_local_directory() {
        let dir = tempfile::tempdir().unwrap();
        let args = FsArgs {
            dir: dir.path().to_path_buf(),
            threads: 2,
            files: 20,
            file_size: 100,
            size: 3 << 20,
            json: false,
        };
        let phases = bench(&args).unwrap();
        let names: Vec<&str> = phases.iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            [
                "create", "stat", "read", "remove", "mkdir", "rmdir", "write", "read"
            ]
        );
        assert_eq!(phases[0].count, 20);
        assert_eq!(phases[6].count, 3 << 20);
        assert!(phases.iter().all(|p| p.rate() > 0.0));
        // Nothing is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
