//! The index follows the namespace: directory renames at any depth, deletes, chmod/chown and
//! xattr changes are reflected once indexed, and no result ever shows a deleted entry or an
//! old path. `arbor changes` prints each operation with its old and new paths, in order.

use std::collections::BTreeSet;

use arbor_tests::namespace::{ok, walk};
use arbor_tests::search::{ChangesWatch, SearchService};
use arbor_tests::{Config, TestCluster, secs, within};
use futures::StreamExt;

/// Every path the index returns for `*` under `prefix` equals a walk of the namespace.
async fn assert_matches_walk(search: &SearchService, client: &arbor_client::Client, prefix: &str) {
    let got = search.paths(client, "*", prefix).await;
    let mut want: Vec<String> = walk(client, prefix).await.into_keys().collect();
    if prefix != "/" {
        want.push(prefix.to_string());
    }
    want.sort();
    let unique: BTreeSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "duplicate results under {prefix}");
    assert_eq!(got, want, "index vs namespace under {prefix}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn renames_deletes_and_attribute_changes_are_reflected() {
    within(secs(900), async {
        let cluster = TestCluster::start(Config {
            shards: 3,
            namenodes: 1,
            ..Config::default()
        })
        .await;
        let search = SearchService::start(&cluster, &[]).await;
        let client = cluster.client().await;
        // /big/l1/l2/l3/sN/fM.dat: 20 directories of 100 files, three levels down.
        for s in 0..20 {
            ok(
                client
                    .mkdir(&format!("/big/l1/l2/l3/s{s}"), 0o755, true)
                    .await,
                "mkdir",
            );
        }
        ok(client.mkdir("/dest/inner", 0o755, true).await, "mkdir");
        futures::stream::iter(0..2000)
            .map(|i| {
                let c = client.clone();
                async move {
                    let p = format!("/big/l1/l2/l3/s{}/f{i}.dat", i % 20);
                    ok(c.create(&p, 0o644, false).await, "create");
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<()>>()
            .await;
        search.wait_caught_up(&client, secs(120)).await;
        assert_eq!(search.paths(&client, "*.dat", "/big").await.len(), 2000);
        assert_matches_walk(&search, &client, "/").await;

        // A deep directory rename: results move at once, old paths are gone.
        ok(
            client.rename("/big/l1", "/dest/inner/moved").await,
            "rename",
        );
        search.wait_caught_up(&client, secs(60)).await;
        assert!(search.paths(&client, "*.dat", "/big").await.is_empty());
        let moved = search
            .paths(&client, "*.dat", "/dest/inner/moved/l2/l3")
            .await;
        assert_eq!(moved.len(), 2000);
        assert!(
            moved
                .iter()
                .all(|p| p.starts_with("/dest/inner/moved/l2/l3/s"))
        );
        let all = search.paths(&client, "f7.dat", "/").await;
        assert_eq!(all, vec!["/dest/inner/moved/l2/l3/s7/f7.dat"]);
        assert_matches_walk(&search, &client, "/").await;

        // The parent of the moved tree moves again, one level higher.
        ok(client.rename("/dest/inner", "/top").await, "rename");
        // Recursive delete of one subdirectory; a single file delete.
        ok(client.delete("/top/moved/l2/l3/s3", true).await, "rm -r");
        ok(
            client.delete("/top/moved/l2/l3/s4/f4.dat", false).await,
            "rm",
        );
        // chmod, chown, xattrs.
        ok(
            client.chmod("/top/moved/l2/l3/s5/f5.dat", 0o600).await,
            "chmod",
        );
        ok(
            client
                .chown("/top/moved/l2/l3/s6/f6.dat", Some(4242), Some(77))
                .await,
            "chown",
        );
        ok(
            client
                .set_xattr("/top/moved/l2/l3/s8/f8.dat", "user.project", b"fraud")
                .await,
            "setxattr",
        );
        ok(
            client
                .set_xattr("/top/moved/l2/l3/s9/f9.dat", "user.project", b"fraud")
                .await,
            "setxattr",
        );
        search.wait_caught_up(&client, secs(60)).await;
        assert_eq!(
            search.paths(&client, "xattr.project=fraud", "/").await,
            vec!["/top/moved/l2/l3/s8/f8.dat", "/top/moved/l2/l3/s9/f9.dat"]
        );
        ok(
            client
                .remove_xattr("/top/moved/l2/l3/s8/f8.dat", "user.project")
                .await,
            "rmxattr",
        );
        ok(
            client
                .set_xattr("/top/moved/l2/l3/s9/f9.dat", "user.project", b"churn")
                .await,
            "setxattr",
        );
        search.wait_caught_up(&client, secs(60)).await;
        assert!(
            search
                .paths(&client, "xattr.project=fraud", "/")
                .await
                .is_empty()
        );
        assert_eq!(
            search.paths(&client, "churn", "/").await,
            vec!["/top/moved/l2/l3/s9/f9.dat"]
        );
        assert!(
            search
                .paths(&client, "*", "/top/moved/l2/l3/s3")
                .await
                .is_empty()
        );
        assert!(search.paths(&client, "f4.dat", "/").await.is_empty());
        assert_eq!(search.paths(&client, "*", "/dest").await, vec!["/dest"]);
        assert_eq!(
            search.paths(&client, "*.dat", "/top").await.len(),
            2000 - 100 - 1
        );
        let r = search.query(&client, "f5.dat", "/").await;
        assert_eq!(r.hits.len(), 1);
        assert_eq!(r.hits[0].mode, 0o600);
        assert_eq!(
            search.paths(&client, "owner=4242 group=77", "/").await,
            vec!["/top/moved/l2/l3/s6/f6.dat"]
        );
        assert_matches_walk(&search, &client, "/").await;
        assert_matches_walk(&search, &client, "/top/moved/l2").await;

        // The CLI shows the same.
        let out = cluster
            .cli(&[
                "search",
                "--service",
                &search.addr(),
                "--path",
                "/top",
                "f6.dat",
            ])
            .await;
        assert_eq!(out.code, 0, "{out}");
        let lines = out.stdout_lines();
        assert_eq!(lines.len(), 1, "{out}");
        assert!(lines[0].ends_with(" /top/moved/l2/l3/s6/f6.dat"), "{out}");
        assert!(
            lines[0].contains(" 4242 ") && lines[0].contains(" 77 "),
            "{out}"
        );
        let out = cluster
            .cli(&[
                "search",
                "--service",
                &search.addr(),
                "--json",
                "xattr.project",
            ])
            .await;
        assert_eq!(out.code, 0, "{out}");
        assert!(
            out.stdout.contains("\"total\":1") && out.stdout.contains("/s9/f9.dat"),
            "{out}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn arbor_changes_prints_each_operation_in_order() {
    within(secs(600), async {
        let cluster = TestCluster::start(Config {
            shards: 3,
            namenodes: 1,
            ..Config::default()
        })
        .await;
        let client = cluster.client().await;
        ok(client.mkdir("/pre/x", 0o755, true).await, "mkdir");
        let mut watch = ChangesWatch::start(&cluster, &[]).await;
        ok(client.mkdir("/a", 0o755, false).await, "mkdir");
        ok(client.create("/a/f1", 0o644, false).await, "create");
        ok(client.create("/pre/x/g", 0o644, false).await, "create");
        ok(client.symlink("/a/f1", "/a/link").await, "symlink");
        ok(client.rename("/a/f1", "/a/f2").await, "rename");
        ok(client.rename("/pre/x", "/a/x").await, "rename dir");
        ok(client.rename("/a/f2", "/a/x/f3").await, "rename across");
        ok(client.chmod("/a/x/f3", 0o600).await, "chmod");
        ok(client.set_xattr("/a/x/g", "user.k", b"v").await, "setxattr");
        ok(client.remove_xattr("/a/x/g", "user.k").await, "rmxattr");
        ok(client.delete("/a/x/g", false).await, "rm");
        ok(client.delete("/a/x", true).await, "rm -r");
        let want = [
            "create dir /a",
            "create file /a/f1",
            "create file /pre/x/g",
            "create symlink /a/link",
            "rename /a/f1 -> /a/f2",
            "rename /pre/x -> /a/x",
            "rename /a/f2 -> /a/x/f3",
            "attr /a/x/f3 mode=0600",
            "setxattr /a/x/g user.k",
            "removexattr /a/x/g user.k",
            "delete /a/x/g",
            "delete /a/x",
        ];
        let got = watch.take(want.len(), secs(60)).await;
        let ops: Vec<&str> = got
            .iter()
            .map(|l| l.split_once(' ').map(|(_, rest)| rest).unwrap_or(""))
            .collect();
        assert_eq!(ops, want, "{got:#?}");
        // Each line starts with its commit time.
        assert!(
            got.iter()
                .all(|l| l.len() > 24 && &l[4..5] == "-" && l[..24].ends_with('Z'))
        );
        assert!(
            watch
                .drain(std::time::Duration::from_secs(1))
                .await
                .is_empty()
        );

        // --path filters, --json carries a position that resumes after the event.
        let mut json = ChangesWatch::start(&cluster, &["--json", "--path", "/b"]).await;
        ok(client.mkdir("/c", 0o755, false).await, "mkdir");
        ok(client.mkdir("/b", 0o755, false).await, "mkdir");
        ok(client.create("/b/one", 0o644, false).await, "create");
        let got = json.take(2, secs(60)).await;
        assert!(
            got[0].contains("\"op\":\"create\"") && got[0].contains("\"path\":\"/b\""),
            "{got:?}"
        );
        assert!(got[1].contains("\"path\":\"/b/one\""), "{got:?}");
        let pos = got[0]
            .split("\"position\":\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("a position")
            .to_string();
        let mut resumed = ChangesWatch::start(&cluster, &["--from", &pos, "--path", "/b"]).await;
        let again = resumed.take(1, secs(60)).await;
        assert!(again[0].ends_with("create file /b/one"), "{again:?}");
    })
    .await;
}
