//! The object store a block server keeps its shards in, chosen by URL, and the shard-level
//! operations on it (streaming put, footer and range reads, delete, listing, the server id).
//!
//! - `file:///abs/dir`: a local directory through `LocalFileSystem` built `.with_fsync(true)`:
//!   a completed upload is `sync_all`ed, renamed into place and its directory fsynced, so a
//!   put that returned survives a power cut.
//! - `s3://bucket/prefix`: `ARBOR_S3_ENDPOINT` (http allowed when it is http),
//!   `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`
//!   (default us-east-1).
//! - `az://container/prefix`: `ARBOR_AZURE_EMULATOR=http://host:port` for Azurite's
//!   development account, else `AZURE_STORAGE_ACCOUNT_NAME` / `AZURE_STORAGE_ACCOUNT_KEY`.
//!
//! Invariant: a shard object is only ever published whole (data, crc table, footer) by one
//! atomic put or multipart completion; memory per upload is bounded by about two parts.

use crate::error::Error;
use crate::shardfile::{self, Footer, ShardKey};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    GetOptions, GetRange, MultipartUpload, ObjectStore, ObjectStoreExt, PutMode, PutPayload,
};
use std::ops::Range;
use std::sync::Arc;

/// Where the server id is kept.
pub const SERVER_ID_OBJECT: &str = "server-id";

/// Capacity assumed for object stores that cannot report one.
pub const DEFAULT_REMOTE_CAPACITY: u64 = 1 << 40;

#[derive(Clone, Debug)]
enum Kind {
    Local(std::path::PathBuf),
    Remote,
}

/// One shard as listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listed {
    pub key: ShardKey,
    /// Object bytes (data, crc table and footer).
    pub size: u64,
    pub modified_ns: i64,
}

/// A shard store over any object_store backend.
#[derive(Clone, Debug)]
pub struct ShardStore {
    store: Arc<dyn ObjectStore>,
    url: String,
    kind: Kind,
    /// Bytes buffered before a part is sent (S3 needs 5 MiB parts but the last).
    part_size: usize,
    /// Whether the store serves suffix ranges (Azure does not: it needs a HEAD first).
    suffix_reads: bool,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Splits "scheme://first/rest" into (first, rest without slashes at the ends).
fn split_url<'a>(url: &'a str, scheme: &str) -> Result<(&'a str, &'a str), Error> {
    let rest = url
        .strip_prefix(scheme)
        .ok_or_else(|| Error::InvalidArgument(format!("{url}: expected {scheme}")))?;
    let (first, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if first.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{url}: no bucket or container"
        )));
    }
    Ok((first, prefix.trim_matches('/')))
}

fn with_prefix(store: Arc<dyn ObjectStore>, prefix: &str) -> Arc<dyn ObjectStore> {
    if prefix.is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    }
}

