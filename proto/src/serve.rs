//! How every Arbor gRPC server accepts connections: one place, so no server can be started
//! with a setting the others lack. Accepted sockets get TCP_NODELAY (h2 writes a reply's DATA
//! frame and its trailers separately; with Nagle on, the second write waits for the peer's
//! delayed ACK, ~40 ms per call) and TCP keepalive; the HTTP/2 layer pings idle connections
//! so a dead peer is noticed.
//!
//! tonic's `Server::builder().tcp_nodelay(true)` only applies when tonic binds the socket
//! itself, never with `serve_with_incoming*`, which is why the incoming stream is built here.

use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tower::layer::util::{Identity, Stack};

use crate::metrics::RpcMetricsLayer;

/// How often an idle HTTP/2 connection is pinged, and how long a ping may go unanswered.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The accepted connections of `listener`, with Nagle off and TCP keepalive on.
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(KEEPALIVE_INTERVAL))
}

/// A server builder with the settings every Arbor server shares, counting and timing every
/// call it answers (see `metrics`).
pub fn server() -> Server<Stack<RpcMetricsLayer, Identity>> {
    Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .layer(RpcMetricsLayer)
}
