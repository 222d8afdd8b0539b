//! Search answers exactly: 10,000 files with varied sizes, owners, times and xattrs, and a set
//! of queries whose results must equal what a walk of the namespace says they should be.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use arbor_proto::namenode::{FileStatus, SetAttrRequest};
use arbor_tests::namespace::{is_dir, is_file, ok, walk};
use arbor_tests::raw::Caller;
use arbor_tests::search::SearchService;
use arbor_tests::{Config, TestCluster, secs, within};
use futures::StreamExt;

const FILES: usize = 10_000;
const DAY: i64 = 86_400_000_000_000;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// What file `i` is: path, size, uid, gid, age in days (+12 h), xattrs.
struct Spec {
    path: String,
    size: u64,
    uid: u32,
    gid: u32,
    age_days: i64,
    xattrs: Vec<(&'static str, String)>,
}

fn spec(i: usize) -> Spec {
    let ext = ["csv", "txt", "parquet", "log"][i % 4];
    let mut xattrs = Vec::new();
    if i.is_multiple_of(7) {
        xattrs.push(("user.project", ["fraud", "churn"][i % 2].to_string()));
    }
    if i.is_multiple_of(11) {
        xattrs.push(("user.team", format!("team{}", i % 3)));
    }
    Spec {
        path: format!("/q/d{}/e{}/f{i}.{ext}", i % 20, (i / 20) % 10),
        size: ((i * 7919) % 60) as u64 * 1000,
        uid: 1000 + (i % 3) as u32,
        gid: 100 + (i % 2) as u32,
        age_days: (i % 400) as i64,
        xattrs,
    }
}

type Pred = Box<dyn Fn(&str, &FileStatus, &[(&'static str, String)]) -> bool>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_files_answer_queries_exactly() {
    within(secs(1500), async {
        let cluster = TestCluster::start(Config {
            shards: 3,
            namenodes: 1,
            ..Config::default()
        })
        .await;
        let search = SearchService::start(&cluster, &[]).await;
        let client = cluster.client().await;
        for d in 0..20 {
            for e in 0..10 {
                ok(
                    client.mkdir(&format!("/q/d{d}/e{e}"), 0o755, true).await,
                    "mkdir",
                );
            }
        }
        let now = now_ns();
        let caller = Caller::new();
        let raw = cluster.raw_namenode(0);
        futures::stream::iter(0..FILES)
            .map(|i| {
                let client = client.clone();
                let mut raw = raw.clone();
                let ctx = caller.fresh();
                async move {
                    let s = spec(i);
                    ok(client.create(&s.path, 0o644, false).await, "create");
                    let mtime = now - s.age_days * DAY - DAY / 2;
                    raw.set_attr(SetAttrRequest {
                        ctx: Some(ctx),
                        path: s.path.clone(),
                        uid: Some(s.uid),
                        gid: Some(s.gid),
                        size: Some(s.size),
                        mtime_ns: Some(mtime),
                        atime_ns: Some(mtime),
                        ..Default::default()
                    })
                    .await
                    .unwrap_or_else(|e| panic!("set_attr {}: {e}", s.path));
                    for (k, v) in &s.xattrs {
                        ok(client.set_xattr(&s.path, k, v.as_bytes()).await, "setxattr");
                    }
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<()>>()
            .await;
        search.wait_caught_up(&client, secs(300)).await;

        let tree = walk(&client, "/").await;
        assert_eq!(tree.values().filter(|s| is_file(s)).count(), FILES);
        let xattrs: BTreeMap<String, Vec<(&'static str, String)>> =
            (0..FILES).map(|i| (spec(i).path, spec(i).xattrs)).collect();
        let none = Vec::new();
        let at = move |days: i64| now - days * DAY;
        let cases: Vec<(&str, &str, Pred)> = vec![
            (
                "*.csv",
                "/",
                Box::new(|p, s, _| is_file(s) && p.ends_with(".csv")),
            ),
            (
                "name:f1?.txt",
                "/",
                Box::new(|p, _, _| {
                    let n = p.rsplit('/').next().unwrap();
                    n.len() == 7 && n.starts_with("f1") && n.ends_with(".txt")
                }),
            ),
            ("type:d", "/", Box::new(|_, s, _| is_dir(s))),
            (
                "type:d",
                "/q/d3",
                Box::new(|p, s, _| is_dir(s) && (p == "/q/d3" || p.starts_with("/q/d3/"))),
            ),
            (
                "size>30K",
                "/",
                Box::new(|_, s, _| is_file(s) && s.size > 30 * 1024),
            ),
            (
                "size<10K type:f",
                "/",
                Box::new(|_, s, _| is_file(s) && s.size < 10 * 1024),
            ),
            (
                "size>=50000 *.log",
                "/q/d7",
                Box::new(|p, s, _| {
                    is_file(s) && s.size >= 50_000 && p.ends_with(".log") && p.starts_with("/q/d7/")
                }),
            ),
            ("uid=1001", "/", Box::new(|_, s, _| s.uid == 1001)),
            (
                "owner=1002 group=101",
                "/",
                Box::new(|_, s, _| s.uid == 1002 && s.gid == 101),
            ),
            (
                "mtime<30d type:f",
                "/",
                Box::new(move |_, s, _| is_file(s) && s.mtime_ns < at(30)),
            ),
            (
                "mtime>7d type:f",
                "/",
                Box::new(move |_, s, _| is_file(s) && s.mtime_ns > at(7)),
            ),
            (
                "xattr.project=fraud",
                "/",
                Box::new(|_, _, x| x.iter().any(|(k, v)| *k == "user.project" && v == "fraud")),
            ),
            (
                "xattr.user.team",
                "/",
                Box::new(|_, _, x| x.iter().any(|(k, _)| *k == "user.team")),
            ),
            (
                "churn",
                "/",
                Box::new(|_, _, x| x.iter().any(|(_, v)| v == "churn")),
            ),
            (
                "team1 *.csv",
                "/q",
                Box::new(|p, _, x| p.ends_with(".csv") && x.iter().any(|(_, v)| v == "team1")),
            ),
        ];
        for (q, prefix, pred) in cases {
            let want: Vec<String> = tree
                .iter()
                .filter(|(p, s)| pred(p, s, xattrs.get(*p).unwrap_or(&none)))
                .map(|(p, _)| p.clone())
                .collect();
            let got = search.paths(&client, q, prefix).await;
            assert!(!want.is_empty(), "query {q:?} should match something");
            assert_eq!(got.len(), want.len(), "query {q:?} under {prefix}");
            assert_eq!(got, want, "query {q:?} under {prefix}");
        }
        // Hits carry the attributes a stat reports.
        let r = search.query(&client, "f123.log", "/").await;
        assert_eq!(r.hits.len(), 1);
        let st = &tree[&r.hits[0].path];
        assert_eq!(
            (r.hits[0].size, r.hits[0].uid, r.hits[0].gid),
            (st.size, st.uid, st.gid)
        );
        assert_eq!(r.hits[0].mtime_ns, st.mtime_ns);
        // A bad query is an error, not an empty answer.
        assert!(
            client
                .search_at(&search.addr(), "size>lots", "/", 10)
                .await
                .is_err()
        );
    })
    .await;
}
