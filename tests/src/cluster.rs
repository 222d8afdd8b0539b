//! `TestCluster`: a whole Arbor cluster of real processes on free loopback ports, in a temporary
//! directory of its own, with the handles a scenario needs (clients, the CLI, killing and
//! restarting parts, fsck).
//!
//! With `Config::blockservers > 0` the cluster also has the data path: block servers (shards in
//! local directories, or in S3 / Azure Blob emulators the cluster starts), and namenodes started
//! with the data flags of [`DataConfig`] (small blocks and cells, short heartbeat, dead-server
//! and repair intervals, so scenarios see repair within seconds).
//!
//! Invariants: every part of the cluster is a child of the test process and dies with it (see
//! `process`); a part restarted keeps its address (clients and namenodes are configured with it)
//! and its data (a shard's directory, a block server's store). Each part's output goes to
//! `DIR/logs/NAME.log`; the tail of every log is printed when the cluster is dropped, which the
//! test runners show only for a failing test.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Mutex;
use std::time::Duration;

use arbor_client::{Client, Identity};
use arbor_proto::blockserver::ShardEntry;
use arbor_proto::blockserver::block_server_client::BlockServerClient;
use arbor_proto::metastore::metastore_client::MetastoreClient;
use arbor_proto::namenode::namenode_client::NamenodeClient;
use arbor_proto::namenode::{BlockServerInfo, Empty, FsckReply};
use tonic::transport::{Channel, Endpoint};

use crate::bins;
use crate::blockservers;
use crate::emulators::{AZURE_CONTAINER, Azurite, Moto, S3_BUCKET};
use crate::ports;
use crate::process::{self, Process, Spec, StartError};

/// How long a starting part may take to print its ready line (debug builds on a busy 2-core
/// machine; a namenode also waits for its shards and may format the cluster).
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long one CLI invocation may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(120);
/// Lines of each log printed when the cluster is dropped.
const TAIL_LINES: usize = 40;

/// What to start.
#[derive(Clone, Debug)]
pub struct Config {
    pub shards: usize,
    pub namenodes: usize,
    /// Given to every shard and namenode: how long a prepared transaction may stay undecided
    /// before the shards resolve it.
    pub intent_timeout_ms: u64,
    /// Virtual partitions at format time (`None`: the namenode's default).
    pub vparts: Option<u32>,
    /// Extra environment for one namenode: `(index, NAME, VALUE)`, e.g.
    /// `(0, "ARBOR_FAULT", "after_prepare:rename")`. Applies to its first start only;
    /// `restart_namenode` takes its own.
    pub namenode_env: Vec<(usize, String, String)>,
    /// Block servers to start (0: a metadata-only cluster, as before the data path).
    pub blockservers: usize,
    /// Where the block servers keep their shards.
    pub store: StoreBackend,
    /// The namenodes' data-path flags; `None` leaves the namenodes' defaults.
    pub data: Option<DataConfig>,
    /// How long removed paths stay in the trash (`--trash-interval`); `None`: no trash.
    pub trash_interval: Option<String>,
    /// Each namenode serves its metrics and status page on a port of its own.
    pub namenode_http: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            shards: 4,
            namenodes: 2,
            intent_timeout_ms: 1000,
            vparts: None,
            namenode_env: Vec::new(),
            blockservers: 0,
            store: StoreBackend::Local,
            data: None,
            trash_interval: None,
            namenode_http: false,
        }
    }
}

impl Config {
    /// A data-path cluster: two shards, two namenodes and `blockservers` block servers on
    /// local directories, with the small test sizes of [`DataConfig::default`].
    pub fn data(blockservers: usize) -> Config {
        Config {
            shards: 2,
            namenodes: 2,
            blockservers,
            data: Some(DataConfig::default()),
            ..Config::default()
        }
    }
}

/// Where block servers keep their shards. Server `i` uses its own prefix of the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoreBackend {
    /// `file://DIR/blockserver-i`.
    #[default]
    Local,
    /// `s3://arbor/bs-i` on a moto server the cluster starts.
    S3,
    /// `az://arbor/bs-i` on an Azurite the cluster starts.
    Azure,
}

