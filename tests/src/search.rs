//! The search service beside a test cluster: `SearchService` runs `arbor-search` against the
//! cluster's namenodes with its index in the cluster's directory, can SIGKILL and restart it
//! (same address, same index), queries it through the client library, and waits until the
//! index has caught up with every shard. `ChangesWatch` runs a live `arbor changes` and
//! collects its lines.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use arbor_client::Client;
use arbor_proto::search::QueryReply;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::bins;
use crate::cluster::TestCluster;
use crate::ports;
use crate::process::{self, Process, Spec};

/// The search service binary.
pub const SEARCH: &str = "arbor-search";

const READY_TIMEOUT: Duration = Duration::from_secs(90);

pub struct SearchService {
    port: u16,
    index_dir: PathBuf,
    log: PathBuf,
    namenodes: Vec<String>,
    process: Option<Process>,
}

impl SearchService {
    /// Starts `arbor-search` for `cluster` with `extra` flags (e.g. `--rebuild`).
    pub async fn start(cluster: &TestCluster, extra: &[&str]) -> SearchService {
        let mut s = SearchService {
            port: ports::free_port(),
            index_dir: cluster.dir().join("search-index"),
            log: cluster.dir().join("logs").join("search.log"),
            namenodes: cluster.namenode_addrs(),
            process: None,
        };
        s.launch(extra).await;
        s
    }

    fn spec(&self, extra: &[&str]) -> Spec {
        let mut args = vec![
            "--listen".to_string(),
            self.addr(),
            "--namenode".into(),
            self.namenodes.join(","),
            "--dir".into(),
            self.index_dir.display().to_string(),
        ];
        if !extra.contains(&"--commit-interval-ms") {
            // Tests look for changes at once; they do not measure the indexing cost.
            args.extend(["--commit-interval-ms".to_string(), "50".to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        Spec {
            name: "search".into(),
            program: bins::bin(SEARCH),
            args,
            env: vec![
                ("RUST_LOG".into(), "info".into()),
                ("NO_COLOR".into(), "1".into()),
            ],
            env_remove: vec!["ARBOR_NAMENODE".into(), "ARBOR_SEARCH_DIR".into()],
            log: self.log.clone(),
        }
    }

    async fn launch(&mut self, extra: &[&str]) {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match Process::start(&self.spec(extra), READY_TIMEOUT).await {
                Ok(p) => {
                    self.process = Some(p);
                    return;
                }
                Err(_) if attempts < 10 => tokio::time::sleep(Duration::from_millis(300)).await,
                Err(e) => panic!(
                    "arbor-search did not start: {e}\n{}",
                    process::tail(&self.log, 60)
                ),
            }
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The service's process id and listening port, while it runs.
    pub fn process(&self) -> Option<(u32, u16)> {
        self.process.as_ref().map(|p| (p.pid(), self.port))
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(p) = self.process.as_mut() {
            p.kill();
        }
        self.process = None;
    }

    /// Starts it again on the same address and index.
    pub async fn restart(&mut self, extra: &[&str]) {
        self.kill();
        self.launch(extra).await;
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs a query; panics on failure.
    pub async fn query(&self, client: &Client, q: &str, prefix: &str) -> QueryReply {
        match client.search_at(&self.addr(), q, prefix, 100_000).await {
            Ok(r) => r,
            Err(e) => panic!("search {q:?} under {prefix}: {:?}: {}", e.code, e.message),
        }
    }

    /// The sorted paths a query returns (checking that the total matches).
    pub async fn paths(&self, client: &Client, q: &str, prefix: &str) -> Vec<String> {
        let r = self.query(client, q, prefix).await;
        assert_eq!(r.total as usize, r.hits.len(), "total of {q:?}");
        let mut p: Vec<String> = r.hits.into_iter().map(|h| h.path).collect();
        p.sort();
        p
    }

    /// Waits until, on every shard, the index covers what the shard had applied when this
    /// was called.
    pub async fn wait_caught_up(&self, client: &Client, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        let mut target: Option<Vec<u64>> = None;
        loop {
            if let Ok(st) = client.search_status_at(&self.addr()).await
                && !st.shards.is_empty()
            {
                let t = target
                    .get_or_insert_with(|| st.shards.iter().map(|s| s.shard_applied_seq).collect());
                if st
                    .shards
                    .iter()
                    .zip(t.iter())
                    .all(|(s, want)| s.indexed_seq >= *want)
                {
                    return;
                }
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "search index did not catch up within {limit:?}\n{}",
                    process::tail(&self.log, 40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SearchService {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running `arbor changes` and the lines it printed.
pub struct ChangesWatch {
    child: tokio::process::Child,
    lines: mpsc::UnboundedReceiver<String>,
}

impl ChangesWatch {
    /// Starts `arbor changes ARGS…` and waits until it follows the shards.
    pub async fn start(cluster: &TestCluster, args: &[&str]) -> ChangesWatch {
        let mut child = tokio::process::Command::new(bins::bin(bins::CLI))
            .arg("--namenode")
            .arg(cluster.namenode_addrs().join(","))
            .arg("changes")
            .args(args)
            .env_remove("ARBOR_NAMENODE")
            .env("ARBOR_USER", "0:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn arbor changes");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut r = BufReader::new(stdout).lines();
            while let Ok(Some(l)) = r.next_line().await {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        let (ready_tx, mut ready) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut r = BufReader::new(stderr).lines();
            while let Ok(Some(l)) = r.next_line().await {
                let _ = ready_tx.send(l);
            }
        });
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, ready.recv()).await {
                Ok(Some(l)) if l.contains("following from") => break,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => panic!("arbor changes did not start following"),
            }
        }
        ChangesWatch { child, lines }
    }

    /// The next `n` lines (panics after `limit`).
    pub async fn take(&mut self, n: usize, limit: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut out = Vec::new();
        while out.len() < n {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(l)) => out.push(l),
                _ => panic!(
                    "got {} of {n} lines from arbor changes: {out:#?}",
                    out.len()
                ),
            }
        }
        out
    }

    /// Lines that arrive within `wait`.
    pub async fn drain(&mut self, wait: Duration) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(Some(l)) = tokio::time::timeout(wait, self.lines.recv()).await {
            out.push(l);
        }
        out
    }
}

impl Drop for ChangesWatch {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
