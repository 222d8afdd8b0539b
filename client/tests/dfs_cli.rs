//! `arbor dfs` end to end over gRPC against the in-memory namenode: what each command prints on
//! stdout and stderr, its exit status, and what it changed in the namespace.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arbor_client::cli::dfs::run_shell;
use arbor_client::cli::format::local_minute;
use arbor_client::cli::names::Names;
use arbor_client::cli::shell::Shell;
use arbor_client::identity::{Account, Accounts};
use arbor_client::{Client, Identity, Options};
use common::{Fake, T_NS};

/// alice = 1001 (group users = 100), bob = 1002; group staff = 50.
struct Accts;

impl Accounts for Accts {
    fn user_by_uid(&self, uid: u32) -> Option<Account> {
        match uid {
            1001 => self.user_by_name("alice"),
            1002 => self.user_by_name("bob"),
            0 => self.user_by_name("root"),
            _ => None,
        }
    }
    fn user_by_name(&self, name: &str) -> Option<Account> {
        let (uid, gid) = match name {
            "alice" => (1001, 100),
            "bob" => (1002, 100),
            "root" => (0, 0),
            _ => return None,
        };
        Some(Account {
            uid,
            gid,
            name: name.into(),
        })
    }
    fn group_by_name(&self, name: &str) -> Option<u32> {
        match name {
            "users" => Some(100),
            "staff" => Some(50),
            "root" => Some(0),
            _ => None,
        }
    }
    fn group_by_gid(&self, gid: u32) -> Option<String> {
        match gid {
            100 => Some("users".into()),
            50 => Some("staff".into()),
            0 => Some("root".into()),
            _ => None,
        }
    }
    fn groups_of(&self, _: &str, primary: u32) -> Vec<u32> {
        vec![primary]
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

struct Cli {
    client: Client,
    fake: Fake,
    _server: tokio::sync::oneshot::Sender<()>,
}

impl Cli {
    async fn start(port: u16) -> Cli {
        let fake = Fake::new();
        let addr = format!("127.0.0.1:{port}");
        let server = fake.serve(&addr).await;
        let options = Options {
            failover_deadline: Duration::from_secs(5),
            ..Options::default()
        };
        let root = Identity {
            uid: 0,
            gids: vec![0],
            user: "root".into(),
        };
        let client = Client::connect_with(&[addr], root, options).unwrap();
        // The tree the tests start from: /user/alice owned by alice.
        client.mkdir("/user/alice", 0o755, true).await.unwrap();
        client
            .chown("/user/alice", Some(1001), Some(100))
            .await
            .unwrap();
        let alice = client.clone().with_identity(Identity {
            uid: 1001,
            gids: vec![100],
            user: "alice".into(),
        });
        Cli {
            client: alice,
            fake,
            _server: server,
        }
    }

    /// Runs `arbor dfs` with whitespace-separated words; returns (status, stdout, stderr).
    async fn dfs(&self, words: &str) -> (i32, String, String) {
        let words: Vec<String> = words.split_whitespace().map(str::to_string).collect();
        self.dfs_words(&words).await
    }

    async fn dfs_words(&self, words: &[String]) -> (i32, String, String) {
        let out = Capture::default();
        let err = Capture::default();
        let sh = Shell::new(
            self.client.clone(),
            Box::new(out.clone()),
            Box::new(err.clone()),
        )
        .with_names(Names::new(Box::new(Accts)));
        let code = run_shell(sh, words).await;
        (code, out.text(), err.text())
    }

    async fn ok(&self, words: &str) -> String {
        let (code, out, err) = self.dfs(words).await;
        assert_eq!(code, 0, "{words}: stderr {err}");
        assert_eq!(err, "", "{words}");
        out
    }
}

#[tokio::test]
async fn ls_lists_with_hdfs_columns() {
    let cli = Cli::start(19560).await;
    cli.ok("-mkdir -p /user/alice/logs").await;
    cli.ok("-touchz /user/alice/f.txt").await;
    cli.client
        .truncate("/user/alice/f.txt", 1366)
        .await
        .unwrap();
    let out = cli.ok("-ls /user/alice").await;
    let t = local_minute(T_NS);
    assert_eq!(
        out,
        format!(
            "Found 2 items\n\
             -rw-r--r--   1 alice users       1366 {t} /user/alice/f.txt\n\
             drwxr-xr-x   - alice users          0 {t} /user/alice/logs\n"
        )
    );
    let out = cli.ok("-ls -h -d /user/alice/f.txt /user/alice").await;
    assert_eq!(
        out,
        format!(
            "-rw-r--r--   1 alice users      1.3 K {t} /user/alice/f.txt\n\
             drwxr-xr-x   - alice users          0 {t} /user/alice\n"
        )
    );
    assert_eq!(
        cli.ok("-ls -C /user/alice").await,
        "/user/alice/f.txt\n/user/alice/logs\n"
    );
    assert_eq!(
        cli.ok("-ls -S -r -C /user/alice").await,
        "/user/alice/logs\n/user/alice/f.txt\n"
    );
    // An empty directory prints nothing at all.
    assert_eq!(cli.ok("-ls /user/alice/logs").await, "");
}

#[tokio::test]
async fn relative_paths_are_under_the_home_directory() {
    let cli = Cli::start(19561).await;
    cli.ok("-mkdir data").await;
    assert!(cli.fake.exists("/user/alice/data"));
    cli.ok("-touchz data/a").await;
    let out = cli.ok("-ls -C").await;
    assert_eq!(out, "data\n");
    let out = cli.ok("-ls -R -C").await;
    assert_eq!(out, "data\ndata/a\n");
    let out = cli.ok("-ls -C data").await;
    assert_eq!(out, "data/a\n");
}

#[tokio::test]
async fn recursive_listing_walks_depth_first() {
    let cli = Cli::start(19562).await;
    cli.ok("-mkdir -p /user/alice/a/b /user/alice/c").await;
    cli.ok("-touchz /user/alice/a/b/f /user/alice/a/z").await;
    let out = cli.ok("-ls -R /user/alice").await;
    let paths: Vec<&str> = out.lines().map(|l| l.rsplit(' ').next().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "/user/alice/a",
            "/user/alice/a/b",
            "/user/alice/a/b/f",
            "/user/alice/a/z",
            "/user/alice/c"
        ]
    );
    assert!(!out.contains("Found"));
}

#[tokio::test]
async fn failures_print_hdfs_messages_and_the_rest_goes_on() {
    let cli = Cli::start(19563).await;
    let (code, out, err) = cli.dfs("-ls /nope /user").await;
    assert_eq!(code, 1);
    assert_eq!(err, "ls: `/nope': No such file or directory\n");
    assert!(out.starts_with("Found 1 items\n"), "{out}");
    cli.ok("-touchz /user/alice/f").await;
    let (code, _, err) = cli
        .dfs("-mkdir /user/alice/f/sub /user/alice/f /user/alice/ok")
        .await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "mkdir: `/user/alice/f/sub': Is not a directory\nmkdir: `/user/alice/f': File exists\n"
    );
    assert!(cli.fake.exists("/user/alice/ok"));
    let (code, _, err) = cli.dfs("-mkdir /user/alice/x/y").await;
    assert_eq!(code, 1);
    assert_eq!(err, "mkdir: `/user/alice/x/y': No such file or directory\n");
    let (code, _, err) = cli.dfs("-frobnicate /").await;
    assert_eq!(code, 1);
    assert!(err.starts_with("-frobnicate: Unknown command\n"), "{err}");
    let (code, _, err) = cli.dfs("-ls -q /").await;
    assert_eq!(code, 1);
    assert!(
        err.starts_with("-ls: Illegal option -q\nUsage: arbor dfs -ls"),
        "{err}"
    );
}

