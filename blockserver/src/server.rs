//! A running block server: opens the store, loads its id and shard index, binds, serves the
//! BlockServer API and heartbeats. The binary and the tests start servers the same way.

use crate::error::Error;
use crate::heartbeat::{self, HeartbeatConfig};
use crate::pool::MAX_MESSAGE;
use crate::service::{BlockService, ServerState};
use crate::store::ShardStore;
use arbor_proto::blockserver::block_server_server::BlockServerServer;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// file:///dir, s3://bucket/prefix or az://container/prefix.
    pub store_url: String,
    /// Namenodes to heartbeat to (host:port); none disables the heartbeat.
    pub namenodes: Vec<String>,
    /// Overrides the store's capacity.
    pub capacity: Option<u64>,
    /// Fixed heartbeat interval; else the namenode's.
    pub heartbeat: Option<Duration>,
}

/// A started server. Dropping it does not stop it: call `shutdown`.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub server_id: u64,
    pub state: ServerState,
    stop: watch::Sender<bool>,
    serve: JoinHandle<Result<(), tonic::transport::Error>>,
    heartbeat: JoinHandle<()>,
}

impl RunningServer {
    pub async fn start(config: ServerConfig) -> Result<RunningServer, Error> {
        let url = config.store_url.clone();
        let store = tokio::task::spawn_blocking(move || ShardStore::open(&url))
            .await
            .map_err(|e| Error::Internal(format!("open task: {e}")))??;
        let state = ServerState::load(store, config.capacity).await?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| Error::Unavailable(format!("bind {}: {e}", config.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Internal(format!("local address: {e}")))?;
        let (stop, stop_rx) = watch::channel(false);

        let service = BlockServerServer::new(BlockService::new(state.clone()))
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let mut serve_stop = stop_rx.clone();
        let serve = tokio::spawn(
            arbor_proto::serve::server()
                .add_service(service)
                .serve_with_incoming_shutdown(arbor_proto::serve::incoming(listener), async move {
                    let _ = serve_stop.changed().await;
                }),
        );
        let hb = HeartbeatConfig {
            namenodes: config.namenodes.clone(),
            addr: addr.to_string(),
            interval: config.heartbeat,
            timeout: Duration::from_secs(5),
        };
        let heartbeat = tokio::spawn(heartbeat::run(state.clone(), hb, stop_rx));
        tracing::info!(%addr, server_id = state.server_id(), store = state.store_url(), "serving");
        Ok(RunningServer {
            addr,
            server_id: state.server_id(),
            state,
            stop,
            serve,
            heartbeat,
        })
    }

    /// Stops serving and heartbeating; waits for calls in progress to end.
    pub async fn shutdown(self) -> Result<(), Error> {
        let _ = self.stop.send(true);
        self.heartbeat.abort();
        match self.serve.await {
            Ok(r) => r.map_err(|e| Error::Internal(format!("serve: {e}"))),
            Err(e) => Err(Error::Internal(format!("serve task: {e}"))),
        }
    }

    /// Waits until the server stops by itself (a serving error).
    pub async fn wait(&mut self) -> Result<(), Error> {
        match (&mut self.serve).await {
            Ok(r) => r.map_err(|e| Error::Internal(format!("serve: {e}"))),
            Err(e) => Err(Error::Internal(format!("serve task: {e}"))),
        }
    }
}
