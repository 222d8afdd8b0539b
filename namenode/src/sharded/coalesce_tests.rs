//! The lane's promises, on a kind whose calls sleep for as long as their items ask (the
//! queueing alone), and on a real shard served over gRPC (answers routed to their callers).

use super::*;
use std::sync::Arc;
use std::time::Instant;

use arbor_metastore::{Shard, ShardConfig};
use arbor_proto::metastore::{
    CommitRequest, ReadCheck, ScanRequest, TxnBody, Write, commit_response, write,
};

use crate::sharded::metaclient::{CallError, ReadKeys, ShardClient};

/// A client whose calls take as long as their longest item says.
#[derive(Clone, Default)]
struct Sleeper {
    lane: Arc<Lane<Sleeps>>,
}

struct Sleeps;

impl Kind for Sleeps {
    type Client = Sleeper;
    type Item = (u32, Duration);
    type Answer = Option<u32>;
    const BUDGET: usize = 4;

    fn weight(_: &Self::Item) -> usize {
        1
    }

    fn lane(client: &Sleeper) -> &Lane<Self> {
        &client.lane
    }

    async fn one(_: &Sleeper, (n, d): Self::Item) -> Self::Answer {
        tokio::time::sleep(d).await;
        Some(n)
    }

    async fn many(_: &Sleeper, items: Vec<Self::Item>) -> Vec<Self::Answer> {
        let longest = items.iter().map(|i| i.1).max().unwrap_or_default();
        tokio::time::sleep(longest).await;
        items.into_iter().map(|(n, _)| Some(n)).collect()
    }

    fn dropped(_: &Sleeper) -> Self::Answer {
        None
    }
}

#[tokio::test]
async fn a_lone_call_goes_at_once_and_queued_calls_leave_together() {
    let client = Sleeper::default();
    assert_eq!(call::<Sleeps>(&client, (7, Duration::ZERO)).await, Some(7));
    assert_eq!(client.lane.sent(), (1, 1));

    // One call in flight; nine more queue behind it and leave in batches of at most four.
    let first = {
        let c = client.clone();
        tokio::spawn(async move { call::<Sleeps>(&c, (0, Duration::from_millis(5))).await })
    };
    tokio::task::yield_now().await;
    let rest: Vec<_> = (1..10)
        .map(|n| {
            let c = client.clone();
            tokio::spawn(async move { call::<Sleeps>(&c, (n, Duration::from_millis(1))).await })
        })
        .collect();
    assert_eq!(first.await.unwrap(), Some(0));
    for (n, h) in (1..10).zip(rest) {
        assert_eq!(h.await.unwrap(), Some(n), "each caller gets its own answer");
    }
    let (calls, items) = client.lane.sent();
    assert_eq!(items, 11);
    assert!(
        calls < 11,
        "{calls} calls for 11 items: nothing was coalesced"
    );
    assert!(
        calls >= 1 + 1 + 3,
        "batches exceed their budget: {calls} calls"
    );
}

#[tokio::test]
async fn a_slow_call_holds_its_lane_no_longer_than_slow() {
    let client = Sleeper::default();
    let slow = {
        let c = client.clone();
        tokio::spawn(async move { call::<Sleeps>(&c, (0, Duration::from_secs(2))).await })
    };
    tokio::task::yield_now().await;
    let start = Instant::now();
    let fast: Vec<_> = (1..4)
        .map(|n| {
            let c = client.clone();
            tokio::spawn(async move { call::<Sleeps>(&c, (n, Duration::ZERO)).await })
        })
        .collect();
    for h in fast {
        assert!(h.await.unwrap().is_some());
    }
    let waited = start.elapsed();
    assert!(
        waited < Duration::from_secs(1),
        "fast calls waited {waited:?} behind a slow one"
    );
    assert_eq!(slow.await.unwrap(), Some(0), "the slow call still finishes");
}

