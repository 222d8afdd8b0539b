//! The client's data path against a real cluster: two metastore shards, one namenode (1 MiB
//! blocks, 64 KiB cells, RS(4,2), 64 KiB inline threshold) and six block servers, started from
//! the workspace's built binaries on ports 19630-19649. The test is ignored by default because
//! it needs those binaries: `cargo build --workspace --bins`, then
//! `cargo test -p arbor-client --test data_path -- --ignored --test-threads 1`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use arbor_client::{Client, ErrorCode, Identity, Options, WriteOptions};
use rand::{Rng, RngCore, SeedableRng};

const SHARD_PORT: u16 = 19630;
const NAMENODE_PORT: u16 = 19635;
const BLOCKSERVER_PORT: u16 = 19640;

struct Part(Child);

impl Drop for Part {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Cluster {
    _dir: tempfile::TempDir,
    _shards: Vec<Part>,
    _namenode: Part,
    blockservers: Vec<Option<Part>>,
}

fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("ARBOR_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug"));
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} missing: run `cargo build --workspace --bins` first",
        p.display()
    );
    p
}

/// Starts a process and waits for its "listening on" line.
fn start(program: &str, args: &[String], log: PathBuf) -> Part {
    let mut child = Command::new(bin(program))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(90))
        .unwrap_or_else(|_| panic!("{program} did not start; see {}", log.display()));
    Part(child)
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let shard_addrs: Vec<String> = (0..2)
            .map(|i| format!("127.0.0.1:{}", SHARD_PORT + i))
            .collect();
        let shards = (0..2usize)
            .map(|i| {
                let args = vec![
                    "--dir".into(),
                    root.join(format!("shard-{i}")).display().to_string(),
                    "--listen".into(),
                    shard_addrs[i].clone(),
                    "--shard".into(),
                    i.to_string(),
                ];
                start(
                    "arbor-metastore",
                    &args,
                    root.join(format!("shard-{i}.log")),
                )
            })
            .collect();
        let nn = format!("127.0.0.1:{NAMENODE_PORT}");
        let args: Vec<String> = [
            "--listen",
            &nn,
            "--metastore",
            &shard_addrs.join(","),
            "--vparts",
            "64",
            "--block-size",
            "1048576",
            "--cell-size",
            "65536",
            "--default-ec-policy",
            "RS-4-2-1024k",
            "--heartbeat-ms",
            "500",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let namenode = start("arbor-namenode", &args, root.join("namenode.log"));
        let blockservers = (0..6u16)
            .map(|i| {
                let store = root.join(format!("bs-{i}"));
                std::fs::create_dir_all(&store).unwrap();
                let args = vec![
                    "--listen".into(),
                    format!("127.0.0.1:{}", BLOCKSERVER_PORT + i),
                    "--store".into(),
                    format!("file://{}", store.display()),
                    "--namenode".into(),
                    nn.clone(),
                    "--heartbeat-ms".into(),
                    "500".into(),
                ];
                Some(start(
                    "arbor-blockserver",
                    &args,
                    root.join(format!("bs-{i}.log")),
                ))
            })
            .collect();
        Cluster {
            _dir: dir,
            _shards: shards,
            _namenode: namenode,
            blockservers,
        }
    }

    fn client(&self) -> Client {
        Client::connect_with(
            &[format!("127.0.0.1:{NAMENODE_PORT}")],
            Identity::try_current().unwrap(),
            Options::default(),
        )
        .unwrap()
    }

    fn stop_blockserver(&mut self, i: usize) {
        self.blockservers[i] = None;
    }
}

