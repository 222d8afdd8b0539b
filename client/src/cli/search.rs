//! `arbor search QUERY… [--path PREFIX] [--limit N] [--json]`: finds entries through the
//! search service and prints them as a table (owner, group, size, modification time, path)
//! or as JSON.

use std::io::Write;

use arbor_proto::records::InodeKind;
use clap::Args;

use crate::cli::format;
use crate::cli::names::Names;
use crate::{Client, Identity, Options, namenode_list};

const QUERY_HELP: &str = "\
Query terms (all must match):
  name:GLOB | GLOB          the name, whole, case-sensitive (*, ?, [abc]): name:*.csv, '*.csv'
  type:f | type:d | type:l  files, directories, symlinks
  size>1G  size<10K         size; also >=, <=, =; K M G T P are powers of 1024
  mtime>2026-01-01          modified after an instant (UTC; 2026-01-01T12:00:00 too)
  mtime>7d                  modified within the last 7 days (7d = the instant 7 days ago;
  mtime<7d                  `<` = older than that); units s m h d w; atime ctime btime too
  owner=alice  group=staff  owner or group, by name or number
  xattr.project=fraud       an extended attribute with this value (user. prefix optional)
  xattr.project             the extended attribute exists
  WORD                      a word of the name or of an xattr value
Quote terms with < or > for the shell: arbor search 'size>1G' '*.csv'";

#[derive(Args, Debug)]
#[command(after_help = QUERY_HELP)]
pub struct SearchArgs {
    /// Query terms, all of which must match (see below).
    #[arg(required = true, num_args = 1..)]
    pub query: Vec<String>,
    /// Only entries at or below this path.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// Most results to print (newest modification first).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The search service (default: what the cluster advertises, else ARBOR_SEARCH, else
    /// 127.0.0.1:9300).
    #[arg(long, value_name = "HOST:PORT")]
    pub service: Option<String>,
}

fn kind_letter(kind: i32) -> &'static str {
    match InodeKind::try_from(kind).unwrap_or_default() {
        InodeKind::Directory => "d",
        InodeKind::Symlink => "l",
        _ => "f",
    }
}

pub async fn run(args: SearchArgs, namenode: Option<&str>) -> anyhow::Result<i32> {
    let client = Client::connect_with(
        &namenode_list(namenode),
        Identity::try_current()?,
        Options::default(),
    )?;
    let query = args.query.join(" ");
    let reply = match &args.service {
        Some(addr) => client.search_at(addr, &query, &args.path, args.limit).await,
        None => client.search(&query, &args.path, args.limit).await,
    };
    let reply = match reply {
        Ok(r) => r,
        Err(e) => {
            eprintln!("arbor search: {}", e.message);
            return Ok(1);
        }
    };
    let mut names = Names::default();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        let hits: Vec<serde_json::Value> = reply
            .hits
            .iter()
            .map(|h| {
                serde_json::json!({
                    "path": h.path,
                    "type": kind_letter(h.kind),
                    "size": h.size,
                    "owner": names.user(h.uid),
                    "group": names.group(h.gid),
                    "uid": h.uid,
                    "gid": h.gid,
                    "mode": format!("{:04o}", h.mode),
                    "mtime": format::utc_second(h.mtime_ns),
                    "mtime_ns": h.mtime_ns,
                    "atime_ns": h.atime_ns,
                    "ctime_ns": h.ctime_ns,
                    "btime_ns": h.btime_ns,
                    "ino": h.ino,
                })
            })
            .collect();
        let doc = serde_json::json!({ "total": reply.total, "hits": hits });
        writeln!(out, "{doc}")?;
    } else {
        let rows: Vec<[String; 5]> = reply
            .hits
            .iter()
            .map(|h| {
                [
                    format::permission_string(
                        InodeKind::try_from(h.kind).unwrap_or_default(),
                        h.mode,
                    ),
                    names.user(h.uid),
                    names.group(h.gid),
                    h.size.to_string(),
                    format::local_minute(h.mtime_ns),
                ]
            })
            .collect();
        let width = |i: usize| rows.iter().map(|r| r[i].len()).max().unwrap_or(0);
        let (w1, w2, w3) = (width(1), width(2), width(3));
        for (r, h) in rows.iter().zip(&reply.hits) {
            writeln!(
                out,
                "{} {} {} {} {} {}",
                r[0],
                format::left(&r[1], w1),
                format::left(&r[2], w2),
                format::right(&r[3], w3),
                r[4],
                h.path
            )?;
        }
    }
    out.flush()?;
    if (reply.hits.len() as u64) < reply.total && !args.json {
        eprintln!(
            "arbor search: {} of {} matches shown (raise --limit for more)",
            reply.hits.len(),
            reply.total
        );
    }
    Ok(0)
}
