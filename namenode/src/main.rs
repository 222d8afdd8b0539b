//! arbor-namenode: parses flags, connects the metastore shards, starts the leader lease, the
//! background deleter, the retry-record sweep and the data upkeep (freed shards, repair), and serves the namenode API until SIGTERM
//! or SIGINT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arbor_namenode::data::shards::BlockServers;
use arbor_namenode::data::{DataConfig, policy, repair};
use arbor_namenode::deleter::{self, DeleterConfig};
use arbor_namenode::leader::{self, LeaseConfig};
use arbor_namenode::ops::{Namespace, NsConfig};
use arbor_namenode::service::{NamenodeService, ServiceInfo};
use arbor_namenode::sharded::{ShardedStore, StoreConfig};
use arbor_namenode::status::{PageInfo, StatusPage};
use arbor_namenode::{registry, sweeper};
use arbor_proto::namenode::namenode_server::NamenodeServer;
use arbor_proto::records::NamenodeRecord;
use clap::Parser;
use tokio::sync::watch;

#[derive(Parser, Debug)]
#[command(
    name = "arbor-namenode",
    version,
    about = "Arbor namenode: serves the namespace over the metastore shards"
)]
struct Config {
    /// Address to serve the namenode API on.
    #[arg(long, env = "ARBOR_NAMENODE_LISTEN", default_value = "127.0.0.1:8020")]
    listen: SocketAddr,
    /// The metastore shards, shard 0 first: HOST:PORT,HOST:PORT,...
    #[arg(long, env = "ARBOR_METASTORE", value_delimiter = ',', required = true)]
    metastore: Vec<String>,
    /// Virtual partitions of a cluster formatted by this start (ignored once formatted).
    #[arg(long, default_value_t = 4096)]
    vparts: u32,
    /// How long a prepared transaction may stay open; must match the shards' setting.
    #[arg(long, default_value_t = 5000)]
    intent_timeout_ms: u64,
    /// Entries of the path-resolution cache.
    #[arg(long, default_value_t = 100_000)]
    cache_entries: usize,
    /// Age at which the leader removes a call's retry record.
    #[arg(long, default_value_t = 600)]
    retry_ttl_secs: u64,
    /// Deadline of each metastore call, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    rpc_timeout_ms: u64,
    /// How long the shards let this namenode keep the directory rows its path walks pass
    /// through, in milliseconds (0: read them all every time). A change to such a row made
    /// through another namenode is answered once this namenode's lease ran out.
    #[arg(long, env = "ARBOR_ROW_LEASE_MS", default_value_t = 200)]
    row_lease_ms: u64,
    /// Largest block of a file, in bytes.
    #[arg(long, env = "ARBOR_BLOCK_SIZE", default_value_t = 64 << 20)]
    block_size: u64,
    /// Erasure-coding cell, in bytes.
    #[arg(long, env = "ARBOR_CELL_SIZE", default_value_t = 1 << 20)]
    cell_size: u32,
    /// Files up to this many bytes live in the metastore instead of on block servers.
    #[arg(long, env = "ARBOR_INLINE_THRESHOLD", default_value_t = 64 << 10)]
    inline_threshold: u64,
    /// The erasure-coding policy of files under no directory with a policy.
    #[arg(long, env = "ARBOR_DEFAULT_EC_POLICY", default_value = "RS-6-3-1024k")]
    default_ec_policy: String,
    /// How often block servers heartbeat, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    heartbeat_ms: u64,
    /// A block server silent this long is dead and its shards are rebuilt elsewhere.
    #[arg(long, default_value_t = 600_000)]
    dead_after_ms: u64,
    /// How often the leader deletes freed shards and rebuilds lost ones, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    repair_interval_ms: u64,
    /// After this, another writer may recover an unrenewed write lease.
    #[arg(long, default_value_t = 60_000)]
    lease_soft_ms: u64,
    /// After this, the leader recovers an unrenewed write lease and frees blocks allocated
    /// but never committed.
    #[arg(long, default_value_t = 3_600_000)]
    lease_hard_ms: u64,
    /// Deadline of each call to a block server (deleting and rebuilding shards), in ms.
    #[arg(long, default_value_t = 30_000)]
    blockserver_timeout_ms: u64,
    /// How long a path removed by `arbor dfs -rm` stays in its owner's trash before the
    /// leader deletes it: a number of minutes (as HDFS's fs.trash.interval) or a duration
    /// such as 90s, 6h, 1d; 0 turns trash off.
    #[arg(long, env = "ARBOR_TRASH_INTERVAL", default_value = "0", value_parser = trash_interval)]
    trash_interval: Duration,
    /// Serve Prometheus metrics on http://ADDR/metrics and the cluster's status page on
    /// http://ADDR/ (off when not given).
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
    /// The search service's address, reported to clients.
    #[arg(long, env = "ARBOR_SEARCH", default_value = "")]
    search: String,
}

