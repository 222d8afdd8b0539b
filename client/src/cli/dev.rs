//! `arbor dev`: a whole local cluster in the foreground. It starts the metastore shards, then
//! the namenodes (the first one formats a new cluster), then the block servers (shards stored
//! under DIR/blockserver-N, or under an S3/Azure prefix with `--store-url`), each as a child
//! process found next to the `arbor` executable, and supervises them until SIGINT/SIGTERM.
//!
//! Invariants: a child counts as started only once it printed its `listening on` line; child
//! output goes to `DIR/logs/NAME.log`; a child that dies while the cluster runs is reported and
//! restarted with the same arguments (so its data survives a `kill -9`); on shutdown the
//! block servers stop first, then the namenodes, then the shards (SIGTERM, SIGKILL after a grace period), and children are
//! in their own process group with a parent-death signal, so they neither see the terminal's
//! Ctrl-C before the supervisor does nor outlive it.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// How a dev cluster is laid out.
#[derive(Debug, Clone)]
pub struct DevConfig {
    pub dir: PathBuf,
    /// `None`: what the directory was formatted with, else 4.
    pub shards: Option<u32>,
    pub namenodes: u32,
    pub metastore_port: u16,
    pub namenode_port: u16,
    /// Where the sibling binaries are; `None`: next to the running executable.
    pub bin_dir: Option<PathBuf>,
    /// Block servers; server N listens on blockserver_port+N.
    pub blockservers: u32,
    pub blockserver_port: u16,
    /// `None`: each block server stores under DIR/blockserver-N; else under URL/bs-N
    /// (`s3://bucket/prefix`, `az://container/prefix`).
    pub store_url: Option<String>,
    /// Port of the search service; `None` runs none.
    pub search_port: Option<u16>,
}

/// Shards of a new dev cluster when `--shards` is not given.
pub const DEFAULT_SHARDS: u32 = 4;
/// Block servers of a dev cluster: enough for RS(4,2) with every shard on its own server.
pub const DEFAULT_BLOCKSERVERS: u32 = 6;
/// The dev cluster's default erasure-coding policy (the production default RS(6,3) needs nine
/// servers).
pub const DEV_EC_POLICY: &str = "RS-4-2-1024k";
/// How long `arbor dfs -rm` keeps removed paths in the dev cluster's trash.
pub const DEV_TRASH_INTERVAL: &str = "1d";
/// Each process serves its Prometheus metrics on its gRPC port plus this.
pub const METRICS_PORT_OFFSET: u16 = 1000;
/// The environment variable the servers' tokio runtimes read their worker count from.
pub const WORKER_THREADS_ENV: &str = "TOKIO_WORKER_THREADS";

/// Runtime workers for each process of a cluster that shares one machine: all its processes
/// share the cores, so one worker each unless the machine has many. A worker per core in each
/// of a dozen processes made every hand-off between tasks a wake-up of another thread: on 2
/// cores one worker each gave 22–35% more stats/s and 7–40% more creates/s.
pub fn local_worker_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / 4).max(1)
}

/// `cmd` runs with [`local_worker_threads`] workers, unless the caller's environment chose.
pub fn size_runtime(cmd: &mut std::process::Command) {
    if std::env::var_os(WORKER_THREADS_ENV).is_none() {
        cmd.env(WORKER_THREADS_ENV, local_worker_threads().to_string());
    }
}

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(5);
const RESTART_DELAY: Duration = Duration::from_secs(1);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(10);
const CONF_FILE: &str = "arbor-dev.conf";
const READY_MARK: &str = "listening on";

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error(
        "cannot find {name} at {} (looked up beside the arbor executable, or in --bin-dir / \
         ARBOR_BIN_DIR); build it with `cargo build --workspace`",
        path.display()
    )]
    MissingBinary { name: String, path: PathBuf },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{label} did not start: {reason}; the end of {}:\n{tail}", log.display())]
    StartFailed {
        label: String,
        reason: String,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "{} holds a cluster formatted with {formatted} metastore shards; run with --shards \
         {formatted} or use another --dir",
        dir.display()
    )]
    ShardMismatch {
        dir: PathBuf,
        formatted: u32,
        requested: u32,
    },
    #[error("bad dev configuration: {0}")]
    Config(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DevError {
    let what = what.into();
    move |source| DevError::Io { what, source }
}

/// One supervised process.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// File-name friendly (`metastore-0`), names the log.
    pub name: String,
    /// For people (`metastore shard 0`).
    pub label: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub addr: String,
    /// Where it serves its metrics (`http://…/metrics`).
    pub metrics: String,
    pub log: PathBuf,
}

