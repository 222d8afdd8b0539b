//! The shard's write-ahead log: numbered segment files of framed records. A record is
//! acknowledged only after `sync` returned for the bytes holding it, so the log is the truth and
//! the tables are a cache of it that may lag behind.
//!
//! Frame: `len: u32 LE ‖ crc32(len ‖ payload): u32 LE ‖ payload`. Payload: format byte, `seq`,
//! hybrid-logical-clock stamp, transaction id, then the operations. Segment `N.wal` holds the
//! records from seq `N` on; records are contiguous in seq across segments. At open a torn tail
//! (short frame or bad CRC) of the last segment is cut; damage anywhere else refuses the open.
//! Segments are never rewritten once closed, so [`LogReader`] can read them (and the durable part
//! of the active one) while the writer appends: the log doubles as the shard's change log.

use crate::error::{Error, Result};
use parking_lot::Mutex;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const FORMAT: u8 = 1;
const HEADER: usize = 8;
/// A frame longer than this is damage, not a record.
const MAX_PAYLOAD: usize = 1 << 30;
const SUFFIX: &str = ".wal";

/// One change inside a record. Keys of user rows are user keys; the version each `Put` gives
/// its row is the record's `seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        key: Vec<u8>,
    },
    /// A prepared transaction's intent (see `intent::Intent::encode`).
    PutIntent {
        txn_id: Vec<u8>,
        intent: Vec<u8>,
    },
    DropIntent {
        txn_id: Vec<u8>,
    },
    /// A transaction's decision (see `intent::TxnRecord::encode`).
    PutTxnRecord {
        txn_id: Vec<u8>,
        record: Vec<u8>,
    },
    DropTxnRecord {
        txn_id: Vec<u8>,
    },
}

/// One log record: everything one commit, prepare or decision changed, applied atomically.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    pub seq: u64,
    pub hlc: u64,
    pub txn_id: Vec<u8>,
    pub ops: Vec<Op>,
}

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_PUT_INTENT: u8 = 3;
const OP_DROP_INTENT: u8 = 4;
const OP_PUT_TXN: u8 = 5;
const OP_DROP_TXN: u8 = 6;

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Appends the frame of `record` to `out`.
pub fn encode(record: &LogRecord, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER]);
    out.push(FORMAT);
    out.extend_from_slice(&record.seq.to_le_bytes());
    out.extend_from_slice(&record.hlc.to_le_bytes());
    put_bytes(out, &record.txn_id);
    out.extend_from_slice(&(record.ops.len() as u32).to_le_bytes());
    for op in &record.ops {
        match op {
            Op::Put { key, value } => {
                out.push(OP_PUT);
                put_bytes(out, key);
                put_bytes(out, value);
            }
            Op::Delete { key } => {
                out.push(OP_DELETE);
                put_bytes(out, key);
            }
            Op::PutIntent { txn_id, intent } => {
                out.push(OP_PUT_INTENT);
                put_bytes(out, txn_id);
                put_bytes(out, intent);
            }
            Op::DropIntent { txn_id } => {
                out.push(OP_DROP_INTENT);
                put_bytes(out, txn_id);
            }
            Op::PutTxnRecord { txn_id, record } => {
                out.push(OP_PUT_TXN);
                put_bytes(out, txn_id);
                put_bytes(out, record);
            }
            Op::DropTxnRecord { txn_id } => {
                out.push(OP_DROP_TXN);
                put_bytes(out, txn_id);
            }
        }
    }
    let len = (out.len() - start - HEADER) as u32;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len.to_le_bytes());
    crc.update(&out[start + HEADER..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.finalize().to_le_bytes());
}

/// Reads a payload field by field; running off its end is corruption.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(Error::corrupt("log record", "truncated payload"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    fn bytes(&mut self) -> Result<Vec<u8>> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
}

