//! Exactly-once mutations: a call carries (client id, call id), and its transaction writes a
//! retry record, so the same call sent again (to another namenode, as a client failing over
//! does) returns its first answer instead of a spurious ALREADY_EXISTS or NOT_FOUND, and is not
//! executed twice; a new call id is a new operation.

use arbor_proto::namenode::{
    CreateRequest, DeleteRequest, ErrorCode, FileStatus, MkdirRequest, RenameRequest, StatusReply,
    delete_request::Expect,
};
use arbor_tests::namespace::{expect_code, ok};
use arbor_tests::raw::{Caller, code};
use arbor_tests::rows::{Rows, dirs_on_distinct_shards};
use arbor_tests::{Config, TestCluster, secs, within};

fn status_of(reply: Result<tonic::Response<StatusReply>, tonic::Status>, what: &str) -> FileStatus {
    match reply {
        Ok(r) => r
            .into_inner()
            .status
            .unwrap_or_else(|| panic!("{what}: reply without a status")),
        Err(s) => panic!("{what}: {:?}: {}", code(&s), s.message()),
    }
}

#[track_caller]
fn expect_status_code<T: std::fmt::Debug>(
    reply: Result<T, tonic::Status>,
    want: ErrorCode,
    what: &str,
) {
    match reply {
        Ok(v) => panic!("{what}: expected {want:?}, got {v:?}"),
        Err(s) => assert_eq!(code(&s), want, "{what}: {}", s.message()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_mkdir_retried_on_another_namenode_return_the_first_answer() {
    let cluster = TestCluster::start(Config::default()).await;
    within(secs(120), async {
        let client = cluster.client().await;
        ok(client.mkdir("/eo", 0o755, false).await, "mkdir /eo");
        let (mut nn0, mut nn1) = (cluster.raw_namenode(0), cluster.raw_namenode(1));
        let caller = Caller::new();

        // create
        let create = CreateRequest {
            ctx: Some(caller.ctx(1)),
            path: "/eo/f".into(),
            mode: 0o644,
            overwrite: false,
        };
        let first = status_of(nn0.create(create.clone()).await, "create on namenode 0");
        let again = status_of(
            nn1.create(create.clone()).await,
            "same create on namenode 1",
        );
        assert_eq!(again.ino, first.ino, "the retried create made another file");
        let third = status_of(
            nn0.create(create.clone()).await,
            "same create on namenode 0",
        );
        assert_eq!(third.ino, first.ino);
        let new_call = CreateRequest {
            ctx: Some(caller.ctx(2)),
            ..create.clone()
        };
        expect_status_code(
            nn1.create(new_call).await,
            ErrorCode::AlreadyExists,
            "new call id",
        );
        let other_client = CreateRequest {
            ctx: Some(Caller::new().ctx(1)),
            ..create.clone()
        };
        expect_status_code(
            nn1.create(other_client).await,
            ErrorCode::AlreadyExists,
            "other client",
        );
        assert_eq!(ok(client.stat("/eo/f").await, "stat").ino, first.ino);

        // mkdir
        let mkdir = MkdirRequest {
            ctx: Some(caller.ctx(3)),
            path: "/eo/d".into(),
            mode: 0o755,
            parents: false,
        };
        let first = status_of(nn0.mkdir(mkdir.clone()).await, "mkdir on namenode 0");
        let again = status_of(nn1.mkdir(mkdir.clone()).await, "same mkdir on namenode 1");
        assert_eq!(
            again.ino, first.ino,
            "the retried mkdir made another directory"
        );
        let new_call = MkdirRequest {
            ctx: Some(caller.ctx(4)),
            ..mkdir.clone()
        };
        expect_status_code(
            nn1.mkdir(new_call).await,
            ErrorCode::AlreadyExists,
            "new mkdir call id",
        );
        // mkdir -p: the retry answers with the deepest directory it made.
        let mkdir_p = MkdirRequest {
            ctx: Some(caller.ctx(5)),
            path: "/eo/p/q/r".into(),
            mode: 0o755,
            parents: true,
        };
        let first = status_of(nn0.mkdir(mkdir_p.clone()).await, "mkdir -p on namenode 0");
        let again = status_of(
            nn1.mkdir(mkdir_p.clone()).await,
            "same mkdir -p on namenode 1",
        );
        assert_eq!(again.ino, first.ino);
        assert_eq!(ok(client.stat("/eo/p/q/r").await, "stat").ino, first.ino);

        // A retry answers from the record; it does not run again even when it could.
        let once = CreateRequest {
            ctx: Some(caller.ctx(6)),
            path: "/eo/once".into(),
            mode: 0o644,
            overwrite: false,
        };
        let first = status_of(nn0.create(once.clone()).await, "create /eo/once");
        ok(client.delete("/eo/once", false).await, "delete /eo/once");
        let again = status_of(nn1.create(once.clone()).await, "retried create /eo/once");
        assert_eq!(
            again.ino, first.ino,
            "the retry did not return the first answer"
        );
        expect_code(
            client.stat("/eo/once").await,
            ErrorCode::NotFound,
            "/eo/once ran twice",
        );

        let report = cluster.fsck().await;
        assert!(report.healthy, "fsck: {report:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_and_delete_retried_on_another_namenode_return_the_first_answer() {
    let cluster = TestCluster::start(Config::default()).await;
    within(secs(120), async {
        let client = cluster.client().await;
        let rows = Rows::open(&cluster).await;
        let dirs = dirs_on_distinct_shards(&client, &rows, "/", "s", 2).await;
        let (mut nn0, mut nn1) = (cluster.raw_namenode(0), cluster.raw_namenode(1));
        let caller = Caller::new();

        for (src, dst) in [
            (format!("{}/r", dirs[0]), format!("{}/r", dirs[1])),
            (format!("{}/same", dirs[0]), format!("{}/renamed", dirs[0])),
        ] {
            let ino = ok(client.create(&src, 0o644, false).await, &src).ino;
            let rename = RenameRequest {
                ctx: Some(caller.fresh()),
                src: src.clone(),
                dst: dst.clone(),
                noreplace: false,
            };
            nn0.rename(rename.clone())
                .await
                .unwrap_or_else(|s| panic!("rename {src}: {s}"));
            if let Err(s) = nn1.rename(rename.clone()).await {
                panic!(
                    "retried rename {src} {dst} on namenode 1: {:?}: {} (must return the first \
                     answer)",
                    code(&s),
                    s.message()
                );
            }
            assert_eq!(ok(client.stat(&dst).await, &dst).ino, ino);
            expect_code(client.stat(&src).await, ErrorCode::NotFound, &src);
            let new_call = RenameRequest {
                ctx: Some(caller.fresh()),
                ..rename.clone()
            };
            expect_status_code(
                nn1.rename(new_call).await,
                ErrorCode::NotFound,
                "new rename call",
            );

            // Moved back by another call, the first one retried again must not move it again.
            ok(client.rename(&dst, &src).await, "rename back");
            nn1.rename(rename.clone())
                .await
                .unwrap_or_else(|s| panic!("late retry of rename {src}: {s}"));
            assert_eq!(
                ok(client.stat(&src).await, &src).ino,
                ino,
                "the late retry ran again"
            );
            expect_code(client.stat(&dst).await, ErrorCode::NotFound, &dst);
        }

        // delete
        let path = format!("{}/gone", dirs[1]);
        ok(client.create(&path, 0o644, false).await, &path);
        let delete = DeleteRequest {
            ctx: Some(caller.fresh()),
            path: path.clone(),
            recursive: false,
            expect: Expect::Any as i32,
        };
        let first = nn0
            .delete(delete.clone())
            .await
            .expect("delete on namenode 0")
            .into_inner();
        assert!(first.deleted, "delete reported nothing deleted");
        match nn1.delete(delete.clone()).await {
            Ok(reply) => assert!(reply.into_inner().deleted, "the retry changed the answer"),
            Err(s) => panic!(
                "retried delete on namenode 1: {:?}: {}",
                code(&s),
                s.message()
            ),
        }
        let new_call = DeleteRequest {
            ctx: Some(caller.fresh()),
            ..delete.clone()
        };
        match nn1.delete(new_call).await {
            Ok(reply) => assert!(
                !reply.into_inner().deleted,
                "a second delete deleted something"
            ),
            Err(s) => assert_eq!(code(&s), ErrorCode::NotFound, "{}", s.message()),
        }

        let report = cluster.fsck().await;
        assert!(report.healthy, "fsck: {report:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_call_sent_to_both_namenodes_at_once_runs_once() {
    let cluster = TestCluster::start(Config::default()).await;
    within(secs(120), async {
        let client = cluster.client().await;
        ok(client.mkdir("/both", 0o755, false).await, "mkdir /both");
        let caller = Caller::new();
        for i in 0..20 {
            let create = CreateRequest {
                ctx: Some(caller.fresh()),
                path: format!("/both/f{i}"),
                mode: 0o644,
                overwrite: false,
            };
            let (mut nn0, mut nn1) = (cluster.raw_namenode(0), cluster.raw_namenode(1));
            let (c0, c1) = (create.clone(), create.clone());
            let (a, b) = tokio::join!(
                tokio::spawn(async move { nn0.create(c0).await }),
                tokio::spawn(async move { nn1.create(c1).await })
            );
            let a = status_of(a.expect("task"), "namenode 0");
            let b = status_of(b.expect("task"), "namenode 1");
            assert_eq!(a.ino, b.ino, "f{i}: the two attempts answered differently");
        }
        let listed = ok(client.list("/both").await, "list /both");
        assert_eq!(listed.len(), 20, "files in /both");
        assert_eq!(ok(client.stat("/both").await, "stat").children, 20);
        let report = cluster.fsck().await;
        assert!(report.healthy, "fsck: {report:?}");
    })
    .await;
}
