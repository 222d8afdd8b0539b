//! `arbor`: the Arbor command line. Parses flags and hands over to `arbor_client::cli`.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use arbor_client::cli::bench::{self, BenchConfig, BenchOp};
use arbor_client::cli::dev::{self, DevConfig};
use arbor_client::cli::{dfs, fsck};
use arbor_client::{Client, Identity, Options, namenode_list};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "arbor",
    version,
    about = "Arbor: a distributed file system with scale-out metadata"
)]
struct Cli {
    /// Namenode addresses (comma-separated); default 127.0.0.1:8020.
    #[arg(
        long,
        global = true,
        env = "ARBOR_NAMENODE",
        value_name = "HOST:PORT[,...]"
    )]
    namenode: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// File system commands as `hdfs dfs` has them (`arbor dfs -help` lists them).
    Dfs {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
    /// Check the namespace's consistency.
    Fsck {
        /// Count under this path (the checks cover the whole namespace).
        #[arg(default_value = "/")]
        path: String,
    },
    /// Run a local cluster in the foreground (formats it on first start).
    Dev(DevArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Erasure-coding policies, as `hdfs ec` has them (`arbor ec -listPolicies`).
    Ec {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
    /// Mount Arbor through FUSE.
    Mount(arbor_client::cli::mount::MountArgs),
    /// Follow the namespace's changes as they commit.
    Changes(arbor_client::cli::changes::ChangesArgs),
    /// Find files by name, size, owner, times and extended attributes.
    Search(arbor_client::cli::search::SearchArgs),
}

#[derive(Args)]
struct DevArgs {
    /// Data directory (shards' data and logs).
    #[arg(long, default_value = "arbor-dev")]
    dir: PathBuf,
    /// Metastore shards (default: what DIR was formatted with, else 4).
    #[arg(long)]
    shards: Option<u32>,
    /// Namenodes.
    #[arg(long, default_value_t = 2)]
    namenodes: u32,
    /// Port of shard 0; shard I listens on PORT+I.
    #[arg(long, default_value_t = 9100)]
    metastore_port: u16,
    /// Port of namenode 0; namenode J listens on PORT+J.
    #[arg(long, default_value_t = 8020)]
    namenode_port: u16,
    /// Where arbor-metastore, arbor-namenode and arbor-blockserver are (default: next to this
    /// executable).
    #[arg(long, env = "ARBOR_BIN_DIR")]
    bin_dir: Option<PathBuf>,
    /// Block servers.
    #[arg(long, default_value_t = dev::DEFAULT_BLOCKSERVERS)]
    blockservers: u32,
    /// Port of block server 0; block server N listens on PORT+N.
    #[arg(long, default_value_t = 9200)]
    blockserver_port: u16,
    /// Store shards under this URL prefix instead of DIR/blockserver-N: block server N uses
    /// PREFIX/bs-N (e.g. s3://bucket/arbor, az://container/arbor).
    #[arg(long, env = "ARBOR_DEV_STORE_URL", value_name = "URL-PREFIX")]
    store_url: Option<String>,
    /// Port of the search service.
    #[arg(long, default_value_t = 9300)]
    search_port: u16,
    /// Run no search service.
    #[arg(long)]
    no_search: bool,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Metadata operations per second and their latency.
    Meta(MetaArgs),
    /// Write and read throughput of files.
    Data(arbor_client::cli::bench_data::DataArgs),
    /// A metadata and data benchmark of any directory (a mount, or a local one).
    Fs(arbor_client::cli::bench_fs::FsArgs),
}

#[derive(Args)]
struct MetaArgs {
    /// create, mkdir, stat, list, rename (same and cross directory) or delete.
    #[arg(long)]
    op: BenchOp,
    /// Concurrent tasks.
    #[arg(long, default_value_t = 8)]
    threads: usize,
    /// Operations to time.
    #[arg(long, default_value_t = 10_000)]
    count: u64,
    /// Cluster directory under which a fresh bench directory is made.
    #[arg(long, default_value = "/bench")]
    dir: String,
    /// Also run the operations on this local directory (with and without fsync).
    #[arg(long)]
    local: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn client(flag: Option<&str>) -> anyhow::Result<Client> {
    let identity = Identity::try_current()?;
    Ok(Client::connect_with(
        &namenode_list(flag),
        identity,
        Options::default(),
    )?)
}

#[tokio::main]
async fn main() {
    let code = match run().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("arbor: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

async fn run() -> anyhow::Result<i32> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let flag = cli.namenode.as_deref();
    let code = match cli.command {
        Command::Dfs { args } => {
            let out = Box::new(BufWriter::new(std::io::stdout()));
            dfs::run(client(flag)?, &args, out, Box::new(std::io::stderr())).await
        }
        Command::Fsck { path } => {
            let mut out = BufWriter::new(std::io::stdout());
            let code = fsck::run(&client(flag)?, &path, &mut out, &mut std::io::stderr()).await;
            out.flush()?;
            code
        }
        Command::Dev(a) => {
            dev::run(DevConfig {
                dir: a.dir,
                shards: a.shards,
                namenodes: a.namenodes,
                metastore_port: a.metastore_port,
                namenode_port: a.namenode_port,
                bin_dir: a.bin_dir,
                blockservers: a.blockservers,
                blockserver_port: a.blockserver_port,
                store_url: a.store_url,
                search_port: (!a.no_search).then_some(a.search_port),
            })
            .await?;
            0
        }
        Command::Bench(BenchCommand::Meta(a)) => {
            let cfg = BenchConfig {
                op: a.op,
                threads: a.threads,
                count: a.count,
                dir: a.dir,
                local: a.local,
                json: a.json,
            };
            bench::run_and_print(&namenode_list(flag), &Identity::try_current()?, &cfg).await?
        }
        Command::Bench(BenchCommand::Data(a)) => {
            arbor_client::cli::bench_data::run(a, flag).await?
        }
        Command::Bench(BenchCommand::Fs(a)) => arbor_client::cli::bench_fs::run(a).await?,
        Command::Ec { args } => arbor_client::cli::ec::run(&args, flag).await?,
        Command::Mount(a) => arbor_client::cli::mount::run(a, flag).await?,
        Command::Changes(a) => arbor_client::cli::changes::run(a, flag).await?,
        Command::Search(a) => arbor_client::cli::search::run(a, flag).await?,
    };
    Ok(code)
}
