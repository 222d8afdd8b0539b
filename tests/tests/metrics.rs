//! Every process of a running `arbor dev` serves Prometheus metrics next to its gRPC port, and
//! the counters move by what a workload did: N creates are N namenode Create calls and at least
//! N shard commits, a large file's bytes reach the block servers, the search service reports
//! its lag, and a mount counts the kernel's requests.

use std::process::Stdio;
use std::time::{Duration, Instant};

use arbor_client::{Client, Identity, Options};
use arbor_tests::bins;
use arbor_tests::metrics::{Scrape, scrape};
use arbor_tests::{secs, within};
use tokio::io::{AsyncBufReadExt, BufReader};

const CREATES: usize = 50;
const MOUNT_CREATES: usize = 10;
/// Where this run's ports start: below the ephemeral range, apart per process.
fn base_port() -> u16 {
    20_000 + (std::process::id() % 400) as u16 * 25
}
/// The metrics port of a process on `port` (see `arbor dev`).
fn metrics(port: u16) -> String {
    format!("127.0.0.1:{}", port + 1000)
}

struct Dev {
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGINT,
            );
        }
    }
}

async fn start_dev(base: u16) -> Dev {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = tokio::process::Command::new(bins::bin(bins::CLI))
        .args(["dev", "--dir"])
        .arg(dir.path().join("dev"))
        .args(["--shards", "2", "--namenodes", "2", "--blockservers", "6"])
        .args(["--metastore-port", &base.to_string()])
        .args(["--namenode-port", &(base + 5).to_string()])
        .args(["--blockserver-port", &(base + 10).to_string()])
        .args(["--search-port", &(base + 18).to_string()])
        .env("ARBOR_BIN_DIR", bins::bin_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start arbor dev");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(120), lines.next_line()).await {
            Ok(Ok(Some(line))) => {
                let ready = line.starts_with("Press Ctrl-C");
                seen.push(line);
                if ready {
                    break;
                }
            }
            other => panic!(
                "arbor dev did not come up ({other:?}):\n{}",
                seen.join("\n")
            ),
        }
    }
    let text = seen.join("\n");
    assert!(
        text.contains(&format!("metrics http://{}/metrics", metrics(base + 5))),
        "arbor dev prints where each process serves its metrics:\n{text}"
    );
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Dev { child, _dir: dir }
}

/// Every process's metrics address: shards, namenodes, block servers, search.
fn endpoints(base: u16) -> Vec<(&'static str, String)> {
    let mut out = vec![("shard", metrics(base)), ("shard", metrics(base + 1))];
    out.extend((5..7).map(|p| ("namenode", metrics(base + p))));
    out.extend((10..16).map(|p| ("blockserver", metrics(base + p))));
    out.push(("search", metrics(base + 18)));
    out
}

async fn scrape_all(base: u16, role: &str) -> Vec<Scrape> {
    let mut out = Vec::new();
    for (r, addr) in endpoints(base) {
        if r == role {
            out.push(scrape(&addr).await);
        }
    }
    out
}