async fn wait_for_servers(c: &Client, n: usize) {
    for _ in 0..100 {
        if c.block_servers().await.map(|s| s.len()).unwrap_or(0) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("block servers did not register");
}

async fn read_all(c: &Client, path: &str) -> Vec<u8> {
    let r = c.open_read(path).await.unwrap();
    let mut out = Vec::new();
    let mut at = 0u64;
    while at < r.len() {
        let d = r.read_at(at, 300_000).await.unwrap();
        assert!(!d.is_empty(), "short read at {at} of {}", r.len());
        out.extend_from_slice(&d);
        at += d.len() as u64;
    }
    out
}

fn model_write(model: &mut Vec<u8>, at: usize, data: &[u8]) {
    if model.len() < at + data.len() {
        model.resize(at + data.len(), 0);
    }
    model[at..at + data.len()].copy_from_slice(data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts a real cluster from the built binaries (see the module doc)"]
async fn the_data_path_against_a_real_cluster() {
    let mut cluster = Cluster::start();
    let c = cluster.client();
    wait_for_servers(&c, 6).await;
    c.mkdir("/d", 0o755, true).await.unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);

    // Small files stay inline; sizes around the stripe and block edges round-trip.
    for size in [
        0usize,
        1,
        65_535,
        65_536,
        65_537,
        4 * 65_536 - 1,
        4 * 65_536 + 1,
        1 << 20,
        (1 << 20) + 1,
        3_500_000,
    ] {
        let mut data = vec![0u8; size];
        rng.fill_bytes(&mut data);
        let path = format!("/d/f-{size}");
        let mut w = c.open_write(&path, WriteOptions::default()).await.unwrap();
        for piece in data.chunks(100_000) {
            w.write(piece).await.unwrap();
        }
        assert_eq!(w.len(), size as u64);
        let st = w.close().await.unwrap();
        assert_eq!(st.size, size as u64);
        assert_eq!(read_all(&c, &path).await, data, "size {size}");
    }

    // Random writes at any offset (appends, overwrites of buffered and committed bytes, gaps),
    // hsync and set_len on the way, against an in-memory model.
    let path = "/d/random";
    let mut model = Vec::new();
    let mut w = c.open_write(path, WriteOptions::default()).await.unwrap();
    for step in 0..60 {
        let len = rng.random_range(1..200_000usize);
        let at = match rng.random_range(0..4) {
            0 => model.len(),
            1 => model.len() + rng.random_range(0..300_000),
            _ => rng.random_range(0..=model.len()),
        };
        let mut data = vec![0u8; len];
        rng.fill_bytes(&mut data);
        w.write_at(at as u64, &data).await.unwrap();
        model_write(&mut model, at, &data);
        assert_eq!(w.len(), model.len() as u64, "step {step}");
        if step % 15 == 7 {
            let st = w.hsync().await.unwrap();
            assert_eq!(st.size, model.len() as u64);
            assert_eq!(
                read_all(&c, path).await,
                model,
                "visible after hsync, step {step}"
            );
        }
        if step % 20 == 19 {
            let size = rng.random_range(0..=model.len() + 100_000);
            w.set_len(size as u64).await.unwrap();
            model.resize(size, 0);
            assert_eq!(w.len(), size as u64);
        }
    }
    w.close().await.unwrap();
    assert_eq!(read_all(&c, path).await, model);

    // Reopening without truncation rewrites in place; appending adds at the end.
    let mut w = c.open_write(path, WriteOptions::default()).await.unwrap();
    assert_eq!(w.len(), model.len() as u64);
    w.write_at(10, b"patched").await.unwrap();
    model_write(&mut model, 10, b"patched");
    w.close().await.unwrap();
    let append = WriteOptions {
        append: true,
        ..WriteOptions::default()
    };
    let mut w = c.open_write(path, append.clone()).await.unwrap();
    w.write(b"tail bytes").await.unwrap();
    let end = model.len();
    model_write(&mut model, end, b"tail bytes");

    // A second writer is refused while the first holds the lease.
    let err = c.open_write(path, append).await.err().expect("lease held");
    assert_eq!(err.code, ErrorCode::LeaseHeld, "{err}");
    w.close().await.unwrap();
    assert_eq!(read_all(&c, path).await, model);

    // By inode, as the mount opens files.
    let st = c.stat(path).await.unwrap();
    assert_eq!(c.stat_ino(st.ino).await.unwrap().size, model.len() as u64);
    let by_ino = c.open_read_ino(st.ino).await.unwrap();
    assert_eq!(by_ino.len(), model.len() as u64);
    assert_eq!(&by_ino.read_at(5, 20).await.unwrap()[..], &model[5..25]);

    // Concurrent readers of one reader see the right bytes.
    let r = std::sync::Arc::new(c.open_read(path).await.unwrap());
    let mut tasks = Vec::new();
    for t in 0..4u64 {
        let r = r.clone();
        let model = model.clone();
        tasks.push(tokio::spawn(async move {
            let mut at = t * 1000;
            while at < r.len() {
                let d = r.read_at(at, 70_000).await.unwrap();
                assert_eq!(&d[..], &model[at as usize..at as usize + d.len()]);
                at += d.len() as u64 * 3;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    // Degraded reads: two of six servers down still read right; three make blocks missing.
    let big = read_all(&c, "/d/f-3500000").await;
    cluster.stop_blockserver(0);
    cluster.stop_blockserver(1);
    assert_eq!(read_all(&c, "/d/f-3500000").await, big);
    // A write with two servers down still commits (at least k shards land).
    let mut data = vec![0u8; 2_000_000];
    rng.fill_bytes(&mut data);
    let mut w = c
        .open_write("/d/degraded", WriteOptions::default())
        .await
        .unwrap();
    w.write(&data).await.unwrap();
    w.close().await.unwrap();
    assert_eq!(read_all(&c, "/d/degraded").await, data);
    cluster.stop_blockserver(2);
    let r = c.open_read("/d/f-3500000").await.unwrap();
    let err = r.read_at(0, 1 << 20).await.expect_err("block missing");
    assert_eq!(err.code, ErrorCode::BlockMissing, "{err}");
    assert!(err.message.contains("/d/f-3500000"), "{err}");
    assert!(err.message.contains("blk_"), "{err}");
}
