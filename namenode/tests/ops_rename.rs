//! rename: POSIX semantics, every error case, and the cycle check under concurrency.

mod ops_common;

use std::time::Duration;

use arbor_namenode::error::NnError;
use arbor_namenode::keys;
use arbor_namenode::memstore::MemStore;
use arbor_namenode::ops::{
    create::create, list::list, mkdir::mkdir, rename::rename, stat::stat, xattr::set_xattr,
};
use arbor_proto::namenode::ErrorCode;
use ops_common::*;

#[tokio::test]
async fn rename_a_file_within_and_across_directories() {
    let ns = ns();
    mkdir(&ns, &root(), "/a", 0o755, false).await.unwrap();
    mkdir(&ns, &root(), "/b", 0o755, false).await.unwrap();
    let f = create(&ns, &root(), "/a/f", 0o644, false).await.unwrap();
    rename(&ns, &root(), "/a/f", "/a/g", false).await.unwrap();
    assert_eq!(code(stat(&ns, &root(), "/a/f").await), ErrorCode::NotFound);
    assert_eq!(stat(&ns, &root(), "/a/g").await.unwrap().ino, f.ino);
    rename(&ns, &root(), "/a/g", "/b/h", false).await.unwrap();
    assert_eq!(stat(&ns, &root(), "/b/h").await.unwrap().ino, f.ino);
    assert_eq!(stat(&ns, &root(), "/a").await.unwrap().children, 0);
    assert_eq!(stat(&ns, &root(), "/b").await.unwrap().children, 1);
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn moving_a_directory_moves_its_subtree() {
    let ns = ns();
    mkdir(&ns, &root(), "/src/d/e", 0o755, true).await.unwrap();
    create(&ns, &root(), "/src/d/e/f", 0o644, false)
        .await
        .unwrap();
    mkdir(&ns, &root(), "/dst", 0o755, false).await.unwrap();
    let d = stat(&ns, &root(), "/src/d").await.unwrap();
    let commits = ns.store.stats().commits;
    rename(&ns, &root(), "/src/d", "/dst/moved", false)
        .await
        .unwrap();
    assert_eq!(ns.store.stats().commits, commits + 1, "one transaction");
    assert_eq!(stat(&ns, &root(), "/dst/moved").await.unwrap().ino, d.ino);
    assert!(stat(&ns, &root(), "/dst/moved/e/f").await.is_ok());
    assert_eq!(
        code(stat(&ns, &root(), "/src/d/e/f").await),
        ErrorCode::NotFound
    );
    let src = stat(&ns, &root(), "/src").await.unwrap();
    let dst = stat(&ns, &root(), "/dst").await.unwrap();
    assert_eq!((src.children, src.nlink), (0, 2));
    assert_eq!((dst.children, dst.nlink), (1, 3));
    // fsck checks the moved directory's InodeRecord.parent.
    fsck_ok(&ns).await;
    // Same-directory rename of a directory.
    rename(&ns, &root(), "/dst/moved", "/dst/renamed", false)
        .await
        .unwrap();
    assert!(stat(&ns, &root(), "/dst/renamed/e").await.is_ok());
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn rename_replaces_an_existing_target() {
    let ns = ns();
    let a = create(&ns, &root(), "/a", 0o644, false).await.unwrap();
    let b = create(&ns, &root(), "/b", 0o644, false).await.unwrap();
    set_xattr(&ns, &root(), "/b", "user.x", b"1", Default::default())
        .await
        .unwrap();
    rename(&ns, &root(), "/a", "/b", false).await.unwrap();
    let now_b = stat(&ns, &root(), "/b").await.unwrap();
    assert_eq!(now_b.ino, a.ino);
    assert_ne!(now_b.ino, b.ino);
    assert_eq!(
        ns.store.count_table(keys::XATTR),
        0,
        "the replaced file's xattrs go"
    );
    assert_eq!(stat(&ns, &root(), "/").await.unwrap().children, 1);
    // Directory over an empty directory.
    mkdir(&ns, &root(), "/d1/x", 0o755, true).await.unwrap();
    mkdir(&ns, &root(), "/d2", 0o755, false).await.unwrap();
    let d1 = stat(&ns, &root(), "/d1").await.unwrap();
    rename(&ns, &root(), "/d1", "/d2", false).await.unwrap();
    assert_eq!(stat(&ns, &root(), "/d2").await.unwrap().ino, d1.ino);
    assert!(stat(&ns, &root(), "/d2/x").await.is_ok());
    let r = stat(&ns, &root(), "/").await.unwrap();
    assert_eq!((r.children, r.nlink), (2, 3));
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn rename_errors() {
    let ns = ns();
    mkdir(&ns, &root(), "/d/sub", 0o755, true).await.unwrap();
    mkdir(&ns, &root(), "/full/x", 0o755, true).await.unwrap();
    mkdir(&ns, &root(), "/empty", 0o755, false).await.unwrap();
    create(&ns, &root(), "/f", 0o644, false).await.unwrap();
    create(&ns, &root(), "/g", 0o644, false).await.unwrap();
    let r = |s: &'static str, d: &'static str, nr: bool| {
        let ns = ns.clone();
        async move { rename(&ns, &root(), s, d, nr).await }
    };
    assert_eq!(code(r("/nope", "/x", false).await), ErrorCode::NotFound);
    assert_eq!(code(r("/f", "/nope/x", false).await), ErrorCode::NotFound);
    assert_eq!(code(r("/f", "/g/x", false).await), ErrorCode::NotADirectory);
    assert_eq!(code(r("/d", "/full", false).await), ErrorCode::NotEmpty);
    assert_eq!(
        code(r("/f", "/empty", false).await),
        ErrorCode::IsADirectory
    );
    assert_eq!(code(r("/d", "/f", false).await), ErrorCode::NotADirectory);
    assert_eq!(code(r("/f", "/g", true).await), ErrorCode::AlreadyExists);
    assert_eq!(
        code(r("/d", "/empty", true).await),
        ErrorCode::AlreadyExists
    );
    assert_eq!(code(r("/", "/x", false).await), ErrorCode::Root);
    assert_eq!(code(r("/d", "/", false).await), ErrorCode::Root);
    assert_eq!(
        code(r("/d", "/d/sub/d", false).await),
        ErrorCode::SubdirOfItself
    );
    assert_eq!(
        code(r("/d", "/d/new", false).await),
        ErrorCode::SubdirOfItself
    );
    assert_eq!(
        code(r("rel", "/x", false).await),
        ErrorCode::InvalidArgument
    );
    let e = r("/d", "/d/sub/d", false).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "`/d' to `/d/sub/d': is a subdirectory of itself"
    );
    // Onto itself: nothing changes.
    r("/f", "/f", false).await.unwrap();
    r("/d", "//d/", true).await.unwrap();
    assert!(stat(&ns, &root(), "/f").await.is_ok());
    assert_eq!(stat(&ns, &root(), "/").await.unwrap().children, 5);
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn a_stale_cache_on_another_namenode_is_harmless() {
    let ns1 = ns();
    let ns2 = peer(&ns1);
    mkdir(&ns1, &root(), "/a/b", 0o755, true).await.unwrap();
    create(&ns1, &root(), "/a/b/f", 0o644, false).await.unwrap();
    // ns2 caches /a/b/f.
    let f = stat(&ns2, &root(), "/a/b/f").await.unwrap();
    rename(&ns1, &root(), "/a", "/z", false).await.unwrap();
    mkdir(&ns1, &root(), "/a/b", 0o755, true).await.unwrap();
    assert_eq!(
        code(stat(&ns2, &root(), "/a/b/f").await),
        ErrorCode::NotFound
    );
    assert_eq!(stat(&ns2, &root(), "/z/b/f").await.unwrap().ino, f.ino);
    // And a create through a stale cache lands in the right directory.
    create(&ns2, &root(), "/a/b/f", 0o644, false).await.unwrap();
    assert_eq!(
        list(&ns1, &root(), "/a/b", "", 0)
            .await
            .unwrap()
            .entries
            .len(),
        1
    );
    fsck_ok(&ns1).await;
}

fn crossing_ok(r: &Result<(), NnError>) -> bool {
    match r {
        Ok(()) => true,
        Err(e) => {
            assert!(
                matches!(
                    e.code(),
                    ErrorCode::NotFound | ErrorCode::SubdirOfItself | ErrorCode::NotEmpty
                ),
                "unexpected: {e}"
            );
            false
        }
    }
}

/// Two renames that would each put the other's directory under itself: at most one commits,
/// whatever the interleaving. Run many times with commits slowed, so the two overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crossing_renames_never_make_a_cycle() {
    let store = MemStore::new(4, 64);
    store.set_commit_delay(Duration::from_micros(300));
    let ns = ns_on(store);
    let mut both_tried = 0;
    for round in 0..60 {
        let (a, b) = (format!("/a{round}"), format!("/b{round}"));
        // The targets lie below the other directory's child, so only the validated ancestor
        // chain (not the moved directories' own rows) can tell the two renames apart.
        mkdir(&ns, &root(), &format!("{a}/sub"), 0o755, true)
            .await
            .unwrap();
        mkdir(&ns, &root(), &format!("{b}/sub"), 0o755, true)
            .await
            .unwrap();
        let (n1, n2) = (ns.clone(), peer(&ns));
        let (a1, b1) = (a.clone(), b.clone());
        let t1 =
            tokio::spawn(
                async move { rename(&n1, &root(), &a1, &format!("{b1}/sub/x"), false).await },
            );
        let (a2, b2) = (a.clone(), b.clone());
        let t2 =
            tokio::spawn(
                async move { rename(&n2, &root(), &b2, &format!("{a2}/sub/y"), false).await },
            );
        let (r1, r2) = (t1.await.unwrap(), t2.await.unwrap());
        let wins = usize::from(crossing_ok(&r1)) + usize::from(crossing_ok(&r2));
        assert_eq!(
            wins, 1,
            "exactly one of the crossing renames commits (round {round})"
        );
        both_tried += 1;
    }
    assert_eq!(both_tried, 60);
    assert!(ns.store.stats().conflicts > 0, "the renames did overlap");
    fsck_ok(&ns).await;
}

/// Many tasks moving directories into each other and back at random: afterwards no cycle,
/// everything reachable, every counter true.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_concurrent_moves_keep_the_tree_a_tree() {
    let store = MemStore::new(4, 64);
    store.set_commit_delay(Duration::from_micros(100));
    let ns = ns_on(store);
    const DIRS: usize = 8;
    for i in 0..DIRS {
        mkdir(&ns, &root(), &format!("/d{i}"), 0o755, false)
            .await
            .unwrap();
        create(&ns, &root(), &format!("/d{i}/file"), 0o644, false)
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let ns = if t % 2 == 0 { ns.clone() } else { peer(&ns) };
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            for k in 0..60u64 {
                let x = ((t * 7 + k * 13) % DIRS as u64) as usize;
                let y = ((t * 3 + k * 5 + 1) % DIRS as u64) as usize;
                if x == y {
                    continue;
                }
                // Into a root-level directory, or back out to the root.
                let (src, dst) = if k % 3 == 2 {
                    (format!("/d{y}/d{x}"), format!("/d{x}"))
                } else {
                    (format!("/d{x}"), format!("/d{y}/d{x}"))
                };
                match rename(&ns, &root(), &src, &dst, true).await {
                    Ok(()) => done += 1,
                    Err(e) => assert!(
                        matches!(
                            e.code(),
                            ErrorCode::NotFound
                                | ErrorCode::SubdirOfItself
                                | ErrorCode::AlreadyExists
                                | ErrorCode::NotADirectory
                        ),
                        "unexpected: {e}"
                    ),
                }
            }
            done
        }));
    }
    let mut moved = 0;
    for t in tasks {
        moved += t.await.unwrap();
    }
    assert!(moved > 0);
    let report = fsck_ok(&ns).await;
    assert_eq!(
        report.directories,
        1 + DIRS as u64,
        "every directory still reachable"
    );
    assert_eq!(report.files, DIRS as u64);
}