/// The metrics address of a process listening on `addr` (gRPC port + [`METRICS_PORT_OFFSET`]),
/// and the flag that asks for it.
fn metrics_of(addr: &str) -> Result<(String, [String; 2]), DevError> {
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .ok_or_else(|| DevError::Config(format!("bad address {addr}")))?;
    let port = port.checked_add(METRICS_PORT_OFFSET).ok_or_else(|| {
        DevError::Config(format!(
            "metrics port {port}+{METRICS_PORT_OFFSET} is out of range"
        ))
    })?;
    let at = format!("{host}:{port}");
    Ok((at.clone(), ["--metrics-listen".into(), at]))
}

/// The processes of a cluster, shards first.
#[derive(Debug, Clone)]
pub struct Plan {
    pub shards: Vec<ChildSpec>,
    pub namenodes: Vec<ChildSpec>,
    pub blockservers: Vec<ChildSpec>,
    /// The search service (none or one).
    pub search: Vec<ChildSpec>,
}

/// Lays out the children: shard I on metastore_port+I with data in DIR/shard-I, namenode J on
/// namenode_port+J pointing at every shard.
pub fn plan(cfg: &DevConfig, shards: u32, bin_dir: &Path) -> Result<Plan, DevError> {
    if shards == 0 || cfg.namenodes == 0 {
        return Err(DevError::Config(
            "need at least one shard and one namenode".into(),
        ));
    }
    let port = |base: u16, i: u32, what: &str| {
        u16::try_from(u32::from(base) + i)
            .map_err(|_| DevError::Config(format!("{what} port {base}+{i} is out of range")))
    };
    let logs = cfg.dir.join("logs");
    let search_addr = cfg.search_port.map(|p| format!("127.0.0.1:{p}"));
    let mut shard_specs = Vec::new();
    for i in 0..shards {
        let addr = format!("127.0.0.1:{}", port(cfg.metastore_port, i, "metastore")?);
        shard_specs.push(ChildSpec {
            name: format!("metastore-{i}"),
            label: format!("metastore shard {i}"),
            program: bin_dir.join("arbor-metastore"),
            args: vec![
                "--dir".into(),
                cfg.dir.join(format!("shard-{i}")).display().to_string(),
                "--listen".into(),
                addr.clone(),
                "--shard".into(),
                i.to_string(),
            ],
            addr,
            metrics: String::new(),
            log: logs.join(format!("metastore-{i}.log")),
        });
    }
    let all_shards = shard_specs
        .iter()
        .map(|s| s.addr.clone())
        .collect::<Vec<_>>()
        .join(",");
    let mut nn_specs = Vec::new();
    for j in 0..cfg.namenodes {
        let addr = format!("127.0.0.1:{}", port(cfg.namenode_port, j, "namenode")?);
        let mut args: Vec<String> = vec![
            "--listen".into(),
            addr.clone(),
            "--metastore".into(),
            all_shards.clone(),
            "--default-ec-policy".into(),
            DEV_EC_POLICY.into(),
            "--trash-interval".into(),
            DEV_TRASH_INTERVAL.into(),
        ];
        if let Some(search) = &search_addr {
            args.extend(["--search".into(), search.clone()]);
        }
        nn_specs.push(ChildSpec {
            name: format!("namenode-{j}"),
            label: format!("namenode {j}"),
            program: bin_dir.join("arbor-namenode"),
            args,
            addr,
            metrics: String::new(),
            log: logs.join(format!("namenode-{j}.log")),
        });
    }
    let all_namenodes = nn_specs
        .iter()
        .map(|s| s.addr.clone())
        .collect::<Vec<_>>()
        .join(",");
    let mut bs_specs = Vec::new();
    for n in 0..cfg.blockservers {
        let addr = format!(
            "127.0.0.1:{}",
            port(cfg.blockserver_port, n, "block server")?
        );
        let store = match &cfg.store_url {
            Some(prefix) => format!("{}/bs-{n}", prefix.trim_end_matches('/')),
            None => format!(
                "file://{}",
                cfg.dir.join(format!("blockserver-{n}")).display()
            ),
        };
        bs_specs.push(ChildSpec {
            name: format!("blockserver-{n}"),
            label: format!("block server {n}"),
            program: bin_dir.join("arbor-blockserver"),
            args: vec![
                "--listen".into(),
                addr.clone(),
                "--store".into(),
                store,
                "--namenode".into(),
                all_namenodes.clone(),
            ],
            addr,
            metrics: String::new(),
            log: logs.join(format!("blockserver-{n}.log")),
        });
    }
    let search = search_addr
        .map(|addr| ChildSpec {
            name: "search".into(),
            label: "search service".into(),
            program: bin_dir.join("arbor-search"),
            args: vec![
                "--listen".into(),
                addr.clone(),
                "--namenode".into(),
                all_namenodes.clone(),
                "--dir".into(),
                cfg.dir.join("search").display().to_string(),
            ],
            addr,
            metrics: String::new(),
            log: logs.join("search.log"),
        })
        .into_iter()
        .collect();
    let mut plan = Plan {
        shards: shard_specs,
        namenodes: nn_specs,
        blockservers: bs_specs,
        search,
    };
    for spec in plan
        .shards
        .iter_mut()
        .chain(&mut plan.namenodes)
        .chain(&mut plan.blockservers)
        .chain(&mut plan.search)
    {
        let (at, flag) = metrics_of(&spec.addr)?;
        spec.metrics = at;
        spec.args.extend(flag);
    }
    Ok(plan)
}

