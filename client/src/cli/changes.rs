//! `arbor changes [--from now|beginning|POSITION] [--path PREFIX] [--json] [--consumer NAME]`:
//! follows the namespace's changes as they commit, one line per event, until interrupted.
//! It reads the shards' change logs itself (their addresses come from the namenodes) and
//! stores no cursor unless `--consumer` asks for one; then a later run with the same name
//! resumes where this one stopped. On exit it prints the position to resume from.

use std::io::Write;
use std::time::{Duration, Instant};

use arbor_search::changes::{Follower, Start};
use arbor_search::shards::Shard;
use clap::Args;

use crate::{Client, Identity, Options, namenode_list};

#[derive(Args, Debug)]
pub struct ChangesArgs {
    /// Where to start: `now`, `beginning` (the oldest change the shards keep), or a position
    /// printed by an earlier run (per-shard sequences, `12,40,7,9`).
    #[arg(long, default_value = "now")]
    pub from: String,
    /// Only events at or below this path (either path of a rename).
    #[arg(long)]
    pub path: Option<String>,
    /// One JSON object per line (with the position after the event).
    #[arg(long)]
    pub json: bool,
    /// Store this consumer's position on the shards and resume from it next time.
    #[arg(long)]
    pub consumer: Option<String>,
    /// Exit after this many events.
    #[arg(long)]
    pub count: Option<u64>,
}

pub async fn run(args: ChangesArgs, namenode: Option<&str>) -> anyhow::Result<i32> {
    let start: Start = args.from.parse()?;
    let client = Client::connect_with(
        &namenode_list(namenode),
        Identity::try_current()?,
        Options::default(),
    )?;
    let info = client.cluster_info().await?;
    let shards = Shard::all(&info)?;
    let mut follower = Follower::start(shards, start, args.consumer.clone()).await?;
    eprintln!("arbor changes: following from {}", follower.position());
    let prefix = args.path.clone().unwrap_or_default();
    let mut printed = 0u64;
    let mut last_store = Instant::now();
    let stdout = std::io::stdout();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let outcome: anyhow::Result<()> = loop {
        tokio::select! {
            _ = &mut interrupted => break Ok(()),
            next = follower.next() => {
                let events = match next {
                    Ok(ev) => ev,
                    Err(e) => break Err(e.into()),
                };
                let mut out = stdout.lock();
                let position = follower.position().to_string();
                for ev in events.iter().filter(|e| e.under(&prefix)) {
                    if args.json {
                        let mut v = serde_json::to_value(ev)?;
                        if let Some(obj) = v.as_object_mut() {
                            obj.insert("position".into(), position.clone().into());
                        }
                        writeln!(out, "{v}")?;
                    } else {
                        writeln!(out, "{}", ev.line())?;
                    }
                    printed += 1;
                    if args.count.is_some_and(|c| printed >= c) {
                        break;
                    }
                }
                out.flush()?;
                drop(out);
                if args.count.is_some_and(|c| printed >= c) {
                    break Ok(());
                }
                if last_store.elapsed() >= Duration::from_secs(1) {
                    follower.store_cursor().await?;
                    last_store = Instant::now();
                }
            }
        }
    };
    follower.store_cursor().await?;
    eprintln!("arbor changes: resume with --from {}", follower.position());
    outcome?;
    Ok(0)
}
