//! What every Arbor process tells Prometheus: metrics live in the process-wide registry of
//! the `prometheus` crate, [`serve`] answers `GET /metrics` with them in the text format on
//! an HTTP port of the process's own (`--metrics-listen`), and [`RpcMetricsLayer`], which
//! every gRPC server built by `serve::server` carries, counts each call by service, method
//! and outcome with its latency:
//!
//! - `arbor_rpc_requests_total{service, method, code}`: calls answered, `code` the gRPC
//!   status name (`ok` when the call succeeded);
//! - `arbor_rpc_request_seconds{service, method}`: how long answering took.
//!
//! Each process adds its own metrics (`arbor_metastore_…`, `arbor_namenode_…`, …) with the
//! helpers here. Names follow Prometheus conventions: counters end in `_total`, times are
//! `_seconds` histograms, sizes are in bytes.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

pub use prometheus;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, TextEncoder,
};

/// Latency buckets, in seconds: 50 µs to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

/// The families made so far, by name: asking for a name again (two instances of a component
/// in one process, as tests start) gives the same family.
static FAMILIES: LazyLock<Mutex<HashMap<String, Family>>> = LazyLock::new(Default::default);

#[derive(Clone)]
enum Family {
    Counters(IntCounterVec),
    Gauges(IntGaugeVec),
    Histograms(HistogramVec),
}

fn family(name: &str, make: impl FnOnce() -> prometheus::Result<Family>) -> Family {
    let mut all = FAMILIES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(f) = all.get(name) {
        return f.clone();
    }
    let f = make().unwrap_or_else(|e| panic!("metric {name}: {e}"));
    let registered = match &f {
        Family::Counters(c) => prometheus::register(Box::new(c.clone())),
        Family::Gauges(g) => prometheus::register(Box::new(g.clone())),
        Family::Histograms(h) => prometheus::register(Box::new(h.clone())),
    };
    if let Err(e) = registered {
        panic!("metric {name}: {e}");
    }
    all.insert(name.to_string(), f.clone());
    f
}

/// A counter family in the process's registry.
pub fn counters(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    match family(name, || {
        IntCounterVec::new(Opts::new(name, help), labels).map(Family::Counters)
    }) {
        Family::Counters(c) => c,
        _ => panic!("metric {name} is not a counter"),
    }
}

/// A gauge family in the process's registry.
pub fn gauges(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    match family(name, || {
        IntGaugeVec::new(Opts::new(name, help), labels).map(Family::Gauges)
    }) {
        Family::Gauges(g) => g,
        _ => panic!("metric {name} is not a gauge"),
    }
}

/// A histogram family in the process's registry, with `buckets`.
pub fn histograms(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    match family(name, || {
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            labels,
        )
        .map(Family::Histograms)
    }) {
        Family::Histograms(h) => h,
        _ => panic!("metric {name} is not a histogram"),
    }
}

/// A counter without labels.
pub fn counter(name: &str, help: &str) -> IntCounter {
    counters(name, help, &[]).with_label_values::<&str>(&[])
}

/// A gauge without labels.
pub fn gauge(name: &str, help: &str) -> IntGauge {
    gauges(name, help, &[]).with_label_values::<&str>(&[])
}

/// A histogram without labels, with `buckets`.
pub fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    histograms(name, help, &[], buckets).with_label_values::<&str>(&[])
}

/// Every metric of the process, in Prometheus's text format.
pub fn render() -> String {
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&prometheus::gather(), &mut out) {
        return format!("# encoding the metrics failed: {e}\n");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Serves `GET /metrics` on `addr` in the background (inside a tokio runtime); returns the
/// address bound (port 0 picks one).
pub async fn serve(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    serve_with(addr, axum::Router::new()).await
}

/// [`serve`], with the process's own pages in `pages` beside `/metrics`.
pub async fn serve_with(addr: SocketAddr, pages: axum::Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = pages.route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                render(),
            )
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("metrics server on {bound} stopped: {e}");
        }
    });
    Ok(bound)
}

static RPC_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counters(
        "arbor_rpc_requests_total",
        "gRPC calls answered, by service, method and status code.",
        &["service", "method", "code"],
    )
});
static RPC_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histograms(
        "arbor_rpc_request_seconds",
        "Time to answer a gRPC call (until the reply's headers), by service and method.",
        &["service", "method"],
        LATENCY_BUCKETS,
    )
});

/// Counts and times every call a gRPC server answers.
#[derive(Clone, Copy, Debug, Default)]
pub struct RpcMetricsLayer;

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;
    fn layer(&self, inner: S) -> RpcMetrics<S> {
        RpcMetrics { inner }
    }
}

/// The service [`RpcMetricsLayer`] wraps around a server's services.
#[derive(Clone, Debug)]
pub struct RpcMetrics<S> {
    inner: S,
}

/// `/arbor.namenode.Namenode/Create` → (`namenode`, `Create`).
fn service_and_method(path: &str) -> (&str, &str) {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next().unwrap_or_default();
    let method = parts.next().unwrap_or_default();
    let service = service
        .strip_prefix("arbor.")
        .and_then(|s| s.split('.').next())
        .unwrap_or(service);
    (service, method)
}

/// The status name of a gRPC status number.
fn code_name(code: &str) -> &'static str {
    match code {
        "0" => "ok",
        "1" => "cancelled",
        "2" => "unknown",
        "3" => "invalid_argument",
        "4" => "deadline_exceeded",
        "5" => "not_found",
        "6" => "already_exists",
        "7" => "permission_denied",
        "8" => "resource_exhausted",
        "9" => "failed_precondition",
        "10" => "aborted",
        "11" => "out_of_range",
        "12" => "unimplemented",
        "13" => "internal",
        "14" => "unavailable",
        "15" => "data_loss",
        "16" => "unauthenticated",
        _ => "other",
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_string();
        let start = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            let code = match &res {
                // A failed unary call answers with its status in the headers (trailers only);
                // otherwise the status comes in the trailers, and the call succeeded.
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .map_or("ok", code_name),
                Err(_) => "transport",
            };
            let (service, method) = service_and_method(&path);
            RPC_SECONDS
                .with_label_values(&[service, method])
                .observe(start.elapsed().as_secs_f64());
            RPC_REQUESTS
                .with_label_values(&[service, method, code])
                .inc();
            res
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_named_by_service_and_method() {
        assert_eq!(
            service_and_method("/arbor.namenode.Namenode/Create"),
            ("namenode", "Create")
        );
        assert_eq!(
            service_and_method("/grpc.health.v1.Health/Check"),
            ("grpc.health.v1.Health", "Check")
        );
        assert_eq!(code_name("0"), "ok");
        assert_eq!(code_name("5"), "not_found");
    }

    #[test]
    fn the_text_format_holds_what_was_counted() {
        let c = counters("arbor_test_things_total", "Things.", &["kind"]);
        c.with_label_values(&["a"]).inc_by(3);
        let again = counters("arbor_test_things_total", "Things.", &["kind"]);
        again.with_label_values(&["a"]).inc();
        let text = render();
        assert!(
            text.contains("arbor_test_things_total{kind=\"a\"} 4"),
            "{text}"
        );
    }
}
