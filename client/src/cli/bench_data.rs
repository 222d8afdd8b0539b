//! `arbor bench data`: write and read throughput of whole files. T tasks each write a file of
//! S bytes (through `FileWriter`: blocks coded and streamed to the block servers), then each
//! reads its file back (through `FileReader`, verifying every byte). With `--local DIR` the
//! same bytes are written, fsynced, dropped from the page cache and read back on a local
//! directory in the same run, as the baseline.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use futures::future::try_join_all;
use rand::RngCore;

use crate::client::Client;
use crate::data::WriteOptions;
use crate::data::range::parse_size;
use crate::error::Error;
use crate::identity::Identity;
use crate::{Options, namenode_list};

/// Bytes per write or read call.
const IO_SIZE: usize = 4 << 20;

#[derive(Args, Debug)]
pub struct DataArgs {
    /// Bytes per file, with an optional suffix (64M, 1G).
    #[arg(long, default_value = "64M", value_parser = parse_size_arg)]
    pub size: u64,
    /// Concurrent tasks, one file each.
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// Cluster directory under which a fresh bench directory is made.
    #[arg(long, default_value = "/bench")]
    pub dir: String,
    /// Also write and read the same bytes on this local directory (fsynced), as a baseline.
    #[arg(long)]
    pub local: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Why a benchmark run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Arbor(#[from] Error),
    #[error("local file system: {0}")]
    Io(#[from] std::io::Error),
    #[error("benchmark task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

fn parse_size_arg(s: &str) -> Result<u64, String> {
    parse_size(s).ok_or_else(|| format!("not a size: {s} (try 4096, 64K, 256M, 1G)"))
}

/// One measured phase.
#[derive(Debug, Clone)]
pub struct Phase {
    pub target: &'static str,
    pub op: &'static str,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl Phase {
    pub fn mib_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        self.bytes as f64 / (1024.0 * 1024.0) / secs
    }
}

/// The payload: one random IO-sized pattern, repeated (coding does not care about repeats).
fn pattern() -> Arc<Vec<u8>> {
    let mut buf = vec![0u8; IO_SIZE];
    rand::rng().fill_bytes(&mut buf);
    Arc::new(buf)
}

/// The `len` bytes of the payload at file offset `at`.
fn expected(pat: &[u8], at: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut pos = at;
    while out.len() < len {
        let i = (pos % pat.len() as u64) as usize;
        let n = (len - out.len()).min(pat.len() - i);
        out.extend_from_slice(&pat[i..i + n]);
        pos += n as u64;
    }
    out
}

async fn cluster_write(client: &Client, path: &str, size: u64, pat: &[u8]) -> Result<(), Error> {
    let opts = WriteOptions {
        overwrite: true,
        ..WriteOptions::default()
    };
    let mut w = client.open_write(path, opts).await?;
    let mut at = 0u64;
    while at < size {
        let n = (size - at).min(IO_SIZE as u64) as usize;
        w.write(&pat[..n]).await?;
        at += n as u64;
    }
    w.close().await?;
    Ok(())
}

async fn cluster_read(client: &Client, path: &str, size: u64, pat: &[u8]) -> Result<(), Error> {
    let r = client.open_read(path).await?;
    if r.len() != size {
        return Err(Error::invalid(format!(
            "{path}: {} bytes, {size} written",
            r.len()
        )));
    }
    let mut at = 0u64;
    while at < size {
        let data = r.read_at(at, IO_SIZE).await?;
        if data.is_empty() || data[..] != expected(pat, at, data.len())[..] {
            return Err(Error::invalid(format!(
                "{path}: bytes at {at} differ from what was written"
            )));
        }
        at += data.len() as u64;
    }
    Ok(())
}

fn local_write(path: &Path, size: u64, pat: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    let mut at = 0u64;
    while at < size {
        let n = (size - at).min(IO_SIZE as u64) as usize;
        f.write_all(&pat[..n])?;
        at += n as u64;
    }
    f.sync_all()?;
    drop_cache(&f);
    Ok(())
}

/// Asks the kernel to forget the file's cached pages, so the read phase reads the disk.
fn drop_cache(f: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for the duration of the call; the call only advises.
    unsafe {
        libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
}

fn local_read(path: &Path, size: u64, pat: &[u8]) -> std::io::Result<()> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; IO_SIZE];
    let mut at = 0u64;
    while at < size {
        let n = f.read(&mut buf)?;
        if n == 0 || buf[..n] != expected(pat, at, n)[..] {
            return Err(std::io::Error::other(format!(
                "{}: bytes at {at} differ",
                path.display()
            )));
        }
        at += n as u64;
    }
    Ok(())
}

async fn timed<F, Fut>(threads: usize, f: F) -> Result<Duration, BenchError>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), BenchError>> + Send + 'static,
{
    let start = Instant::now();
    let tasks = (0..threads).map(|i| tokio::spawn(f(i)));
    for r in try_join_all(tasks).await? {
        r?;
    }
    Ok(start.elapsed())
}