/// The data-path flags the namenodes (and block servers) start with.
#[derive(Clone, Debug)]
pub struct DataConfig {
    pub block_size: u64,
    pub cell_size: u64,
    pub inline_threshold: u64,
    pub default_ec_policy: String,
    /// Block server heartbeat interval (the namenodes tell the servers; servers start with it).
    pub heartbeat_ms: u64,
    /// A server silent this long is dead: its shards are rebuilt elsewhere.
    pub dead_after_ms: u64,
    /// How often the leader repairs blocks and deletes freed shards.
    pub repair_interval_ms: u64,
}

/// Test sizes: 1 MiB blocks of RS(4,2) with 64 KiB cells, a 64 KiB inline threshold, and
/// second-scale failure detection and repair.
impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            block_size: MIB,
            cell_size: 64 * KIB,
            inline_threshold: 64 * KIB,
            default_ec_policy: "RS-4-2-1024k".into(),
            heartbeat_ms: 500,
            dead_after_ms: 4000,
            repair_interval_ms: 1000,
        }
    }
}

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Shard(usize),
    Namenode(usize),
    Blockserver(usize),
}

/// One part of the cluster: its fixed address and its current process.
struct Slot {
    port: u16,
    process: Option<Process>,
}

/// A running cluster. Dropping it kills every part.
pub struct TestCluster {
    config: Config,
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    shards: Vec<Mutex<Slot>>,
    namenodes: Vec<Mutex<Slot>>,
    blockservers: Vec<Mutex<Slot>>,
    /// Each namenode's HTTP port (metrics, status page), when the config asks for them.
    namenode_http: Vec<u16>,
    moto: Option<Moto>,
    azurite: Option<Azurite>,
}

/// Commits per operation: (single-shard, two-phase).
pub type Commits = std::collections::BTreeMap<String, (u64, u64)>;

/// Commits of each operation between two counts, leaving out the namenodes' own background
/// work (leader lease, sweeps, the deleter), which runs on its own clock.
pub fn commits_between(before: &Commits, after: &Commits) -> Commits {
    let background = [
        "leader",
        "sweep",
        "heartbeat",
        "renew_lease",
        "deleter",
        "registry",
    ];
    after
        .iter()
        .filter(|(op, _)| !background.iter().any(|b| op.contains(b)))
        .filter_map(|(op, &(s, t))| {
            let (s0, t0) = before.get(op).copied().unwrap_or_default();
            (s != s0 || t != t0).then(|| (op.clone(), (s - s0, t - t0)))
        })
        .collect()
}

/// The identity the harness's clients and CLI act as: the cluster's superuser, whoever runs
/// the tests. Scenarios about permissions pick their own identity.
pub fn superuser() -> Identity {
    Identity {
        uid: 0,
        gids: vec![0],
        user: "root".into(),
    }
}

/// What a CLI invocation did.
#[derive(Clone, Debug)]
pub struct Output {
    /// The exit status (-1 when killed by a signal).
    pub code: i32,
    /// Stdout as text (invalid UTF-8 replaced); `stdout_bytes` holds it exactly.
    pub stdout: String,
    pub stderr: String,
    /// Stdout byte for byte (file contents from `-cat`, `-head`, `-tail`).
    pub stdout_bytes: Vec<u8>,
}

impl Output {
    pub fn stdout_lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn lazy_channel(addr: &str) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("a valid endpoint")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .connect_lazy()
}

