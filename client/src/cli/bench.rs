//! `arbor bench meta`: metadata throughput and latency. N operations of one kind run over T
//! concurrent tasks against the cluster, in a fresh directory prepared by an untimed setup
//! phase; optionally the same operations run on a local directory (durably, with fsync of the
//! file and its directory, and without) so the figures have a reference beside them.
//! `rename` is measured twice: within one directory, and between two directories (which sit on
//! different shards almost always, so it is a two-phase commit).
//!
//! Invariant: only the timed phase is measured; each operation's latency is recorded once, in
//! microseconds, and a failed operation counts as an error, never as a latency.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use hdrhistogram::Histogram;
use rand::Rng;

use crate::client::{Client, Options};
use crate::error::Error;
use crate::identity::Identity;

/// Entries in the directory that `list` reads.
pub const LIST_ENTRIES: u64 = 100;
/// Distinct files `stat` cycles over.
pub const STAT_FILES: u64 = 1000;

/// Which metadata operation to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchOp {
    Create,
    Mkdir,
    Stat,
    List,
    Rename,
    Delete,
}

impl BenchOp {
    pub fn name(self) -> &'static str {
        match self {
            BenchOp::Create => "create",
            BenchOp::Mkdir => "mkdir",
            BenchOp::Stat => "stat",
            BenchOp::List => "list",
            BenchOp::Rename => "rename",
            BenchOp::Delete => "delete",
        }
    }
}

impl std::str::FromStr for BenchOp {
    type Err = String;
    fn from_str(s: &str) -> Result<BenchOp, String> {
        Ok(match s {
            "create" => BenchOp::Create,
            "mkdir" => BenchOp::Mkdir,
            "stat" => BenchOp::Stat,
            "list" => BenchOp::List,
            "rename" => BenchOp::Rename,
            "delete" => BenchOp::Delete,
            _ => {
                return Err(format!(
                    "unknown op '{s}' (create, mkdir, stat, list, rename, delete)"
                ));
            }
        })
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub op: BenchOp,
    pub threads: usize,
    pub count: u64,
    /// Cluster directory under which a fresh bench directory is made.
    pub dir: String,
    /// Local directory for the reference run.
    pub local: Option<PathBuf>,
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("bad benchmark configuration: {0}")]
    Config(String),
    #[error("setup of {what} failed: {message}")]
    Setup { what: String, message: String },
}

/// One row of results.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub op: String,
    pub system: String,
    pub threads: usize,
    pub ops: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Latencies in microseconds.
    pub latency: Histogram<u64>,
    pub first_error: Option<String>,
}

impl Measurement {
    pub fn ops_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ops as f64 / secs
        } else {
            0.0
        }
    }

    fn ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }
}

/// One namespace step, on a path or two.
#[derive(Debug, Clone)]
enum Step {
    Create(String),
    Mkdir(String),
    Stat(String),
    List(String),
    Rename(String, String),
    Delete(String),
}

/// The step of operation number i.
type StepFn = Arc<dyn Fn(u64) -> Step + Send + Sync>;

/// Where steps run.
#[derive(Clone)]
enum System {
    /// One client per namenode; task `t` uses client `t % n`, so load spreads over namenodes.
    Arbor(Arc<Vec<Client>>),
    Local {
        fsync: bool,
    },
}

impl System {
    fn name(&self) -> &'static str {
        match self {
            System::Arbor(_) => "arbor",
            System::Local { fsync: true } => "local+fsync",
            System::Local { fsync: false } => "local",
        }
    }

    async fn run(&self, task: usize, step: Step) -> Result<(), String> {
        match self {
            System::Arbor(clients) => {
                let c = &clients[task % clients.len()];
                arbor_step(c, step).await.map_err(|e| e.to_string())
            }
            System::Local { fsync } => {
                let fsync = *fsync;
                tokio::task::spawn_blocking(move || local_step(&step, fsync))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
            }
        }
    }
}