fn decode_payload(payload: &[u8]) -> Result<LogRecord> {
    let mut r = Reader { buf: payload };
    let format = r.u8()?;
    if format != FORMAT {
        return Err(Error::corrupt(
            "log record",
            format!("unknown format {format}"),
        ));
    }
    let seq = r.u64()?;
    let hlc = r.u64()?;
    let txn_id = r.bytes()?;
    let n = r.u32()? as usize;
    let mut ops = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        let op = match r.u8()? {
            OP_PUT => Op::Put {
                key: r.bytes()?,
                value: r.bytes()?,
            },
            OP_DELETE => Op::Delete { key: r.bytes()? },
            OP_PUT_INTENT => Op::PutIntent {
                txn_id: r.bytes()?,
                intent: r.bytes()?,
            },
            OP_DROP_INTENT => Op::DropIntent { txn_id: r.bytes()? },
            OP_PUT_TXN => Op::PutTxnRecord {
                txn_id: r.bytes()?,
                record: r.bytes()?,
            },
            OP_DROP_TXN => Op::DropTxnRecord { txn_id: r.bytes()? },
            tag => {
                return Err(Error::corrupt(
                    "log record",
                    format!("unknown operation {tag}"),
                ));
            }
        };
        ops.push(op);
    }
    if !r.buf.is_empty() {
        return Err(Error::corrupt("log record", "trailing bytes"));
    }
    Ok(LogRecord {
        seq,
        hlc,
        txn_id,
        ops,
    })
}

/// The records of one segment's bytes, and how many leading bytes hold whole, valid frames.
/// Decoding stops at the first frame that is short or fails its CRC.
pub fn decode_all(buf: &[u8]) -> Result<(Vec<LogRecord>, usize)> {
    let mut records = Vec::new();
    let mut pos = 0usize;
    while buf.len() - pos >= HEADER {
        let mut len4 = [0u8; 4];
        len4.copy_from_slice(&buf[pos..pos + 4]);
        let len = u32::from_le_bytes(len4) as usize;
        let mut crc4 = [0u8; 4];
        crc4.copy_from_slice(&buf[pos + 4..pos + 8]);
        let crc = u32::from_le_bytes(crc4);
        if len > MAX_PAYLOAD || buf.len() - pos - HEADER < len {
            break;
        }
        let payload = &buf[pos + HEADER..pos + HEADER + len];
        let mut h = crc32fast::Hasher::new();
        h.update(&len4);
        h.update(payload);
        if h.finalize() != crc {
            break;
        }
        // A frame whose CRC holds but whose payload does not decode was written that way:
        // that is a bug or deliberate damage, never a torn write, so it is an error.
        records.push(decode_payload(payload)?);
        pos += HEADER + len;
    }
    Ok((records, pos))
}

#[derive(Clone, Debug)]
struct Segment {
    base: u64,
    /// Bytes on disk (the preallocated size, or more if a group overflowed it).
    len: u64,
    path: PathBuf,
    /// When the segment was closed (its newest record is about that old), in Unix ms; `None`
    /// while it is the active one.
    sealed_ms: Option<u64>,
}

/// What a retention policy is told about the oldest segment when it decides whether it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The first seq it holds.
    pub first_seq: u64,
    /// The last seq it holds (the next segment's base minus one).
    pub last_seq: u64,
    /// When it was closed, in Unix ms.
    pub sealed_ms: u64,
    /// Bytes of the whole log, this segment included.
    pub log_bytes: u64,
}

/// The list of segments, shared between the writer (which appends and rolls) and the trimmer
/// (which deletes old ones). The last segment is the active one and is never deleted.
#[derive(Clone, Debug)]
pub struct SegmentSet {
    inner: Arc<Mutex<Vec<Segment>>>,
}

impl SegmentSet {
    /// Total bytes of every segment on disk.
    pub fn total_bytes(&self) -> u64 {
        self.inner.lock().iter().map(|s| s.len).sum()
    }

    /// Number of segments, the active one included.
    pub fn count(&self) -> usize {
        self.inner.lock().len()
    }

    /// The lowest seq the log still holds (the base of its oldest segment).
    pub fn first_seq(&self) -> Option<u64> {
        self.inner.lock().first().map(|s| s.base)
    }

    /// Deletes the oldest segments while the log is larger than `retain_bytes`, but only
    /// segments whose every record is at or below `durable_seq` (already durable in the
    /// tables). Returns the bases of the deleted segments.
    pub fn trim(&self, durable_seq: u64, retain_bytes: u64) -> Result<Vec<u64>> {
        self.trim_with(durable_seq, |seg| seg.log_bytes > retain_bytes)
    }

