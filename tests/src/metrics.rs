//! Scraping a process's Prometheus endpoint: `GET /metrics` over plain HTTP/1.1, parsed with a
//! Prometheus text-format parser (a malformed exposition fails the test).

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The samples of one scrape.
pub struct Scrape(prometheus_parse::Scrape);

/// Fetches and parses `http://addr/metrics`.
pub async fn scrape(addr: &str) -> Scrape {
    let body = tokio::time::timeout(Duration::from_secs(10), fetch(addr))
        .await
        .unwrap_or_else(|_| panic!("{addr}: no answer to GET /metrics"));
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines)
        .unwrap_or_else(|e| panic!("{addr}: the exposition does not parse: {e}\n{body}"));
    Scrape(parsed)
}

async fn fetch(addr: &str) -> String {
    let mut conn = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).await.expect("read the answer");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{addr}: not an HTTP answer: {text}"));
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "{addr}: GET /metrics answered {head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{addr}: {head}"
    );
    body.to_string()
}

impl Scrape {
    /// The sum of `name`'s samples whose labels include every pair of `labels` (0 when none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                prometheus_parse::Value::Histogram(h) => {
                    h.iter().map(|b| b.count).fold(0.0, f64::max)
                }
                prometheus_parse::Value::Summary(_) => 0.0,
            })
            .sum()
    }

    /// Every metric family of the scrape with its help text.
    pub fn families(&self) -> &HashMap<String, String> {
        &self.0.docs
    }
}