#[tokio::test]
async fn rm_and_rmdir() {
    let cli = Cli::start(19564).await;
    cli.ok("-mkdir -p /user/alice/d/sub").await;
    cli.ok("-touchz /user/alice/f").await;
    let (code, _, err) = cli.dfs("-rm /user/alice/d").await;
    assert_eq!(
        (code, err.as_str()),
        (1, "rm: `/user/alice/d': Is a directory\n")
    );
    let (code, _, err) = cli.dfs("-rmdir /user/alice/d").await;
    assert_eq!(
        (code, err.as_str()),
        (1, "rmdir: `/user/alice/d': Directory is not empty\n")
    );
    cli.ok("-rmdir --ignore-fail-on-non-empty /user/alice/d")
        .await;
    let (code, _, err) = cli.dfs("-rmdir /user/alice/f").await;
    assert_eq!(
        (code, err.as_str()),
        (1, "rmdir: `/user/alice/f': Is not a directory\n")
    );
    assert_eq!(cli.ok("-rm /user/alice/f").await, "Deleted /user/alice/f\n");
    assert_eq!(
        cli.ok("-rm -r -skipTrash /user/alice/d").await,
        "Deleted /user/alice/d\n"
    );
    assert!(!cli.fake.exists("/user/alice/d/sub"));
    assert_eq!(cli.ok("-rm -f /user/alice/gone").await, "");
    let (code, _, err) = cli.dfs("-rm /user/alice/gone").await;
    assert_eq!(
        (code, err.as_str()),
        (1, "rm: `/user/alice/gone': No such file or directory\n")
    );
}