/// The shard count recorded in a dev directory's configuration file.
pub fn parse_conf(text: &str) -> Option<u32> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "shards").then(|| value.trim().parse().ok())?
    })
}

fn say(line: &str) {
    println!("{line}");
}

/// Runs the cluster until SIGINT/SIGTERM.
pub async fn run(cfg: DevConfig) -> Result<(), DevError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigint =
        signal(SignalKind::interrupt()).map_err(io_err("installing SIGINT handler"))?;
    let mut sigterm =
        signal(SignalKind::terminate()).map_err(io_err("installing SIGTERM handler"))?;

    let bin_dir = match &cfg.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()
            .map_err(io_err("locating the arbor executable"))?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    let mut needed = vec!["arbor-metastore", "arbor-namenode"];
    if cfg.search_port.is_some() {
        needed.push("arbor-search");
    }
    if cfg.blockservers > 0 {
        needed.push("arbor-blockserver");
    }
    for name in needed {
        let path = bin_dir.join(name);
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(DevError::MissingBinary {
                name: name.into(),
                path,
            });
        }
    }

    tokio::fs::create_dir_all(cfg.dir.join("logs"))
        .await
        .map_err(io_err(format!("creating {}", cfg.dir.display())))?;
    let dir = tokio::fs::canonicalize(&cfg.dir)
        .await
        .map_err(io_err(format!("resolving {}", cfg.dir.display())))?;
    let cfg = DevConfig { dir, ..cfg };

    let conf_path = cfg.dir.join(CONF_FILE);
    let formatted = match tokio::fs::read_to_string(&conf_path).await {
        Ok(text) => parse_conf(&text),
        Err(_) => None,
    };
    let shards = match (formatted, cfg.shards) {
        (Some(f), Some(r)) if f != r => {
            return Err(DevError::ShardMismatch {
                dir: cfg.dir.clone(),
                formatted: f,
                requested: r,
            });
        }
        (Some(f), _) => f,
        (None, r) => r.unwrap_or(DEFAULT_SHARDS),
    };
    let fresh = !tokio::fs::try_exists(cfg.dir.join("shard-0"))
        .await
        .unwrap_or(false);
    let plan = plan(&cfg, shards, &bin_dir)?;
    if fresh {
        say(&format!(
            "arbor dev: formatting a new cluster in {} ({shards} metastore shards)",
            cfg.dir.display()
        ));
    } else {
        say(&format!(
            "arbor dev: starting the cluster in {}",
            cfg.dir.display()
        ));
    }
    tokio::fs::write(&conf_path, format!("shards = {shards}\n"))
        .await
        .map_err(io_err(format!("writing {}", conf_path.display())))?;

    let mut shard_children = start_group(&plan.shards).await?;
    // The first namenode formats a new cluster; the others start once it has.
    let mut nn_children = match start_group(&plan.namenodes[..1]).await {
        Ok(c) => c,
        Err(e) => {
            stop_all(&mut shard_children).await;
            return Err(e);
        }
    };
    match start_group(&plan.namenodes[1..]).await {
        Ok(more) => nn_children.extend(more),
        Err(e) => {
            stop_all(&mut nn_children).await;
            stop_all(&mut shard_children).await;
            return Err(e);
        }
    }
    if cfg.store_url.is_none() {
        for spec in &plan.blockservers {
            if let Some(dir) = spec.args.get(3).and_then(|u| u.strip_prefix("file://")) {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(io_err(format!("creating {dir}")))?;
            }
        }
    }
    let mut bs_children = match start_group(&plan.blockservers).await {
        Ok(c) => c,
        Err(e) => {
            stop_all(&mut nn_children).await;
            stop_all(&mut shard_children).await;
            return Err(e);
        }
    };
    let search_children = match start_group(&plan.search).await {
        Ok(c) => c,
        Err(e) => {
            stop_all(&mut bs_children).await;
            stop_all(&mut nn_children).await;
            stop_all(&mut shard_children).await;
            return Err(e);
        }
    };

    say(&format!(
        "arbor dev: cluster running; data in {}, logs in {}",
        cfg.dir.display(),
        cfg.dir.join("logs").display()
    ));
    for spec in plan
        .shards
        .iter()
        .chain(&plan.namenodes)
        .chain(&plan.blockservers)
        .chain(&plan.search)
    {
        say(&format!(
            "  {:<20} {:<22} metrics http://{}/metrics",
            spec.label, spec.addr, spec.metrics
        ));
    }
    let nn_list = plan
        .namenodes
        .iter()
        .map(|s| s.addr.clone())
        .collect::<Vec<_>>()
        .join(",");
    if let Some(nn) = plan.namenodes.first() {
        say(&format!("Status page: http://{}/", nn.metrics));
    }
    say(&format!("Try: arbor --namenode {nn_list} dfs -ls /"));
    say("Press Ctrl-C to stop.");

    let (search_stop_tx, search_stop) = watch::channel(false);
    let search_tasks = supervise_all(&plan.search, search_children, &search_stop);
    let (bs_stop_tx, bs_stop) = watch::channel(false);
    let (nn_stop_tx, nn_stop) = watch::channel(false);
    let (shard_stop_tx, shard_stop) = watch::channel(false);
    let bs_tasks = supervise_all(&plan.blockservers, bs_children, &bs_stop);
    let nn_tasks = supervise_all(&plan.namenodes, nn_children, &nn_stop);
    let shard_tasks = supervise_all(&plan.shards, shard_children, &shard_stop);

    tokio::select! {
        _ = sigint.recv() => {}
        _ = sigterm.recv() => {}
    }
    say("arbor dev: stopping");
    let _ = search_stop_tx.send(true);
    join_all(search_tasks).await;
    let _ = bs_stop_tx.send(true);
    join_all(bs_tasks).await;
    let _ = nn_stop_tx.send(true);
    join_all(nn_tasks).await;
    let _ = shard_stop_tx.send(true);
    join_all(shard_tasks).await;
    say("arbor dev: stopped");
    Ok(())
}

