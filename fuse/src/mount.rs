//! A mount's life: connect to the cluster, mount, serve until SIGINT/SIGTERM or an external
//! unmount (`fusermount3 -u`, `umount`), then close open writers and unmount. Also the
//! background mode: the command re-runs itself detached and returns once the mount serves.
//!
//! Invariants: the mount is made only after the cluster answered (a dead cluster is an error
//! at mount time, not `EIO` later); on every way out, files being written are closed first,
//! so what was written before the unmount is kept; a busy mount is detached lazily rather
//! than left behind.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use arbor_client::{Client, Identity, Options};

use crate::error::MountError;
use crate::fs::ArborFs;
use crate::options::MountOptions;
use crate::watch::Tails;

/// The line a background child prints on stdout once it serves requests.
pub const READY_LINE: &str = "arbor-mount: ready";
/// The environment variable telling a child it is the background half of a mount.
pub const CHILD_ENV: &str = "ARBOR_MOUNT_CHILD";
/// How long the background parent waits for its child to mount.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What to mount where.
#[derive(Clone, Debug)]
pub struct MountConfig {
    pub mountpoint: PathBuf,
    pub namenodes: Vec<String>,
    pub options: MountOptions,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// Mounts and serves until unmounted; `on_ready` runs once the kernel talks to the mount.
pub fn serve(cfg: &MountConfig, on_ready: impl FnOnce()) -> Result<(), MountError> {
    let meta = std::fs::metadata(&cfg.mountpoint).map_err(|source| MountError::MountPoint {
        path: cfg.mountpoint.clone(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(MountError::MountPoint {
            path: cfg.mountpoint.clone(),
            source: std::io::Error::from_raw_os_error(libc::ENOTDIR),
        });
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("arbor-mount")
        .build()?;
    let client = rt.block_on(async {
        let client = Client::connect_with(&cfg.namenodes, Identity::current(), Options::default())?;
        client.stat("/").await?;
        Ok::<Client, arbor_client::Error>(client)
    })?;
    if let Some(at) = cfg.metrics_listen {
        let bound = rt.block_on(arbor_proto::metrics::serve(at))?;
        tracing::info!(%bound, "metrics at http://{bound}/metrics");
    }
    let mut options = cfg.options.clone();
    let tails = if options.watch {
        match rt.block_on(Tails::open(&client)) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!("cannot follow the change streams ({e}): short cache timeouts");
                options.set_watch(false);
                None
            }
        }
    } else {
        None
    };
    let fs = ArborFs::new(rt.handle().clone(), client, options.clone());
    let shared = fs.shared();
    let session =
        fuser::spawn_mount(fs, &cfg.mountpoint, &cfg.options.fuser_config()).map_err(|source| {
            MountError::Mount {
                path: cfg.mountpoint.clone(),
                source,
            }
        })?;
    shared.set_notifier(session.notifier());
    if let Some(tails) = tails {
        let _guard = rt.enter();
        tails.serve(shared.clone())?;
    }
    tracing::info!(mountpoint = %cfg.mountpoint.display(), ?options, "mounted");
    on_ready();

    let signalled = rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = term.recv() => return Ok::<bool, std::io::Error>(true),
                _ = int.recv() => return Ok(true),
                _ = tick.tick() => {
                    if session.guard.is_finished() {
                        return Ok(false);
                    }
                }
            }
        }
    })?;
    if !signalled {
        tracing::info!("unmounted from outside");
        // The session's end closed the writers (destroy); wait for it.
        if session.join().is_err() {
            tracing::warn!("the session ended with an error");
        }
        return Ok(());
    }
    tracing::info!("signalled: closing open files and unmounting");
    rt.block_on(shared.files.close_all());
    if let Err(e) = session.umount_and_join() {
        // Files still open keep the mount busy: detach it; the kernel fails their later
        // calls once this process is gone.
        tracing::warn!("unmount: {e}; detaching lazily");
        nix::mount::umount2(&cfg.mountpoint, nix::mount::MntFlags::MNT_DETACH).map_err(
            |errno| MountError::Unmount {
                path: cfg.mountpoint.clone(),
                source: std::io::Error::from_raw_os_error(errno as i32),
            },
        )?;
    }
    Ok(())
}

/// Runs `program args` (this same command, in the foreground) detached from the terminal
/// and returns once it reports the mount ready; its log goes to `log` (else nowhere).
pub fn spawn_background(
    program: &Path,
    args: &[String],
    log: Option<&Path>,
) -> Result<u32, MountError> {
    use std::os::unix::process::CommandExt;
    let stderr = match log {
        Some(path) => Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        ),
        None => Stdio::null(),
    };
    let mut child = Command::new(program)
        .args(args)
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .process_group(0)
        .spawn()?;
    let pid = child.id();
    let Some(stdout) = child.stdout.take() else {
        return Err(MountError::Io(std::io::Error::other(
            "no pipe to the child",
        )));
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
        let _ = tx.send(first);
    });
    match rx.recv_timeout(READY_TIMEOUT) {
        Ok(line) if line == READY_LINE => Ok(pid),
        Ok(line) => {
            let _ = child.wait();
            let msg = line
                .strip_prefix("error: ")
                .map(str::to_string)
                .unwrap_or_else(|| "the mount process exited before it was ready".to_string());
            Err(MountError::Io(std::io::Error::other(msg)))
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(MountError::Io(std::io::Error::other(format!(
                "the mount was not ready within {READY_TIMEOUT:?}"
            ))))
        }
    }
}