    /// Deletes the oldest segments, one at a time, while `wanted` says the oldest may go and
    /// every record in it is at or below `durable_seq`. The active segment always stays, and
    /// only a prefix of the log goes, so what remains stays contiguous. Returns the bases of the
    /// deleted segments.
    pub fn trim_with(
        &self,
        durable_seq: u64,
        mut wanted: impl FnMut(&SegmentInfo) -> bool,
    ) -> Result<Vec<u64>> {
        let mut deleted = Vec::new();
        let mut list = self.inner.lock();
        let mut total: u64 = list.iter().map(|s| s.len).sum();
        while list.len() >= 2 {
            let info = SegmentInfo {
                first_seq: list[0].base,
                last_seq: list[1].base.saturating_sub(1),
                sealed_ms: list[0].sealed_ms.unwrap_or(u64::MAX),
                log_bytes: total,
            };
            if info.last_seq > durable_seq || !wanted(&info) {
                break;
            }
            let seg = list.remove(0);
            fs::remove_file(&seg.path)?;
            total -= seg.len;
            deleted.push(seg.base);
        }
        Ok(deleted)
    }

    /// The segment that holds `seq` (the one with the largest base at or below it): its base
    /// and path. `None` if the oldest segment starts after `seq`.
    fn holding(&self, seq: u64) -> Option<(u64, PathBuf)> {
        let list = self.inner.lock();
        let i = list.partition_point(|s| s.base <= seq);
        (i > 0).then(|| (list[i - 1].base, list[i - 1].path.clone()))
    }

    /// The path of the segment that starts at exactly `base`, if the log has one.
    fn starting_at(&self, base: u64) -> Option<PathBuf> {
        let list = self.inner.lock();
        list.binary_search_by_key(&base, |s| s.base)
            .ok()
            .map(|i| list[i].path.clone())
    }
}

/// What the log held at open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Highest seq in the log (0 if it holds no record).
    pub last_seq: u64,
    /// Stamp of that record.
    pub last_hlc: u64,
    /// Records handed to the replay function.
    pub replayed: u64,
    /// Bytes of a torn tail that were zeroed (from the end of the last whole record to the
    /// last non-zero byte).
    pub cut_bytes: u64,
}

/// Zero-filled segment files made ahead of need by a helper thread, so that starting a
/// segment never stalls a commit on writing its zeros.
#[derive(Debug)]
struct Spares {
    ready: Arc<Mutex<Option<PathBuf>>>,
    wanted: std::sync::mpsc::Sender<()>,
}

impl Spares {
    fn start(dir: &Path, bytes: u64) -> Result<Self> {
        let ready = Arc::new(Mutex::new(None));
        let (wanted, rx) = std::sync::mpsc::channel::<()>();
        let slot = ready.clone();
        let dir = dir.to_path_buf();
        std::thread::Builder::new()
            .name("arbor-wal-spare".into())
            .spawn(move || {
                let mut n = 0u64;
                // Ends when the log (the sender) is dropped.
                while rx.recv().is_ok() {
                    n += 1;
                    let path = dir.join(format!("spare-{n}{SPARE_SUFFIX}"));
                    match create_zeroed(&path, bytes) {
                        Ok(()) => *slot.lock() = Some(path),
                        Err(e) => tracing::warn!(error = %e, "preparing a log segment failed"),
                    }
                }
            })?;
        let spares = Self { ready, wanted };
        spares.request();
        Ok(spares)
    }

    fn request(&self) {
        // The helper only stops when the log is dropped, so a failed send changes nothing.
        let _ = self.wanted.send(());
    }

    fn take(&self) -> Option<PathBuf> {
        self.ready.lock().take()
    }
}

/// The writer's handle on the log.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    segment_bytes: u64,
    file: Arc<File>,
    /// Where the next frame goes in the active segment: the end of its last whole record.
    active_len: u64,
    /// The seq the next appended record must have to continue the active segment.
    next_seq: u64,
    segments: SegmentSet,
    spares: Spares,
}

const SPARE_SUFFIX: &str = ".wal.tmp";

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}{SUFFIX}"))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Creates a file of `bytes` zeros, durably. Zeros are written, not just allocated: a later
/// overwrite of written blocks changes no file metadata, so `fdatasync` after appending a record
/// flushes the data alone instead of committing the file system's journal as well.
fn create_zeroed(path: &Path, bytes: u64) -> Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)?;
    let chunk = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    Ok(())
}