/// Runs the benchmark and returns its phases.
pub async fn measure(client: &Client, args: &DataArgs) -> Result<Vec<Phase>, BenchError> {
    let threads = args.threads.max(1);
    let size = args.size;
    let total = size * threads as u64;
    let pat = pattern();
    let run = format!(
        "{}/data-{}-{}",
        args.dir.trim_end_matches('/'),
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    client.mkdir(&run, 0o755, true).await?;
    let path = |i: usize| format!("{run}/file-{i}");
    let mut phases = Vec::new();

    let (c, p) = (client.clone(), pat.clone());
    let elapsed = timed(threads, |i| {
        let (c, p, f) = (c.clone(), p.clone(), path(i));
        async move { Ok(cluster_write(&c, &f, size, &p).await?) }
    })
    .await?;
    phases.push(Phase {
        target: "arbor",
        op: "write",
        bytes: total,
        elapsed,
    });
    let elapsed = timed(threads, |i| {
        let (c, p, f) = (c.clone(), p.clone(), path(i));
        async move { Ok(cluster_read(&c, &f, size, &p).await?) }
    })
    .await?;
    phases.push(Phase {
        target: "arbor",
        op: "read",
        bytes: total,
        elapsed,
    });
    if let Err(e) = client.delete(&run, true).await {
        tracing::warn!(error = %e, "could not remove {run}");
    }

    if let Some(local) = &args.local {
        let dir = local.join(format!("arbor-bench-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let file = |i: usize| dir.join(format!("file-{i}"));
        let elapsed = timed(threads, |i| {
            let (p, f) = (pat.clone(), file(i));
            async move {
                tokio::task::spawn_blocking(move || local_write(&f, size, &p)).await??;
                Ok(())
            }
        })
        .await?;
        phases.push(Phase {
            target: "local",
            op: "write+fsync",
            bytes: total,
            elapsed,
        });
        let elapsed = timed(threads, |i| {
            let (p, f) = (pat.clone(), file(i));
            async move {
                tokio::task::spawn_blocking(move || local_read(&f, size, &p)).await??;
                Ok(())
            }
        })
        .await?;
        phases.push(Phase {
            target: "local",
            op: "read",
            bytes: total,
            elapsed,
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(phases)
}

/// The report: a table, or JSON with `--json`.
pub fn render(args: &DataArgs, phases: &[Phase]) -> String {
    if args.json {
        let rows: Vec<serde_json::Value> = phases
            .iter()
            .map(|p| {
                serde_json::json!({
                    "target": p.target,
                    "op": p.op,
                    "bytes": p.bytes,
                    "seconds": p.elapsed.as_secs_f64(),
                    "mib_per_sec": p.mib_per_sec(),
                })
            })
            .collect();
        let doc = serde_json::json!({
            "size": args.size,
            "threads": args.threads,
            "phases": rows,
        });
        return doc.to_string();
    }
    let mut out = format!(
        "{} task(s) x {} bytes\n{:<8} {:<12} {:>10} {:>10}\n",
        args.threads, args.size, "target", "op", "seconds", "MiB/s"
    );
    for p in phases {
        out.push_str(&format!(
            "{:<8} {:<12} {:>10.3} {:>10.1}\n",
            p.target,
            p.op,
            p.elapsed.as_secs_f64(),
            p.mib_per_sec()
        ));
    }
    out
}

/// `arbor bench data` from `main`.
pub async fn run(args: DataArgs, namenode: Option<&str>) -> anyhow::Result<i32> {
    let client = Client::connect_with(
        &namenode_list(namenode),
        Identity::try_current()?,
        Options::default(),
    )?;
    let phases = measure(&client, &args).await?;
    print!("{}", render(&args, &phases));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_bytes_follow_the_pattern() {
        let pat: Vec<u8> = (0..10).collect();
        assert_eq!(expected(&pat, 0, 3), vec![0, 1, 2]);
        assert_eq!(expected(&pat, 8, 5), vec![8, 9, 0, 1, 2]);
        assert_eq!(expected(&pat, 25, 2), vec![5, 6]);
    }

    #[test]
    fn rates_and_reports() {
        let args = DataArgs {
            size: 1 << 20,
            threads: 2,
            dir: "/b".into(),
            local: None,
            json: false,
        };
        let p = Phase {
            target: "arbor",
            op: "write",
            bytes: 2 << 20,
            elapsed: Duration::from_millis(500),
        };
        assert!((p.mib_per_sec() - 4.0).abs() < 1e-9);
        let table = render(&args, std::slice::from_ref(&p));
        assert!(table.contains("arbor    write"));
        assert!(table.contains("4.0"));
        let json = render(&DataArgs { json: true, ..args }, &[p]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["phases"][0]["op"], "write");
        assert_eq!(v["threads"], 2);
        assert_eq!(parse_size_arg("256M"), Ok(256 << 20));
        assert!(parse_size_arg("lots").is_err());
    }
}