/// Starts every spec in parallel; on any failure stops the ones that started.
async fn start_group(specs: &[ChildSpec]) -> Result<Vec<Child>, DevError> {
    let results = join_all(specs.iter().map(start)).await;
    let mut started = Vec::new();
    let mut failure = None;
    for r in results {
        match r {
            Ok(child) => started.push(child),
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    match failure {
        None => Ok(started),
        Some(e) => {
            stop_all(&mut started).await;
            Err(e)
        }
    }
}

async fn stop_all(children: &mut [Child]) {
    join_all(children.iter_mut().map(terminate)).await;
}

fn supervise_all(
    specs: &[ChildSpec],
    children: Vec<Child>,
    stop: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    specs
        .iter()
        .cloned()
        .zip(children)
        .map(|(spec, child)| tokio::spawn(supervise(Arc::new(spec), child, stop.clone())))
        .collect()
}

/// Starts one child and waits for its ready line.
pub async fn start(spec: &ChildSpec) -> Result<Child, DevError> {
    let mut log = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .await
        .map_err(io_err(format!("opening {}", spec.log.display())))?;
    let header = format!(
        "--- arbor dev: starting {} {} at {} ---\n",
        spec.program.display(),
        spec.args.join(" "),
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S")
    );
    log.write_all(header.as_bytes())
        .await
        .map_err(io_err(format!("writing {}", spec.log.display())))?;
    let stderr_log = log
        .try_clone()
        .await
        .map_err(io_err(format!("opening {}", spec.log.display())))?
        .into_std()
        .await;

    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr_log))
        .kill_on_drop(true)
        .process_group(0);
    size_runtime(cmd.as_std_mut());
    // SAFETY: the closure runs in the forked child before exec and only calls prctl, which is
    // async-signal-safe; it allocates nothing and touches no locks.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(io_err(format!("starting {}", spec.program.display())))?;
    let (ready_tx, ready_rx) = oneshot::channel();
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(pump(stdout, log, ready_tx));
    }
    let failed = |reason: String| async move {
        DevError::StartFailed {
            label: spec.label.clone(),
            reason,
            log: spec.log.clone(),
            tail: log_tail(&spec.log, 15).await,
        }
    };
    tokio::select! {
        ready = ready_rx => match ready {
            Ok(()) => Ok(child),
            Err(_) => {
                let status = child.wait().await.map(describe).unwrap_or_else(|e| e.to_string());
                Err(failed(format!("it closed its output before listening ({status})")).await)
            }
        },
        status = child.wait() => {
            let status = status.map(describe).unwrap_or_else(|e| e.to_string());
            Err(failed(format!("it exited ({status})")).await)
        }
        _ = tokio::time::sleep(READY_TIMEOUT) => {
            terminate(&mut child).await;
            Err(failed(format!("no \"{READY_MARK}\" line within {READY_TIMEOUT:?}")).await)
        }
    }
}

