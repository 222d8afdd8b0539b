//! Permission checks as non-root callers: traversal, create/remove/rename, list, the sticky
//! bit, chmod/chown/utimes rules, xattr namespaces, and the HDFS-style denial message.

mod ops_common;

use arbor_namenode::ops::setattr::SetAttr;
use arbor_namenode::ops::{
    content_summary::content_summary, create::create, delete::delete, list::list, mkdir::mkdir,
    rename::rename, setattr::setattr, stat::stat, xattr,
};
use arbor_proto::namenode::ErrorCode;
use arbor_proto::namenode::delete_request::Expect;
use arbor_proto::namenode::set_xattr_request::Flag;
use ops_common::*;

async fn home(ns: &Ns, path: &str, uid: u32, gid: u32, mode: u32) {
    mkdir(ns, &root(), path, 0o755, true).await.unwrap();
    let change = SetAttr {
        uid: Some(uid),
        gid: Some(gid),
        mode: Some(mode),
        ..Default::default()
    };
    setattr(ns, &root(), path, &change).await.unwrap();
}

#[tokio::test]
async fn creating_needs_write_and_execute_on_the_parent() {
    let ns = ns();
    home(&ns, "/user/bob", 1001, 1001, 0o755).await;
    let e = create(&ns, &alice(), "/user/bob/f", 0o644, false)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    assert_eq!(
        e.to_string(),
        "Permission denied: user=alice, access=WRITE_EXECUTE, inode=\"/user/bob\":1001:1001:drwxr-xr-x"
    );
    assert_eq!(
        code(mkdir(&ns, &alice(), "/user/bob/d", 0o755, false).await),
        ErrorCode::PermissionDenied
    );
    assert_eq!(
        code(mkdir(&ns, &alice(), "/user/bob/d/e", 0o755, true).await),
        ErrorCode::PermissionDenied
    );
    let f = create(&ns, &bob(), "/user/bob/f", 0o644, false)
        .await
        .unwrap();
    assert_eq!(f.uid, 1001);
    // Root may do anything.
    create(&ns, &root(), "/user/bob/byroot", 0o644, false)
        .await
        .unwrap();
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn traversal_needs_execute_on_every_ancestor() {
    let ns = ns();
    home(&ns, "/private", 1001, 1001, 0o700).await;
    create(&ns, &bob(), "/private/f", 0o644, false)
        .await
        .unwrap();
    let e = stat(&ns, &alice(), "/private/f").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    assert!(e.to_string().contains("access=EXECUTE"), "{e}");
    assert!(e.to_string().contains("inode=\"/private\""), "{e}");
    // Denied before existence is revealed.
    assert_eq!(
        code(stat(&ns, &alice(), "/private/none").await),
        ErrorCode::PermissionDenied
    );
    // The directory itself can be looked at: only its contents are behind it.
    assert!(stat(&ns, &alice(), "/private").await.is_ok());
    assert!(stat(&ns, &bob(), "/private/f").await.is_ok());
    // Group execute is enough for a member.
    home(&ns, "/team", 1001, 500, 0o710).await;
    create(&ns, &root(), "/team/f", 0o644, false).await.unwrap();
    assert!(
        stat(&ns, &alice(), "/team/f").await.is_ok(),
        "alice is in group 500"
    );
    assert_eq!(
        code(stat(&ns, &carol(), "/team/f").await),
        ErrorCode::PermissionDenied
    );
}

#[tokio::test]
async fn listing_needs_read_and_execute() {
    let ns = ns();
    home(&ns, "/wx", 1001, 1001, 0o711).await;
    create(&ns, &bob(), "/wx/f", 0o644, false).await.unwrap();
    let e = list(&ns, &alice(), "/wx", "", 0).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    assert!(e.to_string().contains("access=READ_EXECUTE"), "{e}");
    assert!(
        stat(&ns, &alice(), "/wx/f").await.is_ok(),
        "execute alone allows lookups"
    );
    assert_eq!(
        list(&ns, &bob(), "/wx", "", 0).await.unwrap().entries.len(),
        1
    );
    assert_eq!(
        code(content_summary(&ns, &alice(), "/wx").await),
        ErrorCode::PermissionDenied
    );
}

#[tokio::test]
async fn removing_and_renaming_need_write_on_the_parents() {
    let ns = ns();
    home(&ns, "/bob", 1001, 1001, 0o755).await;
    home(&ns, "/alice", 1000, 1000, 0o755).await;
    create(&ns, &bob(), "/bob/f", 0o666, false).await.unwrap();
    assert_eq!(
        code(delete(&ns, &alice(), "/bob/f", false, Expect::Any).await),
        ErrorCode::PermissionDenied
    );
    assert_eq!(
        code(rename(&ns, &alice(), "/bob/f", "/alice/f", false).await),
        ErrorCode::PermissionDenied
    );
    create(&ns, &alice(), "/alice/g", 0o644, false)
        .await
        .unwrap();
    assert_eq!(
        code(rename(&ns, &alice(), "/alice/g", "/bob/g", false).await),
        ErrorCode::PermissionDenied
    );
    rename(&ns, &bob(), "/bob/f", "/bob/f2", false)
        .await
        .unwrap();
    assert!(
        delete(&ns, &bob(), "/bob/f2", false, Expect::Any)
            .await
            .unwrap()
            .deleted
    );
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn sticky_directories_protect_other_users_entries() {
    let ns = ns();
    home(&ns, "/tmp", 0, 0, 0o1777).await;
    create(&ns, &bob(), "/tmp/bobs", 0o666, false)
        .await
        .unwrap();
    let e = delete(&ns, &alice(), "/tmp/bobs", false, Expect::Any)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    assert!(e.to_string().contains("sticky bit"), "{e}");
    assert_eq!(
        code(rename(&ns, &alice(), "/tmp/bobs", "/tmp/mine", false).await),
        ErrorCode::PermissionDenied
    );
    // Nor may alice replace bob's entry by renaming onto it.
    create(&ns, &alice(), "/tmp/alices", 0o666, false)
        .await
        .unwrap();
    assert_eq!(
        code(rename(&ns, &alice(), "/tmp/alices", "/tmp/bobs", false).await),
        ErrorCode::PermissionDenied
    );
    rename(&ns, &bob(), "/tmp/bobs", "/tmp/bobs2", false)
        .await
        .unwrap();
    delete(&ns, &alice(), "/tmp/alices", false, Expect::Any)
        .await
        .unwrap();
    delete(&ns, &root(), "/tmp/bobs2", false, Expect::Any)
        .await
        .unwrap();
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn chmod_chown_and_utimes_rules() {
    let ns = ns();
    home(&ns, "/h", 1000, 1000, 0o777).await;
    create(&ns, &alice(), "/h/f", 0o644, false).await.unwrap();
    let chmod = SetAttr {
        mode: Some(0o600),
        ..Default::default()
    };
    assert_eq!(
        code(setattr(&ns, &bob(), "/h/f", &chmod).await),
        ErrorCode::NotPermitted
    );
    assert_eq!(
        setattr(&ns, &alice(), "/h/f", &chmod).await.unwrap().mode,
        0o600
    );
    let chown = SetAttr {
        uid: Some(1001),
        ..Default::default()
    };
    assert_eq!(
        code(setattr(&ns, &alice(), "/h/f", &chown).await),
        ErrorCode::NotPermitted
    );
    // chown to oneself is no change, hence allowed.
    setattr(
        &ns,
        &alice(),
        "/h/f",
        &SetAttr {
            uid: Some(1000),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let to_500 = SetAttr {
        gid: Some(500),
        ..Default::default()
    };
    assert_eq!(
        setattr(&ns, &alice(), "/h/f", &to_500).await.unwrap().gid,
        500
    );
    let to_7 = SetAttr {
        gid: Some(7),
        ..Default::default()
    };
    assert_eq!(
        code(setattr(&ns, &alice(), "/h/f", &to_7).await),
        ErrorCode::NotPermitted
    );
    let to_1001 = SetAttr {
        gid: Some(1001),
        ..Default::default()
    };
    assert_eq!(
        code(setattr(&ns, &bob(), "/h/f", &to_1001).await),
        ErrorCode::NotPermitted,
        "not the owner"
    );
    assert_eq!(
        setattr(&ns, &root(), "/h/f", &chown).await.unwrap().uid,
        1001
    );
    // Times: the owner, or anyone with write permission.
    create(&ns, &alice(), "/h/g", 0o664, false).await.unwrap();
    setattr(
        &ns,
        &root(),
        "/h/g",
        &SetAttr {
            gid: Some(500),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let touch = SetAttr {
        mtime_ns: Some(77),
        ..Default::default()
    };
    assert_eq!(
        setattr(&ns, &bob(), "/h/g", &touch).await.unwrap().mtime_ns,
        77,
        "group write"
    );
    assert_eq!(
        code(setattr(&ns, &carol(), "/h/g", &touch).await),
        ErrorCode::PermissionDenied
    );
    // Size needs write permission.
    let trunc = SetAttr {
        size: Some(0),
        ..Default::default()
    };
    assert_eq!(
        code(setattr(&ns, &carol(), "/h/g", &trunc).await),
        ErrorCode::PermissionDenied
    );
}

#[tokio::test]
async fn xattr_namespaces_and_permissions() {
    let ns = ns();
    home(&ns, "/x", 1000, 1000, 0o755).await;
    create(&ns, &alice(), "/x/f", 0o644, false).await.unwrap();
    xattr::set_xattr(&ns, &alice(), "/x/f", "user.a", b"1", Flag::Any)
        .await
        .unwrap();
    assert_eq!(
        xattr::get_xattr(&ns, &bob(), "/x/f", "user.a")
            .await
            .unwrap(),
        b"1",
        "others may read"
    );
    assert_eq!(
        code(xattr::set_xattr(&ns, &bob(), "/x/f", "user.b", b"1", Flag::Any).await),
        ErrorCode::PermissionDenied
    );
    assert_eq!(
        code(xattr::remove_xattr(&ns, &bob(), "/x/f", "user.a").await),
        ErrorCode::PermissionDenied
    );
    assert_eq!(
        code(xattr::set_xattr(&ns, &alice(), "/x/f", "trusted.t", b"1", Flag::Any).await),
        ErrorCode::NotPermitted
    );
    xattr::set_xattr(&ns, &root(), "/x/f", "trusted.t", b"2", Flag::Any)
        .await
        .unwrap();
    assert_eq!(
        code(xattr::get_xattr(&ns, &alice(), "/x/f", "trusted.t").await),
        ErrorCode::NotPermitted
    );
    let mine = xattr::list_xattrs(&ns, &alice(), "/x/f").await.unwrap();
    assert_eq!(
        mine.iter().map(|x| x.name.as_str()).collect::<Vec<_>>(),
        ["user.a"],
        "trusted.* hidden"
    );
    assert_eq!(
        xattr::list_xattrs(&ns, &root(), "/x/f")
            .await
            .unwrap()
            .len(),
        2
    );
    xattr::set_xattr(
        &ns,
        &alice(),
        "/x/f",
        "system.posix_acl_access",
        b"acl",
        Flag::Any,
    )
    .await
    .unwrap();
    assert_eq!(
        code(xattr::set_xattr(&ns, &bob(), "/x/f", "system.x", b"1", Flag::Any).await),
        ErrorCode::NotPermitted
    );
    assert_eq!(
        code(xattr::set_xattr(&ns, &alice(), "/x/f", "security.selinux", b"1", Flag::Any).await),
        ErrorCode::NotPermitted
    );
}
