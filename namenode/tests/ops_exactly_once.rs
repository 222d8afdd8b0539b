//! Exactly-once: a call retried with the same (client id, call id) gets its first answer, even
//! when the first attempt's commit outcome was unknown; without a client id there is no
//! such promise. Also the leader's sweep of old retry records.

mod ops_common;

use std::time::Duration;

use arbor_namenode::keys;
use arbor_namenode::memstore::{CommitFault, MemStore};
use arbor_namenode::ops::{
    create::create, delete::delete, list::list, mkdir::mkdir, rename::rename, setattr::SetAttr,
    setattr::setattr, stat::stat, symlink::symlink, xattr,
};
use arbor_namenode::sweeper;
use arbor_proto::namenode::ErrorCode;
use arbor_proto::namenode::delete_request::Expect;
use arbor_proto::namenode::set_xattr_request::Flag;
use ops_common::*;

const CLIENT: &[u8] = b"client-0123456789";

#[tokio::test]
async fn a_retried_create_returns_the_first_answer() {
    let ns = ns();
    let call = root().with_call(CLIENT, 1);
    let first = create(&ns, &call, "/f", 0o644, false).await.unwrap();
    let again = create(&ns, &call, "/f", 0o644, false).await.unwrap();
    assert_eq!(again, first, "the stored answer, not ALREADY_EXISTS");
    // Retried on another namenode: same.
    let other = peer(&ns);
    assert_eq!(
        create(&other, &call, "/f", 0o644, false).await.unwrap(),
        first
    );
    // A new call id is a new call.
    let next = root().with_call(CLIENT, 2);
    assert_eq!(
        code(create(&ns, &next, "/f", 0o644, false).await),
        ErrorCode::AlreadyExists
    );
    assert_eq!(
        ns.store.count_table(keys::RETRY),
        1,
        "failed calls leave no record"
    );
    // Without a client id, a repeat is a new call.
    create(&ns, &root(), "/g", 0o644, false).await.unwrap();
    assert_eq!(
        code(create(&ns, &root(), "/g", 0o644, false).await),
        ErrorCode::AlreadyExists
    );
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn every_mutation_replays() {
    let ns = ns();
    let mut id = 100;
    let mut call = || {
        id += 1;
        root().with_call(CLIENT, id)
    };
    let c = call();
    let d = mkdir(&ns, &c, "/d", 0o755, false).await.unwrap();
    assert_eq!(mkdir(&ns, &c, "/d", 0o755, false).await.unwrap(), d);

    let c = call();
    let p = mkdir(&ns, &c, "/p/q/r", 0o755, true).await.unwrap();
    assert_eq!(mkdir(&ns, &c, "/p/q/r", 0o755, true).await.unwrap(), p);

    let c = call();
    create(&ns, &root(), "/d/f", 0o644, false).await.unwrap();
    rename(&ns, &c, "/d/f", "/d/g", false).await.unwrap();
    rename(&ns, &c, "/d/f", "/d/g", false).await.unwrap();
    assert!(stat(&ns, &root(), "/d/g").await.is_ok());

    let c = call();
    assert!(
        delete(&ns, &c, "/d/g", false, Expect::Any)
            .await
            .unwrap()
            .deleted
    );
    assert!(
        delete(&ns, &c, "/d/g", false, Expect::Any)
            .await
            .unwrap()
            .deleted,
        "not NOT_FOUND"
    );

    let c = call();
    let l = symlink(&ns, &c, "/x", "/d/l").await.unwrap();
    assert_eq!(symlink(&ns, &c, "/x", "/d/l").await.unwrap(), l);

    let c = call();
    xattr::set_xattr(&ns, &c, "/d", "user.k", b"v", Flag::Create)
        .await
        .unwrap();
    xattr::set_xattr(&ns, &c, "/d", "user.k", b"v", Flag::Create)
        .await
        .unwrap();
    let c = call();
    xattr::remove_xattr(&ns, &c, "/d", "user.k").await.unwrap();
    xattr::remove_xattr(&ns, &c, "/d", "user.k").await.unwrap();

    let c = call();
    let st = setattr(
        &ns,
        &c,
        "/d",
        &SetAttr {
            mode: Some(0o700),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // Meanwhile someone else changes it: the retry still answers what the call did.
    setattr(
        &ns,
        &root(),
        "/d",
        &SetAttr {
            mode: Some(0o711),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let replay = setattr(
        &ns,
        &c,
        "/d",
        &SetAttr {
            mode: Some(0o700),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(replay, st);
    assert_eq!(
        stat(&ns, &root(), "/d").await.unwrap().mode,
        0o711,
        "and changes nothing"
    );

    let c = call();
    mkdir(&ns, &root(), "/tree/sub", 0o755, true).await.unwrap();
    delete(&ns, &c, "/tree", true, Expect::Any).await.unwrap();
    assert!(
        delete(&ns, &c, "/tree", true, Expect::Any)
            .await
            .unwrap()
            .deleted
    );
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn an_unknown_outcome_is_settled_by_the_retry_record() {
    let store = MemStore::new(4, 64);
    let ns = ns_on(store.clone());
    // The commit applied but the answer was lost: the runner re-runs, finds its record, and
    // answers with the first result instead of ALREADY_EXISTS.
    store.inject("create", CommitFault::UnknownAfterApply);
    let call = root().with_call(CLIENT, 7);
    let st = create(&ns, &call, "/f", 0o644, false).await.unwrap();
    assert_eq!(stat(&ns, &root(), "/f").await.unwrap().ino, st.ino);
    // The commit did not apply: the re-run does it, once.
    store.inject("mkdir", CommitFault::UnknownWithoutApply);
    let call = root().with_call(CLIENT, 8);
    mkdir(&ns, &call, "/d", 0o755, false).await.unwrap();
    assert_eq!(
        list(&ns, &root(), "/", "", 0).await.unwrap().entries.len(),
        2
    );
    // Same for rename, whose repeat would otherwise be NOT_FOUND.
    store.inject("rename", CommitFault::UnknownAfterApply);
    rename(&ns, &root().with_call(CLIENT, 9), "/f", "/d/f", false)
        .await
        .unwrap();
    assert!(stat(&ns, &root(), "/d/f").await.is_ok());
    // Without a client id the outcome cannot be learned: the caller is told.
    store.inject("create", CommitFault::UnknownAfterApply);
    assert_eq!(
        code(create(&ns, &root(), "/g", 0o644, false).await),
        ErrorCode::Unavailable
    );
    fsck_ok(&ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_attempts_of_one_call_commit_once() {
    let store = MemStore::new(4, 64);
    store.set_commit_delay(Duration::from_micros(200));
    let ns = ns_on(store);
    mkdir(&ns, &root(), "/d", 0o755, false).await.unwrap();
    for call_id in 0..20u64 {
        let call = root().with_call(CLIENT, 1000 + call_id);
        let mut tasks = Vec::new();
        for i in 0..4 {
            let ns = if i % 2 == 0 { ns.clone() } else { peer(&ns) };
            let call = call.clone();
            tasks.push(tokio::spawn(async move {
                create(&ns, &call, &format!("/d/f{call_id}"), 0o644, false).await
            }));
        }
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(
                t.await
                    .unwrap()
                    .expect("every attempt of the call succeeds"),
            );
        }
        assert!(
            answers.windows(2).all(|w| w[0] == w[1]),
            "one answer for one call"
        );
    }
    assert_eq!(stat(&ns, &root(), "/d").await.unwrap().children, 20);
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn old_retry_records_are_swept() {
    let ns = ns();
    for i in 0..5 {
        create(
            &ns,
            &root().with_call(CLIENT, i),
            &format!("/f{i}"),
            0o644,
            false,
        )
        .await
        .unwrap();
    }
    assert_eq!(ns.store.count_table(keys::RETRY), 5);
    assert_eq!(
        sweeper::sweep_once(&*ns.store, Duration::from_secs(600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(ns.store.count_table(keys::RETRY), 5);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        sweeper::sweep_once(&*ns.store, Duration::from_millis(10))
            .await
            .unwrap(),
        5
    );
    assert_eq!(ns.store.count_table(keys::RETRY), 0);
}
