//! Extended attributes: set with CREATE / REPLACE, get, list, remove, and the name and value
//! limits.

mod ops_common;

use arbor_namenode::ops::{create::create, mkdir::mkdir, stat::stat, xattr};
use arbor_proto::namenode::ErrorCode;
use arbor_proto::namenode::set_xattr_request::Flag;
use ops_common::*;

#[tokio::test]
async fn set_get_list_remove() {
    let ns = ns();
    create(&ns, &root(), "/f", 0o644, false).await.unwrap();
    let before = stat(&ns, &root(), "/f").await.unwrap();
    xattr::set_xattr(&ns, &root(), "/f", "user.b", b"two", Flag::Create)
        .await
        .unwrap();
    xattr::set_xattr(&ns, &root(), "/f", "user.a", b"one", Flag::Any)
        .await
        .unwrap();
    assert!(
        stat(&ns, &root(), "/f").await.unwrap().ctime_ns > before.ctime_ns,
        "ctime moves"
    );
    assert_eq!(
        xattr::get_xattr(&ns, &root(), "/f", "user.a")
            .await
            .unwrap(),
        b"one"
    );
    let all = xattr::list_xattrs(&ns, &root(), "/f").await.unwrap();
    let pairs: Vec<_> = all
        .iter()
        .map(|x| (x.name.as_str(), x.value.as_slice()))
        .collect();
    assert_eq!(pairs, [("user.a", &b"one"[..]), ("user.b", &b"two"[..])]);
    assert_eq!(
        code(xattr::set_xattr(&ns, &root(), "/f", "user.a", b"x", Flag::Create).await),
        ErrorCode::AlreadyExists
    );
    assert_eq!(
        code(xattr::set_xattr(&ns, &root(), "/f", "user.zz", b"x", Flag::Replace).await),
        ErrorCode::NoXattr
    );
    xattr::set_xattr(&ns, &root(), "/f", "user.a", b"uno", Flag::Replace)
        .await
        .unwrap();
    assert_eq!(
        xattr::get_xattr(&ns, &root(), "/f", "user.a")
            .await
            .unwrap(),
        b"uno"
    );
    xattr::remove_xattr(&ns, &root(), "/f", "user.a")
        .await
        .unwrap();
    assert_eq!(
        code(xattr::get_xattr(&ns, &root(), "/f", "user.a").await),
        ErrorCode::NoXattr
    );
    assert_eq!(
        code(xattr::remove_xattr(&ns, &root(), "/f", "user.a").await),
        ErrorCode::NoXattr
    );
    assert_eq!(
        xattr::list_xattrs(&ns, &root(), "/f").await.unwrap().len(),
        1
    );
    // Directories have xattrs too.
    mkdir(&ns, &root(), "/d", 0o755, false).await.unwrap();
    xattr::set_xattr(&ns, &root(), "/d", "user.policy", b"RS-6-3", Flag::Any)
        .await
        .unwrap();
    assert_eq!(
        xattr::get_xattr(&ns, &root(), "/d", "user.policy")
            .await
            .unwrap(),
        b"RS-6-3"
    );
    assert_eq!(
        code(xattr::get_xattr(&ns, &root(), "/none", "user.a").await),
        ErrorCode::NotFound
    );
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn names_and_values_are_checked() {
    let ns = ns();
    create(&ns, &root(), "/f", 0o644, false).await.unwrap();
    for bad in ["nonamespace", "user.", "other.x", ""] {
        assert_eq!(
            code(xattr::set_xattr(&ns, &root(), "/f", bad, b"v", Flag::Any).await),
            ErrorCode::InvalidArgument,
            "{bad:?}"
        );
    }
    let long = format!("user.{}", "n".repeat(251));
    assert_eq!(
        code(xattr::set_xattr(&ns, &root(), "/f", &long, b"v", Flag::Any).await),
        ErrorCode::InvalidArgument
    );
    let fits = format!("user.{}", "n".repeat(250));
    xattr::set_xattr(&ns, &root(), "/f", &fits, b"v", Flag::Any)
        .await
        .unwrap();
    let big = vec![7u8; 64 * 1024 + 1];
    assert_eq!(
        code(xattr::set_xattr(&ns, &root(), "/f", "user.big", &big, Flag::Any).await),
        ErrorCode::InvalidArgument
    );
    let max = vec![7u8; 64 * 1024];
    xattr::set_xattr(&ns, &root(), "/f", "user.big", &max, Flag::Any)
        .await
        .unwrap();
    assert_eq!(
        xattr::get_xattr(&ns, &root(), "/f", "user.big")
            .await
            .unwrap()
            .len(),
        64 * 1024
    );
    assert_eq!(
        code(xattr::get_xattr(&ns, &root(), "/f", "bad").await),
        ErrorCode::InvalidArgument
    );
}
