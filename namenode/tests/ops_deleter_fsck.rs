//! The background deleter removes detached subtrees to completion, resuming after an
//! interruption at any step; fsck finds planted damage.

mod ops_common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arbor_namenode::deleter::{self, DeleterConfig};
use arbor_namenode::fsck;
use arbor_namenode::keys::{self, DirCounter};
use arbor_namenode::memstore::MemStore;
use arbor_namenode::ops::{create::create, delete::delete, mkdir::mkdir, stat::stat, xattr};
use arbor_namenode::txn::{CounterOp, Store, Txn};
use arbor_proto::namenode::delete_request::Expect;
use arbor_proto::namenode::set_xattr_request::Flag;
use arbor_proto::records::{DentryRecord, InodeKind, InodeRecord};
use ops_common::*;
use prost::Message;
use tokio::sync::watch;

/// /t with `dirs` subdirectories of `files` files each (one with an xattr), plus a nested one.
async fn tree(ns: &Ns, top: &str, dirs: usize, files: usize) {
    mkdir(ns, &root(), &format!("{top}/deep/er/est"), 0o755, true)
        .await
        .unwrap();
    create(ns, &root(), &format!("{top}/deep/er/est/f"), 0o644, false)
        .await
        .unwrap();
    for d in 0..dirs {
        mkdir(ns, &root(), &format!("{top}/d{d}"), 0o755, false)
            .await
            .unwrap();
        for f in 0..files {
            create(ns, &root(), &format!("{top}/d{d}/f{f}"), 0o644, false)
                .await
                .unwrap();
        }
        xattr::set_xattr(
            ns,
            &root(),
            &format!("{top}/d{d}/f0"),
            "user.k",
            b"v",
            Flag::Any,
        )
        .await
        .unwrap();
        xattr::set_xattr(
            ns,
            &root(),
            &format!("{top}/d{d}"),
            "user.k",
            b"v",
            Flag::Any,
        )
        .await
        .unwrap();
    }
}

fn always() -> bool {
    true
}

#[tokio::test]
async fn deleter_removes_a_detached_tree_to_the_last_row() {
    let ns = ns();
    tree(&ns, "/t", 5, 40).await;
    create(&ns, &root(), "/keep", 0o644, false).await.unwrap();
    delete(&ns, &root(), "/t", true, Expect::Any).await.unwrap();
    let mid = fsck_ok(&ns).await;
    assert_eq!(mid.pending_deletes, 1);
    let stats = deleter::drain(&*ns.store, 10, &always).await.unwrap();
    assert_eq!(stats.files, 201);
    assert_eq!(stats.directories, 1 + 5 + 3);
    assert!(stats.steps > 20, "bounded batches: {stats:?}");
    assert_eq!(ns.store.count_table(keys::INODE), 2, "the root and /keep");
    assert_eq!(ns.store.count_table(keys::DENTRY), 1);
    assert_eq!(ns.store.count_table(keys::COUNTER), 1);
    assert_eq!(ns.store.count_table(keys::XATTR), 0);
    assert_eq!(ns.store.count_table(keys::TODELETE), 0);
    let after = fsck_ok(&ns).await;
    assert_eq!(
        (after.pending_deletes, after.directories, after.files),
        (0, 1, 1)
    );
}

