//! One child process of a test cluster: spawned with its stdout and stderr going to a log file,
//! ready once it prints its "listening on" line, and never outliving the test.
//!
//! Invariant: a child dies with the test process. `Drop` kills it, and because a test process can
//! also die without unwinding (a runner's timeout kills it), every child is started with
//! `PR_SET_PDEATHSIG = SIGKILL`. That signal follows the *thread* that forked the child, so all
//! children are forked by one spawner thread that lives as long as the test process.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What to run.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Short name for messages and the log file (`shard-2`, `namenode-0`).
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Set on top of the inherited environment.
    pub env: Vec<(String, String)>,
    /// Removed from the inherited environment (settings of the developer's shell that would
    /// change what the child does).
    pub env_remove: Vec<String>,
    /// Appended to, across restarts of the same part.
    pub log: PathBuf,
}

/// Why a child did not become ready.
#[derive(Debug)]
pub enum StartError {
    /// It exited before printing its ready line.
    Exited {
        status: Option<ExitStatus>,
        /// Its log says the address was taken (another process got the port first).
        addr_in_use: bool,
    },
    /// It was still not ready at the deadline (it has been killed).
    Timeout,
    Spawn(std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Exited {
                status,
                addr_in_use,
            } => write!(
                f,
                "{} before it was ready{}",
                describe(*status),
                if *addr_in_use {
                    " (address in use)"
                } else {
                    ""
                }
            ),
            StartError::Timeout => f.write_str("not ready in time; killed"),
            StartError::Spawn(e) => write!(f, "could not be started: {e}"),
        }
    }
}

/// A running (or exited) child.
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

type SpawnJob = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Forks `command` on the spawner thread (see the module doc for why).
fn spawn_on_spawner(command: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnJob>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("arbor-test-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("start the spawner thread");
        tx
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .send((command, reply_tx))
        .map_err(|_| std::io::Error::other("spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| std::io::Error::other("spawner thread is gone"))?
}

fn unix_time() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", now.as_secs(), now.subsec_millis())
}

impl Process {
    /// Starts the child and waits (at most `ready_timeout`) for a stdout line containing
    /// `listening on`.
    pub async fn start(spec: &Spec, ready_timeout: Duration) -> Result<Process, StartError> {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .map_err(StartError::Spawn)?;
        let _ = writeln!(
            log,
            "==== [{}] starting {}: {} {}{}",
            unix_time(),
            spec.name,
            spec.program.display(),
            spec.args.join(" "),
            spec.env
                .iter()
                .map(|(k, v)| format!(" ({k}={v})"))
                .collect::<String>()
        );
        let stderr = log.try_clone().map_err(StartError::Spawn)?;

        let mut command = Command::new(&spec.program);
        command
            .args(&spec.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        for key in &spec.env_remove {
            command.env_remove(key);
        }
        // Sized like `arbor dev`'s processes, which share the machine the same way.
        arbor_client::cli::dev::size_runtime(&mut command);
        for (key, value) in &spec.env {
            command.env(key, value);
        }
        let parent = std::process::id();
        // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The test process died between fork and prctl: do not run orphaned.
                if libc::getppid() as u32 != parent {
                    return Err(std::io::Error::other("test process is gone"));
                }
                Ok(())
            });
        }
        let mut child = spawn_on_spawner(command).map_err(StartError::Spawn)?;

        let stdout = child.stdout.take().expect("stdout is piped");
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
        let log_path = spec.log.clone();
        std::thread::Builder::new()
            .name(format!("{}-stdout", spec.name))
            .spawn(move || copy_stdout(stdout, &log_path, ready_tx))
            .map_err(StartError::Spawn)?;

        let mut process = Process {
            name: spec.name.clone(),
            child,
            log: spec.log.clone(),
            exited: None,
        };
        match tokio::time::timeout(ready_timeout, ready_rx).await {
            Ok(Ok(())) => Ok(process),
            Ok(Err(_)) => {
                // Stdout closed without the ready line: the child is exiting.
                let status = process.wait_exit(Duration::from_secs(5)).await;
                let log = std::fs::read_to_string(&process.log).unwrap_or_default();
                let addr_in_use = last_start(&log).contains("in use");
                Err(StartError::Exited {
                    status,
                    addr_in_use,
                })
            }
            Err(_) => {
                process.kill();
                Err(StartError::Timeout)
            }
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// SIGKILL (unless it already exited) and reap. Returns how it ended.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
            } else {
                let _ = self.child.kill();
                self.exited = self.child.wait().ok();
            }
        }
        self.exited
    }

    /// How it ended, if it has.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.exited = Some(status);
        }
        self.exited
    }

    /// Waits up to `limit` for the child to exit on its own.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.try_exit() {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Copies the child's stdout into its log, line by line, and signals the ready line once.
fn copy_stdout(stdout: impl Read, log_path: &Path, ready: tokio::sync::oneshot::Sender<()>) {
    let mut ready = Some(ready);
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .ok();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if let Some(log) = log.as_mut() {
            let _ = writeln!(log, "{line}");
        }
        if line.contains("listening on")
            && let Some(tx) = ready.take()
        {
            let _ = tx.send(());
        }
    }
}

/// The part of a log written by its latest start.
pub fn last_start(log: &str) -> &str {
    match log.rfind("==== [") {
        Some(i) => &log[i..],
        None => log,
    }
}

/// The last `lines` lines of a file (at most the last 64 KiB of it).
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    let _ = file.seek(SeekFrom::Start(start));
    let mut text = String::new();
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    text.push_str(&String::from_utf8_lossy(&bytes));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// "killed by SIGKILL", "exit status 1", …: for messages.
pub fn describe(status: Option<ExitStatus>) -> String {
    match status {
        None => "still running".into(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            _ => format!("{s}"),
        },
    }
}