fn list_segments(dir: &Path) -> Result<Vec<Segment>> {
    let mut list = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if name.ends_with(SPARE_SUFFIX) {
            // A spare from an earlier run, perhaps half written.
            fs::remove_file(entry.path())?;
            continue;
        }
        let Some(base) = name
            .strip_suffix(SUFFIX)
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let meta = entry.metadata()?;
        // A closed segment is last written when its newest record is: its modification time
        // is that record's age (the active one is reset below).
        let sealed_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64);
        list.push(Segment {
            base,
            len: meta.len(),
            path: entry.path(),
            sealed_ms: Some(sealed_ms.unwrap_or(0)),
        });
    }
    list.sort_by_key(|s| s.base);
    if let Some(last) = list.last_mut() {
        last.sealed_ms = None;
    }
    Ok(list)
}

/// Offset just past the last non-zero byte of `buf[from..]` (or `from` if all zero).
fn last_nonzero_end(buf: &[u8], from: usize) -> usize {
    buf[from..]
        .iter()
        .rposition(|&b| b != 0)
        .map_or(from, |i| from + i + 1)
}

impl Wal {
    /// Opens (or creates) the log in `dir`, cuts a torn tail, and hands every record with a seq
    /// above `after` to `replay`, in order. Fails if those records are not contiguous from
    /// `after + 1`, or if a segment other than the last is damaged.
    pub fn open(
        dir: &Path,
        segment_bytes: u64,
        after: u64,
        mut replay: impl FnMut(LogRecord) -> Result<()>,
    ) -> Result<(Wal, Recovered)> {
        fs::create_dir_all(dir)?;
        let mut list = list_segments(dir)?;
        let mut rec = Recovered::default();
        let mut expect = after + 1;
        let mut tail_end = 0u64;
        let n = list.len();
        for i in 0..n {
            let is_last = i + 1 == n;
            // A segment below the marker is read only if it is the last one: the tail is
            // checked (and the highest seq learned) however far the tables got.
            if !is_last && list[i + 1].base.saturating_sub(1) <= after {
                continue;
            }
            let buf = fs::read(&list[i].path)?;
            let (records, valid) = decode_all(&buf)?;
            let dirty_end = last_nonzero_end(&buf, valid);
            if dirty_end > valid {
                if !is_last {
                    return Err(Error::corrupt(
                        "log",
                        format!(
                            "segment {} is damaged at byte {valid} and is not the last",
                            list[i].path.display()
                        ),
                    ));
                }
                tracing::warn!(
                    segment = %list[i].path.display(),
                    valid,
                    cut = dirty_end - valid,
                    "cutting a torn log tail"
                );
                // Zeroed rather than truncated: the file keeps its written blocks, and no
                // stale frame can ever follow a record written later.
                let f = OpenOptions::new().write(true).open(&list[i].path)?;
                f.write_all_at(&vec![0u8; dirty_end - valid], valid as u64)?;
                f.sync_all()?;
                rec.cut_bytes = (dirty_end - valid) as u64;
            }
            if is_last {
                tail_end = valid as u64;
            }
            if let Some(first) = records.first()
                && first.seq != list[i].base
            {
                return Err(Error::corrupt(
                    "log",
                    format!(
                        "segment {} starts with seq {}",
                        list[i].path.display(),
                        first.seq
                    ),
                ));
            }
            for record in records {
                rec.last_seq = record.seq;
                rec.last_hlc = record.hlc;
                if record.seq <= after {
                    continue;
                }
                if record.seq != expect {
                    return Err(Error::corrupt(
                        "log",
                        format!("expected seq {expect}, found {}", record.seq),
                    ));
                }
                expect += 1;
                replay(record)?;
                rec.replayed += 1;
            }
        }
        let (file, active_len, next_seq) = match list.last() {
            Some(last) => {
                let file = OpenOptions::new().write(true).open(&last.path)?;
                let next = if tail_end == 0 {
                    last.base
                } else {
                    rec.last_seq + 1
                };
                (file, tail_end, next)
            }
            None => {
                let base = after + 1;
                let path = segment_path(dir, base);
                create_zeroed(&path, segment_bytes)?;
                sync_dir(dir)?;
                let file = OpenOptions::new().write(true).open(&path)?;
                list.push(Segment {
                    base,
                    len: segment_bytes,
                    path,
                    sealed_ms: None,
                });
                (file, 0, base)
            }
        };
        let wal = Wal {
            dir: dir.to_path_buf(),
            segment_bytes,
            file: Arc::new(file),
            active_len,
            next_seq,
            segments: SegmentSet {
                inner: Arc::new(Mutex::new(list)),
            },
            spares: Spares::start(dir, segment_bytes)?,
        };
        Ok((wal, rec))
    }