impl TestCluster {
    /// Starts the shards (and the object-store emulator, if any), then namenode 0 (which
    /// formats the cluster), then the other namenodes, then the block servers, each waited for
    /// until it prints its ready line; with block servers, until the namenodes list them all
    /// alive.
    pub async fn start(config: Config) -> TestCluster {
        assert!(config.shards >= 1 && config.namenodes >= 1, "empty cluster");
        let dir = tempfile::Builder::new()
            .prefix("arbor-test-")
            .tempdir()
            .expect("create the cluster's temp dir");
        let root = dir.path().to_path_buf();
        std::fs::create_dir_all(root.join("logs")).expect("create the logs dir");
        let http = if config.namenode_http {
            config.namenodes
        } else {
            0
        };
        let ports =
            ports::free_ports(config.shards + config.namenodes + config.blockservers + http);
        let slot = |port| {
            Mutex::new(Slot {
                port,
                process: None,
            })
        };
        let (s, n) = (config.shards, config.namenodes);
        let mut cluster = TestCluster {
            shards: ports[..s].iter().map(|&p| slot(p)).collect(),
            namenodes: ports[s..s + n].iter().map(|&p| slot(p)).collect(),
            blockservers: ports[s + n..ports.len() - http]
                .iter()
                .map(|&p| slot(p))
                .collect(),
            namenode_http: ports[ports.len() - http..].to_vec(),
            config,
            dir: Some(dir),
            root,
            moto: None,
            azurite: None,
        };

        let logs = cluster.root.join("logs");
        let azurite_dir = cluster.root.join("azurite");
        let emulator = async {
            match cluster.config.store {
                StoreBackend::Local => (None, None),
                StoreBackend::S3 => (Some(Moto::start(&logs).await), None),
                StoreBackend::Azure => (None, Some(Azurite::start(&azurite_dir, &logs).await)),
            }
        };
        let shards = (0..cluster.config.shards).map(|i| cluster.launch(Role::Shard(i), &[], true));
        let (_, (moto, azurite)) = futures::join!(futures::future::join_all(shards), emulator);
        cluster.moto = moto;
        cluster.azurite = azurite;
        let env0 = cluster.first_env(0);
        cluster.launch(Role::Namenode(0), &env0, true).await;
        let this = &cluster;
        let others = (1..cluster.config.namenodes).map(|i| {
            let env = this.first_env(i);
            async move { this.launch(Role::Namenode(i), &env, true).await }
        });
        futures::future::join_all(others).await;
        if cluster.config.blockservers > 0 {
            let servers = (0..cluster.config.blockservers)
                .map(|i| cluster.launch(Role::Blockserver(i), &[], true));
            futures::future::join_all(servers).await;
            cluster
                .wait_block_servers_alive(cluster.config.blockservers, READY_TIMEOUT)
                .await;
        }
        cluster
    }

