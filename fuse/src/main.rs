//! `arbor-mount MOUNTPOINT [-o OPTIONS] [--namenode LIST] [-d]`: mounts Arbor through FUSE.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use arbor_fuse::mount::{CHILD_ENV, READY_LINE};
use arbor_fuse::{MountConfig, MountOptions};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "arbor-mount",
    about = "Mount an Arbor file system through FUSE"
)]
struct Args {
    /// Directory to mount on.
    mountpoint: PathBuf,
    /// Namenodes, host:port[,host:port…].
    #[arg(long, env = "ARBOR_NAMENODE", default_value = arbor_client::DEFAULT_NAMENODE)]
    namenode: String,
    /// Mount options: ro, allow_other, attr_timeout=S, entry_timeout=S, watch / nowatch
    /// (follow changes made elsewhere; on by default), default_permissions /
    /// no_default_permissions, threads=N, fsname=NAME.
    #[arg(short = 'o', value_name = "OPTIONS")]
    options: Vec<String>,
    /// Return once the mount is ready, serving it from a background process.
    #[arg(short = 'd', long = "background", alias = "daemon")]
    background: bool,
    /// Serve in the foreground (the default).
    #[arg(short = 'f', long, conflicts_with = "background")]
    foreground: bool,
    /// Serve Prometheus metrics on http://ADDR/metrics (off when not given).
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Where the background process logs (default: nowhere).
    #[arg(long, env = "ARBOR_MOUNT_LOG")]
    log_file: Option<PathBuf>,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let child = std::env::var_os(CHILD_ENV).is_some();
    match run(child) {
        Ok(()) => {}
        Err(e) => {
            if child {
                // The waiting parent reports it.
                println!("error: {e:#}");
            }
            eprintln!("arbor-mount: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run(child: bool) -> anyhow::Result<()> {
    let args = Args::parse();
    let options = MountOptions::parse(args.options.iter().map(String::as_str))?;
    if args.background && !child {
        let me = std::env::current_exe().context("locating arbor-mount")?;
        let forwarded: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| a != "-d" && a != "--background" && a != "--daemon")
            .collect();
        let pid = arbor_fuse::spawn_background(&me, &forwarded, args.log_file.as_deref())?;
        println!("mounted {} (pid {pid})", args.mountpoint.display());
        return Ok(());
    }
    let cfg = MountConfig {
        mountpoint: args.mountpoint,
        namenodes: arbor_client::client::split_list(&args.namenode),
        options,
        metrics_listen: args.metrics_listen,
    };
    arbor_fuse::serve(&cfg, || {
        if child {
            let mut out = std::io::stdout();
            let _ = writeln!(out, "{READY_LINE}");
            let _ = out.flush();
        }
    })?;
    Ok(())
}
