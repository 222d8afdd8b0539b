//! The client against namenodes that fail: failover to the next namenode, the same call id on
//! every retry of one call, answers returned at once, a bounded wait when nobody answers, and
//! `arbor://host:port` paths routed to the namenode they name.

mod common;

use std::time::{Duration, Instant};

use arbor_client::{Client, ErrorCode, Identity, Options};
use common::Fake;

fn alice() -> Identity {
    Identity {
        uid: 1001,
        gids: vec![100, 7],
        user: "alice".into(),
    }
}

fn client(addrs: &[&str], failover: Duration) -> Client {
    let addrs: Vec<String> = addrs.iter().map(|s| s.to_string()).collect();
    let options = Options {
        failover_deadline: failover,
        ..Options::default()
    };
    Client::connect_with(&addrs, alice(), options).unwrap()
}

#[tokio::test]
async fn fails_over_to_a_live_namenode_and_remembers_it() {
    let fake = Fake::new();
    let _server = fake.serve("127.0.0.1:19540").await;
    // Nothing listens on 19599.
    let c = client(
        &["127.0.0.1:19599", "127.0.0.1:19540"],
        Duration::from_secs(10),
    );
    c.mkdir("/a", 0o755, false).await.unwrap();
    assert_eq!(c.current_namenode(), "127.0.0.1:19540");
    let st = c.stat("/a").await.unwrap();
    assert_eq!(st.uid, 1001);
    assert_eq!(
        fake.calls().len(),
        2,
        "the second call went straight to the live namenode"
    );
}

#[tokio::test]
async fn a_retried_call_keeps_its_call_id() {
    let a = Fake::new();
    let b = Fake::new();
    let _sa = a.serve("127.0.0.1:19541").await;
    let _sb = b.serve("127.0.0.1:19542").await;
    a.fail_next.store(1, std::sync::atomic::Ordering::SeqCst);
    let c = client(
        &["127.0.0.1:19541", "127.0.0.1:19542"],
        Duration::from_secs(10),
    );
    c.mkdir("/x", 0o755, false).await.unwrap();
    assert!(!a.exists("/x") && b.exists("/x"));
    let (ma, ctx_a) = a.calls()[0].clone();
    let (mb, ctx_b) = b.calls()[0].clone();
    assert_eq!((ma.as_str(), mb.as_str()), ("mkdir", "mkdir"));
    assert_eq!(ctx_a, ctx_b, "the retry must be the same request");
    assert_eq!(ctx_a.client_id.len(), 16);
    assert_eq!(ctx_a.uid, 1001);
    assert_eq!(ctx_a.gids, vec![100, 7]);
    assert_eq!(ctx_a.user, "alice");
    c.create("/x/f", 0o644, false).await.unwrap();
    let (_, next) = b.calls()[1].clone();
    assert_eq!(next.client_id, ctx_a.client_id);
    assert!(next.call_id > ctx_a.call_id, "a new call gets a new id");
}

#[tokio::test]
async fn a_lone_namenode_that_is_unavailable_is_retried() {
    let fake = Fake::new();
    let _s = fake.serve("127.0.0.1:19545").await;
    fake.fail_next.store(3, std::sync::atomic::Ordering::SeqCst);
    let c = client(&["127.0.0.1:19545"], Duration::from_secs(10));
    c.mkdir("/d", 0o755, false).await.unwrap();
    let calls = fake.calls();
    assert_eq!(calls.len(), 4);
    assert!(calls.iter().all(|(_, ctx)| *ctx == calls[0].1));
}

#[tokio::test]
async fn answers_are_returned_at_once() {
    let a = Fake::new();
    let b = Fake::new();
    let _sa = a.serve("127.0.0.1:19543").await;
    let _sb = b.serve("127.0.0.1:19544").await;
    let c = client(
        &["127.0.0.1:19543", "127.0.0.1:19544"],
        Duration::from_secs(10),
    );
    let e = c.stat("/missing").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(!c.exists("/missing").await.unwrap());
    c.create("/file", 0o644, false).await.unwrap();
    assert!(!c.exists("/file/below").await.unwrap());
    let e = c.mkdir("/file", 0o755, false).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::AlreadyExists);
    assert!(
        b.calls().is_empty(),
        "errors that are answers are not retried elsewhere"
    );
}

#[tokio::test]
async fn nobody_answering_ends_in_unavailable_after_the_deadline() {
    let c = client(
        &["127.0.0.1:19598", "127.0.0.1:19599"],
        Duration::from_millis(600),
    );
    let begun = Instant::now();
    let e = c.stat("/").await.unwrap_err();
    let took = begun.elapsed();
    assert_eq!(e.code, ErrorCode::Unavailable);
    assert!(e.message.contains("no namenode answered"), "{}", e.message);
    assert!(took >= Duration::from_millis(600), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn a_namenode_that_comes_back_is_reached() {
    let c = client(&["127.0.0.1:19549"], Duration::from_secs(20));
    let fake = Fake::new();
    let late = fake.clone();
    let server = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        late.serve("127.0.0.1:19549").await
    });
    c.mkdir("/late", 0o755, false).await.unwrap();
    assert!(fake.exists("/late"));
    drop(server.await.unwrap());
}

