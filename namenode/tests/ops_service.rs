//! The gRPC service over loopback (port 19400), on the in-memory store: requests reach the
//! operations, answers and error codes come back as the API defines them.

mod ops_common;

use std::time::Duration;

use arbor_namenode::service::{NamenodeService, ServiceInfo};
use arbor_proto::error::code_of;
use arbor_proto::namenode::namenode_client::NamenodeClient;
use arbor_proto::namenode::namenode_server::NamenodeServer;
use arbor_proto::namenode::{
    CallContext, CreateRequest, DeleteRequest, Empty, ErrorCode, FsckRequest, ListRequest,
    MkdirRequest, PathRequest, RenameRequest, SetAttrRequest, SetXattrRequest, SymlinkRequest,
    XattrRequest,
};
use arbor_proto::records::InodeKind;
use ops_common::*;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;

fn ctx(uid: u32, call_id: u64) -> Option<CallContext> {
    Some(CallContext {
        client_id: b"svc-test-client".to_vec(),
        call_id,
        uid,
        gids: vec![uid],
        user: if uid == 0 {
            "root".into()
        } else {
            "alice".into()
        },
    })
}

#[tokio::test]
async fn serves_the_namespace_over_grpc() {
    let ns = ns();
    let (leader_tx, leader_rx) = watch::channel(true);
    let service = NamenodeService::new(
        ns.clone(),
        ServiceInfo {
            namenode_id: b"nn-1".to_vec(),
            metastores: vec!["mem".into()],
            cluster_id: b"c".to_vec(),
            search_addr: String::new(),
            trash_interval: std::time::Duration::ZERO,
        },
        leader_rx,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:19400")
        .await
        .unwrap();
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(NamenodeServer::new(service))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                let _ = stop_rx.changed().await;
            }),
    );
    let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:19400")
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    let mut c = NamenodeClient::new(channel);

    let d = c
        .mkdir(MkdirRequest {
            ctx: ctx(0, 1),
            path: "/a/b".into(),
            mode: 0o755,
            parents: true,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(d.kind, InodeKind::Directory as i32);
    let f = c
        .create(CreateRequest {
            ctx: ctx(0, 2),
            path: "/a/b/f".into(),
            mode: 0o644,
            overwrite: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    // The same call again: its first answer.
    let again = c
        .create(CreateRequest {
            ctx: ctx(0, 2),
            path: "/a/b/f".into(),
            mode: 0o644,
            overwrite: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(again, f);
    let e = c
        .create(CreateRequest {
            ctx: ctx(0, 3),
            path: "/a/b/f".into(),
            mode: 0o644,
            overwrite: false,
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::AlreadyExists);
    assert!(e.message().contains("/a/b/f"), "{}", e.message());

    let st = c
        .get_file_info(PathRequest {
            ctx: ctx(0, 0),
            path: "/a/b".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(st.children, 1);
    let e = c
        .get_file_info(PathRequest {
            ctx: ctx(0, 0),
            path: "/nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::NotFound);
    assert_eq!(e.code(), tonic::Code::NotFound);

    let page = c
        .list(ListRequest {
            ctx: ctx(0, 0),
            path: "/a/b".into(),
            start_after: String::new(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].name, "f");

    c.set_xattr(SetXattrRequest {
        ctx: ctx(0, 4),
        path: "/a/b/f".into(),
        name: "user.k".into(),
        value: b"v".to_vec(),
        flag: 1,
    })
    .await
    .unwrap();
    let v = c
        .get_xattr(XattrRequest {
            ctx: ctx(0, 0),
            path: "/a/b/f".into(),
            name: "user.k".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.value, b"v");
    let e = c
        .get_xattr(XattrRequest {
            ctx: ctx(0, 0),
            path: "/a/b/f".into(),
            name: "user.none".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::NoXattr);
    assert_eq!(
        c.list_xattrs(PathRequest {
            ctx: ctx(0, 0),
            path: "/a/b/f".into()
        })
        .await
        .unwrap()
        .into_inner()
        .xattrs
        .len(),
        1
    );
    c.remove_xattr(XattrRequest {
        ctx: ctx(0, 5),
        path: "/a/b/f".into(),
        name: "user.k".into(),
    })
    .await
    .unwrap();

    c.symlink(SymlinkRequest {
        ctx: ctx(0, 6),
        target: "/a/b/f".into(),
        link: "/ln".into(),
    })
    .await
    .unwrap();
    let t = c
        .readlink(PathRequest {
            ctx: ctx(0, 0),
            path: "/ln".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.target, "/a/b/f");

    let st = c
        .set_attr(SetAttrRequest {
            ctx: ctx(0, 7),
            path: "/a/b/f".into(),
            size: Some(99),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(st.size, 99);
    let e = c
        .set_attr(SetAttrRequest {
            ctx: ctx(1000, 8),
            path: "/a/b/f".into(),
            mode: Some(0o777),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::NotPermitted);
    let e = c
        .mkdir(MkdirRequest {
            ctx: ctx(1000, 9),
            path: "/a/x".into(),
            mode: 0o755,
            parents: false,
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::PermissionDenied);
    assert!(
        e.message()
            .starts_with("Permission denied: user=alice, access=WRITE_EXECUTE"),
        "{}",
        e.message()
    );

    c.rename(RenameRequest {
        ctx: ctx(0, 10),
        src: "/a/b".into(),
        dst: "/c".into(),
        noreplace: false,
    })
    .await
    .unwrap();
    let e = c
        .rename(RenameRequest {
            ctx: ctx(0, 11),
            src: "/c".into(),
            dst: "/c/d".into(),
            noreplace: false,
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::SubdirOfItself);
    let sum = c
        .content_summary(PathRequest {
            ctx: ctx(0, 0),
            path: "/".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (sum.directories, sum.files, sum.symlinks, sum.length),
        (3, 1, 1, 99)
    );

    let e = c
        .delete(DeleteRequest {
            ctx: ctx(0, 12),
            path: "/c".into(),
            recursive: false,
            expect: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::NotEmpty);
    let e = c
        .delete(DeleteRequest {
            ctx: ctx(0, 12),
            path: "/".into(),
            recursive: true,
            expect: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::Root);
    assert!(
        c.delete(DeleteRequest {
            ctx: ctx(0, 13),
            path: "/c".into(),
            recursive: true,
            expect: 0
        })
        .await
        .unwrap()
        .into_inner()
        .deleted
    );
    let report = c
        .fsck(FsckRequest {
            ctx: ctx(0, 0),
            path: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(report.healthy, "{:?}", report.problems);
    assert_eq!(report.pending_deletes, 1);
    let e = c
        .mkdir(MkdirRequest {
            ctx: ctx(0, 14),
            path: "relative".into(),
            mode: 0o755,
            parents: false,
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::InvalidArgument);

    let info = c.cluster_info(Empty {}).await.unwrap().into_inner();
    assert_eq!((info.shards, info.vparts), (4, 64));
    assert!(info.leader);
    assert_eq!(info.namenode_id, b"nn-1");
    leader_tx.send(false).unwrap();
    assert!(!c.cluster_info(Empty {}).await.unwrap().into_inner().leader);

    stop_tx.send(true).unwrap();
    server.await.unwrap().unwrap();
}
