//! Concurrency: creates in one directory never conflict and are all counted; path resolution
//! takes one round when the cache is warm.

mod ops_common;

use std::time::Duration;

use arbor_namenode::memstore::MemStore;
use arbor_namenode::ops::{create::create, list::list, mkdir::mkdir, stat::stat};
use ops_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_in_one_directory_all_succeed() {
    let store = MemStore::new(4, 64);
    store.set_commit_delay(Duration::from_micros(100));
    let ns = ns_on(store);
    mkdir(&ns, &root(), "/hot", 0o755, false).await.unwrap();
    let conflicts_before = ns.store.stats().conflicts;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let ns = if t % 2 == 0 { ns.clone() } else { peer(&ns) };
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                let call = root().with_call(format!("client{t}").as_bytes(), i);
                create(&ns, &call, &format!("/hot/t{t}-{i}"), 0o644, false)
                    .await
                    .expect("create succeeds");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let st = stat(&ns, &root(), "/hot").await.unwrap();
    assert_eq!(st.children, 400);
    let page = list(&ns, &root(), "/hot", "", 10_000).await.unwrap();
    assert_eq!(page.entries.len(), 400);
    assert_eq!(
        ns.store.stats().conflicts,
        conflicts_before,
        "creates in one directory do not conflict with each other"
    );
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn resolution_takes_one_round_with_a_warm_cache() {
    let ns = ns();
    mkdir(&ns, &root(), "/a/b/c/d", 0o755, true).await.unwrap();
    create(&ns, &root(), "/a/b/c/d/f", 0o644, false)
        .await
        .unwrap();
    let cold = peer(&ns);
    let gets = cold.store.stats().gets;
    stat(&cold, &root(), "/a/b/c/d/f").await.unwrap();
    let cold_rounds = cold.store.stats().gets - gets;
    assert_eq!(cold_rounds, 6, "one round per component, plus the first");
    let gets = cold.store.stats().gets;
    stat(&cold, &root(), "/a/b/c/d/f").await.unwrap();
    assert_eq!(
        cold.store.stats().gets - gets,
        1,
        "warm: everything in one round"
    );
    // A create with a warm cache: one resolution round, then the commit, whose read checks
    // are the versions the resolution read (and the retry record expected absent).
    let gets = cold.store.stats().gets;
    create(&cold, &root(), "/a/b/c/d/g", 0o644, false)
        .await
        .unwrap();
    assert_eq!(cold.store.stats().gets - gets, 1);
    // mkdir alike.
    let gets = cold.store.stats().gets;
    mkdir(&cold, &root(), "/a/b/c/d/e", 0o755, false)
        .await
        .unwrap();
    assert_eq!(cold.store.stats().gets - gets, 1);
    assert!(cold.resolver.cached() >= 5);
}