async fn arbor_step(c: &Client, step: Step) -> Result<(), Error> {
    match step {
        Step::Create(p) => c.create(&p, 0o644, false).await.map(drop),
        Step::Mkdir(p) => c.mkdir(&p, 0o755, false).await.map(drop),
        Step::Stat(p) => c.stat(&p).await.map(drop),
        Step::List(p) => c.list(&p).await.map(drop),
        Step::Rename(a, b) => c.rename(&a, &b).await,
        Step::Delete(p) => c.delete(&p, false).await.map(drop),
    }
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::File::open(dir)?.sync_all()
}

fn local_step(step: &Step, fsync: bool) -> std::io::Result<()> {
    match step {
        Step::Create(p) => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(p)?;
            if fsync {
                f.sync_all()?;
                sync_dir(Path::new(p))?;
            }
        }
        Step::Mkdir(p) => {
            std::fs::create_dir(p)?;
            if fsync {
                std::fs::File::open(p)?.sync_all()?;
                sync_dir(Path::new(p))?;
            }
        }
        Step::Stat(p) => {
            std::fs::symlink_metadata(p)?;
        }
        Step::List(p) => {
            // Names and attributes, as a namenode listing returns both.
            for entry in std::fs::read_dir(p)? {
                entry?.metadata()?;
            }
        }
        Step::Rename(a, b) => {
            std::fs::rename(a, b)?;
            if fsync {
                sync_dir(Path::new(b))?;
                let (pa, pb) = (Path::new(a).parent(), Path::new(b).parent());
                if pa != pb {
                    sync_dir(Path::new(a))?;
                }
            }
        }
        Step::Delete(p) => {
            std::fs::remove_file(p)?;
            if fsync {
                sync_dir(Path::new(p))?;
            }
        }
    }
    Ok(())
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .expect("1 µs to 1 hour at 3 significant digits are valid constant bounds")
}

