//! Open files: the handles the kernel holds, and one shared writer per inode.
//!
//! Invariants:
//! - an inode open for writing in this mount has exactly one [`WriterSlot`], shared by all its
//!   write handles; the slot opens its `FileWriter` (taking the file's lease) lazily, at the
//!   first write or truncate, and closes it when the last write handle is released;
//! - flush and fsync make everything written so far durable and visible; the flush of the
//!   only write handle closes the writer in the same commit, so a file created, written and
//!   closed costs two durable rounds (the create and that commit), and one created and closed
//!   unwritten costs only the create: its writer holds no lease until it needs one;
//! - reads see this mount's writes: before a read of an inode whose writer holds unsynced
//!   bytes, the writer is hsynced, and a handle's reader is re-opened whenever the writer
//!   synced since the reader was opened (flush before read). Otherwise a reader is the file
//!   as it was at open (close-to-open across mounts); reads never call the namenode once the
//!   reader is open.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arbor_client::data::{FileReader, FileWriter, WriteOptions};
use arbor_client::{AttrChange, Client, Error, FileStatus};
use bytes::Bytes;
use fuser::Errno;

use crate::errno::errno_of;

/// No writer is open: the slot's length is unknown.
const NO_LEN: u64 = u64::MAX;

/// The one writer of an inode in this mount.
pub struct WriterSlot {
    ino: u64,
    /// The identity that opened the file first: the lease is taken in its name.
    client: Client,
    handles: AtomicUsize,
    /// The writer's length while a writer is open (else [`NO_LEN`]); read by getattr.
    len: AtomicU64,
    /// Bumped by every hsync, so readers know to re-open.
    synced: AtomicU64,
    /// Attributes set through this mount and waiting for the writer's next commit; getattr
    /// shows them meanwhile.
    access: Mutex<AttrChange>,
    /// When the writer's status last came from the namenode (its open or a commit).
    status_at: Mutex<Option<Instant>>,
    state: tokio::sync::Mutex<WriterState>,
}

#[derive(Default)]
struct WriterState {
    writer: Option<FileWriter>,
    /// Bytes written since the last hsync.
    dirty: bool,
}

impl WriterSlot {
    /// The writer, opened on first use at `path`.
    async fn writer<'a>(
        &self,
        state: &'a mut WriterState,
        path: &str,
        overwrite: bool,
    ) -> Result<&'a mut FileWriter, Error> {
        if state.writer.is_none() {
            let opts = WriteOptions {
                mode: 0o644,
                create: false,
                exclusive: false,
                overwrite,
                append: false,
            };
            let w = self.client.open_write(path, opts).await?;
            if w.ino() != self.ino {
                tracing::warn!(
                    path,
                    ino = self.ino,
                    found = w.ino(),
                    "path names another inode"
                );
                let _ = w.close().await;
                return Err(Error::new(
                    arbor_client::ErrorCode::NotFound,
                    format!("{path}: the open file was replaced"),
                ));
            }
            self.len.store(w.len(), Ordering::Release);
            self.fetched_status();
            state.writer = Some(w);
        }
        match state.writer.as_mut() {
            Some(w) => Ok(w),
            None => Err(Error::new(arbor_client::ErrorCode::Internal, "no writer")),
        }
    }

    async fn sync(&self, state: &mut WriterState) -> Result<Option<FileStatus>, Error> {
        let Some(w) = state.writer.as_mut() else {
            return Ok(None);
        };
        if !state.dirty {
            return Ok(None);
        }
        let status = w.hsync().await?;
        self.committed_access();
        self.fetched_status();
        state.dirty = false;
        self.synced.fetch_add(1, Ordering::AcqRel);
        Ok(Some(status))
    }

    /// Closes the writer (if one was opened); the slot can open a fresh one afterwards.
    async fn close(&self) -> Result<Option<FileStatus>, Error> {
        let mut state = self.state.lock().await;
        self.close_locked(&mut state).await
    }

    async fn close_locked(&self, state: &mut WriterState) -> Result<Option<FileStatus>, Error> {
        let Some(w) = state.writer.take() else {
            return Ok(None);
        };
        state.dirty = false;
        self.len.store(NO_LEN, Ordering::Release);
        let status = w.close().await;
        // Committed or not, the writer that held the change is gone.
        self.committed_access();
        *self.status_at.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let status = status?;
        self.synced.fetch_add(1, Ordering::AcqRel);
        Ok(Some(status))
    }

    fn fetched_status(&self) {
        *self.status_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    fn committed_access(&self) {
        *self.access.lock().unwrap_or_else(|p| p.into_inner()) = AttrChange::default();
    }
}