impl ShardStore {
    /// Opens the store a URL names (creating a local directory if needed).
    pub fn open(url: &str) -> Result<ShardStore, Error> {
        const MIB: usize = 1 << 20;
        if let Some(dir) = url.strip_prefix("file://") {
            if !dir.starts_with('/') {
                return Err(Error::InvalidArgument(format!(
                    "{url}: a file URL needs an absolute path (file:///dir)"
                )));
            }
            std::fs::create_dir_all(dir).map_err(|e| Error::Store(format!("create {dir}: {e}")))?;
            let fs = LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| Error::Store(format!("open {dir}: {e}")))?
                .with_fsync(true);
            return Ok(ShardStore {
                store: Arc::new(fs),
                url: url.to_string(),
                kind: Kind::Local(dir.into()),
                part_size: MIB,
                suffix_reads: true,
            });
        }
        if url.starts_with("s3://") {
            let (bucket, prefix) = split_url(url, "s3://")?;
            let mut b = AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_region(env("AWS_REGION").unwrap_or_else(|| "us-east-1".into()));
            if let Some(endpoint) = env("ARBOR_S3_ENDPOINT") {
                b = b
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_endpoint(endpoint);
            }
            if let Some(v) = env("AWS_ACCESS_KEY_ID") {
                b = b.with_access_key_id(v);
            }
            if let Some(v) = env("AWS_SECRET_ACCESS_KEY") {
                b = b.with_secret_access_key(v);
            }
            if let Some(v) = env("AWS_SESSION_TOKEN") {
                b = b.with_token(v);
            }
            let s3 = b.build().map_err(|e| Error::Store(format!("{url}: {e}")))?;
            return Ok(ShardStore {
                store: with_prefix(Arc::new(s3), prefix),
                url: url.to_string(),
                kind: Kind::Remote,
                part_size: 5 * MIB,
                suffix_reads: true,
            });
        }
        if url.starts_with("az://") {
            let (container, prefix) = split_url(url, "az://")?;
            let mut b = MicrosoftAzureBuilder::new().with_container_name(container);
            if let Some(emulator) = env("ARBOR_AZURE_EMULATOR") {
                // Azurite serves accounts path-style: http://host:port/<account>/<container>.
                b = b
                    .with_account(AZURITE_ACCOUNT)
                    .with_access_key(AZURITE_KEY)
                    .with_endpoint(format!(
                        "{}/{AZURITE_ACCOUNT}",
                        emulator.trim_end_matches('/')
                    ))
                    .with_allow_http(true);
            } else {
                if let Some(v) = env("AZURE_STORAGE_ACCOUNT_NAME") {
                    b = b.with_account(v);
                }
                if let Some(v) = env("AZURE_STORAGE_ACCOUNT_KEY") {
                    b = b.with_access_key(v);
                }
            }
            let az = b.build().map_err(|e| Error::Store(format!("{url}: {e}")))?;
            return Ok(ShardStore {
                store: with_prefix(Arc::new(az), prefix),
                url: url.to_string(),
                kind: Kind::Remote,
                part_size: 4 * MIB,
                suffix_reads: false,
            });
        }
        Err(Error::InvalidArgument(format!(
            "{url}: unsupported store URL (file:///dir, s3://bucket/prefix, az://container/prefix)"
        )))
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Reads the server id, or picks a random non-zero one and stores it on first start.
    pub async fn server_id(&self) -> Result<u64, Error> {
        let path = Path::from(SERVER_ID_OBJECT);
        loop {
            match self.store.get(&path).await {
                Ok(r) => {
                    let b = r.bytes().await?;
                    let text = String::from_utf8_lossy(&b);
                    return text
                        .trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|id| *id != 0)
                        .ok_or_else(|| {
                            Error::Corrupt(format!("{SERVER_ID_OBJECT}: {:?} is not an id", text))
                        });
                }
                Err(object_store::Error::NotFound { .. }) => {
                    let id = loop {
                        let id: u64 = rand::random();
                        if id != 0 {
                            break id;
                        }
                    };
                    let payload = PutPayload::from(format!("{id}\n"));
                    match self
                        .store
                        .put_opts(&path, payload, PutMode::Create.into())
                        .await
                    {
                        Ok(_) => return Ok(id),
                        // Another process created it meanwhile: read theirs.
                        Err(object_store::Error::AlreadyExists { .. }) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Starts writing a shard; nothing is visible until `ShardUpload::finish`.
    pub fn begin_put(&self, key: ShardKey, chunk: u32) -> ShardUpload {
        ShardUpload {
            store: self.store.clone(),
            path: shardfile::object_path(key),
            key,
            chunk,
            part_size: self.part_size,
            buf: BytesMut::new(),
            upload: None,
            in_flight: None,
            crcs: Vec::new(),
            data_len: 0,
        }
    }

    /// Reads and checks a shard's footer: one suffix read, or a HEAD and a range read where
    /// the store has no suffix reads.
    pub async fn footer(&self, key: ShardKey) -> Result<Footer, Error> {
        let path = shardfile::object_path(key);
        let missing = |e: object_store::Error| match e {
            object_store::Error::NotFound { .. } => Error::NotFound(format!("{key}")),
            other => other.into(),
        };
        if !self.suffix_reads {
            let size = self.store.head(&path).await.map_err(missing)?.size;
            let start = size.saturating_sub(shardfile::FOOTER_LEN);
            let b = self
                .store
                .get_range(&path, start..size)
                .await
                .map_err(missing)?;
            return Footer::decode(&b, size, key);
        }
        let opts = GetOptions {
            range: Some(GetRange::Suffix(shardfile::FOOTER_LEN)),
            ..Default::default()
        };
        let r = self.store.get_opts(&path, opts).await.map_err(missing)?;
        let size = r.meta.size;
        let b = r.bytes().await?;
        Footer::decode(&b, size, key)
    }

    /// Raw bytes of a shard object.
    pub async fn read(&self, key: ShardKey, range: Range<u64>) -> Result<Bytes, Error> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let b = self
            .store
            .get_range(&shardfile::object_path(key), range.clone())
            .await?;
        if b.len() as u64 != range.end - range.start {
            return Err(Error::Corrupt(format!(
                "{key}: short read of {} bytes at {}",
                b.len(),
                range.start
            )));
        }
        Ok(b)
    }

    /// Deletes a shard; returns the object's size when it existed.
    pub async fn delete(&self, key: ShardKey) -> Result<Option<u64>, Error> {
        let path = shardfile::object_path(key);
        let size = match self.store.head(&path).await {
            Ok(meta) => meta.size,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match self.store.delete(&path).await {
            Ok(()) => Ok(Some(size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every shard in the store (order unspecified).
    pub async fn list(&self) -> Result<Vec<Listed>, Error> {
        let mut out = Vec::new();
        let mut stream = self.store.list(Some(&Path::from(shardfile::SHARDS_DIR)));
        while let Some(meta) = stream.next().await {
            let meta = meta?;
            if let Some(key) = shardfile::parse_object_path(&meta.location) {
                out.push(Listed {
                    key,
                    size: meta.size,
                    modified_ns: meta.last_modified.timestamp_nanos_opt().unwrap_or(0),
                });
            }
        }
        Ok(out)
    }

    /// Bytes this store may hold in all: the file system's free space plus `used` for a local
    /// directory; `None` when the store cannot tell.
    pub async fn capacity(&self, used: u64) -> Option<u64> {
        let Kind::Local(dir) = &self.kind else {
            return None;
        };
        let dir = dir.clone();
        let free = tokio::task::spawn_blocking(move || {
            nix::sys::statvfs::statvfs(&dir)
                .ok()
                .map(|s| s.blocks_available() * s.fragment_size())
        })
        .await
        .ok()
        .flatten()?;
        Some(free.saturating_add(used))
    }

    pub fn is_local(&self) -> bool {
        matches!(self.kind, Kind::Local(_))
    }
}

/// Azurite's well-known development account.
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A shard being written. Data goes into a buffer that becomes one put when the shard is
/// small; past one part it becomes a multipart upload with one part in flight while the next
/// fills. `finish` appends the crc table and footer and publishes the object durably.
pub struct ShardUpload {
    store: Arc<dyn ObjectStore>,
    path: Path,
    key: ShardKey,
    chunk: u32,
    part_size: usize,
    buf: BytesMut,
    upload: Option<Box<dyn MultipartUpload>>,
    /// The part being uploaded while the next one fills (spawned: part futures are lazy).
    in_flight: Option<tokio::task::JoinHandle<object_store::Result<()>>>,
    crcs: Vec<u32>,
    data_len: u64,
}

impl ShardUpload {
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    /// Appends verified data and its crcs.
    pub async fn append(&mut self, data: &[u8], crcs: &[u32]) -> Result<(), Error> {
        self.buf.extend_from_slice(data);
        self.crcs.extend_from_slice(crcs);
        self.data_len += data.len() as u64;
        while self.buf.len() >= self.part_size {
            let part = self.buf.split_to(self.part_size).freeze();
            self.send_part(part).await?;
        }
        Ok(())
    }

    async fn send_part(&mut self, part: Bytes) -> Result<(), Error> {
        if self.upload.is_none() {
            self.upload = Some(self.store.put_multipart(&self.path).await?);
        }
        if let Some(prev) = self.in_flight.take() {
            join_part(prev).await?;
        }
        if let Some(upload) = self.upload.as_mut() {
            self.in_flight = Some(tokio::spawn(upload.put_part(PutPayload::from(part))));
        }
        Ok(())
    }

    /// Publishes the shard; returns its object size once it is durable.
    pub async fn finish(mut self) -> Result<u64, Error> {
        let footer = Footer::new(self.key, self.data_len, self.chunk);
        if footer.crc_count as usize != self.crcs.len() {
            let err = Error::InvalidArgument(format!(
                "{}: {} checksums for {} bytes in chunks of {}",
                self.key,
                self.crcs.len(),
                self.data_len,
                self.chunk
            ));
            self.abort().await;
            return Err(err);
        }
        self.buf
            .extend_from_slice(&shardfile::encode_crcs(&self.crcs));
        self.buf.extend_from_slice(&footer.encode());
        let tail = std::mem::take(&mut self.buf).freeze();
        let result = match self.upload.take() {
            None => self
                .store
                .put_opts(
                    &self.path,
                    PutPayload::from(tail),
                    PutMode::Overwrite.into(),
                )
                .await
                .map(|_| ())
                .map_err(Error::from),
            Some(mut upload) => {
                let r = async {
                    if let Some(prev) = self.in_flight.take() {
                        join_part(prev).await?;
                    }
                    upload.put_part(PutPayload::from(tail)).await?;
                    upload.complete().await.map(|_| ()).map_err(Error::from)
                }
                .await;
                if r.is_err() {
                    let _ = upload.abort().await;
                }
                r
            }
        };
        result?;
        Ok(footer.object_len())
    }

    /// Drops what was written.
    pub async fn abort(mut self) {
        if let Some(prev) = self.in_flight.take() {
            let _ = prev.await;
        }
        if let Some(mut upload) = self.upload.take()
            && let Err(e) = upload.abort().await
        {
            tracing::debug!(key = %self.key, error = %e, "abort of a shard upload failed");
        }
    }
}

async fn join_part(h: tokio::task::JoinHandle<object_store::Result<()>>) -> Result<(), Error> {
    match h.await {
        Ok(r) => r.map_err(Error::from),
        Err(e) => Err(Error::Internal(format!("part upload task: {e}"))),
    }
}