#[tokio::test]
async fn mv_moves_into_directories_and_never_replaces() {
    let cli = Cli::start(19565).await;
    cli.ok("-mkdir -p /user/alice/a/b /user/alice/dst").await;
    cli.ok("-touchz /user/alice/f /user/alice/g /user/alice/h")
        .await;
    cli.ok("-mv /user/alice/f /user/alice/g /user/alice/dst")
        .await;
    assert!(cli.fake.exists("/user/alice/dst/f") && cli.fake.exists("/user/alice/dst/g"));
    cli.ok("-mv /user/alice/h /user/alice/renamed").await;
    assert!(cli.fake.exists("/user/alice/renamed") && !cli.fake.exists("/user/alice/h"));
    cli.ok("-touchz /user/alice/f").await;
    let (code, _, err) = cli.dfs("-mv /user/alice/f /user/alice/renamed").await;
    assert_eq!(
        (code, err.as_str()),
        (1, "mv: `/user/alice/renamed': File exists\n")
    );
    let (code, _, err) = cli.dfs("-mv /user/alice/f /user/alice/dst").await;
    assert_eq!(
        (code, err.as_str()),
        (1, "mv: `/user/alice/dst/f': File exists\n")
    );
    let (code, _, err) = cli.dfs("-mv /user/alice/a /user/alice/a/b").await;
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "mv: `/user/alice/a' to `/user/alice/a/b/a': is a subdirectory of itself\n"
        )
    );
    let (code, _, err) = cli
        .dfs("-mv /user/alice/f /user/alice/renamed /user/alice/new")
        .await;
    assert_eq!(
        (code, err.as_str()),
        (1, "mv: `/user/alice/new': No such file or directory\n")
    );
    let (code, _, err) = cli
        .dfs("-mv /user/alice/f /user/alice/a /user/alice/renamed")
        .await;
    assert_eq!(
        (code, err.as_str()),
        (1, "mv: `/user/alice/renamed': Is not a directory\n")
    );
    let (code, _, err) = cli.dfs("-mv /user/alice/missing /user/alice/dst").await;
    assert_eq!(
        (code, err.as_str()),
        (1, "mv: `/user/alice/missing': No such file or directory\n")
    );
}

#[tokio::test]
async fn stat_count_du_and_test() {
    let cli = Cli::start(19566).await;
    cli.ok("-mkdir -p /user/alice/d/e").await;
    cli.ok("-touchz /user/alice/d/f /user/alice/d/e/g").await;
    cli.client.truncate("/user/alice/d/f", 600).await.unwrap();
    cli.client.truncate("/user/alice/d/e/g", 400).await.unwrap();
    let out = cli
        .ok("-stat %n|%F|%a|%A|%b|%u|%g|%r|%Y /user/alice/d/f /user/alice/d")
        .await;
    assert_eq!(
        out,
        format!(
            "f|regular file|644|rw-r--r--|600|alice|users|1|{ms}\n\
             d|directory|755|rwxr-xr-x|0|alice|users|0|{ms}\n",
            ms = T_NS / 1_000_000
        )
    );
    assert_eq!(cli.ok("-stat /user/alice/d").await, "2026-11-25 15:33:07\n");
    let out = cli.ok("-count -v /user/alice/d").await;
    assert_eq!(
        out,
        "   DIR_COUNT   FILE_COUNT       CONTENT_SIZE PATHNAME\n\
         \x20          2            2               1000 /user/alice/d\n"
    );
    let out = cli.ok("-du /user/alice/d").await;
    assert_eq!(
        out,
        "400  600  /user/alice/d/e\n600  900  /user/alice/d/f\n"
    );
    let out = cli.ok("-du -s -h /user/alice/d").await;
    assert_eq!(out, "1000  1.5 K  /user/alice/d\n");
    for (check, path, want) in [
        ("-e", "/user/alice/d", 0),
        ("-d", "/user/alice/d", 0),
        ("-f", "/user/alice/d", 1),
        ("-f", "/user/alice/d/f", 0),
        ("-s", "/user/alice/d/f", 0),
        ("-z", "/user/alice/d/f", 1),
        ("-e", "/user/alice/nope", 1),
        ("-e", "/user/alice/d/f/below", 1),
    ] {
        let (code, out, err) = cli.dfs(&format!("-test {check} {path}")).await;
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (want, "", ""),
            "-test {check} {path}"
        );
    }
}

