//! Durable single-shard commits of 3 puts on distinct keys, with 1 and with 64 concurrent
//! committers (tokio tasks), on an in-process shard whose directory is on the real disk.
//! After each benchmark the committer's counters are printed: commits and fdatasync calls per
//! group, and where the time of a group went.

use arbor_metastore::{CommitOutcome, CommitStats, Shard, ShardConfig};
use arbor_proto::metastore::{TxnBody, Write, write};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

const VALUE: [u8; 100] = [7u8; 100];

fn body(committer: u64, n: u64) -> TxnBody {
    TxnBody {
        writes: (0..3)
            .map(|j| Write {
                key: format!("bench/{committer:03}/{n:012}/{j}").into_bytes(),
                op: Some(write::Op::Put(VALUE.to_vec())),
            })
            .collect(),
        ..Default::default()
    }
}

async fn commit(shard: &Shard, committer: u64, n: u64) {
    match shard.commit(Vec::new(), body(committer, n)).await {
        Ok(CommitOutcome::Committed(_)) => {}
        other => panic!("commit failed: {other:?}"),
    }
}

/// The machine's load averages: figures from a busy machine are not comparable to quiet ones.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn report(name: &str, before: CommitStats, after: CommitStats) {
    let groups = (after.groups - before.groups).max(1);
    let applies = (after.applies - before.applies).max(1);
    let records = after.records - before.records;
    let syncs = after.syncs - before.syncs;
    let ms = |us: u64, n: u64| us as f64 / n as f64 / 1000.0;
    println!(
        "{name}: {records} commits in {groups} groups: {:.1} commits/group, {:.2} fdatasync/group; \
         per group: build {:.3} ms, write {:.3} ms, fdatasync {:.3} ms (2 may overlap); \
         {applies} table batches of {:.1} groups, {:.3} ms each; load average {}",
        records as f64 / groups as f64,
        syncs as f64 / groups as f64,
        ms(after.build_us - before.build_us, groups),
        ms(after.write_us - before.write_us, groups),
        ms(after.sync_us - before.sync_us, groups),
        groups as f64 / applies as f64,
        ms(after.apply_us - before.apply_us, applies),
        loadavg(),
    );
}

/// `committers` tasks committing in a closed loop; criterion's iterations are split among them.
fn concurrent(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    shard: &Shard,
    next: &Arc<AtomicU64>,
    committers: u64,
) {
    let before = shard.commit_stats();
    let plural = if committers == 1 { "" } else { "s" };
    let name = format!("{committers} committer{plural}");
    group.bench_function(format!("3_puts/{committers}_committer{plural}"), |b| {
        b.to_async(rt).iter_custom(|iters| {
            let shard = shard.clone();
            let next = next.clone();
            async move {
                let per_task = iters.div_ceil(committers);
                let start = Instant::now();
                let tasks: Vec<_> = (0..committers)
                    .map(|t| {
                        let shard = shard.clone();
                        let next = next.clone();
                        tokio::spawn(async move {
                            for _ in 0..per_task {
                                let n = next.fetch_add(1, Ordering::Relaxed);
                                commit(&shard, t, n).await;
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("committer task");
                }
                // Scale to the `iters` commits asked for.
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (per_task * committers) as f64)
            }
        })
    });
    report(&name, before, shard.commit_stats());
}

fn bench_commit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // CARGO_TARGET_TMPDIR is under target/, on the real disk (not a tmpfs /tmp).
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let shard = rt
        .block_on(Shard::open(ShardConfig::new(dir.path(), 0)))
        .expect("open shard");
    let next = Arc::new(AtomicU64::new(0));

    let mut group = c.benchmark_group("commit");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    concurrent(&mut group, &rt, &shard, &next, 1);
    concurrent(&mut group, &rt, &shard, &next, 64);
    group.finish();
    rt.block_on(shard.close()).expect("close");
}

criterion_group!(benches, bench_commit);
criterion_main!(benches);