    /// The segment list, for the trimmer.
    pub fn segments(&self) -> SegmentSet {
        self.segments.clone()
    }

    /// Writes the frames of records `first_seq..=last_seq` (encoded by [`encode`]) after the
    /// last record, starting a new segment first if they do not fit in the active one or if
    /// `first_seq` does not continue it. Not durable until [`Wal::sync`].
    pub fn append(&mut self, first_seq: u64, last_seq: u64, frames: &[u8]) -> Result<()> {
        let fits = self.active_len + frames.len() as u64 <= self.segment_bytes;
        if self.active_len > 0 && (!fits || first_seq != self.next_seq) {
            self.roll(first_seq)?;
        }
        self.file.write_all_at(frames, self.active_len)?;
        self.active_len += frames.len() as u64;
        self.next_seq = last_seq + 1;
        if let Some(last) = self.segments.inner.lock().last_mut() {
            last.len = last.len.max(self.active_len);
        }
        Ok(())
    }

    /// Makes everything appended so far durable: one `fdatasync`.
    pub fn sync(&mut self) -> Result<()> {
        self.file.sync_data()?;
        Ok(())
    }

    /// The active segment, for a sync issued from another thread: an `fdatasync` on it makes
    /// durable everything appended before the call.
    pub fn active_file(&self) -> Arc<File> {
        self.file.clone()
    }

    fn roll(&mut self, base: u64) -> Result<()> {
        // Syncs of the closing segment may still be in flight on other threads; this one
        // returns only once all of its records are durable, so no record of the new segment
        // can become durable while one before it is not.
        self.file.sync_data()?;
        let path = segment_path(&self.dir, base);
        match self.spares.take() {
            Some(spare) => fs::rename(spare, &path)?,
            None => create_zeroed(&path, self.segment_bytes)?,
        }
        sync_dir(&self.dir)?;
        self.spares.request();
        self.file = Arc::new(OpenOptions::new().write(true).open(&path)?);
        self.active_len = 0;
        let mut list = self.segments.inner.lock();
        if let Some(last) = list.last_mut() {
            last.sealed_ms = Some(crate::hlc::wall_ms());
        }
        list.push(Segment {
            base,
            len: self.segment_bytes,
            path,
            sealed_ms: None,
        });
        drop(list);
        tracing::debug!(base, "started log segment");
        Ok(())
    }
}

/// Bytes read from a segment at once by a [`LogReader`].
const READ_CHUNK: usize = 256 << 10;

/// The seq of a payload, read without decoding the rest of it.
fn peek_seq(payload: &[u8]) -> Result<u64> {
    let mut r = Reader { buf: payload };
    r.u8()?;
    r.u64()
}

/// One segment file open for reading, with a window of its bytes.
struct OpenSegment {
    base: u64,
    file: File,
    /// Where the next frame starts.
    offset: u64,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    buf_at: u64,
}

