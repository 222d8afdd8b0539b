//! The real `arbor-metastore` binary under concurrent gRPC commits, killed with SIGKILL in the
//! middle of them and restarted on the same directory: every acknowledged commit must be there
//! with the version it was acknowledged with. Then a SIGTERM must stop it cleanly.

use arbor_proto::metastore::{
    CommitRequest, CounterField, CounterOp, CounterUpdate, GetRequest, StatusRequest, TxnBody,
    Write, commit_response, metastore_client::MetastoreClient, write,
};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const ADDR: &str = "127.0.0.1:19411";
const CLIENTS: u64 = 16;

/// Starts the shard and waits for its "listening" line.
fn start(dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("shard.log"))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_arbor-metastore"))
        .arg("--dir")
        .arg(dir.join("data"))
        .args(["--listen", ADDR, "--shard", "0", "--segment-mb", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the shard printed its listening line");
    assert_eq!(line, format!("arbor-metastore shard 0 listening on {ADDR}"));
    child
}

async fn client() -> MetastoreClient<Channel> {
    let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:19411")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    MetastoreClient::new(channel)
}

/// One acknowledged commit of a client.
#[derive(Clone, Debug)]
struct Acked {
    n: u64,
    seq: u64,
}

fn key(client: u64, n: u64) -> Vec<u8> {
    format!("c{client:02}/{n:06}").into_bytes()
}

fn value(client: u64, n: u64) -> Vec<u8> {
    format!("value of {client}/{n} ").repeat(8).into_bytes()
}

/// Commits until the shard stops answering; returns what was acknowledged.
async fn run_client(id: u64, attempted: Arc<AtomicU64>, acked_total: Arc<AtomicU64>) -> Vec<Acked> {
    let mut c = client().await;
    let mut acked = Vec::new();
    for n in 0.. {
        let body = TxnBody {
            writes: vec![
                Write {
                    key: key(id, n),
                    op: Some(write::Op::Put(value(id, n))),
                },
                Write {
                    key: format!("last/{id:02}").into_bytes(),
                    op: Some(write::Op::Put(n.to_le_bytes().to_vec())),
                },
                Write {
                    key: b"total".to_vec(),
                    op: Some(write::Op::Counter(CounterUpdate {
                        width: 1,
                        fields: vec![CounterField {
                            index: 0,
                            op: CounterOp::CounterAdd as i32,
                            value: 1,
                        }],
                    })),
                },
            ],
            ..Default::default()
        };
        attempted.fetch_add(1, Ordering::SeqCst);
        let answer = c
            .commit(CommitRequest {
                txn_id: format!("{id}-{n}").into_bytes(),
                body: Some(body),
                ..Default::default()
            })
            .await;
        match answer.map(|r| r.into_inner().outcome) {
            Ok(Some(commit_response::Outcome::CommittedSeq(seq))) => {
                acked.push(Acked { n, seq });
                acked_total.fetch_add(1, Ordering::SeqCst);
            }
            Ok(other) => panic!("client {id}: unexpected answer {other:?}"),
            // The shard was killed.
            Err(_) => break,
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commits_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = start(dir.path());

    let attempted = Arc::new(AtomicU64::new(0));
    let acked_total = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|id| tokio::spawn(run_client(id, attempted.clone(), acked_total.clone())))
        .collect();
    // Kill in the middle of the stream: once enough commits are in, while all clients are
    // still sending.
    let started = Instant::now();
    while acked_total.load(Ordering::SeqCst) < 1500 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "commits too slow"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let mut acked: HashMap<u64, Vec<Acked>> = HashMap::new();
    for (id, t) in tasks.into_iter().enumerate() {
        acked.insert(id as u64, t.await.unwrap());
    }
    let acked_count: u64 = acked.values().map(|v| v.len() as u64).sum();
    let attempted = attempted.load(Ordering::SeqCst);
    assert!(acked_count >= 1500);
    // Every client was cut off mid-stream.
    assert_eq!(attempted, acked_count + CLIENTS);

    let mut child = start(dir.path());
    let log = std::fs::read_to_string(dir.path().join("shard.log")).unwrap();
    for line in log.lines().filter(|l| l.contains("shard recovered")) {
        eprintln!("{line}");
    }
    let mut c = client().await;
    let max_seq = acked.values().flatten().map(|a| a.seq).max().unwrap();
    let status = c.status(StatusRequest {}).await.unwrap().into_inner();
    assert!(status.applied_seq >= max_seq);

    for (&id, list) in &acked {
        for chunk in list.chunks(500) {
            let keys = chunk.iter().map(|a| key(id, a.n)).collect();
            let rows = c
                .get(GetRequest {
                    keys,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .rows;
            for (a, row) in chunk.iter().zip(rows) {
                assert_eq!(
                    row.version, a.seq,
                    "client {id} commit {} lost or changed",
                    a.n
                );
                assert_eq!(row.value, value(id, a.n));
            }
        }
        // The per-client row: at least as new as the last acknowledged write; if it is that
        // write, it holds its value; if newer, a later (unacknowledged but durable) commit.
        let last = list.last().unwrap();
        let rows = c
            .get(GetRequest {
                keys: vec![format!("last/{id:02}").into_bytes()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .rows;
        let n = u64::from_le_bytes(rows[0].value.as_slice().try_into().unwrap());
        assert!(rows[0].version >= last.seq);
        if rows[0].version == last.seq {
            assert_eq!(n, last.n);
        } else {
            assert_eq!(n, last.n + 1);
        }
    }
    let rows = c
        .get(GetRequest {
            keys: vec![b"total".to_vec()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .rows;
    let total = i64::from_le_bytes(rows[0].value.as_slice().try_into().unwrap()) as u64;
    assert!(
        (acked_count..=attempted).contains(&total),
        "counter {total} outside [{acked_count}, {attempted}]"
    );

    // The restarted shard takes new commits after the old ones.
    let next = c
        .commit(CommitRequest {
            txn_id: b"after".to_vec(),
            body: Some(TxnBody {
                writes: vec![Write {
                    key: b"after".to_vec(),
                    op: Some(write::Op::Put(b"x".to_vec())),
                }],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .outcome;
    match next {
        Some(commit_response::Outcome::CommittedSeq(seq)) => assert!(seq > status.applied_seq),
        other => panic!("{other:?}"),
    }

    // SIGTERM stops it cleanly.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("no exit after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit after SIGTERM: {exit:?}");
}