    fn first_env(&self, namenode: usize) -> Vec<(String, String)> {
        self.config
            .namenode_env
            .iter()
            .filter(|(i, _, _)| *i == namenode)
            .map(|(_, k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn slot(&self, role: Role) -> &Mutex<Slot> {
        match role {
            Role::Shard(i) => &self.shards[i],
            Role::Namenode(i) => &self.namenodes[i],
            Role::Blockserver(i) => &self.blockservers[i],
        }
    }

    fn name(role: Role) -> String {
        match role {
            Role::Shard(i) => format!("shard-{i}"),
            Role::Namenode(i) => format!("namenode-{i}"),
            Role::Blockserver(i) => format!("blockserver-{i}"),
        }
    }

    fn spec(&self, role: Role, port: u16, env: &[(String, String)]) -> Spec {
        let addr = format!("127.0.0.1:{port}");
        let timeout = self.config.intent_timeout_ms.to_string();
        let (program, args) = match role {
            Role::Shard(i) => {
                let data = self.root.join(format!("shard-{i}"));
                (
                    bins::bin(bins::METASTORE),
                    vec![
                        "--dir".into(),
                        data.display().to_string(),
                        "--listen".into(),
                        addr,
                        "--shard".into(),
                        i.to_string(),
                        "--intent-timeout-ms".into(),
                        timeout,
                    ],
                )
            }
            Role::Namenode(j) => {
                let mut args = vec![
                    "--listen".into(),
                    addr,
                    "--metastore".into(),
                    self.metastore_addrs().join(","),
                    "--intent-timeout-ms".into(),
                    timeout,
                ];
                if let Some(v) = self.config.vparts {
                    args.push("--vparts".into());
                    args.push(v.to_string());
                }
                if let Some(t) = &self.config.trash_interval {
                    args.push("--trash-interval".into());
                    args.push(t.clone());
                }
                if let Some(port) = self.namenode_http.get(j) {
                    args.push("--metrics-listen".into());
                    args.push(format!("127.0.0.1:{port}"));
                }
                if let Some(d) = &self.config.data {
                    for (flag, value) in [
                        ("--block-size", d.block_size.to_string()),
                        ("--cell-size", d.cell_size.to_string()),
                        ("--inline-threshold", d.inline_threshold.to_string()),
                        ("--default-ec-policy", d.default_ec_policy.clone()),
                        ("--heartbeat-ms", d.heartbeat_ms.to_string()),
                        ("--dead-after-ms", d.dead_after_ms.to_string()),
                        ("--repair-interval-ms", d.repair_interval_ms.to_string()),
                    ] {
                        args.push(flag.into());
                        args.push(value);
                    }
                }
                (bins::bin(bins::NAMENODE), args)
            }
            Role::Blockserver(i) => {
                let mut args = vec![
                    "--listen".into(),
                    addr,
                    "--store".into(),
                    self.blockserver_store_url(i),
                    "--namenode".into(),
                    self.namenode_addrs().join(","),
                ];
                if let Some(d) = &self.config.data {
                    args.push("--heartbeat-ms".into());
                    args.push(d.heartbeat_ms.to_string());
                }
                (bins::bin(bins::BLOCKSERVER), args)
            }
        };
        let mut full_env = vec![
            ("RUST_BACKTRACE".to_string(), "1".to_string()),
            // Plain text in the log files.
            ("NO_COLOR".to_string(), "1".to_string()),
            (
                "RUST_LOG".to_string(),
                std::env::var("ARBOR_TEST_LOG").unwrap_or_else(|_| "info".into()),
            ),
        ];
        if let Role::Blockserver(_) = role {
            if let Some(moto) = &self.moto {
                full_env.extend(moto.env());
            }
            if let Some(azurite) = &self.azurite {
                full_env.extend(azurite.env());
            }
        }
        full_env.extend(env.iter().cloned());
        Spec {
            name: Self::name(role),
            program,
            args,
            env: full_env,
            env_remove: [
                "ARBOR_FAULT",
                "ARBOR_METASTORE",
                "ARBOR_NAMENODE",
                "ARBOR_USER",
                "ARBOR_S3_ENDPOINT",
                "ARBOR_AZURE_EMULATOR",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
                "AWS_REGION",
                "AWS_PROFILE",
                "AZURE_STORAGE_ACCOUNT_NAME",
                "AZURE_STORAGE_ACCOUNT_KEY",
                "ARBOR_BLOCKSERVER_LISTEN",
                "ARBOR_BLOCKSERVER_STORE",
                "ARBOR_BLOCKSERVER_CAPACITY",
                "ARBOR_BLOCKSERVER_HEARTBEAT_MS",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            log: self
                .root
                .join("logs")
                .join(format!("{}.log", Self::name(role))),
        }
    }

    /// Starts `role` and waits for it. When its port turned out to be taken, a first start
    /// moves to a fresh port; a restart must keep its address, so it waits and tries again.
    async fn launch(&self, role: Role, env: &[(String, String)], first_start: bool) {
        let mut port = self.slot(role).lock().unwrap().port;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let spec = self.spec(role, port, env);
            match Process::start(&spec, READY_TIMEOUT).await {
                Ok(process) => {
                    let mut slot = self.slot(role).lock().unwrap();
                    slot.port = port;
                    slot.process = Some(process);
                    return;
                }
                Err(StartError::Exited {
                    addr_in_use: true, ..
                }) if attempts < 6 => {
                    if first_start {
                        port = ports::free_port();
                    } else {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
                Err(e) => panic!(
                    "{} did not start: {e}; log {}:\n{}",
                    spec.name,
                    spec.log.display(),
                    process::tail(&spec.log, 60)
                ),
            }
        }
    }

    /// The cluster's directory (shard data, logs).
    pub fn dir(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The intent timeout the parts run with.
    pub fn intent_timeout(&self) -> Duration {
        Duration::from_millis(self.config.intent_timeout_ms)
    }

    pub fn namenode_addrs(&self) -> Vec<String> {
        self.namenodes
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.lock().unwrap().port))
            .collect()
    }

    pub fn metastore_addrs(&self) -> Vec<String> {
        self.shards
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.lock().unwrap().port))
            .collect()
    }

    /// A client over every namenode (failover), acting as the superuser.
    pub async fn client(&self) -> Client {
        Client::connect(&self.namenode_addrs())
            .await
            .expect("connect a client")
            .with_identity(superuser())
    }

    /// A client of namenode `i` only, acting as the superuser.
    pub async fn client_on(&self, i: usize) -> Client {
        Client::connect(&[self.namenode_addrs()[i].clone()])
            .await
            .expect("connect a client")
            .with_identity(superuser())
    }

    /// (single-shard, two-phase) commits per operation (the transaction's label), summed
    /// over every namenode.
    pub async fn commits(&self) -> Commits {
        let mut out = Commits::new();
        for i in 0..self.config.namenodes {
            let info = self
                .client_on(i)
                .await
                .cluster_info()
                .await
                .expect("cluster info");
            for c in info.commits {
                let e = out.entry(c.op).or_default();
                e.0 += c.single_shard;
                e.1 += c.two_phase;
            }
        }
        out
    }

    /// Where namenode `i` serves its metrics and status page (`Config::namenode_http`).
    pub fn namenode_http(&self, i: usize) -> String {
        let port = self
            .namenode_http
            .get(i)
            .unwrap_or_else(|| panic!("namenode {i} has no HTTP port: set namenode_http"));
        format!("127.0.0.1:{port}")
    }

    /// The raw gRPC client of namenode `i` (the caller builds each CallContext).
    pub fn raw_namenode(&self, i: usize) -> NamenodeClient<Channel> {
        NamenodeClient::new(lazy_channel(&self.namenode_addrs()[i]))
    }

    /// The raw gRPC client of shard `i`.
    pub fn raw_metastore(&self, i: usize) -> MetastoreClient<Channel> {
        MetastoreClient::new(lazy_channel(&self.metastore_addrs()[i]))
    }

    /// Runs `arbor --namenode <all namenodes> ARGS…` as the superuser, with TZ=UTC.
    pub async fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_env(&[], args).await
    }

    /// Like `cli`, with extra environment (e.g. `("ARBOR_USER", "1000:1000")`).
    pub async fn cli_with_env(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut command = tokio::process::Command::new(bins::bin(bins::CLI));
        command
            .arg("--namenode")
            .arg(self.namenode_addrs().join(","))
            .args(args)
            .env_remove("ARBOR_NAMENODE")
            .env("ARBOR_USER", "0:0")
            .env("TZ", "UTC")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        let output = match tokio::time::timeout(CLI_TIMEOUT, command.output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => panic!("could not run `arbor {}`: {e}", args.join(" ")),
            Err(_) => panic!(
                "`arbor {}` did not finish within {CLI_TIMEOUT:?}",
                args.join(" ")
            ),
        };
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            stdout_bytes: output.stdout,
        }
    }