#[tokio::test]
async fn touchz_refuses_non_empty_files() {
    let cli = Cli::start(19567).await;
    cli.ok("-touchz /user/alice/z").await;
    cli.ok("-touchz /user/alice/z").await;
    cli.client.truncate("/user/alice/z", 3).await.unwrap();
    let (code, _, err) = cli.dfs("-touchz /user/alice/z /user/alice/y").await;
    assert_eq!(
        (code, err.as_str()),
        (1, "touchz: `/user/alice/z': Not a zero-length file\n")
    );
    assert!(cli.fake.exists("/user/alice/y"));
    let (code, _, err) = cli.dfs("-touchz /user/alice").await;
    assert_eq!(
        (code, err.as_str()),
        (1, "touchz: `/user/alice': Is a directory\n")
    );
}

#[tokio::test]
async fn chmod_chown_chgrp() {
    let cli = Cli::start(19568).await;
    cli.ok("-mkdir -p /user/alice/t/sub").await;
    cli.ok("-touchz /user/alice/t/sub/f").await;
    cli.ok("-chmod -R go-rx,u+w /user/alice/t").await;
    assert_eq!(cli.client.stat("/user/alice/t").await.unwrap().mode, 0o700);
    assert_eq!(
        cli.client.stat("/user/alice/t/sub").await.unwrap().mode,
        0o700
    );
    assert_eq!(
        cli.client.stat("/user/alice/t/sub/f").await.unwrap().mode,
        0o600
    );
    cli.ok("-chmod 1777 /user/alice/t").await;
    assert_eq!(cli.client.stat("/user/alice/t").await.unwrap().mode, 0o1777);
    let (code, _, err) = cli.dfs("-chmod a+q /user/alice/t").await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "chmod: chmod : mode 'a+q' does not match the expected pattern.\n"
    );
    cli.ok("-chgrp -R staff /user/alice/t").await;
    assert_eq!(
        cli.client.stat("/user/alice/t/sub/f").await.unwrap().gid,
        50
    );
    cli.ok("-chown :7 /user/alice/t").await;
    assert_eq!(cli.client.stat("/user/alice/t").await.unwrap().gid, 7);
    let (code, _, err) = cli.dfs("-chown bob /user/alice/t /user/alice/nope").await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "chown: changing ownership of '/user/alice/t': Operation not permitted: only root may chown\n\
         chown: `/user/alice/nope': No such file or directory\n"
    );
    let (code, _, err) = cli.dfs("-chown mallory /user/alice/t").await;
    assert_eq!(
        (code, err.as_str()),
        (1, "chown: invalid user: 'mallory'\n")
    );
}

#[tokio::test]
async fn extended_attributes() {
    let cli = Cli::start(19569).await;
    cli.ok("-touchz /user/alice/f").await;
    let words: Vec<String> = [
        "-setfattr",
        "-n",
        "user.note",
        "-v",
        "\"hello world\"",
        "/user/alice/f",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (code, _, err) = cli.dfs_words(&words).await;
    assert_eq!((code, err.as_str()), (0, ""));
    cli.ok("-setfattr -n user.bin -v 0x00ff /user/alice/f")
        .await;
    cli.ok("-setfattr -n user.empty /user/alice/f").await;
    let out = cli.ok("-getfattr -d /user/alice/f").await;
    assert_eq!(
        out,
        "# file: /user/alice/f\nuser.bin=\"\0\u{fffd}\"\nuser.empty\nuser.note=\"hello world\"\n"
    );
    let out = cli.ok("-getfattr -n user.bin -e hex /user/alice/f").await;
    assert_eq!(out, "# file: /user/alice/f\nuser.bin=0x00ff\n");
    let (code, _, err) = cli.dfs("-getfattr -n user.none /user/alice/f").await;
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "getfattr: At least one of the attributes provided was not found.\n"
        )
    );
    cli.ok("-setfattr -x user.note /user/alice/f").await;
    let (code, _, err) = cli.dfs("-setfattr -x user.note /user/alice/f").await;
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "setfattr: No matching attributes found for remove operation\n"
        )
    );
}