#[tokio::test]
async fn urls_name_the_namenode_to_ask() {
    let a = Fake::new();
    let b = Fake::new();
    let _sa = a.serve("127.0.0.1:19546").await;
    let _sb = b.serve("127.0.0.1:19547").await;
    let c = client(&["127.0.0.1:19546"], Duration::from_secs(5));
    c.mkdir("arbor://127.0.0.1:19547/u", 0o755, false)
        .await
        .unwrap();
    assert!(b.exists("/u") && !a.exists("/u"));
    c.rename("arbor://127.0.0.1:19547/u", "/v").await.unwrap();
    assert!(b.exists("/v"));
    let e = c
        .rename("arbor://127.0.0.1:19547/v", "arbor://127.0.0.1:19546/v")
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    let e = c.stat("hdfs://nn:8020/x").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
}

#[tokio::test]
async fn listings_read_every_page() {
    let fake = Fake::new();
    let _s = fake.serve("127.0.0.1:19548").await;
    let c = client(&["127.0.0.1:19548"], Duration::from_secs(5));
    c.mkdir("/d", 0o755, false).await.unwrap();
    for name in ["e", "a", "d", "c", "b"] {
        c.create(&format!("/d/{name}"), 0o644, false).await.unwrap();
    }
    let names: Vec<String> = c
        .list("/d")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["a", "b", "c", "d", "e"]);
    let (page, more) = c.list_page("/d", "b", 2).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["c", "d"]
    );
    assert!(more);
    let lists = fake.calls().iter().filter(|(m, _)| m == "list").count();
    assert_eq!(
        lists,
        3 + 1,
        "five entries in pages of two, then the explicit page"
    );
}

#[tokio::test]
async fn another_identity_is_another_caller() {
    let fake = Fake::new();
    let _s = fake.serve("127.0.0.1:19550").await;
    let c = client(&["127.0.0.1:19550"], Duration::from_secs(5));
    let bob = c.clone().with_identity(Identity {
        uid: 1002,
        gids: vec![100],
        user: "bob".into(),
    });
    c.mkdir("/a", 0o755, false).await.unwrap();
    bob.mkdir("/b", 0o755, false).await.unwrap();
    let calls = fake.calls();
    assert_eq!(calls[0].1.uid, 1001);
    assert_eq!(calls[1].1.uid, 1002);
    assert_eq!(calls[1].1.user, "bob");
    assert_ne!(calls[0].1.client_id, calls[1].1.client_id);
    assert_eq!(bob.stat("/b").await.unwrap().uid, 1002);
}

#[tokio::test]
async fn attributes_links_and_xattrs_round_trip() {
    let fake = Fake::new();
    let _s = fake.serve("127.0.0.1:19551").await;
    let c = client(&["127.0.0.1:19551"], Duration::from_secs(5));
    c.create("/f", 0o644, false).await.unwrap();
    assert_eq!(c.chmod("/f", 0o600).await.unwrap().mode, 0o600);
    assert_eq!(c.chown("/f", None, Some(50)).await.unwrap().gid, 50);
    assert_eq!(c.set_times("/f", Some(5), None).await.unwrap().mtime_ns, 5);
    assert_eq!(c.truncate("/f", 99).await.unwrap().size, 99);
    c.symlink("/f", "/l").await.unwrap();
    assert_eq!(c.readlink("/l").await.unwrap(), "/f");
    c.set_xattr("/f", "user.k", b"v").await.unwrap();
    assert_eq!(c.get_xattr("/f", "user.k").await.unwrap(), b"v");
    assert_eq!(
        c.list_xattrs("/f").await.unwrap(),
        vec![("user.k".to_string(), b"v".to_vec())]
    );
    c.remove_xattr("/f", "user.k").await.unwrap();
    assert_eq!(
        c.get_xattr("/f", "user.k").await.unwrap_err().code,
        ErrorCode::NoXattr
    );
    assert!(c.unlink("/l").await.unwrap());
    c.mkdir("/d", 0o755, false).await.unwrap();
    assert_eq!(
        c.unlink("/d").await.unwrap_err().code,
        ErrorCode::IsADirectory
    );
    assert_eq!(
        c.rmdir("/f").await.unwrap_err().code,
        ErrorCode::NotADirectory
    );
    assert!(c.rmdir("/d").await.unwrap());
    let summary = c.content_summary("/").await.unwrap();
    assert_eq!(
        (summary.directories, summary.files, summary.length),
        (1, 1, 99)
    );
    assert!(c.fsck("/").await.unwrap().healthy);
    assert_eq!(c.cluster_info().await.unwrap().shards, 1);
}