/// Copies a child's stdout into its log, signalling the first ready line.
async fn pump(stdout: ChildStdout, mut log: tokio::fs::File, ready: oneshot::Sender<()>) {
    let mut ready = Some(ready);
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.contains(READY_MARK)
            && let Some(tx) = ready.take()
        {
            let _ = tx.send(());
        }
        let _ = log.write_all(format!("{line}\n").as_bytes()).await;
    }
    let _ = log.flush().await;
}

async fn log_tail(path: &Path, lines: usize) -> String {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => tail_without_backtrace(&text, lines),
        Err(e) => format!("(cannot read: {e})"),
    }
}

/// The last `lines` lines of a log, leaving out backtrace frames, which would push the error
/// itself out of view.
pub fn tail_without_backtrace(text: &str, lines: usize) -> String {
    let frame = |l: &str| {
        let t = l.trim_start();
        t.starts_with("at ")
            || t == "Stack backtrace:"
            || t.split_once(": ")
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let kept: Vec<&str> = text.lines().filter(|l| !frame(l)).collect();
    kept[kept.len().saturating_sub(lines)..].join("\n")
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => match nix::sys::signal::Signal::try_from(sig) {
            Ok(s) => format!("killed by {s}"),
            Err(_) => format!("killed by signal {sig}"),
        },
        _ => status.to_string(),
    }
}