/// Runs `steps(i)` for i in 0..count over `threads` tasks; measures each step.
async fn drive(
    system: &System,
    threads: usize,
    count: u64,
    steps: StepFn,
) -> (Histogram<u64>, u64, Option<String>, Duration) {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks = (0..threads.max(1)).map(|t| {
        let next = next.clone();
        let steps = steps.clone();
        let system = system.clone();
        tokio::spawn(async move {
            let mut hist = histogram();
            let mut errors = 0u64;
            let mut first_error = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let step = steps(i);
                let begun = Instant::now();
                match system.run(t, step).await {
                    Ok(()) => hist.saturating_record(begun.elapsed().as_micros().max(1) as u64),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (hist, errors, first_error)
        })
    });
    let results = join_all(tasks).await;
    let elapsed = started.elapsed();
    let mut hist = histogram();
    let mut errors = 0;
    let mut first_error = None;
    for r in results {
        match r {
            Ok((h, e, fe)) => {
                let _ = hist.add(&h);
                errors += e;
                if first_error.is_none() {
                    first_error = fe;
                }
            }
            Err(join) => {
                errors += 1;
                first_error.get_or_insert(join.to_string());
            }
        }
    }
    (hist, errors, first_error, elapsed)
}

/// Runs untimed preparation steps; any failure aborts the benchmark.
async fn prepare(
    system: &System,
    threads: usize,
    what: &str,
    count: u64,
    steps: StepFn,
) -> Result<(), BenchError> {
    let (_, errors, first, _) = drive(system, threads, count, steps).await;
    if errors > 0 {
        return Err(BenchError::Setup {
            what: format!("{what} on {}", system.name()),
            message: first.unwrap_or_default(),
        });
    }
    Ok(())
}

fn join(base: &str, name: &str) -> String {
    format!("{}/{name}", base.trim_end_matches('/'))
}

/// The measured phases of one op on one system, each as (row name, result).
async fn run_op(
    system: &System,
    cfg: &BenchConfig,
    base: &str,
) -> Result<Vec<Measurement>, BenchError> {
    let t = cfg.threads;
    let n = cfg.count;
    let one = |step: Step| -> StepFn { Arc::new(move |_| step.clone()) };
    prepare(
        system,
        1,
        "bench directory",
        1,
        one(Step::Mkdir(base.to_string())),
    )
    .await?;
    let d = join(base, "d");
    prepare(system, 1, "bench directory", 1, one(Step::Mkdir(d.clone()))).await?;
    let files_in = |dir: String, prefix: &'static str| -> StepFn {
        Arc::new(move |i| Step::Create(join(&dir, &format!("{prefix}-{i}"))))
    };
    let mut phases: Vec<(String, StepFn)> = Vec::new();
    match cfg.op {
        BenchOp::Create => phases.push(("create".into(), files_in(d.clone(), "f"))),
        BenchOp::Mkdir => {
            let d = d.clone();
            phases.push((
                "mkdir".into(),
                Arc::new(move |i| Step::Mkdir(join(&d, &format!("m-{i}")))),
            ));
        }
        BenchOp::Stat => {
            let files = n.clamp(1, STAT_FILES);
            prepare(system, t, "stat files", files, files_in(d.clone(), "f")).await?;
            let d = d.clone();
            phases.push((
                "stat".into(),
                Arc::new(move |i| Step::Stat(join(&d, &format!("f-{}", i % files)))),
            ));
        }
        BenchOp::List => {
            prepare(
                system,
                t,
                "list entries",
                LIST_ENTRIES,
                files_in(d.clone(), "f"),
            )
            .await?;
            phases.push(("list".into(), one(Step::List(d.clone()))));
        }
        BenchOp::Rename => {
            prepare(system, t, "rename sources", n, files_in(d.clone(), "f")).await?;
            let d1 = d.clone();
            phases.push((
                "rename".into(),
                Arc::new(move |i| {
                    Step::Rename(join(&d1, &format!("f-{i}")), join(&d1, &format!("g-{i}")))
                }),
            ));
            let src = join(base, "x1");
            let dst = join(base, "x2");
            prepare(
                system,
                1,
                "rename-xdir directories",
                1,
                one(Step::Mkdir(src.clone())),
            )
            .await?;
            prepare(
                system,
                1,
                "rename-xdir directories",
                1,
                one(Step::Mkdir(dst.clone())),
            )
            .await?;
            prepare(
                system,
                t,
                "rename-xdir sources",
                n,
                files_in(src.clone(), "f"),
            )
            .await?;
            phases.push((
                "rename-xdir".into(),
                Arc::new(move |i| {
                    Step::Rename(join(&src, &format!("f-{i}")), join(&dst, &format!("f-{i}")))
                }),
            ));
        }
        BenchOp::Delete => {
            prepare(system, t, "delete targets", n, files_in(d.clone(), "f")).await?;
            let d = d.clone();
            phases.push((
                "delete".into(),
                Arc::new(move |i| Step::Delete(join(&d, &format!("f-{i}")))),
            ));
        }
    }
    let mut rows = Vec::new();
    for (op, steps) in phases {
        let (latency, errors, first_error, elapsed) = drive(system, t, n, steps).await;
        rows.push(Measurement {
            op,
            system: system.name().to_string(),
            threads: t,
            ops: n - errors,
            errors,
            elapsed,
            latency,
            first_error,
        });
    }
    Ok(rows)
}

fn suffix() -> String {
    format!("{:08x}", rand::rng().random::<u32>())
}

