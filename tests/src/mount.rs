//! Mounts of a test cluster through `arbor-mount`, and commands run inside them, possibly as
//! another user.
//!
//! Invariant: a [`Mount`] is served from the moment `start` returns (the mount process printed
//! its ready line) until `unmount` or drop; drop always leaves the mount point unmounted
//! (SIGTERM, then a lazy `fusermount3 -uz` and SIGKILL if the process does not go).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::bins;
use crate::cluster::TestCluster;

/// The mount binary.
pub const MOUNT: &str = "arbor-mount";
/// What the mount process prints once it serves (see `arbor_fuse::mount`).
const READY_LINE: &str = "arbor-mount: ready";

/// A running mount.
pub struct Mount {
    _dir: tempfile::TempDir,
    path: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Mount {
    /// Mounts `cluster` on a fresh directory with `-o options` ("" for none).
    pub fn start(cluster: &TestCluster, options: &str) -> Mount {
        let dir = tempfile::Builder::new()
            .prefix("arbor-mnt-")
            .tempdir()
            .expect("mount point dir");
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).expect("mount point");
        // Other users must reach the mount point itself.
        chmod(dir.path(), 0o755);
        chmod(&path, 0o755);
        let log = dir.path().join("mount.log");
        let mut args = vec![
            path.display().to_string(),
            "--namenode".to_string(),
            cluster.namenode_addrs().join(","),
        ];
        if !options.is_empty() {
            args.push("-o".into());
            args.push(options.into());
        }
        let mut child = Command::new(bins::bin(MOUNT))
            .args(&args)
            .env("ARBOR_MOUNT_CHILD", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).expect("mount log")))
            .spawn()
            .expect("start arbor-mount");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the mount's ready line");
        let mut m = Mount {
            _dir: dir,
            path,
            log,
            child: Some(child),
        };
        if line.trim() != READY_LINE {
            let log = m.log_text();
            m.stop();
            panic!("arbor-mount did not get ready: {line}\n--- log ---\n{log}");
        }
        m
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `rel` inside the mount.
    pub fn at(&self, rel: &str) -> PathBuf {
        self.path.join(rel.trim_start_matches('/'))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Sends SIGTERM and waits for the process to exit (the mount is then gone).
    pub fn unmount(mut self) -> ExitStatus {
        self.stop().expect("the mount process ran")
    }

    /// The process exited (e.g. after an external unmount) within `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                let _ = Command::new("fusermount3")
                    .arg("-uz")
                    .arg(&self.path)
                    .status();
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        if is_mounted(&self.path) {
            let _ = Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.path)
                .status();
        }
    }
}

/// Whether `path` is a mount point now (per /proc/self/mountinfo).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.display().to_string();
    info.lines()
        .any(|l| l.split_whitespace().nth(4) == Some(want.as_str()))
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// What a command did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `sh -c script` in `cwd`, as root.
pub fn sh(cwd: &Path, script: &str) -> Run {
    run(Command::new("sh").arg("-c").arg(script).current_dir(cwd))
}

/// Runs `sh -c script` in `cwd` as `uid`:`gid` with no supplementary groups (`setpriv`).
pub fn sh_as(uid: u32, gid: u32, cwd: &Path, script: &str) -> Run {
    run(Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg("sh")
        .arg("-c")
        .arg(script)
        .current_dir(cwd)
        .env("HOME", "/tmp"))
}

fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("run a command");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The errno of a failed std::io call.
pub fn errno<T: std::fmt::Debug>(res: std::io::Result<T>) -> i32 {
    match res {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e
            .raw_os_error()
            .unwrap_or_else(|| panic!("no errno in {e}")),
    }
}
