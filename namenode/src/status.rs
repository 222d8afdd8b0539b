//! The status page: one server-rendered HTML page, served by every namenode at `/` next to
//! its `/metrics`, showing the cluster as this namenode sees it now: the shards with their
//! commit rate, log and open intents; the namenodes and which one leads; the block servers,
//! live or dead, with their capacity; under-strength blocks (from the leader's last repair
//! pass); the search service's progress; and the namespace's totals. Every section is read
//! when the page is asked for (the totals at most every [`TOTALS_EVERY`]), and a part that does
//! not answer shows as down instead of failing the page.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbor_proto::namenode::{BlockServerInfo, ContentSummaryReply};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::attrs;
use crate::data::servers;
use crate::fsck::hex;
use crate::leader;
use crate::ops::{Namespace, content_summary};
use crate::perm::Caller;
use crate::registry;
use crate::sharded::ShardedStore;

/// The namespace's totals walk the tree: they are recomputed at most this often.
pub const TOTALS_EVERY: Duration = Duration::from_secs(30);
/// How long the page waits for any one part of the cluster.
const PART_TIMEOUT: Duration = Duration::from_secs(2);

/// What the page knows of this namenode.
pub struct PageInfo {
    pub namenode_id: Vec<u8>,
    pub addr: String,
    pub search_addr: String,
}

/// Renders the page; keeps what it needs between two views.
pub struct StatusPage {
    ns: Arc<Namespace<ShardedStore>>,
    info: PageInfo,
    leader: watch::Receiver<bool>,
    /// Per shard, the applied sequence last seen and when: the commit rate since.
    seen: Mutex<HashMap<u32, (u64, Instant)>>,
    rates: Mutex<HashMap<u32, f64>>,
    totals: Mutex<Option<(Instant, ContentSummaryReply)>>,
}

/// `s` with HTML's special characters escaped.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A byte count for people: 1.5 GiB.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn ago(ns: i64, now: i64) -> String {
    if ns <= 0 {
        return "never".into();
    }
    let secs = now.saturating_sub(ns) as f64 / 1e9;
    format!("{secs:.1} s ago")
}

async fn timed<T, E: std::fmt::Display>(
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(PART_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {PART_TIMEOUT:?}")),
    }
}

impl StatusPage {
    pub fn new(
        ns: Arc<Namespace<ShardedStore>>,
        info: PageInfo,
        leader: watch::Receiver<bool>,
    ) -> StatusPage {
        StatusPage {
            ns,
            info,
            leader,
            seen: Mutex::default(),
            rates: Mutex::default(),
            totals: Mutex::default(),
        }
    }

    /// The commit rate of `shard` from its applied sequence now (kept for a second at least,
    /// so two quick views do not show noise).
    fn rate(&self, shard: u32, applied: u64) -> Option<f64> {
        let now = Instant::now();
        let mut seen = self.seen.lock();
        match seen.get(&shard).copied() {
            Some((seq, at)) if now.duration_since(at) >= Duration::from_secs(1) => {
                let r = applied.saturating_sub(seq) as f64 / now.duration_since(at).as_secs_f64();
                seen.insert(shard, (applied, now));
                self.rates.lock().insert(shard, r);
                Some(r)
            }
            Some(_) => self.rates.lock().get(&shard).copied(),
            None => {
                seen.insert(shard, (applied, now));
                None
            }
        }
    }

    async fn totals(&self) -> Result<ContentSummaryReply, String> {
        if let Some((at, t)) = *self.totals.lock()
            && at.elapsed() < TOTALS_EVERY
        {
            return Ok(t);
        }
        let t = timed(content_summary::content_summary(
            &self.ns,
            &Caller::root(),
            "/",
        ))
        .await?;
        *self.totals.lock() = Some((Instant::now(), t));
        Ok(t)
    }