#[tokio::test]
async fn an_interrupted_deleter_leaves_a_consistent_state_and_resumes() {
    let ns = ns();
    tree(&ns, "/t", 4, 25).await;
    delete(&ns, &root(), "/t", true, Expect::Any).await.unwrap();
    // Stop after every k-th check of "still leader", as a crash or lost lease would.
    for stop_after in [1u64, 2, 3, 5, 8] {
        let calls = AtomicU64::new(0);
        let keep_going = move || calls.fetch_add(1, Ordering::SeqCst) < stop_after;
        deleter::drain(&*ns.store, 7, &keep_going).await.unwrap();
        let report = fsck_ok(&ns).await;
        assert!(report.pending_deletes >= 1, "still work to do");
    }
    deleter::drain(&*ns.store, 7, &always).await.unwrap();
    assert_eq!(ns.store.count_table(keys::INODE), 1);
    assert_eq!(fsck_ok(&ns).await.pending_deletes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_deleters_racing_creates_into_the_detached_tree_stay_consistent() {
    let store = MemStore::new(4, 64);
    store.set_commit_delay(Duration::from_micros(200));
    let ns = ns_on(store);
    tree(&ns, "/t", 3, 30).await;
    // Creators keep adding to /t/d0 while it is detached: an attempt that resolved the path
    // before the detach may still commit into the detached directory, and must be removed.
    let mut creators = Vec::new();
    for c in 0..3 {
        let late = peer(&ns);
        creators.push(tokio::spawn(async move {
            let mut made = 0u32;
            for i in 0.. {
                match create(&late, &root(), &format!("/t/d0/late{c}-{i}"), 0o644, false).await {
                    Ok(_) => made += 1,
                    Err(_) => return made,
                }
            }
            made
        }));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    delete(&ns, &root(), "/t", true, Expect::Any).await.unwrap();
    let s1 = ns.store.clone();
    let s2 = ns.store.clone();
    let d1 = tokio::spawn(async move { deleter::drain(&*s1, 5, &always).await });
    let d2 = tokio::spawn(async move { deleter::drain(&*s2, 5, &always).await });
    let mut made = 0;
    for c in creators {
        made += c.await.unwrap();
    }
    assert!(made > 0);
    d1.await.unwrap().unwrap();
    d2.await.unwrap().unwrap();
    deleter::drain(&*ns.store, 5, &always).await.unwrap();
    assert_eq!(
        ns.store.count_table(keys::INODE),
        1,
        "nothing of /t is left"
    );
    assert_eq!(ns.store.count_table(keys::DENTRY), 0);
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn the_leader_runs_the_deleter_in_the_background() {
    let ns = ns();
    tree(&ns, "/t", 2, 10).await;
    delete(&ns, &root(), "/t", true, Expect::Any).await.unwrap();
    let (leader_tx, leader_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let config = DeleterConfig {
        batch: 8,
        idle: Duration::from_millis(10),
    };
    let task = tokio::spawn(deleter::run(ns.store.clone(), leader_rx, config, stop_rx));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        ns.store.count_table(keys::TODELETE),
        1,
        "not the leader: nothing happens"
    );
    leader_tx.send(true).unwrap();
    let mut waited = 0;
    while ns.store.count_table(keys::TODELETE) > 0 || ns.store.count_table(keys::INODE) > 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
        assert!(waited < 500, "deleter did not finish");
    }
    stop_tx.send(true).unwrap();
    task.await.unwrap();
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn fsck_finds_planted_damage() {
    let ns = ns();
    mkdir(&ns, &root(), "/d", 0o755, false).await.unwrap();
    let f = create(&ns, &root(), "/d/f", 0o644, false).await.unwrap();
    let d = stat(&ns, &root(), "/d").await.unwrap();
    fsck_ok(&ns).await;

    // An orphan inode: no dentry names it.
    let orphan = keys::make_ino(3, 999_999);
    let inode = InodeRecord {
        kind: InodeKind::File as i32,
        nlink: 1,
        mode: 0o644,
        ..Default::default()
    };
    let mut txn = ns.store.begin();
    txn.put(keys::inode(orphan), inode.encode_to_vec());
    txn.commit().await.unwrap();
    let r = fsck::fsck(&*ns.store, "/").await.unwrap();
    assert!(!r.healthy);
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert!(
        r.problems[0].contains("orphan inode") && r.problems[0].contains(&orphan.to_string()),
        "{:?}",
        r.problems
    );
    let mut txn = ns.store.begin();
    txn.delete(keys::inode(orphan));
    txn.commit().await.unwrap();
    fsck_ok(&ns).await;

    // A wrong counter.
    let mut txn = ns.store.begin();
    txn.counter(
        keys::counter(d.ino),
        DirCounter::WIDTH,
        vec![(DirCounter::CHILDREN, CounterOp::Add, 1)],
    );
    txn.commit().await.unwrap();
    let r = fsck::fsck(&*ns.store, "/").await.unwrap();
    assert!(!r.healthy);
    assert!(
        r.problems
            .iter()
            .any(|p| p.contains("/d") && p.contains("2 entries")),
        "{:?}",
        r.problems
    );
    let mut txn = ns.store.begin();
    txn.counter(
        keys::counter(d.ino),
        DirCounter::WIDTH,
        vec![(DirCounter::CHILDREN, CounterOp::Add, -1)],
    );
    txn.commit().await.unwrap();
    fsck_ok(&ns).await;

    // A dentry naming a missing inode, and a kind mismatch.
    let mut txn = ns.store.begin();
    let ghost = DentryRecord {
        ino: keys::make_ino(1, 123_456),
        kind: InodeKind::File as i32,
    };
    txn.put(keys::dentry(d.ino, "ghost"), ghost.encode_to_vec());
    txn.counter(
        keys::counter(d.ino),
        DirCounter::WIDTH,
        vec![(DirCounter::CHILDREN, CounterOp::Add, 1)],
    );
    let lie = DentryRecord {
        ino: f.ino,
        kind: InodeKind::Directory as i32,
    };
    txn.put(keys::dentry(d.ino, "f"), lie.encode_to_vec());
    txn.commit().await.unwrap();
    let r = fsck::fsck(&*ns.store, "/").await.unwrap();
    assert!(
        r.problems.iter().any(|p| p.contains("missing inode")),
        "{:?}",
        r.problems
    );
    assert!(
        r.problems.iter().any(|p| p.contains("says Directory")),
        "{:?}",
        r.problems
    );

    // A missing path.
    assert!(fsck::fsck(&*ns.store, "/nope").await.is_err());
}