#[tokio::test]
async fn find_matches_names_with_globs() {
    let cli = Cli::start(19570).await;
    cli.ok("-mkdir -p /user/alice/p/q").await;
    cli.ok("-touchz /user/alice/p/a.txt /user/alice/p/q/B.TXT /user/alice/p/q/c.csv")
        .await;
    let out = cli.ok("-find /user/alice/p -name *.txt").await;
    assert_eq!(out, "/user/alice/p/a.txt\n");
    let out = cli.ok("-find /user/alice/p -iname *.txt").await;
    assert_eq!(out, "/user/alice/p/a.txt\n/user/alice/p/q/B.TXT\n");
    let out = cli.ok("-find /user/alice/p -name *.{csv,txt}").await;
    assert_eq!(out, "/user/alice/p/a.txt\n/user/alice/p/q/c.csv\n");
    let out = cli.ok("-find p").await;
    assert_eq!(out, "p\np/a.txt\np/q\np/q/B.TXT\np/q/c.csv\n");
    let (code, _, err) = cli.dfs("-find /user/alice/none -name x").await;
    assert_eq!(
        (code, err.as_str()),
        (1, "find: `/user/alice/none': No such file or directory\n")
    );
}

#[tokio::test]
async fn fsck_reports_health() {
    let cli = Cli::start(19571).await;
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = arbor_client::cli::fsck::run(&cli.client, "/", &mut out, &mut err).await;
    let out = String::from_utf8(out).unwrap();
    assert_eq!(code, 0);
    assert!(out.contains("\nStatus: HEALTHY\n"), "{out}");
    assert!(out.contains(" Number of metastore shards:\t1\n"), "{out}");
    assert!(
        out.ends_with("The filesystem under path '/' is HEALTHY\n"),
        "{out}"
    );
    let mut out = Vec::new();
    let code = arbor_client::cli::fsck::run(&cli.client, "/nope", &mut out, &mut err).await;
    assert_eq!(code, 1);
    assert!(
        String::from_utf8(out)
            .unwrap()
            .ends_with("Path '/nope' does not exist\n")
    );
}

#[tokio::test]
async fn path_patterns_expand_to_existing_matches() {
    let cli = Cli::start(19572).await;
    cli.ok("-mkdir -p /user/alice/a/logs /user/alice/b/logs /user/alice/c")
        .await;
    cli.ok("-touchz /user/alice/x.tmp /user/alice/y.tmp /user/alice/z.txt")
        .await;
    let out = cli.ok("-ls -C /user/alice/*.tmp").await;
    assert_eq!(out, "/user/alice/x.tmp\n/user/alice/y.tmp\n");
    let out = cli.ok("-ls -d -C /user/alice/*/logs").await;
    assert_eq!(out, "/user/alice/a/logs\n/user/alice/b/logs\n");
    let out = cli.ok("-ls -d -C {a,c}").await;
    assert_eq!(out, "a\nc\n");
    let out = cli.ok("-rm /user/alice/*.tmp").await;
    assert_eq!(
        out,
        "Deleted /user/alice/x.tmp\nDeleted /user/alice/y.tmp\n"
    );
    assert!(cli.fake.exists("/user/alice/z.txt"));
    let (code, out, err) = cli.dfs("-ls /user/alice/*.tmp /user/alice/z.txt").await;
    assert_eq!(code, 1);
    assert_eq!(err, "ls: `/user/alice/*.tmp': No such file or directory\n");
    assert!(out.ends_with(" /user/alice/z.txt\n"), "{out}");
    assert_eq!(cli.ok("-rm -f /user/alice/*.tmp").await, "");
    let out = cli.ok("-count /user/alice/?").await;
    assert_eq!(out.lines().count(), 3);
}