fn total(scrapes: &[Scrape], name: &str, labels: &[(&str, &str)]) -> f64 {
    scrapes.iter().map(|s| s.sum(name, labels)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_counts_what_a_workload_did() {
    within(secs(600), async {
        let base = base_port();
        let _dev = start_dev(base).await;
        let namenodes = vec![
            format!("127.0.0.1:{}", base + 5),
            format!("127.0.0.1:{}", base + 6),
        ];
        let client = Client::connect_with(&namenodes, Identity::current(), Options::default())
            .expect("client");
        // Every endpoint answers and parses before anything happened, too.
        for (_, addr) in endpoints(base) {
            scrape(&addr).await;
        }
        let create = [
            ("service", "namenode"),
            ("method", "Create"),
            ("code", "ok"),
        ];
        let committed = [("outcome", "committed")];
        let nn_before = scrape_all(base, "namenode").await;
        let shards_before = scrape_all(base, "shard").await;
        let bs_before = scrape_all(base, "blockserver").await;

        client.mkdir("/m", 0o755, false).await.expect("mkdir");
        for i in 0..CREATES {
            client
                .create(&format!("/m/f{i}"), 0o644, false)
                .await
                .expect("create");
        }
        let big = vec![0x5au8; 3 << 20];
        let mut w = client
            .open_write(
                "/m/big",
                arbor_client::WriteOptions {
                    mode: 0o644,
                    create: true,
                    ..Default::default()
                },
            )
            .await
            .expect("open /m/big");
        w.write(&big).await.expect("write /m/big");
        w.close().await.expect("close /m/big");

        let nn = scrape_all(base, "namenode").await;
        let shards = scrape_all(base, "shard").await;
        let bs = scrape_all(base, "blockserver").await;
        let creates = total(&nn, "arbor_rpc_requests_total", &create)
            - total(&nn_before, "arbor_rpc_requests_total", &create);
        assert_eq!(creates, CREATES as f64, "namenode Create calls");
        let commits = total(&shards, "arbor_metastore_commits_total", &committed)
            - total(&shards_before, "arbor_metastore_commits_total", &committed);
        assert!(commits >= CREATES as f64, "shard commits: {commits}");
        let single = [("kind", "single_shard"), ("outcome", "committed")];
        assert!(
            total(&nn, "arbor_namenode_transactions_total", &single)
                - total(&nn_before, "arbor_namenode_transactions_total", &single)
                >= CREATES as f64
        );
        assert!(
            total(
                &nn,
                "arbor_namenode_shard_requests_total",
                &[("kind", "commit")]
            ) > 0.0
        );
        assert!(total(&shards, "arbor_metastore_fdatasync_seconds", &[]) > 0.0);
        assert!(total(&shards, "arbor_metastore_group_requests", &[]) > 0.0);
        let written = [("direction", "written")];
        let bytes = total(&bs, "arbor_blockserver_bytes_total", &written)
            - total(&bs_before, "arbor_blockserver_bytes_total", &written);
        assert!(
            bytes >= big.len() as f64,
            "block servers stored {bytes} bytes of a {} byte file and its parity",
            big.len()
        );
        let calls = [("service", "blockserver"), ("method", "PutShard")];
        assert!(total(&bs, "arbor_rpc_requests_total", &calls) >= 6.0);
        // The status page of the same cluster, in a browser, lists every process of it.
        let page = arbor_tests::browser::rendered(&format!("http://{}/", metrics(base + 5))).await;
        for (role, addr) in endpoints(base) {
            let grpc = addr
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .map(|p| format!("127.0.0.1:{}", p - 1000))
                .expect("an address");
            assert!(
                page.contains(&grpc),
                "the status page lists {role} {grpc}:\n{page}"
            );
        }
        assert!(
            page.contains("<span class=\"up\">up</span>"),
            "search is up:\n{page}"
        );
        // The search service indexes the changes and says how late.
        let start = Instant::now();
        loop {
            let s = scrape_all(base, "search").await;
            if total(&s, "arbor_search_lag_seconds", &[]) > 0.0 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no search lag reported"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_counts_the_kernels_requests() {
    within(secs(600), async {
        let base = base_port();
        let _dev = start_dev(base).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).expect("mountpoint");
        let at = format!("127.0.0.1:{}", base + 20);
        let namenodes = format!("127.0.0.1:{},127.0.0.1:{}", base + 5, base + 6);
        let out = tokio::process::Command::new(bins::bin(bins::CLI))
            .args(["--namenode", &namenodes, "mount"])
            .arg(&mnt)
            .args(["-d", "--metrics-listen", &at])
            .env("ARBOR_BIN_DIR", bins::bin_dir())
            .output()
            .await
            .expect("arbor mount");
        assert!(out.status.success(), "{out:?}");
        let before = scrape(&at).await;
        for i in 0..MOUNT_CREATES {
            std::fs::write(mnt.join(format!("f{i}")), b"x").expect("create through the mount");
        }
        assert!(std::fs::read(mnt.join("missing")).is_err());
        let after = scrape(&at).await;
        let creates = after.sum("arbor_mount_operations_total", &[("op", "create")])
            - before.sum("arbor_mount_operations_total", &[("op", "create")]);
        assert_eq!(creates, MOUNT_CREATES as f64);
        assert!(after.sum("arbor_mount_operation_seconds", &[("op", "create")]) > 0.0);
        let lookups = after.sum("arbor_mount_operations_total", &[("op", "lookup")])
            - before.sum("arbor_mount_operations_total", &[("op", "lookup")]);
        assert!(lookups >= 1.0, "the lookup of a missing name is counted");
        assert!(
            after
                .families()
                .contains_key("arbor_mount_operation_seconds")
        );
        let umount = std::process::Command::new("umount")
            .arg(&mnt)
            .status()
            .expect("umount");
        assert!(umount.success());
    })
    .await;
}
