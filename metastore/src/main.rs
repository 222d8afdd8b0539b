//! `arbor-metastore`: runs one metastore shard and serves it over gRPC until SIGTERM or SIGINT.

use anyhow::Context;
use arbor_metastore::{Shard, ShardConfig, server};
use clap::Parser;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

/// One metastore shard of an Arbor cluster.
#[derive(Parser, Debug)]
#[command(name = "arbor-metastore", version)]
struct Args {
    /// Directory of the shard's log and tables.
    #[arg(long, env = "ARBOR_METASTORE_DIR")]
    dir: PathBuf,
    /// Address to serve gRPC on.
    #[arg(long, env = "ARBOR_METASTORE_LISTEN", default_value = "127.0.0.1:9100")]
    listen: String,
    /// This shard's index.
    #[arg(long, env = "ARBOR_METASTORE_SHARD", default_value_t = 0)]
    shard: u32,
    /// A prepared transaction older than this is resolved with its primary.
    #[arg(
        long,
        env = "ARBOR_METASTORE_INTENT_TIMEOUT_MS",
        default_value_t = 5000
    )]
    intent_timeout_ms: u64,
    /// Upper bound of the tables' page cache, in MiB.
    #[arg(long, env = "ARBOR_METASTORE_CACHE_MB", default_value_t = 256)]
    cache_mb: u64,
    /// Log segments no change-log cursor needs are kept until the log outgrows this many MiB.
    #[arg(long, env = "ARBOR_METASTORE_LOG_RETAIN_MB", default_value_t = 1024)]
    log_retain_mb: u64,
    /// The log is kept from the lowest change-log cursor on, up to this many MiB.
    #[arg(
        long,
        env = "ARBOR_METASTORE_CHANGES_RETAIN_MB",
        default_value_t = 1024
    )]
    changes_retain_mb: u64,
    /// Segments are kept for a change-log cursor for at most this many seconds (7 days).
    #[arg(long, env = "ARBOR_METASTORE_CHANGES_RETAIN_SECS", default_value_t = 7 * 24 * 3600)]
    changes_retain_secs: u64,
    /// Size of each log segment file (preallocated), in MiB.
    #[arg(long, env = "ARBOR_METASTORE_SEGMENT_MB", default_value_t = 64)]
    segment_mb: u64,
    /// Transaction records are swept once older than this many seconds.
    #[arg(long, env = "ARBOR_METASTORE_TXN_RECORD_TTL_S", default_value_t = 3600)]
    txn_record_ttl_s: u64,
    /// Serve Prometheus metrics on http://ADDR/metrics (off when not given).
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let mut config = ShardConfig::new(&args.dir, args.shard);
    config.intent_timeout = Duration::from_millis(args.intent_timeout_ms);
    config.cache_bytes = args.cache_mb << 20;
    config.log_retain_bytes = args.log_retain_mb << 20;
    config.changes_retain_bytes = args.changes_retain_mb << 20;
    config.changes_retain_age = Duration::from_secs(args.changes_retain_secs);
    config.segment_bytes = args.segment_mb.max(1) << 20;
    config.txn_record_ttl = Duration::from_secs(args.txn_record_ttl_s);
    tracing::info!(?config, listen = %args.listen, "starting metastore shard");
    if let Some(at) = args.metrics_listen {
        let bound = arbor_proto::metrics::serve(at)
            .await
            .with_context(|| format!("serving metrics on {at}"))?;
        tracing::info!(%bound, "metrics at http://{bound}/metrics");
    }

    let shard = Shard::open(config)
        .await
        .with_context(|| format!("opening shard in {}", args.dir.display()))?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "arbor-metastore shard {} listening on {addr}",
            args.shard
        )?;
        out.flush()?;
    }
    server::serve(shard.clone(), listener, shutdown_signal()).await?;
    tracing::info!("stopping");
    shard.close().await?;
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
}