/// SIGTERM, then SIGKILL if the child outlives the grace period.
async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
        if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// Watches one child: restarts it when it dies, stops it when told to.
async fn supervise(spec: Arc<ChildSpec>, mut child: Child, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            status = child.wait() => {
                if *stop.borrow() {
                    return;
                }
                let status = status.map(describe).unwrap_or_else(|e| e.to_string());
                say(&format!(
                    "arbor dev: {} exited ({status}); restarting in {}s (log: {})",
                    spec.label,
                    RESTART_DELAY.as_secs(),
                    spec.log.display()
                ));
                match restart(&spec, &mut stop).await {
                    Some(c) => child = c,
                    None => return,
                }
            }
            _ = stop.changed() => {
                terminate(&mut child).await;
                return;
            }
        }
    }
}

async fn restart(spec: &ChildSpec, stop: &mut watch::Receiver<bool>) -> Option<Child> {
    let mut delay = RESTART_DELAY;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return None,
        }
        if *stop.borrow() {
            return None;
        }
        match start(spec).await {
            Ok(child) => {
                say(&format!(
                    "arbor dev: {} is back, listening on {}",
                    spec.label, spec.addr
                ));
                return Some(child);
            }
            Err(e) => {
                delay = (delay * 2).min(MAX_RESTART_DELAY);
                say(&format!(
                    "arbor dev: restarting {} failed: {e}\narbor dev: next try in {}s",
                    spec.label,
                    delay.as_secs()
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> DevConfig {
        DevConfig {
            dir: PathBuf::from("/data/dev"),
            shards: Some(3),
            namenodes: 2,
            metastore_port: 19500,
            namenode_port: 19520,
            bin_dir: None,
            blockservers: 2,
            blockserver_port: 19530,
            store_url: None,
            search_port: Some(19540),
        }
    }

    #[test]
    fn plan_lays_out_ports_dirs_and_logs() {
        let p = plan(&cfg(), 3, Path::new("/bin/dir")).unwrap();
        assert_eq!(p.shards.len(), 3);
        assert_eq!(p.namenodes.len(), 2);
        let s2 = &p.shards[2];
        assert_eq!(s2.program, PathBuf::from("/bin/dir/arbor-metastore"));
        assert_eq!(
            s2.args,
            [
                "--dir",
                "/data/dev/shard-2",
                "--listen",
                "127.0.0.1:19502",
                "--shard",
                "2",
                "--metrics-listen",
                "127.0.0.1:20502"
            ]
        );
        assert_eq!(s2.metrics, "127.0.0.1:20502");
        assert_eq!(s2.log, PathBuf::from("/data/dev/logs/metastore-2.log"));
        let n1 = &p.namenodes[1];
        assert_eq!(n1.program, PathBuf::from("/bin/dir/arbor-namenode"));
        assert_eq!(
            n1.args,
            [
                "--listen",
                "127.0.0.1:19521",
                "--metastore",
                "127.0.0.1:19500,127.0.0.1:19501,127.0.0.1:19502",
                "--default-ec-policy",
                "RS-4-2-1024k",
                "--trash-interval",
                "1d",
                "--search",
                "127.0.0.1:19540",
                "--metrics-listen",
                "127.0.0.1:20521"
            ]
        );
        assert_eq!(n1.addr, "127.0.0.1:19521");
        assert_eq!(p.blockservers.len(), 2);
        assert_eq!(p.search.len(), 1);
        assert_eq!(p.search[0].program, PathBuf::from("/bin/dir/arbor-search"));
        assert_eq!(p.search[0].args[..2], ["--listen", "127.0.0.1:19540"]);
        let b1 = &p.blockservers[1];
        assert_eq!(b1.program, PathBuf::from("/bin/dir/arbor-blockserver"));
        assert_eq!(
            b1.args,
            [
                "--listen",
                "127.0.0.1:19531",
                "--store",
                "file:///data/dev/blockserver-1",
                "--namenode",
                "127.0.0.1:19520,127.0.0.1:19521",
                "--metrics-listen",
                "127.0.0.1:20531"
            ]
        );
        assert_eq!(b1.log, PathBuf::from("/data/dev/logs/blockserver-1.log"));
    }

    #[test]
    fn block_servers_can_store_in_an_object_store() {
        let mut c = cfg();
        c.store_url = Some("s3://bucket/arbor/".into());
        let p = plan(&c, 1, Path::new("/b")).unwrap();
        assert_eq!(p.blockservers[0].args[3], "s3://bucket/arbor/bs-0");
        assert_eq!(p.blockservers[1].args[3], "s3://bucket/arbor/bs-1");
    }

    #[test]
    fn plan_rejects_bad_layouts() {
        assert!(plan(&cfg(), 0, Path::new("/b")).is_err());
        let mut c = cfg();
        c.metastore_port = 65535;
        assert!(plan(&c, 2, Path::new("/b")).is_err());
    }

    #[test]
    fn log_tails_skip_backtrace_frames() {
        let log = "starting\nError: address in use\n\nStack backtrace:\n   0: anyhow::x\n             at /src/a.rs:1:2\n  12: main\n";
        assert_eq!(
            tail_without_backtrace(log, 15),
            "starting\nError: address in use\n"
        );
        assert_eq!(tail_without_backtrace("a\nb\nc", 2), "b\nc");
    }

    #[test]
    fn conf_file_records_the_shard_count() {
        assert_eq!(parse_conf("shards = 4\n"), Some(4));
        assert_eq!(parse_conf("# comment\nshards=2"), Some(2));
        assert_eq!(parse_conf("shards = many"), None);
        assert_eq!(parse_conf(""), None);
    }

    #[tokio::test]
    async fn a_child_that_exits_early_is_reported_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ChildSpec {
            name: "fake".into(),
            label: "fake part".into(),
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), "echo booting; echo oops >&2; exit 3".into()],
            addr: "127.0.0.1:1".into(),
            metrics: String::new(),
            log: dir.path().join("fake.log"),
        };
        let err = start(&spec).await.unwrap_err().to_string();
        assert!(err.contains("fake part did not start"), "{err}");
        assert!(
            err.contains("exit status 3") || err.contains("closed its output"),
            "{err}"
        );
        let log = std::fs::read_to_string(dir.path().join("fake.log")).unwrap();
        assert!(log.contains("booting") && log.contains("oops"), "{log}");
    }

    #[tokio::test]
    async fn a_child_is_started_once_it_says_it_listens_and_stops_on_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ChildSpec {
            name: "fake".into(),
            label: "fake part".into(),
            program: PathBuf::from("/bin/sh"),
            args: vec![
                "-c".into(),
                "echo 'fake listening on 127.0.0.1:1'; exec sleep 30".into(),
            ],
            addr: "127.0.0.1:1".into(),
            metrics: String::new(),
            log: dir.path().join("fake.log"),
        };
        let mut child = start(&spec).await.unwrap();
        assert!(child.try_wait().unwrap().is_none(), "still running");
        let begun = std::time::Instant::now();
        terminate(&mut child).await;
        assert!(
            begun.elapsed() < STOP_GRACE,
            "SIGTERM should have stopped it"
        );
        assert!(child.try_wait().unwrap().is_some());
    }
}