/// One open of a file by the kernel.
pub struct Handle {
    ino: u64,
    client: Client,
    writer: Option<Arc<WriterSlot>>,
    /// The reader and the writer sync count it was opened after.
    reader: tokio::sync::Mutex<Option<(u64, Arc<FileReader>)>>,
}

/// Every open file of the mount.
#[derive(Default)]
pub struct OpenFiles {
    next_fh: AtomicU64,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    writers: Mutex<HashMap<u64, Arc<WriterSlot>>>,
}

impl OpenFiles {
    pub fn new() -> OpenFiles {
        OpenFiles {
            next_fh: AtomicU64::new(1),
            ..Default::default()
        }
    }

    fn handle(&self, fh: u64) -> Result<Arc<Handle>, Errno> {
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh)
            .cloned()
            .ok_or(Errno::EBADF)
    }

    fn slot(&self, ino: u64) -> Option<Arc<WriterSlot>> {
        self.writers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ino)
            .cloned()
    }

    /// Whether this mount has `ino` open for writing.
    pub fn writing(&self, ino: u64) -> bool {
        self.slot(ino).is_some()
    }

    /// The length of `ino` as this mount's writer sees it, when one is open.
    pub fn live_len(&self, ino: u64) -> Option<u64> {
        self.slot(ino)
            .map(|s| s.len.load(Ordering::Acquire))
            .filter(|l| *l != NO_LEN)
    }

    /// The status of `ino` as this mount's open writer knows it, if the namenode gave it less
    /// than `max_age` ago (the writer's open or last commit): this mount holds the file's
    /// lease, so only its own writes change the data, and the status is no older than an
    /// attribute the kernel caches for as long. Spares the namenode the getattr the kernel
    /// sends before a chown.
    pub fn writer_status(&self, ino: u64, max_age: std::time::Duration) -> Option<FileStatus> {
        let slot = self.slot(ino)?;
        let at = (*slot.status_at.lock().unwrap_or_else(|p| p.into_inner()))?;
        if at.elapsed() >= max_age {
            return None;
        }
        let state = slot.state.try_lock().ok()?;
        state.writer.as_ref().map(|w| w.pending_status())
    }

    /// The attributes this mount set on `ino` and has not yet committed, if any.
    pub fn pending_attrs(&self, ino: u64) -> Option<AttrChange> {
        let slot = self.slot(ino)?;
        let a = slot.access.lock().unwrap_or_else(|p| p.into_inner());
        (!a.is_empty()).then(|| a.clone())
    }

    /// fchmod, fchown or futimens of a file this mount has open for writing, by the identity
    /// that opened it: the change waits for the writer's next commit (the close, usually), so
    /// creating, writing, chmod-ing and closing a file stays two durable rounds, and times
    /// set before close are not overwritten by the close. Only a change the namenode will
    /// surely allow then is held back (any by the superuser, mode and times by the owner), so
    /// an error still comes from the call that caused it. Returns the status as it now
    /// reads, or `None` when the change must go to the namenode now.
    pub async fn defer_attrs(
        &self,
        ino: u64,
        caller_uid: u32,
        change: &AttrChange,
    ) -> Option<FileStatus> {
        let slot = self.slot(ino)?;
        if slot.client.identity().uid != caller_uid {
            return None;
        }
        let mut state = slot.state.lock().await;
        let w = state.writer.as_mut()?;
        let owner = w.pending_status().uid == caller_uid;
        let allowed = caller_uid == 0 || (owner && change.uid.is_none() && change.gid.is_none());
        if !allowed {
            return None;
        }
        w.change_attrs_at_commit(change);
        let status = w.pending_status();
        slot.access
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .merge(change);
        state.dirty = true;
        Some(status)
    }

    /// Opens `ino` for the caller `client`. A reading open fetches the block list now (and
    /// checks read permission on the inode) and gives the status it read; a writing open joins
    /// or makes the inode's slot.
    pub async fn open(
        &self,
        client: &Client,
        ino: u64,
        read: bool,
        write: bool,
    ) -> Result<(u64, Option<FileStatus>), Errno> {
        let writer = write.then(|| self.join_slot(client, ino, None));
        let handle = Arc::new(Handle {
            ino,
            client: client.clone(),
            writer,
            reader: tokio::sync::Mutex::new(None),
        });
        let mut status = None;
        if read && !write {
            let r = self.reader_for(&handle).await.map_err(|e| errno_of(&e))?;
            status = Some(r.status().clone());
        }
        Ok((self.insert(handle), status))
    }

    /// A handle on a file this mount just created with `writer` (created and opened for
    /// writing in one transaction): the writer is the inode's slot from the start, so the
    /// first write costs no round to the namenode.
    pub fn open_created(&self, client: &Client, writer: FileWriter) -> u64 {
        let ino = writer.ino();
        let slot = self.join_slot(client, ino, Some(writer));
        self.insert(Arc::new(Handle {
            ino,
            client: client.clone(),
            writer: Some(slot),
            reader: tokio::sync::Mutex::new(None),
        }))
    }

    /// Joins (or makes) `ino`'s writer slot, seeding a new slot with `writer` when given. A
    /// slot that exists already keeps its own writer; the given one is then closed.
    fn join_slot(&self, client: &Client, ino: u64, writer: Option<FileWriter>) -> Arc<WriterSlot> {
        let mut writers = self.writers.lock().unwrap_or_else(|p| p.into_inner());
        let mut seed = writer;
        let slot = writers
            .entry(ino)
            .or_insert_with(|| {
                let len = seed.as_ref().map_or(NO_LEN, |w| w.len());
                Arc::new(WriterSlot {
                    ino,
                    client: client.clone(),
                    handles: AtomicUsize::new(0),
                    len: AtomicU64::new(len),
                    synced: AtomicU64::new(0),
                    access: Mutex::default(),
                    status_at: Mutex::new(seed.is_some().then(Instant::now)),
                    state: tokio::sync::Mutex::new(WriterState {
                        writer: seed.take(),
                        dirty: false,
                    }),
                })
            })
            .clone();
        slot.handles.fetch_add(1, Ordering::AcqRel);
        if let Some(extra) = seed {
            tokio::spawn(async move {
                if let Err(e) = extra.close().await {
                    tracing::warn!(ino, "closing a second writer failed: {e}");
                }
            });
        }
        slot
    }

    fn insert(&self, handle: Arc<Handle>) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(fh, handle);
        fh
    }

    /// The handle's reader, synced with this mount's writer of the inode.
    async fn reader_for(&self, h: &Handle) -> Result<Arc<FileReader>, Error> {
        let mut seen = 0;
        if let Some(slot) = self.slot(h.ino) {
            let mut state = slot.state.lock().await;
            slot.sync(&mut state).await?;
            seen = slot.synced.load(Ordering::Acquire);
        }
        let mut reader = h.reader.lock().await;
        if let Some((at, r)) = reader.as_ref()
            && *at == seen
        {
            return Ok(r.clone());
        }
        let r = Arc::new(h.client.open_read_ino(h.ino).await?);
        *reader = Some((seen, r.clone()));
        Ok(r)
    }

    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Bytes, Errno> {
        let h = self.handle(fh)?;
        let r = self.reader_for(&h).await.map_err(|e| errno_of(&e))?;
        r.read_at(offset, size as usize)
            .await
            .map_err(|e| errno_of(&e))
    }

    /// Writes at `offset` through the inode's writer (opened at `path` if not yet).
    pub async fn write(&self, fh: u64, path: &str, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        let h = self.handle(fh)?;
        let slot = h.writer.clone().ok_or(Errno::EBADF)?;
        let mut state = slot.state.lock().await;
        let w = slot
            .writer(&mut state, path, false)
            .await
            .map_err(|e| errno_of(&e))?;
        let res = if offset == w.len() {
            w.write(data).await
        } else {
            w.write_at(offset, data).await
        };
        slot.len.store(w.len(), Ordering::Release);
        // The write moves the mtime again (the writer forgot a time set before it).
        slot.access
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .mtime_ns = None;
        res.map_err(|e| errno_of(&e))?;
        state.dirty = true;
        Ok(data.len() as u32)
    }

    /// Truncates or extends `ino` when this mount writes it; `None` when it has no writer
    /// slot (the caller then truncates through the namenode).
    pub async fn set_len(&self, ino: u64, path: &str, size: u64) -> Option<Result<(), Errno>> {
        let slot = self.slot(ino)?;
        let mut state = slot.state.lock().await;
        // A truncate to zero before any write (open with O_TRUNC) opens the writer truncating.
        let fresh = state.writer.is_none() && size == 0;
        let res = async {
            let w = slot.writer(&mut state, path, fresh).await?;
            if w.len() != size {
                w.set_len(size).await?;
            }
            slot.len.store(w.len(), Ordering::Release);
            slot.access
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .mtime_ns = None;
            Ok::<(), Error>(())
        }
        .await;
        if res.is_ok() {
            state.dirty = true;
            // Make the new length visible to other readers now, as a local truncate is.
            if let Err(e) = slot.sync(&mut state).await {
                return Some(Err(errno_of(&e)));
            }
        }
        Some(res.map_err(|e| errno_of(&e)))
    }

    /// flush (every close(2) of a descriptor): what this mount wrote becomes durable and
    /// visible. When `fh` is the inode's only write handle, the writer closes in the same
    /// commit (data, size and the lease's release in one round): a later write through the
    /// same handle opens a new writer. A clean writer is left for release, which the kernel
    /// does not wait for. Gives the file's status when the writer closed.
    pub async fn flush(&self, fh: u64) -> Result<Option<FileStatus>, Errno> {
        let h = self.handle(fh)?;
        let Some(slot) = h.writer.clone() else {
            return self.sync(fh).await.map(|()| None);
        };
        if slot.handles.load(Ordering::Acquire) != 1 {
            return self.sync(fh).await.map(|()| None);
        }
        let mut state = slot.state.lock().await;
        if !state.dirty || state.writer.is_none() {
            return Ok(None);
        }
        slot.close_locked(&mut state)
            .await
            .map_err(|e| errno_of(&e))
    }

    /// fsync: what this mount wrote to the inode becomes durable and visible.
    pub async fn sync(&self, fh: u64) -> Result<(), Errno> {
        let h = self.handle(fh)?;
        let Some(slot) = h.writer.clone().or_else(|| self.slot(h.ino)) else {
            return Ok(());
        };
        let mut state = slot.state.lock().await;
        slot.sync(&mut state).await.map_err(|e| errno_of(&e))?;
        Ok(())
    }

    /// The kernel closed `fh`; the last write handle of an inode closes its writer (and then
    /// gives the file's status).
    pub async fn release(&self, fh: u64) -> Result<Option<FileStatus>, Errno> {
        let h = self
            .handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fh)
            .ok_or(Errno::EBADF)?;
        let Some(slot) = h.writer.clone() else {
            return Ok(None);
        };
        if slot.handles.fetch_sub(1, Ordering::AcqRel) != 1 {
            return Ok(None);
        }
        let res = slot.close().await;
        {
            let mut writers = self.writers.lock().unwrap_or_else(|p| p.into_inner());
            // A new open may have joined the slot meanwhile: it keeps it.
            if slot.handles.load(Ordering::Acquire) == 0
                && writers
                    .get(&slot.ino)
                    .is_some_and(|s| Arc::ptr_eq(s, &slot))
            {
                writers.remove(&slot.ino);
            }
        }
        res.map_err(|e| errno_of(&e))
    }

    /// Closes every open writer (the mount is going away): what was written is kept.
    pub async fn close_all(&self) {
        let slots: Vec<Arc<WriterSlot>> = self
            .writers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for slot in slots {
            if let Err(e) = slot.close().await {
                tracing::error!(ino = slot.ino, "closing the file at unmount failed: {e}");
            }
        }
    }

    /// Open handles (for tests and logs).
    pub fn open_handles(&self) -> usize {
        self.handles.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}
