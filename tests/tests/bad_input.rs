//! Bad input, through the library and the CLI: every request is refused with the right error
//! (code, or HDFS-style message and exit status) and leaves the namespace exactly as it was.

use arbor_client::{Client, Identity};
use arbor_proto::namenode::ErrorCode;
use arbor_tests::namespace::{expect_code, ok, snapshot};
use arbor_tests::{Config, TestCluster, secs, within};

fn small() -> Config {
    Config {
        shards: 2,
        namenodes: 1,
        ..Config::default()
    }
}

/// /d (non-empty, mode 755) holding /d/f; /a/b; the file /file; all owned by the superuser.
async fn populate(client: &Client) {
    ok(client.mkdir("/d", 0o755, false).await, "mkdir /d");
    ok(client.create("/d/f", 0o644, false).await, "create /d/f");
    ok(client.mkdir("/a/b", 0o755, true).await, "mkdir -p /a/b");
    ok(client.create("/file", 0o644, false).await, "create /file");
}

/// A CLI case: arguments after `dfs`, extra environment, and the one stderr line expected (or,
/// ending in ':', only the command that must start it).
type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);

fn alice() -> Identity {
    Identity {
        uid: 1000,
        gids: vec![1000],
        user: "alice".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_refuses_bad_input_and_changes_nothing() {
    let cluster = TestCluster::start(small()).await;
    within(secs(120), async {
        let client = cluster.client().await;
        populate(&client).await;
        // The longest legal name works (and is gone again before the snapshot).
        let longest = format!("/d/{}", "n".repeat(255));
        ok(client.create(&longest, 0o644, false).await, "255-byte name");
        ok(client.delete(&longest, false).await, "delete 255-byte name");

        let before = snapshot(&client, "/").await;
        let too_long = format!("/d/{}", "n".repeat(256));
        use ErrorCode::*;

        // Names and paths.
        expect_code(
            client.create("/d/a\0b", 0o644, false).await,
            InvalidArgument,
            "NUL in a file name",
        );
        expect_code(
            client.mkdir("/d/x\0", 0o755, false).await,
            InvalidArgument,
            "NUL in a directory name",
        );
        expect_code(
            client.mkdir("/d\0/x", 0o755, true).await,
            InvalidArgument,
            "NUL in a parent",
        );
        expect_code(
            client.mkdir("rel", 0o755, false).await,
            InvalidArgument,
            "relative mkdir",
        );
        expect_code(
            client.create("d/g", 0o644, false).await,
            InvalidArgument,
            "relative create",
        );
        expect_code(client.stat("d/f").await, InvalidArgument, "relative stat");
        expect_code(
            client.mkdir("/d/.", 0o755, false).await,
            InvalidArgument,
            "mkdir .",
        );
        expect_code(
            client.mkdir("/d/..", 0o755, false).await,
            InvalidArgument,
            "mkdir ..",
        );
        expect_code(
            client.create("/d/./g", 0o644, false).await,
            InvalidArgument,
            ". inside",
        );
        expect_code(
            client.mkdir("/d/../e", 0o755, true).await,
            InvalidArgument,
            ".. inside",
        );
        expect_code(
            client.rename("/d/f", "/d/..").await,
            InvalidArgument,
            "rename to ..",
        );
        expect_code(
            client.create(&too_long, 0o644, false).await,
            NameTooLong,
            "256-byte file name",
        );
        expect_code(
            client.mkdir(&too_long, 0o755, true).await,
            NameTooLong,
            "256-byte dir name",
        );
        expect_code(
            client.rename("/d/f", &too_long).await,
            NameTooLong,
            "rename to 256 bytes",
        );

        // Shapes of the tree.
        expect_code(
            client.delete("/d", false).await,
            NotEmpty,
            "delete non-empty dir",
        );
        expect_code(client.delete("/", true).await, Root, "delete /");
        expect_code(client.rename("/", "/x").await, Root, "rename /");
        expect_code(
            client.mkdir("/file", 0o755, false).await,
            AlreadyExists,
            "mkdir over a file",
        );
        expect_code(
            client.mkdir("/d", 0o755, false).await,
            AlreadyExists,
            "mkdir over a dir",
        );
        expect_code(
            client.create("/d/f", 0o644, false).await,
            AlreadyExists,
            "create over a file",
        );
        expect_code(
            client.create("/d", 0o644, true).await,
            IsADirectory,
            "overwrite a dir",
        );
        expect_code(
            client.mkdir("/file/sub", 0o755, false).await,
            NotADirectory,
            "mkdir under a file",
        );
        expect_code(
            client.mkdir("/file/sub/deeper", 0o755, true).await,
            NotADirectory,
            "mkdir -p under a file",
        );
        expect_code(
            client.create("/file/sub", 0o644, false).await,
            NotADirectory,
            "create under a file",
        );
        expect_code(
            client.mkdir("/missing/sub", 0o755, false).await,
            NotFound,
            "mkdir under nothing",
        );
        expect_code(
            client.rename("/a", "/a/b/a").await,
            SubdirOfItself,
            "dir under itself",
        );
        expect_code(
            client.rename("/file", "/a").await,
            IsADirectory,
            "file over a dir",
        );
        expect_code(
            client.rename("/a", "/file").await,
            NotADirectory,
            "dir over a file",
        );
        expect_code(
            client.rename("/a", "/d").await,
            NotEmpty,
            "dir over a non-empty dir",
        );
        expect_code(
            client.rename_noreplace("/file", "/d/f").await,
            AlreadyExists,
            "noreplace",
        );
        expect_code(
            client.rename("/nothing", "/x").await,
            NotFound,
            "rename of nothing",
        );

        // Someone else's files.
        let other = client.clone().with_identity(alice());
        expect_code(
            other.chmod("/d/f", 0o777).await,
            NotPermitted,
            "chmod by a non-owner",
        );
        expect_code(
            other.chown("/d/f", Some(1000), None).await,
            NotPermitted,
            "chown by a non-owner",
        );
        expect_code(
            other.create("/d/mine", 0o644, false).await,
            PermissionDenied,
            "create in 755 root dir",
        );
        expect_code(
            other.mkdir("/d/mine", 0o755, false).await,
            PermissionDenied,
            "mkdir in 755 root dir",
        );
        expect_code(
            other.delete("/d/f", false).await,
            PermissionDenied,
            "delete in 755 root dir",
        );
        expect_code(
            other.rename("/d/f", "/d/g").await,
            PermissionDenied,
            "rename in 755 root dir",
        );
        expect_code(
            other.set_xattr("/d/f", "user.k", b"v").await,
            PermissionDenied,
            "xattr on 644 file",
        );

        let after = snapshot(&client, "/").await;
        assert_eq!(before, after, "a refused request changed the namespace");
        let report = cluster.fsck().await;
        assert!(report.healthy, "fsck: {report:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_reports_bad_input_hdfs_style_and_changes_nothing() {
    let cluster = TestCluster::start(small()).await;
    within(secs(180), async {
        let client = cluster.client().await;
        populate(&client).await;
        let before = snapshot(&client, "/").await;
        let too_long = format!("/d/{}", "n".repeat(256));

        let cases: Vec<Case> = vec![
            (vec!["-rm", "/d"], vec![], "rm: `/d': Is a directory"),
            (
                vec!["-mkdir", "/file"],
                vec![],
                "mkdir: `/file': File exists",
            ),
            (vec!["-mkdir", "/d"], vec![], "mkdir: `/d': File exists"),
            (
                vec!["-mkdir", "/file/sub"],
                vec![],
                "mkdir: `/file/sub': Is not a directory",
            ),
            (
                vec!["-mv", "/a", "/a/b/a"],
                vec![],
                "mv: `/a' to `/a/b/a': is a subdirectory of itself",
            ),
            (
                vec!["-ls", "/nothing"],
                vec![],
                "ls: `/nothing': No such file or directory",
            ),
            (
                vec!["-rmdir", "/d"],
                vec![],
                "rmdir: `/d': Directory is not empty",
            ),
            (vec!["-mkdir", "-p", "/file/sub"], vec![], "mkdir:"),
            (vec!["-mkdir", "rel"], vec![], "mkdir:"),
            (vec!["-mkdir", "/d/."], vec![], "mkdir:"),
            (vec!["-mkdir", "/d/.."], vec![], "mkdir:"),
            (vec!["-mkdir", too_long.as_str()], vec![], "mkdir:"),
            (vec!["-touchz", too_long.as_str()], vec![], "touchz:"),
            (
                vec!["-chmod", "777", "/d/f"],
                vec![("ARBOR_USER", "1000:1000")],
                "chmod:",
            ),
            (
                vec!["-chown", "1000", "/d/f"],
                vec![("ARBOR_USER", "1000:1000")],
                "chown:",
            ),
            (
                vec!["-touchz", "/d/mine"],
                vec![("ARBOR_USER", "1000:1000")],
                "touchz:",
            ),
            (
                vec!["-rm", "/d/f"],
                vec![("ARBOR_USER", "1000:1000")],
                "rm:",
            ),
        ];
        for (args, env, want) in &cases {
            let mut full = vec!["dfs"];
            full.extend(args.iter().copied());
            let out = cluster.cli_with_env(env, &full).await;
            let what = format!("arbor {} (env {env:?})", full.join(" "));
            assert_eq!(out.code, 1, "{what}: exit status\n{out}");
            assert!(out.stdout.is_empty(), "{what}: printed to stdout\n{out}");
            let lines = out.stderr_lines();
            assert_eq!(lines.len(), 1, "{what}: one error line expected\n{out}");
            if want.ends_with(':') {
                assert!(
                    lines[0].starts_with(&format!("{want} ")),
                    "{what}: {:?}",
                    lines[0]
                );
            } else {
                assert_eq!(lines[0], *want, "{what}");
            }
            if !env.is_empty() {
                let text = lines[0].to_lowercase();
                assert!(
                    text.contains("permission denied") || text.contains("not permitted"),
                    "{what}: not reported as a permission error: {:?}",
                    lines[0]
                );
            }
        }
        // A name over 255 bytes is named as such, not as an I/O error.
        let out = cluster.cli(&["dfs", "-mkdir", &too_long]).await;
        assert!(!out.stderr.contains("Input/output error"), "{out}");

        let after = snapshot(&client, "/").await;
        assert_eq!(before, after, "a refused command changed the namespace");

        // One bad argument does not stop the others, and the status still says failure.
        let out = cluster.cli(&["dfs", "-mkdir", "/file", "/d/new"]).await;
        assert_eq!(out.code, 1, "{out}");
        assert_eq!(
            out.stderr_lines(),
            vec!["mkdir: `/file': File exists"],
            "{out}"
        );
        assert!(
            ok(client.exists("/d/new").await, "exists /d/new"),
            "/d/new not created"
        );
        let report = cluster.fsck().await;
        assert!(report.healthy, "fsck: {report:?}");
    })
    .await;
}
