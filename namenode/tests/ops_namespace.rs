//! mkdir, create, stat, list, delete, setattr, symlink, readlink, content summary over the
//! in-memory store: the results and every error case.

mod ops_common;

use arbor_namenode::fsck;
use arbor_namenode::keys;
use arbor_namenode::ops::setattr::SetAttr;
use arbor_namenode::ops::{
    content_summary::content_summary, create::create, delete::delete, list::list, mkdir::mkdir,
    readlink::readlink, setattr::setattr, stat::stat, symlink::symlink,
};
use arbor_proto::namenode::ErrorCode;
use arbor_proto::namenode::delete_request::Expect;
use arbor_proto::records::InodeKind;
use ops_common::*;

#[tokio::test]
async fn mkdir_creates_a_directory_and_counts_it_in_the_parent() {
    let ns = ns();
    let before = stat(&ns, &root(), "/").await.unwrap();
    let st = mkdir(&ns, &root(), "/a", 0o40755, false).await.unwrap();
    assert_eq!(st.kind, InodeKind::Directory as i32);
    assert_eq!(st.mode, 0o755, "file-type bits are dropped");
    assert_eq!(st.name, "a");
    assert_eq!(st.nlink, 2);
    let again = stat(&ns, &root(), "//a/").await.unwrap();
    assert_eq!(again.ino, st.ino, "normalized path");
    let r = stat(&ns, &root(), "/").await.unwrap();
    assert_eq!(r.children, before.children + 1);
    assert_eq!(r.nlink, 3, "2 + one subdirectory");
    assert!(r.mtime_ns >= st.mtime_ns);
    assert_eq!(r.name, "");
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn mkdir_errors() {
    let ns = ns();
    mkdir(&ns, &root(), "/a", 0o755, false).await.unwrap();
    create(&ns, &root(), "/f", 0o644, false).await.unwrap();
    assert_eq!(
        code(mkdir(&ns, &root(), "/a", 0o755, false).await),
        ErrorCode::AlreadyExists
    );
    assert_eq!(
        code(mkdir(&ns, &root(), "/f", 0o755, false).await),
        ErrorCode::AlreadyExists
    );
    assert_eq!(
        code(mkdir(&ns, &root(), "/", 0o755, false).await),
        ErrorCode::AlreadyExists
    );
    assert_eq!(
        code(mkdir(&ns, &root(), "/x/y", 0o755, false).await),
        ErrorCode::NotFound
    );
    assert_eq!(
        code(mkdir(&ns, &root(), "/f/sub", 0o755, false).await),
        ErrorCode::NotADirectory
    );
    assert_eq!(
        code(mkdir(&ns, &root(), "a/b", 0o755, false).await),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(mkdir(&ns, &root(), "/a/..", 0o755, false).await),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(mkdir(&ns, &root(), "/a/.", 0o755, false).await),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(mkdir(&ns, &root(), "/a\0b", 0o755, false).await),
        ErrorCode::InvalidArgument
    );
    let long = format!("/a/{}", "n".repeat(256));
    assert_eq!(
        code(mkdir(&ns, &root(), &long, 0o755, false).await),
        ErrorCode::NameTooLong
    );
    let ok = format!("/a/{}", "n".repeat(255));
    mkdir(&ns, &root(), &ok, 0o755, false).await.unwrap();
    let e = mkdir(&ns, &root(), "/x/y", 0o755, false).await.unwrap_err();
    assert!(
        e.to_string().contains("/x/y"),
        "message names the path: {e}"
    );
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn mkdir_p_creates_missing_ancestors() {
    let ns = ns();
    let st = mkdir(&ns, &root(), "/p/q/r/s", 0o700, true).await.unwrap();
    assert_eq!(st.name, "s");
    assert_eq!(st.mode, 0o700);
    let q = stat(&ns, &root(), "/p/q").await.unwrap();
    assert_eq!(
        q.mode,
        0o700 | 0o300,
        "ancestors stay writable for their creator"
    );
    // Existing directory: fine with -p.
    let again = mkdir(&ns, &root(), "/p/q/r/s", 0o755, true).await.unwrap();
    assert_eq!(again.ino, st.ino);
    mkdir(&ns, &root(), "/", 0o755, true).await.unwrap();
    create(&ns, &root(), "/p/file", 0o644, false).await.unwrap();
    assert_eq!(
        code(mkdir(&ns, &root(), "/p/file", 0o755, true).await),
        ErrorCode::AlreadyExists
    );
    assert_eq!(
        code(mkdir(&ns, &root(), "/p/file/x/y", 0o755, true).await),
        ErrorCode::NotADirectory
    );
    let p = stat(&ns, &root(), "/p").await.unwrap();
    assert_eq!(p.children, 2);
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn entries_live_beside_their_dentry_and_directories_spread_their_children() {
    use arbor_namenode::txn::Store;
    let ns = ns();
    let vparts = ns.store.vparts();
    let root_content = keys::content_vpart(keys::ROOT_INO, vparts);
    let mut contents = std::collections::HashSet::new();
    for i in 0..24 {
        let d = mkdir(&ns, &root(), &format!("/d{i}"), 0o755, false)
            .await
            .unwrap();
        assert_eq!(
            keys::vpart(d.ino),
            root_content,
            "a directory's inode lives beside its dentry"
        );
        contents.insert(keys::content_vpart(d.ino, vparts));
        let f = create(&ns, &root(), &format!("/d{i}/f"), 0o644, false)
            .await
            .unwrap();
        assert_eq!(
            keys::vpart(f.ino),
            keys::content_vpart(d.ino, vparts),
            "a file lives beside its dentry, in its directory's content partition"
        );
        assert_eq!(f.kind, InodeKind::File as i32);
        assert_eq!(f.size, 0);
        assert_eq!(f.nlink, 1);
    }
    assert!(
        contents.len() > 4,
        "directories spread their children over partitions: {contents:?}"
    );
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn create_owner_group_and_overwrite() {
    let ns = ns();
    mkdir(&ns, &root(), "/g", 0o777, false).await.unwrap();
    setattr(
        &ns,
        &root(),
        "/g",
        &SetAttr {
            gid: Some(500),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let f = create(&ns, &alice(), "/g/f", 0o100640, false)
        .await
        .unwrap();
    assert_eq!(f.uid, 1000);
    assert_eq!(f.gid, 500, "the parent's group");
    assert_eq!(f.mode, 0o640);
    assert_eq!(
        code(create(&ns, &alice(), "/g/f", 0o644, false).await),
        ErrorCode::AlreadyExists
    );
    setattr(
        &ns,
        &alice(),
        "/g/f",
        &SetAttr {
            size: Some(1234),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(stat(&ns, &root(), "/g/f").await.unwrap().size, 1234);
    let g_before = stat(&ns, &root(), "/g").await.unwrap();
    let again = create(&ns, &alice(), "/g/f", 0o644, true).await.unwrap();
    assert_eq!(again.ino, f.ino, "overwrite truncates the same file");
    assert_eq!(again.size, 0);
    assert_eq!(
        stat(&ns, &root(), "/g").await.unwrap().children,
        g_before.children
    );
    mkdir(&ns, &root(), "/g/d", 0o755, false).await.unwrap();
    assert_eq!(
        code(create(&ns, &root(), "/g/d", 0o644, true).await),
        ErrorCode::IsADirectory
    );
    assert_eq!(
        code(create(&ns, &root(), "/g/d", 0o644, false).await),
        ErrorCode::AlreadyExists
    );
    assert_eq!(
        code(create(&ns, &root(), "/", 0o644, true).await),
        ErrorCode::IsADirectory
    );
    assert_eq!(
        code(create(&ns, &root(), "/nope/f", 0o644, false).await),
        ErrorCode::NotFound
    );
    assert_eq!(
        code(create(&ns, &root(), "/g/f/x", 0o644, false).await),
        ErrorCode::NotADirectory
    );
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn directory_status_merges_its_counter_row() {
    let ns = ns();
    let d = mkdir(&ns, &root(), "/d", 0o755, false).await.unwrap();
    for i in 0..3 {
        create(&ns, &root(), &format!("/d/f{i}"), 0o644, false)
            .await
            .unwrap();
    }
    mkdir(&ns, &root(), "/d/sub", 0o755, false).await.unwrap();
    let st = stat(&ns, &root(), "/d").await.unwrap();
    assert_eq!(st.children, 4);
    assert_eq!(st.nlink, 3);
    assert_eq!(st.size, 0);
    assert!(
        st.mtime_ns > d.mtime_ns,
        "creates move the directory's mtime"
    );
    assert_eq!(st.ino, d.ino);
}

#[tokio::test]
async fn list_pages_through_a_directory() {
    let ns = ns();
    mkdir(&ns, &root(), "/big", 0o755, false).await.unwrap();
    for i in 0..2500 {
        create(&ns, &root(), &format!("/big/f{i:05}"), 0o644, false)
            .await
            .unwrap();
    }
    mkdir(&ns, &root(), "/big/zdir", 0o755, false)
        .await
        .unwrap();
    create(&ns, &root(), "/big/zdir/inner", 0o644, false)
        .await
        .unwrap();
    let mut names = Vec::new();
    let mut after = String::new();
    let mut pages = 0;
    loop {
        let page = list(&ns, &root(), "/big", &after, 1000).await.unwrap();
        assert!(page.entries.len() <= 1000);
        pages += 1;
        names.extend(page.entries.iter().map(|e| e.name.clone()));
        if !page.more {
            break;
        }
        after = page.entries.last().unwrap().name.clone();
    }
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 2501);
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "byte order, no repeats"
    );
    let last = list(&ns, &root(), "/big", "f02499", 0).await.unwrap();
    assert_eq!(last.entries.len(), 1);
    let z = &last.entries[0];
    assert_eq!(z.name, "zdir");
    let zs = z.status.as_ref().unwrap();
    assert_eq!(zs.kind, InodeKind::Directory as i32);
    assert_eq!(zs.children, 1, "directory entries carry their counter rows");
    let default_page = list(&ns, &root(), "/big", "", 0).await.unwrap();
    assert_eq!(default_page.entries.len(), 1000);
    assert!(default_page.more);
    let capped = list(&ns, &root(), "/big", "", 50_000).await.unwrap();
    assert_eq!(capped.entries.len(), 2501, "under the 10000 cap");
    // A file lists as itself.
    let one = list(&ns, &root(), "/big/f00007", "", 0).await.unwrap();
    assert_eq!(one.entries.len(), 1);
    assert_eq!(one.entries[0].name, "f00007");
    assert_eq!(
        code(list(&ns, &root(), "/missing", "", 0).await),
        ErrorCode::NotFound
    );
    let empty = list(&ns, &root(), "/big/zdir/inner", "inner", 0)
        .await
        .unwrap();
    assert!(empty.entries.is_empty());
}

#[tokio::test]
async fn delete_files_and_empty_directories() {
    let ns = ns();
    mkdir(&ns, &root(), "/d", 0o755, false).await.unwrap();
    create(&ns, &root(), "/d/f", 0o644, false).await.unwrap();
    arbor_namenode::ops::xattr::set_xattr(&ns, &root(), "/d/f", "user.k", b"v", Default::default())
        .await
        .unwrap();
    mkdir(&ns, &root(), "/d/e", 0o755, false).await.unwrap();
    assert_eq!(
        code(delete(&ns, &root(), "/d/e", false, Expect::FileOnly).await),
        ErrorCode::IsADirectory
    );
    assert_eq!(
        code(delete(&ns, &root(), "/d/f", false, Expect::DirOnly).await),
        ErrorCode::NotADirectory
    );
    assert_eq!(
        code(delete(&ns, &root(), "/d", false, Expect::Any).await),
        ErrorCode::NotEmpty
    );
    assert_eq!(
        code(delete(&ns, &root(), "/", true, Expect::Any).await),
        ErrorCode::Root
    );
    assert_eq!(
        code(delete(&ns, &root(), "/d/nope", false, Expect::Any).await),
        ErrorCode::NotFound
    );
    assert_eq!(
        code(delete(&ns, &root(), "/d/f/x", false, Expect::Any).await),
        ErrorCode::NotADirectory
    );
    assert!(
        delete(&ns, &root(), "/d/f", false, Expect::FileOnly)
            .await
            .unwrap()
            .deleted
    );
    assert_eq!(
        ns.store.count_table(keys::XATTR),
        0,
        "a file's xattrs go with it"
    );
    assert!(
        delete(&ns, &root(), "/d/e", false, Expect::DirOnly)
            .await
            .unwrap()
            .deleted
    );
    assert_eq!(stat(&ns, &root(), "/d").await.unwrap().children, 0);
    assert!(
        delete(&ns, &root(), "/d", false, Expect::Any)
            .await
            .unwrap()
            .deleted
    );
    assert_eq!(code(stat(&ns, &root(), "/d").await), ErrorCode::NotFound);
    assert_eq!(
        ns.store.count_table(keys::INODE),
        1,
        "only the root is left"
    );
    assert_eq!(ns.store.count_table(keys::COUNTER), 1);
    assert_eq!(stat(&ns, &root(), "/").await.unwrap().children, 0);
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn recursive_delete_detaches_the_subtree_at_once() {
    let ns = ns();
    mkdir(&ns, &root(), "/t/a/b", 0o755, true).await.unwrap();
    create(&ns, &root(), "/t/a/b/f", 0o644, false)
        .await
        .unwrap();
    create(&ns, &root(), "/t/g", 0o644, false).await.unwrap();
    let t = stat(&ns, &root(), "/t").await.unwrap();
    assert!(
        delete(&ns, &root(), "/t", true, Expect::Any)
            .await
            .unwrap()
            .deleted
    );
    assert_eq!(code(stat(&ns, &root(), "/t").await), ErrorCode::NotFound);
    assert_eq!(
        code(stat(&ns, &root(), "/t/a/b/f").await),
        ErrorCode::NotFound
    );
    assert_eq!(stat(&ns, &root(), "/").await.unwrap().children, 0);
    let pending = arbor_namenode::deleter::pending(&*ns.store).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].ino, t.ino);
    assert_eq!(pending[0].path, "/t");
    let report = fsck_ok(&ns).await;
    assert_eq!(report.pending_deletes, 1);
    assert_eq!(report.directories, 1, "only / is live");
    // The name is free again at once.
    mkdir(&ns, &root(), "/t", 0o755, false).await.unwrap();
    // An empty directory deleted recursively goes at once, without a record.
    delete(&ns, &root(), "/t", true, Expect::Any).await.unwrap();
    assert_eq!(
        arbor_namenode::deleter::pending(&*ns.store)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn setattr_changes_and_its_rules() {
    let ns = ns();
    create(&ns, &root(), "/f", 0o644, false).await.unwrap();
    let st = setattr(
        &ns,
        &root(),
        "/f",
        &SetAttr {
            mode: Some(0o4711),
            uid: Some(1000),
            gid: Some(77),
            mtime_ns: Some(1_000),
            atime_ns: Some(2_000),
            size: Some(42),
        },
    )
    .await
    .unwrap();
    assert_eq!((st.mode, st.uid, st.gid), (0o4711, 1000, 77));
    assert_eq!((st.mtime_ns, st.atime_ns, st.size), (1_000, 2_000, 42));
    assert!(st.ctime_ns > 2_000, "ctime moves to now");
    let back = stat(&ns, &root(), "/f").await.unwrap();
    assert_eq!((back.mode, back.size, back.mtime_ns), (0o4711, 42, 1_000));
    // Directories have no size; their shown mtime can be set back in time.
    mkdir(&ns, &root(), "/d", 0o755, false).await.unwrap();
    create(&ns, &root(), "/d/x", 0o644, false).await.unwrap();
    let sz = SetAttr {
        size: Some(1),
        ..Default::default()
    };
    assert_eq!(
        code(setattr(&ns, &root(), "/d", &sz).await),
        ErrorCode::IsADirectory
    );
    let old = SetAttr {
        mtime_ns: Some(5),
        ..Default::default()
    };
    assert_eq!(setattr(&ns, &root(), "/d", &old).await.unwrap().mtime_ns, 5);
    assert_eq!(stat(&ns, &root(), "/d").await.unwrap().mtime_ns, 5);
    symlink(&ns, &root(), "/f", "/l").await.unwrap();
    assert_eq!(
        code(setattr(&ns, &root(), "/l", &sz).await),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(setattr(&ns, &root(), "/nope", &sz).await),
        ErrorCode::NotFound
    );
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn symlinks_are_stored_not_followed() {
    let ns = ns();
    mkdir(&ns, &root(), "/real", 0o755, false).await.unwrap();
    create(&ns, &root(), "/real/f", 0o644, false).await.unwrap();
    let l = symlink(&ns, &root(), "/real", "/link").await.unwrap();
    assert_eq!(l.kind, InodeKind::Symlink as i32);
    assert_eq!(l.symlink_target, "/real");
    assert_eq!(l.size, 5);
    let st = stat(&ns, &root(), "/link").await.unwrap();
    assert_eq!(
        st.kind,
        InodeKind::Symlink as i32,
        "stat shows the link itself"
    );
    assert_eq!(readlink(&ns, &root(), "/link").await.unwrap(), "/real");
    assert_eq!(
        code(stat(&ns, &root(), "/link/f").await),
        ErrorCode::NotADirectory
    );
    assert_eq!(
        code(readlink(&ns, &root(), "/real/f").await),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(readlink(&ns, &root(), "/none").await),
        ErrorCode::NotFound
    );
    assert_eq!(
        code(symlink(&ns, &root(), "", "/l2").await),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(symlink(&ns, &root(), "x", "/link").await),
        ErrorCode::AlreadyExists
    );
    assert_eq!(
        code(symlink(&ns, &root(), "x", "rel").await),
        ErrorCode::InvalidArgument
    );
    let rel = symlink(&ns, &root(), "../anything/at all", "/real/rel")
        .await
        .unwrap();
    assert_eq!(rel.symlink_target, "../anything/at all");
    assert!(
        delete(&ns, &root(), "/link", false, Expect::FileOnly)
            .await
            .unwrap()
            .deleted
    );
    assert!(
        stat(&ns, &root(), "/real").await.is_ok(),
        "deleting a link leaves its target"
    );
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn content_summary_counts_a_subtree() {
    let ns = ns();
    mkdir(&ns, &root(), "/s/a/b", 0o755, true).await.unwrap();
    for (i, p) in ["/s/f1", "/s/a/f2", "/s/a/b/f3"].iter().enumerate() {
        create(&ns, &root(), p, 0o644, false).await.unwrap();
        let size = SetAttr {
            size: Some(10 * (i as u64 + 1)),
            ..Default::default()
        };
        setattr(&ns, &root(), p, &size).await.unwrap();
    }
    symlink(&ns, &root(), "/s", "/s/a/ln").await.unwrap();
    let c = content_summary(&ns, &root(), "/s").await.unwrap();
    assert_eq!(
        (c.directories, c.files, c.symlinks, c.length),
        (3, 3, 1, 60)
    );
    let f = content_summary(&ns, &root(), "/s/a/f2").await.unwrap();
    assert_eq!((f.directories, f.files, f.length), (0, 1, 20));
    assert_eq!(
        code(content_summary(&ns, &root(), "/nope").await),
        ErrorCode::NotFound
    );
    let report = fsck::fsck(&*ns.store, "/s").await.unwrap();
    assert_eq!(
        (
            report.directories,
            report.files,
            report.symlinks,
            report.total_size
        ),
        (3, 3, 1, 60)
    );
}