/// Runs the benchmark; returns the rows (cluster first, then the local references).
pub async fn run(clients: Vec<Client>, cfg: &BenchConfig) -> Result<Vec<Measurement>, BenchError> {
    if cfg.threads == 0 || cfg.count == 0 {
        return Err(BenchError::Config(
            "--threads and --count must be positive".into(),
        ));
    }
    if clients.is_empty() {
        return Err(BenchError::Config("no namenode to benchmark".into()));
    }
    let tag = format!("bench-{}-{}", cfg.op.name(), suffix());
    let arbor = System::Arbor(Arc::new(clients.clone()));
    let arbor_base = join(&cfg.dir, &tag);
    if let Err(e) = clients[0].mkdir(&cfg.dir, 0o755, true).await {
        return Err(BenchError::Setup {
            what: format!("{} on arbor", cfg.dir),
            message: e.to_string(),
        });
    }
    let mut rows = run_op(&arbor, cfg, &arbor_base).await;
    // Cleanup is best effort and untimed.
    let _ = clients[0].delete(&arbor_base, true).await;
    if let (Ok(rows), Some(local)) = (&mut rows, &cfg.local) {
        let systems: &[bool] = match cfg.op {
            BenchOp::Stat | BenchOp::List => &[false],
            _ => &[true, false],
        };
        for &fsync in systems {
            let system = System::Local { fsync };
            let base = local.join(format!("{tag}-{}", system.name()));
            let base_str = base.display().to_string();
            let result = run_op(&system, cfg, &base_str).await;
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(base)).await;
            rows.extend(result?);
        }
    }
    // Local rows go beside the cluster row of the same op.
    rows.map(|mut r| {
        let order: Vec<String> = r
            .iter()
            .map(|m| m.op.clone())
            .fold(Vec::new(), |mut v, op| {
                if !v.contains(&op) {
                    v.push(op);
                }
                v
            });
        r.sort_by_key(|m| order.iter().position(|o| *o == m.op).unwrap_or(usize::MAX));
        r
    })
}

/// One client per namenode, each listing the others after it for failover, so concurrent
/// tasks spread over the namenodes.
pub fn clients_per_namenode(
    namenodes: &[String],
    identity: &Identity,
) -> Result<Vec<Client>, Error> {
    (0..namenodes.len())
        .map(|i| {
            let mut rotated = namenodes.to_vec();
            rotated.rotate_left(i);
            Client::connect_with(&rotated, identity.clone(), Options::default())
        })
        .collect()
}

/// Runs the benchmark against `namenodes` and prints the table (or JSON); the exit status is
/// 1 when any operation failed.
pub async fn run_and_print(
    namenodes: &[String],
    identity: &Identity,
    cfg: &BenchConfig,
) -> Result<i32, BenchError> {
    let clients =
        clients_per_namenode(namenodes, identity).map_err(|e| BenchError::Config(e.to_string()))?;
    let rows = run(clients, cfg).await?;
    if cfg.json {
        println!("{:#}", json(&rows));
    } else {
        println!(
            "arbor bench meta: {} x {} over {} tasks, namenodes {}",
            cfg.op.name(),
            cfg.count,
            cfg.threads,
            namenodes.join(",")
        );
        for line in table(&rows) {
            println!("{line}");
        }
    }
    Ok(i32::from(rows.iter().any(|r| r.errors > 0)))
}

/// The readable table.
pub fn table(rows: &[Measurement]) -> Vec<String> {
    let mut lines = vec![format!(
        "{:<12} {:<12} {:>7} {:>9} {:>7} {:>8} {:>10} {:>9} {:>9} {:>9}",
        "op", "system", "threads", "ops", "errors", "secs", "ops/s", "p50 ms", "p99 ms", "max ms"
    )];
    for m in rows {
        lines.push(format!(
            "{:<12} {:<12} {:>7} {:>9} {:>7} {:>8.2} {:>10.0} {:>9.3} {:>9.3} {:>9.3}",
            m.op,
            m.system,
            m.threads,
            m.ops,
            m.errors,
            m.elapsed.as_secs_f64(),
            m.ops_per_sec(),
            m.ms(0.5),
            m.ms(0.99),
            m.latency.max() as f64 / 1000.0
        ));
    }
    for m in rows {
        if let Some(e) = &m.first_error {
            lines.push(format!("{} on {}: first error: {e}", m.op, m.system));
        }
    }
    lines
}