#[tokio::test]
async fn a_cancelled_call_passes_its_slot_on() {
    let client = Sleeper::default();
    let c = client.clone();
    let cancelled =
        tokio::spawn(async move { call::<Sleeps>(&c, (0, Duration::from_secs(30))).await });
    tokio::task::yield_now().await;
    let c = client.clone();
    let queued = tokio::spawn(async move { call::<Sleeps>(&c, (1, Duration::ZERO)).await });
    tokio::task::yield_now().await;
    cancelled.abort();
    let got = tokio::time::timeout(Duration::from_secs(5), queued).await;
    assert_eq!(got.expect("queued call was stranded").unwrap(), Some(1));
}

async fn served_shard(dir: &std::path::Path) -> (Shard, ShardClient) {
    let shard = Shard::open(ShardConfig::new(dir, 0))
        .await
        .expect("open shard");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let served = shard.clone();
    tokio::spawn(async move {
        arbor_metastore::server::serve(served, listener, std::future::pending()).await
    });
    let client = ShardClient::new(0, &addr.to_string(), Duration::from_secs(10)).expect("client");
    (shard, client)
}

fn put(key: &[u8], value: &[u8]) -> Write {
    Write {
        key: key.to_vec(),
        op: Some(write::Op::Put(value.to_vec())),
    }
}

