//! `arbor mount MOUNTPOINT [-o …] [-d]`: runs the `arbor-mount` binary that sits next to
//! `arbor` (or in `ARBOR_BIN_DIR`), the way `git` runs `git-foo`. The mount lives in its own
//! crate, which depends on this one, so it cannot be called as a library here.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

/// The mount binary's name.
pub const MOUNT_BIN: &str = "arbor-mount";

#[derive(Args, Debug)]
pub struct MountArgs {
    /// MOUNTPOINT and the options of `arbor-mount` (-o ro,allow_other,attr_timeout=S,…,
    /// -d/--background, --log-file PATH).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub rest: Vec<String>,
}

/// Where `arbor-mount` is: `$ARBOR_BIN_DIR`, else beside this executable.
pub fn mount_binary() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("ARBOR_BIN_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join(MOUNT_BIN));
    }
    let me = std::env::current_exe().context("locating the arbor executable")?;
    let dir = me
        .parent()
        .context("the arbor executable has no directory")?;
    Ok(dir.join(MOUNT_BIN))
}

pub async fn run(args: MountArgs, namenode: Option<&str>) -> anyhow::Result<i32> {
    let bin = mount_binary()?;
    if !bin.is_file() {
        anyhow::bail!(
            "{} not found (build it with `cargo build -p arbor-fuse`, or set ARBOR_BIN_DIR)",
            bin.display()
        );
    }
    let mut cmd = std::process::Command::new(&bin);
    cmd.args(&args.rest);
    if let Some(nn) = namenode.filter(|n| !n.trim().is_empty()) {
        cmd.arg("--namenode").arg(nn);
    }
    // This process becomes the mount, so SIGINT/SIGTERM sent to `arbor mount` reach it and
    // its exit status is the command's. exec returns only on failure.
    use std::os::unix::process::CommandExt;
    let err = cmd.exec();
    Err(anyhow::Error::new(err).context(format!("running {}", bin.display())))
}