impl OpenSegment {
    /// Makes `buf` hold at least `n` bytes from `offset`, reading the file again if it does
    /// not. False if the file ends first.
    fn fill(&mut self, n: usize) -> Result<bool> {
        let have = if self.offset >= self.buf_at {
            (self.buf.len() as u64).saturating_sub(self.offset - self.buf_at) as usize
        } else {
            0
        };
        if have >= n {
            return Ok(true);
        }
        self.buf.resize(n.max(READ_CHUNK), 0);
        let mut got = 0;
        while got < self.buf.len() {
            match self
                .file
                .read_at(&mut self.buf[got..], self.offset + got as u64)
            {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.buf.truncate(got);
        self.buf_at = self.offset;
        Ok(got >= n)
    }

    /// The payload of the whole, valid frame at `offset` (a range of `buf`), or `None` where
    /// the written records end.
    fn frame(&mut self) -> Result<Option<std::ops::Range<usize>>> {
        if let Some(range) = self.parse()? {
            return Ok(Some(range));
        }
        // The window may have been read before the writer appended what follows: only bytes
        // read now can tell where the records end.
        self.parse()
    }

    /// [`OpenSegment::frame`] on the bytes of the window, read if missing. On failure the
    /// window is dropped, so that the next call reads the file again.
    fn parse(&mut self) -> Result<Option<std::ops::Range<usize>>> {
        if !self.fill(HEADER)? {
            self.buf.clear();
            return Ok(None);
        }
        let at = (self.offset - self.buf_at) as usize;
        let mut len4 = [0u8; 4];
        len4.copy_from_slice(&self.buf[at..at + 4]);
        let len = u32::from_le_bytes(len4) as usize;
        if len > MAX_PAYLOAD || !self.fill(HEADER + len)? {
            self.buf.clear();
            return Ok(None);
        }
        let at = (self.offset - self.buf_at) as usize;
        let mut crc4 = [0u8; 4];
        crc4.copy_from_slice(&self.buf[at + 4..at + 8]);
        let mut h = crc32fast::Hasher::new();
        h.update(&len4);
        h.update(&self.buf[at + HEADER..at + HEADER + len]);
        if h.finalize() != u32::from_le_bytes(crc4) {
            self.buf.clear();
            return Ok(None);
        }
        Ok(Some(at + HEADER..at + HEADER + len))
    }
}

/// Reads the log's records in seq order from a chosen seq on, while the writer appends and the
/// trimmer deletes. It holds at most one segment open and a window of a few hundred KiB of it
/// (or one record, if larger), however far it reads.
///
/// The caller says how far to read (`upto`): only records known durable may be asked for,
/// because the active segment also holds records written but not yet synced. A record that is
/// no longer in the log (its segment deleted) is an [`Error::Trimmed`], never a silent skip.
pub struct LogReader {
    segments: SegmentSet,
    /// The seq of the next record to return.
    next: u64,
    open: Option<OpenSegment>,
}

impl LogReader {
    /// A reader whose first record will be `from`.
    pub fn new(segments: SegmentSet, from: u64) -> Self {
        Self {
            segments,
            next: from,
            open: None,
        }
    }

    /// The seq of the next record it returns.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Moves the reader forward to `seq` (records before it will be skipped); it never moves
    /// back, so a smaller `seq` changes nothing.
    pub fn skip_to(&mut self, seq: u64) {
        if seq <= self.next {
            return;
        }
        self.next = seq;
        // Reading on through the open segment only leads to `seq` if it is in there.
        if let Some(open) = &self.open
            && self.segments.holding(seq).map(|(base, _)| base) != Some(open.base)
        {
            self.open = None;
        }
    }

    fn trimmed(&self) -> Error {
        Error::Trimmed {
            wanted: self.next,
            first: self.segments.first_seq().unwrap_or(self.next),
        }
    }

    /// Opens the segment holding `self.next` (the one starting there if `exact`).
    fn open_segment(&mut self, exact: bool) -> Result<()> {
        let found = if exact {
            self.segments
                .starting_at(self.next)
                .map(|path| (self.next, path))
        } else {
            self.segments.holding(self.next)
        };
        let Some((base, path)) = found else {
            return Err(
                if self.segments.first_seq().is_some_and(|f| f > self.next) {
                    self.trimmed()
                } else {
                    Error::corrupt("log", format!("record {} is missing", self.next))
                },
            );
        };
        let file = match File::open(&path) {
            Ok(f) => f,
            // Deleted by the trimmer since the list was read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(self.trimmed()),
            Err(e) => return Err(e.into()),
        };
        self.open = Some(OpenSegment {
            base,
            file,
            offset: 0,
            buf: Vec::new(),
            buf_at: 0,
        });
        Ok(())
    }

    /// The next record, if its seq is at most `upto`; `None` once the reader is past `upto`.
    /// Every record up to `upto` must be durable in the log.
    pub fn next_record(&mut self, upto: u64) -> Result<Option<LogRecord>> {
        while self.next <= upto {
            let Some(seg) = self.open.as_mut() else {
                self.open_segment(false)?;
                continue;
            };
            let Some(range) = seg.frame()? else {
                // This segment's records end here: the next one starts at `self.next`.
                let base = seg.base;
                if base == self.next && seg.offset == 0 {
                    return Err(Error::corrupt(
                        "log",
                        format!("segment {base} holds no record {base}"),
                    ));
                }
                self.open = None;
                self.open_segment(true)?;
                continue;
            };
            let payload = &seg.buf[range.clone()];
            let seq = peek_seq(payload)?;
            if seq < self.next {
                seg.offset += (HEADER + range.len()) as u64;
                continue;
            }
            if seq != self.next {
                return Err(Error::corrupt(
                    "log",
                    format!("expected record {}, found {seq}", self.next),
                ));
            }
            let record = decode_payload(payload)?;
            seg.offset += (HEADER + range.len()) as u64;
            self.next += 1;
            return Ok(Some(record));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64) -> LogRecord {
        LogRecord {
            seq,
            hlc: seq * 10,
            txn_id: format!("t{seq}").into_bytes(),
            ops: vec![
                Op::Put {
                    key: format!("k{seq}").into_bytes(),
                    value: vec![seq as u8; 40],
                },
                Op::Delete {
                    key: b"gone".to_vec(),
                },
                Op::PutIntent {
                    txn_id: b"x".to_vec(),
                    intent: vec![1, 2, 3],
                },
                Op::DropIntent {
                    txn_id: b"y".to_vec(),
                },
                Op::PutTxnRecord {
                    txn_id: b"z".to_vec(),
                    record: vec![9],
                },
                Op::DropTxnRecord {
                    txn_id: b"w".to_vec(),
                },
            ],
        }
    }

    fn write(wal: &mut Wal, seqs: std::ops::RangeInclusive<u64>) {
        let mut buf = Vec::new();
        for s in seqs.clone() {
            encode(&record(s), &mut buf);
        }
        wal.append(*seqs.start(), *seqs.end(), &buf).unwrap();
        wal.sync().unwrap();
    }

    fn replay_all(dir: &Path, after: u64) -> (Vec<LogRecord>, Recovered) {
        let mut seen = Vec::new();
        let (_, rec) = Wal::open(dir, 1 << 20, after, |r| {
            seen.push(r);
            Ok(())
        })
        .unwrap();
        (seen, rec)
    }

    #[test]
    fn records_round_trip_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, rec) = Wal::open(dir.path(), 300, 0, |_| Ok(())).unwrap();
        assert_eq!(rec, Recovered::default());
        for s in 1..=20 {
            write(&mut wal, s..=s);
        }
        assert!(wal.segments().count() > 3, "small segments roll");
        drop(wal);
        let (seen, rec) = replay_all(dir.path(), 0);
        assert_eq!(seen, (1..=20).map(record).collect::<Vec<_>>());
        assert_eq!(rec.last_seq, 20);
        assert_eq!(rec.last_hlc, 200);
        // Only what follows the marker is replayed.
        let (seen, rec) = replay_all(dir.path(), 15);
        assert_eq!(seen, (16..=20).map(record).collect::<Vec<_>>());
        assert_eq!(rec.replayed, 5);
        assert_eq!(rec.last_seq, 20);
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_log_continues() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20, 0, |_| Ok(())).unwrap();
        write(&mut wal, 1..=5);
        let good_len = wal.active_len;
        drop(wal);
        let path = segment_path(dir.path(), 1);
        let mut five = Vec::new();
        for s in 1..=5 {
            encode(&record(s), &mut five);
        }
        // Half of a sixth record: a short frame.
        let mut frame = Vec::new();
        encode(&record(6), &mut frame);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&frame[..frame.len() / 2], good_len).unwrap();
        drop(f);