    /// The whole page.
    pub async fn render(&self) -> String {
        let store = &self.ns.store;
        let now = attrs::now_ns();
        let mut h = String::new();
        let cluster = hex(&store.partition_map().cluster_id);
        let _ = write!(
            h,
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Arbor {}</title>\
             <style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse;\
             margin-bottom:1.5em}}td,th{{border:1px solid #bbb;padding:.25em .6em;\
             text-align:left}}.up{{color:#060}}.down{{color:#b00;font-weight:bold}}</style>\
             </head><body><h1>Arbor cluster <code id=\"cluster\">{}</code></h1>\
             <p>Seen from namenode <code>{}</code> at {}.</p>",
            esc(&cluster),
            esc(&cluster),
            esc(&self.info.addr),
            esc(&chrono::Utc::now()
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()),
        );

        // The namespace.
        h.push_str("<h2>Namespace</h2>");
        match self.totals().await {
            Ok(t) => {
                let _ = write!(
                    h,
                    "<table id=\"namespace\"><tr><th>directories</th><th>files</th>\
                     <th>symlinks</th><th>bytes</th><th>space consumed</th></tr>\
                     <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
                    t.directories,
                    t.files,
                    t.symlinks,
                    bytes(t.length),
                    bytes(t.space_consumed)
                );
            }
            Err(e) => {
                let _ = write!(h, "<p class=\"down\">totals unavailable: {}</p>", esc(&e));
            }
        }

        // Shards.
        h.push_str(
            "<h2>Metadata shards</h2><table id=\"shards\"><tr><th>shard</th><th>address</th>\
             <th>state</th><th>applied seq</th><th>commits/s</th><th>log</th>\
             <th>log records kept</th><th>open intents</th><th>rows</th></tr>",
        );
        let mut applied = HashMap::new();
        for (i, addr) in store.metastores().iter().enumerate() {
            let i = i as u32;
            match timed(store.shard_status(i)).await {
                Ok(st) => {
                    applied.insert(i, st.applied_seq);
                    let rate = self
                        .rate(i, st.applied_seq)
                        .map_or("—".to_string(), |r| format!("{r:.1}"));
                    let kept = st
                        .applied_seq
                        .saturating_sub(st.first_retained_seq.saturating_sub(1));
                    let _ = write!(
                        h,
                        "<tr class=\"shard\"><td>{i}</td><td>{}</td><td class=\"up\">up</td>\
                         <td>{}</td><td>{rate}</td><td>{}</td><td>{kept}</td><td>{}</td>\
                         <td>{}</td></tr>",
                        esc(addr),
                        st.applied_seq,
                        bytes(st.log_bytes),
                        st.intents.len(),
                        st.rows
                    );
                }
                Err(e) => {
                    let _ = write!(
                        h,
                        "<tr class=\"shard\"><td>{i}</td><td>{}</td>\
                         <td class=\"down\" title=\"{}\">down</td><td colspan=\"6\"></td></tr>",
                        esc(addr),
                        esc(&e)
                    );
                }
            }
        }
        h.push_str("</table>");

        // Namenodes.
        let lead = timed(leader::current(&**store)).await.ok().flatten();
        let _ = write!(
            h,
            "<h2>Namenodes</h2><p>Leader: <code id=\"leader\">{}</code>{}</p>\
             <table id=\"namenodes\"><tr><th>address</th><th>state</th><th>last seen</th>\
             <th>status page</th></tr>",
            esc(lead.as_ref().map_or("none", |l| l.holder_addr.as_str())),
            if *self.leader.borrow() {
                " (this namenode)"
            } else {
                ""
            }
        );
        match timed(registry::list(&**store)).await {
            Ok(list) => {
                for r in list {
                    let alive = registry::is_alive(&r, now);
                    let status = if r.http_addr.is_empty() {
                        String::new()
                    } else {
                        format!("<a href=\"http://{0}/\">{0}</a>", esc(&r.http_addr))
                    };
                    let _ = write!(
                        h,
                        "<tr class=\"namenode\"><td>{}{}</td><td class=\"{}\">{}</td>\
                         <td>{}</td><td>{status}</td></tr>",
                        esc(&r.addr),
                        if r.id == self.info.namenode_id {
                            " (this one)"
                        } else {
                            ""
                        },
                        if alive { "up" } else { "down" },
                        if alive { "up" } else { "down" },
                        ago(r.seen_ns, now),
                    );
                }
            }
            Err(e) => {
                let _ = write!(
                    h,
                    "<tr><td colspan=\"4\" class=\"down\">{}</td></tr>",
                    esc(&e)
                );
            }
        }
        h.push_str("</table>");

        // Block servers.
        h.push_str(
            "<h2>Block servers</h2><table id=\"blockservers\"><tr><th>id</th><th>address</th>\
             <th>store</th><th>state</th><th>capacity</th><th>used</th><th>shards</th>\
             <th>last heartbeat</th></tr>",
        );
        match timed(servers::list(&self.ns)).await {
            Ok(list) => {
                let mut list: Vec<BlockServerInfo> = list.servers;
                list.sort_by_key(|s| s.server_id);
                for s in list {
                    let state = if s.alive { "live" } else { "dead" };
                    let _ = write!(
                        h,
                        "<tr class=\"blockserver {state}\"><td>{}</td><td>{}</td><td>{}</td>\
                         <td class=\"{}\">{state}</td><td>{}</td><td>{}</td><td>{}</td>\
                         <td>{}</td></tr>",
                        s.server_id,
                        esc(&s.addr),
                        esc(&s.store_url),
                        if s.alive { "up" } else { "down" },
                        bytes(s.capacity_bytes),
                        bytes(s.used_bytes),
                        s.shards,
                        ago(s.last_heartbeat_ns, now),
                    );
                }
            }
            Err(e) => {
                let _ = write!(
                    h,
                    "<tr><td colspan=\"8\" class=\"down\">{}</td></tr>",
                    esc(&e)
                );
            }
        }
        h.push_str("</table>");
        let (degraded, missing) = crate::metrics::under_strength();
        let _ = write!(
            h,
            "<p id=\"under-strength\">Under-strength blocks in the leader's last repair pass: \
             {degraded} ({missing} with too few good shards to rebuild){}.</p>",
            if *self.leader.borrow() {
                ""
            } else {
                "; this namenode does not lead: see the leader's page"
            }
        );

        // Search.
        h.push_str("<h2>Search</h2>");
        if self.info.search_addr.is_empty() {
            h.push_str("<p id=\"search\">No search service is configured.</p>");
        } else {
            match timed(search_status(&self.info.search_addr)).await {
                Ok(st) => {
                    let behind: u64 = st
                        .shards
                        .iter()
                        .map(|p| {
                            applied
                                .get(&p.shard)
                                .copied()
                                .unwrap_or(p.shard_applied_seq)
                                .saturating_sub(p.indexed_seq)
                        })
                        .sum();
                    let _ = write!(
                        h,
                        "<p id=\"search\">Search service <code>{}</code>: \
                         <span class=\"up\">up</span>, {} documents, {behind} changes not yet \
                         searchable.</p>",
                        esc(&self.info.search_addr),
                        st.documents
                    );
                }
                Err(e) => {
                    let _ = write!(
                        h,
                        "<p id=\"search\">Search service <code>{}</code>: \
                         <span class=\"down\" title=\"{}\">down</span></p>",
                        esc(&self.info.search_addr),
                        esc(&e)
                    );
                }
            }
        }
        h.push_str("</body></html>\n");
        h
    }
}

async fn search_status(addr: &str) -> Result<arbor_proto::search::StatusReply, String> {
    use arbor_proto::search::search_client::SearchClient;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(PART_TIMEOUT)
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    SearchClient::new(channel)
        .status(arbor_proto::search::StatusRequest {})
        .await
        .map(|r| r.into_inner())
        .map_err(|e| e.message().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_sizes_read_well() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(ago(0, 5), "never");
        assert_eq!(ago(1_000_000_000, 3_500_000_000), "2.5 s ago");
    }
}