    fn kill(&self, role: Role) -> Option<ExitStatus> {
        let mut slot = self.slot(role).lock().unwrap();
        slot.process.as_mut().and_then(|p| p.kill())
    }

    /// Every running part as (name, pid, listening port): shards, namenodes, block servers.
    pub fn processes(&self) -> Vec<(String, u32, u16)> {
        let mut out = Vec::new();
        for (what, slots) in [
            ("shard", &self.shards),
            ("namenode", &self.namenodes),
            ("blockserver", &self.blockservers),
        ] {
            for (i, slot) in slots.iter().enumerate() {
                let slot = slot.lock().unwrap();
                if let Some(p) = slot.process.as_ref() {
                    out.push((format!("{what} {i}"), p.pid(), slot.port));
                }
            }
        }
        out
    }

    /// SIGKILLs namenode `i` (no-op if it already died) and returns how it ended.
    pub fn kill_namenode(&self, i: usize) -> Option<ExitStatus> {
        self.kill(Role::Namenode(i))
    }

    /// Starts namenode `i` again on its address, with `env` added (after killing it if it still
    /// runs).
    pub async fn restart_namenode(&self, i: usize, env: &[(&str, &str)]) {
        self.kill(Role::Namenode(i));
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.launch(Role::Namenode(i), &env, false).await;
    }

    /// SIGKILLs shard `i` and returns how it ended.
    pub fn kill_shard(&self, i: usize) -> Option<ExitStatus> {
        self.kill(Role::Shard(i))
    }

    /// Starts shard `i` again on its address and data directory.
    pub async fn restart_shard(&self, i: usize) {
        self.kill(Role::Shard(i));
        self.launch(Role::Shard(i), &[], false).await;
    }

    /// Whether namenode `i`'s process is alive.
    pub fn namenode_running(&self, i: usize) -> bool {
        let mut slot = self.namenodes[i].lock().unwrap();
        slot.process
            .as_mut()
            .is_some_and(|p| p.try_exit().is_none())
    }

