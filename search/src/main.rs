//! `arbor-search`: the search service. Tails every shard's change log into a local index
//! and answers metadata queries over gRPC.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use arbor_search::indexer::{self, Config};
use arbor_search::service::SearchService;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "arbor-search",
    version,
    about = "Arbor's metadata search service"
)]
struct Args {
    /// Address to serve gRPC on.
    #[arg(long, env = "ARBOR_SEARCH_LISTEN", default_value = arbor_search::DEFAULT_ADDR)]
    listen: String,
    /// Namenode addresses (comma-separated): where the shard list comes from.
    #[arg(long, env = "ARBOR_NAMENODE", default_value = "127.0.0.1:8020")]
    namenode: String,
    /// Directory of the index.
    #[arg(long, env = "ARBOR_SEARCH_DIR")]
    dir: PathBuf,
    /// Rebuild the index from a scan of every shard at start.
    #[arg(long)]
    rebuild: bool,
    /// Name of this service's cursors on the shards.
    #[arg(long, default_value = "search")]
    consumer: String,
    /// Shortest time between two index commits, in ms: how stale a search may be, traded
    /// against the cost of small segments and their merges.
    #[arg(long, default_value_t = 1000)]
    commit_interval_ms: u64,
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
    tracing::info!(?args, "starting search service");
    if let Some(at) = args.metrics_listen {
        let bound = arbor_proto::metrics::serve(at)
            .await
            .with_context(|| format!("serving metrics on {at}"))?;
        tracing::info!(%bound, "metrics at http://{bound}/metrics");
    }
    let namenodes: Vec<String> = args
        .namenode
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let mut config = Config::new(namenodes, args.dir.clone());
    config.rebuild = args.rebuild;
    config.consumer = args.consumer;
    config.min_commit_interval = Duration::from_millis(args.commit_interval_ms);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let shared = indexer::start(config)
        .await
        .with_context(|| format!("opening the index in {}", args.dir.display()))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "arbor-search listening on {addr}")?;
        out.flush()?;
    }
    let incoming = arbor_proto::serve::incoming(listener);
    arbor_proto::serve::server()
        .add_service(SearchService::new(shared).into_server())
        .serve_with_incoming_shutdown(incoming, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