impl Config {
    fn data(&self) -> anyhow::Result<DataConfig> {
        let default_policy = policy::lookup(&self.default_ec_policy, self.cell_size)
            .with_context(|| {
                format!(
                    "unknown --default-ec-policy {:?}; known: {}",
                    self.default_ec_policy,
                    policy::known_names()
                )
            })?
            .name;
        anyhow::ensure!(self.block_size > 0, "--block-size must be positive");
        anyhow::ensure!(self.cell_size > 0, "--cell-size must be positive");
        Ok(DataConfig {
            block_size: self.block_size,
            cell_size: self.cell_size,
            inline_threshold: self.inline_threshold,
            default_policy,
            heartbeat: Duration::from_millis(self.heartbeat_ms),
            dead_after: Duration::from_millis(self.dead_after_ms),
            lease_soft: Duration::from_millis(self.lease_soft_ms),
            lease_hard: Duration::from_millis(self.lease_hard_ms.max(self.lease_soft_ms)),
            ..DataConfig::default()
        })
    }
}

fn trash_interval(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "m"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected minutes or a duration such as 90s, 6h, 1d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (s, m, h or d)")),
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
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
    let data = config.data()?;
    let store = ShardedStore::connect(StoreConfig {
        metastores: config.metastore.clone(),
        vparts: config.vparts,
        rpc_timeout: Duration::from_millis(config.rpc_timeout_ms),
        intent_timeout_ms: config.intent_timeout_ms,
        row_lease: Duration::from_millis(config.row_lease_ms),
        ..StoreConfig::default()
    })
    .await
    .context("connecting to the metastore")?;
    let cluster_id = store.partition_map().cluster_id.clone();

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let namenode_id = uuid::Uuid::new_v4().as_bytes().to_vec();

    let (stop_tx, stop_rx) = watch::channel(false);
    let (is_leader, lease_task) = leader::spawn(
        store.clone(),
        namenode_id.clone(),
        addr.to_string(),
        LeaseConfig::default(),
        stop_rx.clone(),
    );
    let deleter_task = tokio::spawn(deleter::run(
        store.clone(),
        is_leader.clone(),
        DeleterConfig::default(),
        stop_rx.clone(),
    ));
    let sweep_task = tokio::spawn(sweeper::run(
        store.clone(),
        is_leader.clone(),
        Duration::from_secs(config.retry_ttl_secs),
        Duration::from_secs(60),
        stop_rx.clone(),
    ));
    let repair_task = tokio::spawn(repair::run(
        store.clone(),
        Arc::new(BlockServers::new(Duration::from_millis(
            config.blockserver_timeout_ms,
        ))),
        is_leader.clone(),
        data.clone(),
        Duration::from_millis(config.repair_interval_ms),
        stop_rx.clone(),
    ));

    let ns = Arc::new(Namespace::new(
        store.clone(),
        NsConfig {
            cache_entries: config.cache_entries,
            data,
            ..NsConfig::default()
        },
    ));
    let trash_task = tokio::spawn(arbor_namenode::trash::run(
        ns.clone(),
        is_leader.clone(),
        config.trash_interval,
        stop_rx.clone(),
    ));
    let http_addr = match config.metrics_listen {
        Some(at) => {
            let page = Arc::new(StatusPage::new(
                ns.clone(),
                PageInfo {
                    namenode_id: namenode_id.clone(),
                    addr: addr.to_string(),
                    search_addr: config.search.clone(),
                },
                is_leader.clone(),
            ));
            let pages = axum::Router::new().route(
                "/",
                axum::routing::get(move || {
                    let page = page.clone();
                    async move { axum::response::Html(page.render().await) }
                }),
            );
            let bound = arbor_proto::metrics::serve_with(at, pages)
                .await
                .with_context(|| format!("serving metrics and the status page on {at}"))?;
            tracing::info!(%bound, "status page at http://{bound}/, metrics at /metrics");
            bound.to_string()
        }
        None => String::new(),
    };
    let registry_task = tokio::spawn(registry::run(
        store.clone(),
        NamenodeRecord {
            id: namenode_id.clone(),
            addr: addr.to_string(),
            http_addr,
            seen_ns: 0,
        },
        is_leader.clone(),
        stop_rx.clone(),
    ));
    let service = NamenodeService::new(
        ns,
        ServiceInfo {
            namenode_id,
            metastores: store.metastores().to_vec(),
            cluster_id,
            search_addr: config.search.clone(),
            trash_interval: config.trash_interval,
        },
        is_leader,
    );
    println!("arbor-namenode listening on {addr}");
    arbor_proto::serve::server()
        .add_service(NamenodeServer::new(service))
        .serve_with_incoming_shutdown(arbor_proto::serve::incoming(listener), shutdown_signal())
        .await
        .context("serving")?;

    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        let _ = lease_task.await;
        let _ = deleter_task.await;
        let _ = sweep_task.await;
        let _ = repair_task.await;
        let _ = trash_task.await;
        let _ = registry_task.await;
    })
    .await;
    Ok(())
}