    /// Waits up to `limit` for namenode `i` to exit by itself; how it ended, or `None`.
    pub async fn wait_namenode_exit(&self, i: usize, limit: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            {
                let mut slot = self.namenodes[i].lock().unwrap();
                match slot.process.as_mut() {
                    None => return None,
                    Some(p) => {
                        if let Some(status) = p.try_exit() {
                            return Some(status);
                        }
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The log file of namenode `i` (every start of it, in order).
    pub fn namenode_log(&self, i: usize) -> PathBuf {
        self.root.join("logs").join(format!("namenode-{i}.log"))
    }

    /// What namenode `i`'s latest start wrote to its log.
    pub fn namenode_log_since_start(&self, i: usize) -> String {
        let log = std::fs::read_to_string(self.namenode_log(i)).unwrap_or_default();
        process::last_start(&log).to_string()
    }

    /// `fsck /` through the failover client.
    pub async fn fsck(&self) -> FsckReply {
        self.client()
            .await
            .fsck("/")
            .await
            .unwrap_or_else(|e| panic!("fsck /: {:?} {}", e.code, e.message))
    }

    /// Polls `fsck /` until no prepared transaction is open anywhere, for at most `limit`;
    /// returns a report made entirely after that point. Panics at the limit with what was still
    /// open.
    pub async fn wait_no_open_intents(&self, limit: Duration) -> FsckReply {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let report = self.fsck().await;
            if report.open_intents == 0 {
                // fsck scans the rows before it asks the shards for intents: the report that
                // first shows none may have scanned while the last ones were being resolved.
                let settled = self.fsck().await;
                assert_eq!(
                    settled.open_intents, 0,
                    "an intent appeared after all had been resolved: {settled:?}"
                );
                return settled;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "{} intents still open {limit:?} after the scenario (intent timeout {:?}): \
                     {report:?}",
                    report.open_intents,
                    self.intent_timeout()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Polls `fsck /` until `done` holds, for at most `limit`; returns that report. Panics at
    /// the limit with the last report and what was awaited.
    pub async fn wait_fsck(
        &self,
        limit: Duration,
        what: &str,
        done: impl Fn(&FsckReply) -> bool,
    ) -> FsckReply {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let report = self.fsck().await;
            if done(&report) {
                return report;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("fsck did not reach `{what}` within {limit:?}; last report: {report:?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    // ---- The data path: block servers. ---------------------------------------------------

    /// The store URL block server `i` runs on (kept across restarts).
    pub fn blockserver_store_url(&self, i: usize) -> String {
        match self.config.store {
            StoreBackend::Local => format!("file://{}", self.blockserver_dir(i).display()),
            StoreBackend::S3 => format!("s3://{S3_BUCKET}/bs-{i}"),
            StoreBackend::Azure => format!("az://{AZURE_CONTAINER}/bs-{i}"),
        }
    }

    /// The local directory of block server `i` (its store with the local backend).
    pub fn blockserver_dir(&self, i: usize) -> PathBuf {
        self.root.join(format!("blockserver-{i}"))
    }

    pub fn blockserver_addrs(&self) -> Vec<String> {
        self.blockservers
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.lock().unwrap().port))
            .collect()
    }

    pub fn blockserver_addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.blockservers[i].lock().unwrap().port)
    }

    /// The index of the block server listening on `addr`.
    pub fn blockserver_index(&self, addr: &str) -> Option<usize> {
        self.blockserver_addrs().iter().position(|a| a == addr)
    }

    /// SIGKILLs block server `i` and returns how it ended.
    pub fn kill_blockserver(&self, i: usize) -> Option<ExitStatus> {
        self.kill(Role::Blockserver(i))
    }

    /// Starts block server `i` again on its address and store.
    pub async fn restart_blockserver(&self, i: usize) {
        self.kill(Role::Blockserver(i));
        self.launch(Role::Blockserver(i), &[], false).await;
    }

    /// Whether block server `i`'s process is alive.
    pub fn blockserver_running(&self, i: usize) -> bool {
        let mut slot = self.blockservers[i].lock().unwrap();
        slot.process
            .as_mut()
            .is_some_and(|p| p.try_exit().is_none())
    }

    /// The raw gRPC client of block server `i`.
    pub fn raw_blockserver(&self, i: usize) -> BlockServerClient<Channel> {
        BlockServerClient::new(lazy_channel(&self.blockserver_addr(i)))
    }

    /// Block server `i`'s id (from its Stat).
    pub async fn blockserver_id(&self, i: usize) -> u64 {
        blockservers::stat(&self.blockserver_addr(i))
            .await
            .unwrap_or_else(|e| panic!("Stat of block server {i}: {e}"))
            .server_id
    }

    /// Every shard block server `i` stores (ListShards, all pages).
    pub async fn list_shards(&self, i: usize) -> Vec<ShardEntry> {
        blockservers::list_shards(&self.blockserver_addr(i))
            .await
            .unwrap_or_else(|e| panic!("ListShards of block server {i}: {e}"))
    }

    /// The file holding shard `(block_id, index)` in block server `i`'s local store.
    pub fn shard_file(&self, i: usize, block_id: u64, index: u32) -> PathBuf {
        assert_eq!(
            self.config.store,
            StoreBackend::Local,
            "shard files are on disk only with the local store"
        );
        blockservers::shard_file(&self.blockserver_dir(i), block_id, index).unwrap_or_else(|| {
            panic!(
                "no file for shard {block_id}/{index} under {}",
                self.blockserver_dir(i).display()
            )
        })
    }

    /// The moto server the block servers use (S3 backend).
    pub fn moto(&self) -> Option<&Moto> {
        self.moto.as_ref()
    }

    /// The Azurite the block servers use (Azure backend).
    pub fn azurite(&self) -> Option<&Azurite> {
        self.azurite.as_ref()
    }

    /// The block servers as the namenodes see them (ListBlockServers on any namenode).
    pub async fn block_servers(&self) -> Vec<BlockServerInfo> {
        let mut last = None;
        for i in 0..self.config.namenodes {
            if !self.namenode_running(i) {
                continue;
            }
            match self.raw_namenode(i).list_block_servers(Empty {}).await {
                Ok(reply) => return reply.into_inner().servers,
                Err(e) => last = Some(e),
            }
        }
        panic!("ListBlockServers failed on every namenode: {last:?}")
    }

    /// Waits until the namenodes list at least `n` live block servers; returns them.
    pub async fn wait_block_servers_alive(
        &self,
        n: usize,
        limit: Duration,
    ) -> Vec<BlockServerInfo> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let servers = self.block_servers().await;
            if servers.iter().filter(|s| s.alive).count() >= n {
                return servers;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("fewer than {n} live block servers after {limit:?}: {servers:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the namenodes list block server `id` as dead.
    pub async fn wait_block_server_dead(&self, id: u64, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let servers = self.block_servers().await;
            if servers.iter().any(|s| s.server_id == id && !s.alive) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("block server {id} still listed alive after {limit:?}: {servers:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn all_logs(&self) -> Vec<PathBuf> {
        let logs = self.root.join("logs");
        let mut names: Vec<String> = (0..self.config.shards)
            .map(|i| Self::name(Role::Shard(i)))
            .chain((0..self.config.namenodes).map(|i| Self::name(Role::Namenode(i))))
            .chain((0..self.config.blockservers).map(|i| Self::name(Role::Blockserver(i))))
            .collect();
        if self.moto.is_some() {
            names.push("moto".into());
        }
        if self.azurite.is_some() {
            names.push("azurite".into());
        }
        names.dedup();
        names
            .iter()
            .map(|n| logs.join(format!("{n}.log")))
            .collect()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let slots = self
            .blockservers
            .iter()
            .chain(&self.namenodes)
            .chain(&self.shards);
        for slot in slots {
            let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(p) = slot.process.as_mut() {
                p.kill();
            }
        }
        if let Some(moto) = self.moto.as_mut() {
            moto.kill();
        }
        if let Some(azurite) = self.azurite.as_mut() {
            azurite.kill();
        }
        // Captured by the runner: shown only when the test fails.
        for log in self.all_logs() {
            eprintln!(
                "---- tail of {} ----\n{}",
                log.display(),
                process::tail(&log, TAIL_LINES)
            );
        }
        if std::env::var_os("ARBOR_KEEP_TEST_DIR").is_some()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("keeping the cluster directory {}", dir.keep().display());
        }
    }
}
