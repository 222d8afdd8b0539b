//! arbor-blockserver: parses flags, starts the block server (store, id, gRPC, heartbeat),
//! prints one ready line on stdout, and serves until SIGTERM or SIGINT.

use anyhow::Context;
use arbor_blockserver::{RunningServer, ServerConfig};
use clap::Parser;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "arbor-blockserver",
    version,
    about = "Arbor block server: stores erasure-coded shards in a directory, S3 or Azure Blob"
)]
struct Config {
    /// Address to serve the BlockServer API on (port 0 picks a free port).
    #[arg(
        long,
        env = "ARBOR_BLOCKSERVER_LISTEN",
        default_value = "127.0.0.1:9200"
    )]
    listen: SocketAddr,
    /// Where shards live: file:///abs/dir, s3://bucket/prefix or az://container/prefix.
    #[arg(long, env = "ARBOR_BLOCKSERVER_STORE")]
    store: String,
    /// Namenodes to heartbeat to: HOST:PORT[,HOST:PORT...].
    #[arg(
        long,
        env = "ARBOR_NAMENODE",
        value_delimiter = ',',
        default_value = "127.0.0.1:8020"
    )]
    namenode: Vec<String>,
    /// Capacity to report, in bytes (default: free+used space for file://, 1 TiB otherwise).
    #[arg(long, env = "ARBOR_BLOCKSERVER_CAPACITY")]
    capacity: Option<u64>,
    /// Heartbeat interval in milliseconds (default: what the namenode asks, 3000 until then).
    #[arg(long, env = "ARBOR_BLOCKSERVER_HEARTBEAT_MS")]
    heartbeat_ms: Option<u64>,
    /// Serve Prometheus metrics on http://ADDR/metrics (off when not given).
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::parse();
    tracing::info!(?config, "starting");
    if let Some(at) = config.metrics_listen {
        let bound = arbor_proto::metrics::serve(at)
            .await
            .with_context(|| format!("serving metrics on {at}"))?;
        tracing::info!(%bound, "metrics at http://{bound}/metrics");
    }
    let mut server = RunningServer::start(ServerConfig {
        listen: config.listen,
        store_url: config.store.clone(),
        namenodes: config.namenode.clone(),
        capacity: config.capacity,
        heartbeat: config.heartbeat_ms.map(Duration::from_millis),
    })
    .await
    .with_context(|| format!("starting the block server on {}", config.store))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "arbor-blockserver listening on {} id={}",
            server.addr, server.server_id
        )?;
        out.flush()?;
    }
    tokio::select! {
        r = server.wait() => r.context("serving")?,
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            server.shutdown().await.context("shutting down")?;
        }
    }
    Ok(())
}