fn commit(
    client: &ShardClient,
    n: usize,
    check: Option<u64>,
) -> impl Future<Output = (usize, Result<bool, CallError>)> + use<> {
    let client = client.clone();
    async move {
        let key = format!("k{n:03}").into_bytes();
        let body = TxnBody {
            reads: check
                .map(|version| ReadCheck {
                    key: key.clone(),
                    version,
                })
                .into_iter()
                .collect(),
            empty_prefixes: Vec::new(),
            writes: vec![put(&key, format!("v{n}").as_bytes())],
        };
        let req = CommitRequest {
            txn_id: format!("t{n}").into_bytes(),
            body: Some(body),
            ..Default::default()
        };
        let got = client
            .commit(req)
            .await
            .map(|r| matches!(r.outcome, Some(commit_response::Outcome::CommittedSeq(_))));
        (n, got)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_and_reads_on_a_real_shard_get_their_own_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_shard, client) = served_shard(dir.path()).await;

    // 64 at once: the even ones check that their key is absent (it is), the odd ones claim a
    // version it never had, so each must conflict alone without failing its batch.
    let outcomes = futures::future::join_all(
        (0..64).map(|n| commit(&client, n, Some(if n.is_multiple_of(2) { 0 } else { 99 }))),
    )
    .await;
    for (n, got) in outcomes {
        assert_eq!(got.expect("commit"), n.is_multiple_of(2), "commit {n}");
    }
    let ((_, _), (calls, items)) = client.sent();
    assert_eq!(items, 64);
    assert!(calls < 64, "64 concurrent commits took {calls} calls");

    // Overlapping reads, each answered with exactly its own keys in its own order.
    let reads = (0..64).map(|n| {
        let client = client.clone();
        async move {
            let keys: Vec<Vec<u8>> = [n, (n + 1) % 64, 0]
                .iter()
                .map(|i| format!("k{i:03}").into_bytes())
                .collect();
            (n, client.get(keys).await.expect("get"))
        }
    });
    for (n, rows) in futures::future::join_all(reads).await {
        let expect = |i: usize| {
            if i.is_multiple_of(2) {
                format!("v{i}").into_bytes()
            } else {
                Vec::new()
            }
        };
        let got: Vec<(Vec<u8>, bool)> = rows
            .iter()
            .map(|r| (r.value.clone(), r.version > 0))
            .collect();
        let want: Vec<(Vec<u8>, bool)> = [n, (n + 1) % 64, 0]
            .iter()
            .map(|&i| (expect(i), i.is_multiple_of(2)))
            .collect();
        assert_eq!(got, want, "read {n}");
    }
    let ((calls, items), _) = client.sent();
    assert_eq!(items, 64);
    assert!(calls < 64, "64 concurrent reads took {calls} calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalesced_reads_with_scans_each_get_their_own_pages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_shard, client) = served_shard(dir.path()).await;
    // k000..k063, all present.
    futures::future::join_all((0..64).map(|n| commit(&client, n, None))).await;
    let reads = (0..48usize).map(|n| {
        let client = client.clone();
        async move {
            // One point read, then two scans: the 10s decade of n % 6, and a limited page.
            let decade = n % 6;
            let read = ReadKeys {
                keys: vec![format!("k{n:03}").into_bytes()],
                scans: vec![
                    ScanRequest {
                        start: format!("k0{decade}").into_bytes(),
                        end: format!("k0{}", decade + 1).into_bytes(),
                        limit: 0,
                        keys_only: false,
                    },
                    ScanRequest {
                        start: format!("k{n:03}").into_bytes(),
                        end: Vec::new(),
                        limit: 3,
                        keys_only: true,
                    },
                ],
                ..ReadKeys::default()
            };
            (n, client.read(read).await.expect("read"))
        }
    });
    for (n, got) in futures::future::join_all(reads).await {
        assert_eq!(got.rows.len(), 1, "read {n}");
        assert_eq!(got.rows[0].value, format!("v{n}").into_bytes(), "read {n}");
        assert_eq!(got.pages.len(), 2, "read {n}");
        let decade = n % 6;
        let keys: Vec<Vec<u8>> = got.pages[0].rows.iter().map(|r| r.key.clone()).collect();
        let want: Vec<Vec<u8>> = (decade * 10..(decade * 10 + 10).min(64))
            .map(|i| format!("k{i:03}").into_bytes())
            .collect();
        assert_eq!(keys, want, "read {n}: first scan");
        assert!(!got.pages[0].more, "read {n}");
        let keys: Vec<Vec<u8>> = got.pages[1].rows.iter().map(|r| r.key.clone()).collect();
        let want: Vec<Vec<u8>> = (n..n + 3)
            .map(|i| format!("k{i:03}").into_bytes())
            .collect();
        assert_eq!(keys, want, "read {n}: second scan");
        assert!(got.pages[1].more, "read {n}: the page was limited");
        assert!(
            got.pages[1].rows.iter().all(|r| r.value.is_empty()),
            "keys only"
        );
    }
    let ((calls, items), _) = client.sent();
    assert!(
        calls < 48,
        "48 concurrent reads took {calls} calls ({items} items)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_asked_by_one_of_many_coalesced_reads_is_granted() {
    use crate::sharded::metaclient::ReadLease;
    let dir = tempfile::tempdir().expect("tempdir");
    let (shard, client) = served_shard(dir.path()).await;
    let lease = Duration::from_millis(600);
    let client = client.with_read_lease(ReadLease {
        holder: b"namenode-a".to_vec().into(),
        length: lease,
    });
    // 32 reads of the same row at once; only one asks to keep it.
    let reads = (0..32).map(|n| {
        let client = client.clone();
        async move {
            client
                .get_leased(ReadKeys {
                    keys: vec![b"dir".to_vec(), format!("k{n}").into_bytes()],
                    leased: vec![n == 17, false],
                    ..ReadKeys::default()
                })
                .await
                .expect("get")
        }
    });
    futures::future::join_all(reads).await;
    let granted = Instant::now();
    let ((calls, items), _) = client.sent();
    assert_eq!(items, 32);
    assert!(calls < 32, "32 concurrent reads took {calls} calls");

    // Another holder's write of the row waits the lease out, however the reads were merged.
    let body = TxnBody {
        writes: vec![put(b"dir", b"changed")],
        ..Default::default()
    };
    shard
        .commit_as(b"namenode-b", b"t-b".to_vec(), body)
        .await
        .expect("commit");
    assert!(
        granted.elapsed() >= lease / 2,
        "the write was answered {:?} after the reads, inside the lease",
        granted.elapsed()
    );
}