        let (mut wal, rec) = Wal::open(dir.path(), 1 << 20, 0, |_| Ok(())).unwrap();
        assert_eq!(rec.last_seq, 5);
        assert_eq!(rec.cut_bytes, (frame.len() / 2) as u64);
        assert_eq!(wal.active_len, good_len);
        // The torn bytes are zeroed, the records before them untouched.
        let bytes = fs::read(&path).unwrap();
        assert_eq!(&bytes[..five.len()], &five[..]);
        assert!(bytes[five.len()..].iter().all(|&b| b == 0));
        write(&mut wal, 6..=7);
        let end = wal.active_len;
        drop(wal);

        // A whole frame with a flipped payload byte, and garbage after it: cut as well.
        let mut frame = Vec::new();
        encode(&record(8), &mut frame);
        let n = frame.len();
        frame[n - 3] ^= 0x55;
        frame.extend_from_slice(&[0, 0, 9, 0]);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&frame, end).unwrap();
        drop(f);
        let (seen, rec) = replay_all(dir.path(), 0);
        assert_eq!(seen, (1..=7).map(record).collect::<Vec<_>>());
        assert_eq!(rec.cut_bytes, n as u64 + 3);
    }

    #[test]
    fn damage_before_the_last_segment_refuses_the_open() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 200, 0, |_| Ok(())).unwrap();
        for s in 1..=6 {
            write(&mut wal, s..=s);
        }
        drop(wal);
        let first = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&first).unwrap();
        let (_, valid) = decode_all(&bytes).unwrap();
        bytes[valid - 1] ^= 1;
        fs::write(&first, bytes).unwrap();
        let err = Wal::open(dir.path(), 200, 0, |_| Ok(())).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    }

    #[test]
    fn a_gap_after_the_marker_refuses_the_open() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20, 0, |_| Ok(())).unwrap();
        write(&mut wal, 1..=3);
        // Seq 4 and 5 are missing.
        write(&mut wal, 6..=6);
        drop(wal);
        let err = Wal::open(dir.path(), 1 << 20, 0, |_| Ok(())).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        // With the tables already past the gap there is nothing to replay across it.
        let (seen, _) = replay_all(dir.path(), 5);
        assert_eq!(seen, vec![record(6)]);
    }

    #[test]
    fn trimming_keeps_the_active_segment_and_everything_not_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 200, 0, |_| Ok(())).unwrap();
        for s in 1..=10 {
            write(&mut wal, s..=s);
        }
        let set = wal.segments();
        let before = set.count();
        assert!(before >= 5);
        // Nothing durable yet: nothing goes.
        assert!(set.trim(0, 0).unwrap().is_empty());
        // Durable up to 4: only segments entirely at or below 4 go.
        let gone = set.trim(4, 0).unwrap();
        assert!(!gone.is_empty());
        let first = set.first_seq().unwrap();
        assert!(
            first <= 5,
            "seq 5 must still be in the log, first is {first}"
        );
        // Everything durable but a generous size bound: nothing more goes.
        assert!(set.trim(10, 1 << 30).unwrap().is_empty());
        // Everything durable, bound 0: all but the active segment go.
        set.trim(10, 0).unwrap();
        assert_eq!(set.count(), 1);
        write(&mut wal, 11..=11);
        drop(wal);
        let (seen, rec) = replay_all(dir.path(), 10);
        assert_eq!(seen, vec![record(11)]);
        assert_eq!(rec.last_seq, 11);
    }

    #[test]
    fn the_reader_follows_appends_across_segments_and_reports_trimmed_records() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 400, 0, |_| Ok(())).unwrap();
        write(&mut wal, 1..=2);
        let mut r = LogReader::new(wal.segments(), 1);
        assert_eq!(r.next_record(2).unwrap(), Some(record(1)));
        assert_eq!(r.next_record(2).unwrap(), Some(record(2)));
        // Nothing beyond what it is allowed to read, even though more may be written.
        assert_eq!(r.next_record(2).unwrap(), None);
        // Its window of the active segment was read before these were appended.
        write(&mut wal, 3..=3);
        assert_eq!(r.next_record(3).unwrap(), Some(record(3)));
        for s in 4..=12 {
            write(&mut wal, s..=s);
        }
        assert!(wal.segments().count() >= 4);
        let mut got = Vec::new();
        while let Some(rec) = r.next_record(12).unwrap() {
            got.push(rec);
        }
        assert_eq!(got, (4..=12).map(record).collect::<Vec<_>>());
        assert_eq!(r.position(), 13);

        // Skipping ahead into a later segment, from a reader open on an early one.
        let mut r = LogReader::new(wal.segments(), 1);
        assert_eq!(r.next_record(12).unwrap(), Some(record(1)));
        r.skip_to(11);
        assert_eq!(r.next_record(12).unwrap(), Some(record(11)));
        r.skip_to(3);
        assert_eq!(r.next_record(12).unwrap(), Some(record(12)));

        // Records whose segment is gone are reported, not skipped.
        let set = wal.segments();
        set.trim(8, 0).unwrap();
        let first = set.first_seq().unwrap();
        assert!(first > 1);
        let mut r = LogReader::new(set.clone(), 1);
        match r.next_record(12) {
            Err(Error::Trimmed {
                wanted: 1,
                first: f,
            }) => assert_eq!(f, first),
            other => panic!("{other:?}"),
        }
        let mut r = LogReader::new(set, first);
        assert_eq!(r.next_record(12).unwrap(), Some(record(first)));
    }
}