/// The machine-readable form.
pub fn json(rows: &[Measurement]) -> serde_json::Value {
    let results: Vec<serde_json::Value> = rows
        .iter()
        .map(|m| {
            serde_json::json!({
                "op": m.op,
                "system": m.system,
                "threads": m.threads,
                "ops": m.ops,
                "errors": m.errors,
                "seconds": m.elapsed.as_secs_f64(),
                "ops_per_sec": m.ops_per_sec(),
                "p50_us": m.latency.value_at_quantile(0.5),
                "p99_us": m.latency.value_at_quantile(0.99),
                "max_us": m.latency.max(),
                "first_error": m.first_error,
            })
        })
        .collect();
    serde_json::json!({ "results": results })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(op: BenchOp, local: &Path) -> BenchConfig {
        BenchConfig {
            op,
            threads: 3,
            count: 40,
            dir: "/bench".into(),
            local: Some(local.to_path_buf()),
            json: false,
        }
    }

    #[tokio::test]
    async fn local_runs_measure_every_op_and_leave_the_directory_as_found() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("b").display().to_string();
        for op in ["create", "mkdir", "stat", "list", "rename", "delete"] {
            let op: BenchOp = op.parse().unwrap();
            let base = format!("{base}-{}", op.name());
            let system = System::Local {
                fsync: op == BenchOp::Create,
            };
            let rows = run_op(&system, &cfg(op, dir.path()), &base).await.unwrap();
            let expected = if op == BenchOp::Rename { 2 } else { 1 };
            assert_eq!(rows.len(), expected, "{op:?}");
            for r in &rows {
                assert_eq!(r.errors, 0, "{op:?}: {:?}", r.first_error);
                assert_eq!(r.ops, 40);
                assert_eq!(r.latency.len(), 40);
                assert!(r.ops_per_sec() > 0.0);
            }
            let d = Path::new(&base).join("d");
            let entries = std::fs::read_dir(&d).unwrap().count() as u64;
            let want = match op {
                BenchOp::Create | BenchOp::Mkdir | BenchOp::Rename => 40,
                BenchOp::Stat => 40,
                BenchOp::List => LIST_ENTRIES,
                BenchOp::Delete => 0,
            };
            assert_eq!(entries, want, "{op:?}");
            if op == BenchOp::Rename {
                assert!(Path::new(&base).join("d/g-39").exists());
                assert_eq!(
                    std::fs::read_dir(Path::new(&base).join("x2"))
                        .unwrap()
                        .count(),
                    40
                );
                assert_eq!(
                    std::fs::read_dir(Path::new(&base).join("x1"))
                        .unwrap()
                        .count(),
                    0
                );
            }
        }
    }

    #[tokio::test]
    async fn failures_count_as_errors_not_latencies() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope").display().to_string();
        let system = System::Local { fsync: false };
        let (hist, errors, first, _) = drive(
            &system,
            2,
            10,
            Arc::new(move |i| Step::Stat(format!("{missing}/{i}"))),
        )
        .await;
        assert_eq!(errors, 10);
        assert_eq!(hist.len(), 0);
        assert!(first.is_some());
    }

    #[test]
    fn table_and_json_report_the_same_figures() {
        let mut latency = histogram();
        for us in [100, 200, 300, 400, 10_000] {
            latency.saturating_record(us);
        }
        let m = Measurement {
            op: "create".into(),
            system: "arbor".into(),
            threads: 4,
            ops: 5,
            errors: 0,
            elapsed: Duration::from_millis(500),
            latency,
            first_error: None,
        };
        let lines = table(std::slice::from_ref(&m));
        assert!(lines[0].starts_with("op "));
        assert!(lines[1].starts_with("create       arbor"), "{}", lines[1]);
        assert!(lines[1].contains(" 10 "), "10 ops/s: {}", lines[1]);
        let v = json(&[m]);
        assert_eq!(v["results"][0]["ops_per_sec"], 10.0);
        assert_eq!(v["results"][0]["p50_us"], 300);
        assert_eq!(v["results"][0]["max_us"], 10_007);
    }

    #[test]
    fn ops_parse() {
        assert_eq!("rename".parse::<BenchOp>().unwrap(), BenchOp::Rename);
        assert!("chmod".parse::<BenchOp>().is_err());
    }
}
