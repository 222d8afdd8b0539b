//! Test harness: real `arbor-blockserver` processes on loopback, each with its own
//! temporary store, that a test can stop (SIGKILL) and restart.

#![allow(dead_code)]

use arbor_blockserver::{BlockRef, Layout, ShardPool, ShardTarget};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const CELL: usize = 64 * 1024;

pub struct Server {
    pub addr: String,
    pub id: u64,
    pub dir: tempfile::TempDir,
    namenode: String,
    child: Option<Child>,
}

impl Server {
    /// Starts a server on a fresh store.
    pub fn start() -> Server {
        // Nothing listens there: heartbeats fail quietly and are retried.
        Server::start_with_namenode("127.0.0.1:1", 60_000)
    }

    /// Starts a server that heartbeats to `namenode` every `heartbeat_ms`.
    pub fn start_with_namenode(namenode: &str, heartbeat_ms: u64) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Server {
            addr: String::new(),
            id: 0,
            dir,
            namenode: format!("{namenode}|{heartbeat_ms}"),
            child: None,
        };
        s.spawn("127.0.0.1:0");
        s
    }

    fn spawn(&mut self, listen: &str) {
        let url = store_url(&self.dir);
        let (nn, ms) = self
            .namenode
            .split_once('|')
            .expect("namenode and interval");
        let mut child = Command::new(env!("CARGO_BIN_EXE_arbor-blockserver"))
            .args(["--listen", listen, "--store", &url])
            .args(["--namenode", nn, "--heartbeat-ms", ms])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn arbor-blockserver");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("ready line");
        assert!(
            line.starts_with("arbor-blockserver listening on "),
            "{line}"
        );
        let rest = line
            .trim()
            .trim_start_matches("arbor-blockserver listening on ");
        let (addr, id) = rest.split_once(" id=").expect("addr and id");
        self.addr = addr.to_string();
        self.id = id.parse().expect("numeric id");
        self.child = Some(child);
    }

    /// Peak resident memory of the server process, bytes (Linux VmHWM).
    pub fn peak_rss(&self) -> u64 {
        let pid = self.child.as_ref().expect("running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .expect("VmHWM");
        let kb: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .expect("VmHWM value");
        kb * 1024
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL: no goodbye, like a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same store and address.
    pub fn restart(&mut self) {
        self.kill();
        let addr = self.addr.clone();
        let id = self.id;
        self.spawn(&addr);
        assert_eq!(self.id, id, "server id must survive a restart");
    }

    pub fn target(&self, index: u32) -> ShardTarget {
        ShardTarget {
            index,
            server_id: self.id,
            addr: self.addr.clone(),
        }
    }

    /// The stored object of a shard.
    pub fn shard_file(&self, block_id: u64, index: u32) -> PathBuf {
        self.dir
            .path()
            .join("shards")
            .join(format!("{:02x}", block_id & 0xff))
            .join(format!("{block_id:016x}.{index}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The server's store: its temporary directory, or, when `ARBOR_TEST_STORE_BASE` is set
/// (e.g. `s3://bucket` with `ARBOR_S3_ENDPOINT`, or `az://container` with
/// `ARBOR_AZURE_EMULATOR`), a prefix of that bucket named after the directory, so the same
/// scenarios run against an object store.
fn store_url(dir: &tempfile::TempDir) -> String {
    match std::env::var("ARBOR_TEST_STORE_BASE") {
        Ok(base) if !base.is_empty() => {
            let name = dir
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            format!(
                "{}/{}",
                base.trim_end_matches('/'),
                name.unwrap_or_default()
            )
        }
        _ => format!("file://{}", dir.path().display()),
    }
}

pub fn servers(n: usize) -> Vec<Server> {
    (0..n).map(|_| Server::start()).collect()
}

pub fn pool() -> ShardPool {
    ShardPool::new(Duration::from_secs(5))
}

pub fn rs(k: usize, m: usize) -> Layout {
    Layout::new(k, m, CELL, false).expect("layout")
}

pub fn replication() -> Layout {
    Layout::new(1, 2, CELL, true).expect("layout")
}

/// Shard i of a block goes to server i.
pub fn targets(servers: &[Server], layout: Layout) -> Vec<ShardTarget> {
    (0..layout.shards())
        .map(|i| servers[i].target(i as u32))
        .collect()
}

/// Deterministic, position-dependent bytes (so misplaced bytes never compare equal).
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn block_ref(block_id: u64, length: u64, layout: Layout, shards: Vec<ShardTarget>) -> BlockRef {
    BlockRef {
        block_id,
        length,
        layout,
        shards,
    }
}

/// Writes `bytes` as one block through BlockWriter, in uneven pieces.
pub async fn write_block(
    pool: &ShardPool,
    block_id: u64,
    layout: Layout,
    targets: Vec<ShardTarget>,
    bytes: &[u8],
) -> arbor_blockserver::WrittenBlock {
    let mut w = arbor_blockserver::BlockWriter::new(pool.clone(), block_id, layout, targets);
    let mut at = 0;
    let mut step = 1000;
    while at < bytes.len() {
        let n = step.min(bytes.len() - at);
        w.write(&bytes[at..at + n]).await.expect("write");
        at += n;
        step = step * 3 + 17;
    }
    assert_eq!(w.len(), bytes.len() as u64);
    w.finish().await.expect("finish")
}
