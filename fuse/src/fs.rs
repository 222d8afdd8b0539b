//! The FUSE file system: each kernel request becomes a task on the tokio runtime that makes
//! the namenode call (as the caller's identity) and answers the kernel, so the request
//! threads never wait on the network.
//!
//! Invariants: an inode handed to the kernel (lookup, create, mkdir, symlink, readdirplus) is
//! recorded in [`Inodes`] with one lookup; attributes of a file this mount is writing carry
//! the writer's length; every error is an errno from `errno`.

use std::ffi::OsStr;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use arbor_client::data::WriteOptions;
use arbor_client::{AttrChange, Client, ErrorCode, FileStatus, XattrFlag};
use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::attr::{self, allowed, attr_of, kind_of, ns_of};
use crate::callers::Callers;
use crate::errno::errno_of;
use crate::files::OpenFiles;
use crate::fresh::FreshDirs;
use crate::inodes::{Inodes, ROOT};
use crate::metrics;
use crate::options::MountOptions;
use crate::pages::Pages;
use crate::statuses::Statuses;

/// Longest name a component may have (as on local file systems).
const NAME_MAX: usize = 255;
/// Largest write the kernel sends at once.
pub const MAX_WRITE: u32 = 1 << 20;
/// Readahead the kernel may do on sequential reads.
pub const MAX_READAHEAD: u32 = 4 << 20;

/// A directory's entries as read at opendir (readdir pages through it by offset).
type Listing = Arc<Vec<(String, FileStatus)>>;

/// Everything the request tasks share.
pub struct Shared {
    pub callers: Callers,
    pub inodes: Inodes,
    pub files: OpenFiles,
    pub fresh: FreshDirs,
    pub statuses: Statuses,
    pub pages: Pages,
    dirs: std::sync::Mutex<std::collections::HashMap<u64, Listing>>,
    next_dir: AtomicU64,
    /// The namenode does not answer StatIno.
    no_stat_ino: AtomicBool,
    /// Talks back to the kernel (set once the session runs).
    notifier: std::sync::OnceLock<fuser::Notifier>,
    pub opts: MountOptions,
}

/// The file system handed to fuser.
pub struct ArborFs {
    rt: tokio::runtime::Handle,
    shared: Arc<Shared>,
}

/// Who made a request.
#[derive(Clone, Copy, Debug)]
struct Caller {
    uid: u32,
    gid: u32,
}

impl Caller {
    fn of(req: &Request) -> Caller {
        Caller {
            uid: req.uid(),
            gid: req.gid(),
        }
    }
}

fn name_of(name: &OsStr) -> Result<String, Errno> {
    let s = name.to_str().ok_or(Errno::EINVAL)?;
    if s.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(s.to_string())
}

impl ArborFs {
    pub fn new(rt: tokio::runtime::Handle, base: Client, opts: MountOptions) -> ArborFs {
        ArborFs {
            rt,
            shared: Arc::new(Shared {
                callers: Callers::new(base),
                inodes: Inodes::new(),
                files: OpenFiles::new(),
                statuses: Statuses::new(opts.attr_timeout),
                pages: Pages::new(),
                fresh: FreshDirs::new(if opts.default_permissions {
                    opts.entry_timeout
                } else {
                    // Without the kernel's permission checks a lookup must reach the
                    // namenode, which may answer EACCES rather than ENOENT.
                    std::time::Duration::ZERO
                }),
                dirs: Default::default(),
                next_dir: AtomicU64::new(1),
                no_stat_ino: AtomicBool::new(false),
                notifier: std::sync::OnceLock::new(),
                opts,
            }),
        }
    }

    /// The state shared with the request tasks (the mount closes writers through it).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Runs the kernel request `op` as a task, counted and timed.
    fn spawn<F, Fut>(&self, op: &'static str, f: F)
    where
        F: FnOnce(Arc<Shared>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let task = f(self.shared.clone());
        self.rt.spawn(async move {
            let start = std::time::Instant::now();
            task.await;
            metrics::answered(op, start.elapsed());
        });
    }
}

impl Shared {
    /// Lets the file system notify the kernel (cache invalidations).
    pub fn set_notifier(&self, notifier: fuser::Notifier) {
        let _ = self.notifier.set(notifier);
    }

    /// Marks the kernel's cached attributes of `ino` stale, so its next size check asks us:
    /// an open must see the size the file had at close elsewhere (close-to-open), not one
    /// cached before.
    fn invalidate_attrs(&self, ino: u64) {
        if let Some(n) = self.notifier.get()
            && let Err(e) = n.inval_inode(INodeNo(ino), -1, 0)
        {
            tracing::debug!(ino, "attribute invalidation failed: {e}");
        }
    }

    /// The way back to the kernel, once the session runs.
    pub fn notifier(&self) -> Option<&fuser::Notifier> {
        self.notifier.get()
    }

    fn client(&self, c: Caller) -> Client {
        self.callers.client(c.uid, c.gid)
    }

    fn attr(&self, status: &FileStatus) -> FileAttr {
        let live_len = self.files.live_len(status.ino);
        match self.files.pending_attrs(status.ino) {
            Some(change) => {
                let mut status = status.clone();
                change.apply_to(&mut status);
                attr_of(&status, live_len)
            }
            None => attr_of(status, live_len),
        }
    }

    /// The attributes of `ino`: by inode number, so a rename elsewhere does not matter. A
    /// namenode without StatIno (older) is asked by path, checking the inode it finds.
    async fn stat(&self, c: Caller, ino: u64) -> Result<FileStatus, Errno> {
        let client = self.client(c);
        if !self.no_stat_ino.load(Ordering::Relaxed) {
            match client.stat_ino(ino).await {
                Ok(status) => {
                    self.statuses.fetched(&status);
                    return Ok(status);
                }
                Err(e) if e.code == ErrorCode::Internal => {
                    tracing::info!("StatIno failed ({}); using path lookups", e.message);
                    self.no_stat_ino.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(errno_of(&e)),
            }
        }
        let path = self.inodes.path(ino)?;
        let status = client.stat(&path).await.map_err(|e| errno_of(&e))?;
        if status.ino != ino {
            return Err(Errno::ENOENT);
        }
        Ok(status)
    }

    /// A writer of this mount committed and closed, leaving the file as `status` says.
    fn closed(&self, status: Option<FileStatus>) {
        if let Some(status) = status {
            self.statuses.fetched(&status);
        }
    }

    async fn lookup(&self, c: Caller, parent: u64, name: &OsStr) -> Result<FileAttr, Errno> {
        let name = name_of(name)?;
        let path = self.inodes.child_path(parent, &name)?;
        let status = self.client(c).stat(&path).await.map_err(|e| errno_of(&e))?;
        self.statuses.fetched(&status);
        self.inodes.remember(parent, &name, status.ino);
        Ok(self.attr(&status))
    }

    #[allow(clippy::too_many_arguments)]
    async fn setattr(
        &self,
        c: Caller,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
    ) -> Result<FileAttr, Errno> {
        let client = self.client(c);
        let path = self.inodes.path(ino)?;
        let err = |e: arbor_client::Error| errno_of(&e);
        if let Some(size) = size {
            self.pages.forget(ino);
            match self.files.set_len(ino, &path, size).await {
                Some(res) => res?,
                None => {
                    client.truncate(&path, size).await.map_err(err)?;
                }
            }
        }
        let ns = |t: Option<TimeOrNow>| {
            t.map(|t| match t {
                TimeOrNow::SpecificTime(t) => ns_of(t),
                TimeOrNow::Now => ns_of(SystemTime::now()),
            })
        };
        let change = AttrChange {
            mode: mode.map(|m| m & 0o7777),
            uid,
            gid,
            mtime_ns: ns(mtime),
            atime_ns: ns(atime),
        };
        if size.is_none()
            && !change.is_empty()
            && let Some(status) = self.files.defer_attrs(ino, c.uid, &change).await
        {
            return Ok(self.attr(&status));
        }
        // One transaction for everything but the size, answered with the new attributes.
        let status = if change.is_empty() {
            self.stat(c, ino).await?
        } else {
            let status = client.change_attrs(&path, &change).await.map_err(err)?;
            if status.ino == ino {
                status
            } else {
                // The path was renamed over elsewhere meanwhile: what the kernel asked about.
                self.statuses.changed(status.ino);
                self.stat(c, ino).await?
            }
        };
        self.statuses.fetched(&status);
        Ok(self.attr(&status))
    }

    /// Answers a request that names an entry (lookup, mknod, mkdir, symlink) with the mount's
    /// attribute and entry timeouts.
    fn answer_entry(&self, reply: ReplyEntry, res: Result<FileAttr, Errno>) {
        match res {
            Ok(attr) => reply.entry_with_ttls(
                &self.opts.attr_timeout,
                &self.opts.entry_timeout,
                &attr,
                Generation(0),
            ),
            Err(e) => reply.error(metrics::failed("answer_entry", e)),
        }
    }

    async fn made(&self, parent: u64, name: &str, status: FileStatus) -> FileAttr {
        self.fresh.added(parent, name);
        self.statuses.added(parent, &status);
        self.statuses.fetched(&status);
        if kind_of(&status) == fuser::FileType::Directory {
            self.fresh.made_dir(status.ino);
        }
        self.inodes.remember(parent, name, status.ino);
        self.attr(&status)
    }

    async fn rename(
        &self,
        c: Caller,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            // Arbor cannot swap two names atomically.
            return Err(Errno::EINVAL);
        }
        let (name, newname) = (name_of(name)?, name_of(newname)?);
        let src = self.inodes.child_path(parent, &name)?;
        let dst = self.inodes.child_path(newparent, &newname)?;
        let client = self.client(c);
        let res = if flags.contains(RenameFlags::RENAME_NOREPLACE) {
            client.rename_noreplace(&src, &dst).await
        } else {
            client.rename(&src, &dst).await
        };
        res.map_err(|e| errno_of(&e))?;
        self.fresh.added(newparent, &newname);
        self.statuses.clear();
        self.inodes.renamed(parent, &name, newparent, &newname);
        Ok(())
    }

    async fn list(&self, c: Caller, ino: u64) -> Result<u64, Errno> {
        let path = self.inodes.path(ino)?;
        let entries = self.client(c).list(&path).await.map_err(|e| errno_of(&e))?;
        let entries: Vec<(String, FileStatus)> = entries
            .into_iter()
            .filter_map(|e| e.status.map(|s| (e.name, s)))
            .collect();
        let fh = self.next_dir.fetch_add(1, Ordering::Relaxed);
        self.dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(fh, Arc::new(entries));
        Ok(fh)
    }

    fn listing(&self, fh: u64) -> Result<Listing, Errno> {
        self.dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh)
            .cloned()
            .ok_or(Errno::EBADF)
    }

    /// Opens `ino`; also whether the kernel may keep the file's pages (see `pages`).
    async fn open(&self, c: Caller, ino: u64, flags: OpenFlags) -> Result<(u64, bool), Errno> {
        let (read, write) = match flags.acc_mode() {
            OpenAccMode::O_RDONLY => (true, false),
            OpenAccMode::O_WRONLY => (false, true),
            OpenAccMode::O_RDWR => (true, true),
        };
        let client = self.client(c);
        if write && !self.opts.default_permissions {
            // The namenode checks write permission only at the first write; check it now, as
            // open(2) does.
            let status = self.stat(c, ino).await?;
            if !allowed(&status, client.identity(), 2) {
                return Err(Errno::EACCES);
            }
        }
        let (fh, status) = self.files.open(&client, ino, read, write).await?;
        // The status read at open is the one the kernel must see now (close-to-open): it
        // replaces any older copy, and the kernel's own is dropped.
        let keep = match status {
            Some(status) => {
                self.statuses.fetched(&status);
                self.pages.opened(ino, &status) && !self.files.writing(ino)
            }
            None => {
                self.statuses.changed(ino);
                self.pages.forget(ino);
                false
            }
        };
        self.invalidate_attrs(ino);
        Ok((fh, keep))
    }

    async fn create(
        &self,
        c: Caller,
        parent: u64,
        name: &OsStr,
        mode: u32,
        flags: i32,
    ) -> Result<(FileAttr, u64), Errno> {
        let name = name_of(name)?;
        let path = self.inodes.child_path(parent, &name)?;
        let client = self.client(c);
        // One Create; the writer takes no lease while the file stays inline and untouched by
        // others, so closing a file never written costs nothing more.
        let opts = WriteOptions {
            mode: mode & 0o7777,
            create: true,
            exclusive: flags & libc::O_EXCL != 0,
            overwrite: flags & libc::O_TRUNC != 0,
            append: false,
        };
        let writer = client
            .create_for_write(&path, opts)
            .await
            .map_err(|e| errno_of(&e))?;
        let attr = self.made(parent, &name, writer.status().clone()).await;
        let fh = self.files.open_created(&client, writer);
        Ok((attr, fh))
    }

    async fn getxattr(&self, c: Caller, ino: u64, name: &OsStr) -> Result<Vec<u8>, Errno> {
        let name = name.to_str().ok_or(Errno::EINVAL)?;
        if unsupported_xattr(name) {
            return Err(Errno::NO_XATTR);
        }
        let path = self.inodes.path(ino)?;
        self.client(c)
            .get_xattr(&path, name)
            .await
            .map_err(|e| errno_of(&e))
    }

    async fn statfs(&self, c: Caller) -> Result<(u64, u64), Errno> {
        let servers = self
            .client(c)
            .block_servers()
            .await
            .map_err(|e| errno_of(&e))?;
        let (cap, used) = servers
            .iter()
            .filter(|s| s.alive)
            .fold((0u64, 0u64), |(c, u), s| {
                (c + s.capacity_bytes, u + s.used_bytes)
            });
        Ok((cap, used))
    }

    async fn access(&self, c: Caller, ino: u64, mask: i32) -> Result<(), Errno> {
        let client = self.client(c);
        let status = self.stat(c, ino).await?;
        if allowed(&status, client.identity(), mask as u32) {
            Ok(())
        } else {
            Err(Errno::EACCES)
        }
    }
}

/// Attributes the kernel asks about on its own (capabilities on every write, ACLs) that Arbor
/// does not keep: answered here without a namenode call, and refused when set.
fn unsupported_xattr(name: &str) -> bool {
    name.starts_with("security.") || name.starts_with("system.")
}

fn reply_xattr(value: &[u8], size: u32, reply: ReplyXattr) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if value.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(value);
    }
}

impl Filesystem for ArborFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(MAX_WRITE);
        if let Err(max) = config.set_max_readahead(MAX_READAHEAD) {
            let _ = config.set_max_readahead(max);
        }
        let _ = config.set_max_background(64);
        for flag in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_ASYNC_DIO,
        ] {
            if config.add_capabilities(flag).is_err() {
                tracing::debug!(?flag, "kernel lacks capability");
            }
        }
        Ok(())
    }

    fn destroy(&mut self) {
        let shared = self.shared.clone();
        self.rt
            .block_on(async move { shared.files.close_all().await });
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let c = Caller::of(req);
        let name = name.to_owned();
        if let Some(left) = name
            .to_str()
            .and_then(|n| self.shared.fresh.absent(parent.0, n))
        {
            reply.entry_with_ttls(&left, &left, &attr::absent(), Generation(0));
            metrics::from_cache("lookup");
            return;
        }
        self.spawn("lookup", move |s| async move {
            match s.lookup(c, parent.0, &name).await {
                // A negative entry: the kernel remembers the name's absence for the entry
                // timeout, as it remembers names that exist.
                Err(Errno::ENOENT) => reply.entry_with_ttls(
                    &s.opts.attr_timeout,
                    &s.opts.entry_timeout,
                    &attr::absent(),
                    Generation(0),
                ),
                res => s.answer_entry(reply, res),
            }
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.shared.inodes.forget(ino.0, nlookup);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let c = Caller::of(req);
        if let Some(status) = self.shared.files.writer_status(
            ino.0,
            self.shared
                .opts
                .attr_timeout
                .min(crate::options::UNWATCHED_TIMEOUT),
        ) {
            reply.attr(&self.shared.opts.attr_timeout, &self.shared.attr(&status));
            metrics::from_cache("getattr");
            return;
        }
        if !self.shared.files.writing(ino.0)
            && let Some((status, left)) = self.shared.statuses.get(ino.0)
        {
            reply.attr(&left, &self.shared.attr(&status));
            metrics::from_cache("getattr");
            return;
        }
        self.spawn("getattr", move |s| async move {
            match s.stat(c, ino.0).await {
                Ok(status) => reply.attr(&s.opts.attr_timeout, &s.attr(&status)),
                Err(e) => reply.error(metrics::failed("getattr", e)),
            }
        });
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let c = Caller::of(req);
        self.spawn("setattr", move |s| async move {
            match s
                .setattr(c, ino.0, mode, uid, gid, size, atime, mtime)
                .await
            {
                Ok(attr) => reply.attr(&s.opts.attr_timeout, &attr),
                Err(e) => reply.error(metrics::failed("setattr", e)),
            }
        });
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let c = Caller::of(req);
        self.spawn("readlink", move |s| async move {
            let res = async {
                let path = s.inodes.path(ino.0)?;
                s.client(c).readlink(&path).await.map_err(|e| errno_of(&e))
            }
            .await;
            match res {
                Ok(target) => reply.data(target.as_bytes()),
                Err(e) => reply.error(metrics::failed("readlink", e)),
            }
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let fmt = mode & libc::S_IFMT;
        if fmt != 0 && fmt != libc::S_IFREG {
            // Only regular files exist in Arbor.
            reply.error(Errno::EPERM);
            return;
        }
        let c = Caller::of(req);
        let name = name.to_owned();
        self.spawn("mknod", move |s| async move {
            let res = async {
                let name = name_of(&name)?;
                let path = s.inodes.child_path(parent.0, &name)?;
                let status = s
                    .client(c)
                    .create(&path, mode & 0o7777, false)
                    .await
                    .map_err(|e| errno_of(&e))?;
                Ok::<_, Errno>(s.made(parent.0, &name, status).await)
            }
            .await;
            s.answer_entry(reply, res);
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let c = Caller::of(req);
        let name = name.to_owned();
        self.spawn("mkdir", move |s| async move {
            let res = async {
                let name = name_of(&name)?;
                let path = s.inodes.child_path(parent.0, &name)?;
                let status = s
                    .client(c)
                    .mkdir(&path, mode & 0o7777, false)
                    .await
                    .map_err(|e| errno_of(&e))?;
                Ok::<_, Errno>(s.made(parent.0, &name, status).await)
            }
            .await;
            s.answer_entry(reply, res);
        });
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(req, parent, name, false, reply);
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(req, parent, name, true, reply);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let c = Caller::of(req);
        let name = link_name.to_owned();
        let target = target.to_owned();
        self.spawn("symlink", move |s| async move {
            let res = async {
                let name = name_of(&name)?;
                let target = target.to_str().ok_or(Errno::EINVAL)?;
                let path = s.inodes.child_path(parent.0, &name)?;
                let status = s
                    .client(c)
                    .symlink(target, &path)
                    .await
                    .map_err(|e| errno_of(&e))?;
                Ok::<_, Errno>(s.made(parent.0, &name, status).await)
            }
            .await;
            s.answer_entry(reply, res);
        });
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let c = Caller::of(req);
        let (name, newname) = (name.to_owned(), newname.to_owned());
        self.spawn("rename", move |s| async move {
            match s
                .rename(c, parent.0, &name, newparent.0, &newname, flags)
                .await
            {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(metrics::failed("rename", e)),
            }
        });
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        // Arbor's metadata has one name per inode: no hard links.
        reply.error(Errno::EPERM);
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let c = Caller::of(req);
        self.spawn("open", move |s| async move {
            match s.open(c, ino.0, flags).await {
                Ok((fh, keep)) => {
                    let flags = if keep {
                        FopenFlags::FOPEN_KEEP_CACHE
                    } else {
                        FopenFlags::empty()
                    };
                    reply.opened(FileHandle(fh), flags)
                }
                Err(e) => reply.error(metrics::failed("open", e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.spawn("read", move |s| async move {
            match s.files.read(fh.0, offset, size).await {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(metrics::failed("read", e)),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let data = data.to_vec();
        self.spawn("write", move |s| async move {
            s.pages.forget(ino.0);
            let res = async {
                let path = s.inodes.path(ino.0)?;
                s.files.write(fh.0, &path, offset, &data).await
            }
            .await;
            match res {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(metrics::failed("write", e)),
            }
        });
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.spawn("flush", move |s| async move {
            match s.files.flush(fh.0).await {
                Ok(status) => {
                    s.closed(status);
                    reply.ok()
                }
                Err(e) => reply.error(metrics::failed("flush", e)),
            }
        });
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.spawn("release", move |s| async move {
            match s.files.release(fh.0).await {
                Ok(status) => {
                    s.closed(status);
                    reply.ok()
                }
                Err(e) => reply.error(metrics::failed("release", e)),
            }
        });
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.spawn("fsync", move |s| async move {
            match s.files.sync(fh.0).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(metrics::failed("fsync", e)),
            }
        });
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let c = Caller::of(req);
        self.spawn("opendir", move |s| async move {
            match s.list(c, ino.0).await {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(e) => reply.error(metrics::failed("opendir", e)),
            }
        });
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.shared.listing(fh.0) {
            Ok(e) => e,
            Err(e) => return reply.error(metrics::failed("readdir", e)),
        };
        let parent = self.shared.inodes.parent(ino.0).unwrap_or(ROOT);
        let mut i = offset;
        loop {
            let full = match i {
                0 => reply.add(ino, 1, FileType::Directory, "."),
                1 => reply.add(INodeNo(parent), 2, FileType::Directory, ".."),
                n => match entries.get((n - 2) as usize) {
                    Some((name, st)) => reply.add(INodeNo(st.ino), n + 1, kind_of(st), name),
                    None => break,
                },
            };
            if full {
                break;
            }
            i += 1;
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let s = &self.shared;
        let entries = match s.listing(fh.0) {
            Ok(e) => e,
            Err(e) => return reply.error(metrics::failed("readdirplus", e)),
        };
        let ttl = s.opts.entry_timeout;
        let mut i = offset;
        loop {
            let full = match i {
                // "." and ".." carry no attributes the kernel would keep (no lookup counted).
                0 | 1 => {
                    let name = if i == 0 { "." } else { ".." };
                    let mut attr = attr_of(
                        &FileStatus {
                            ino: ino.0,
                            kind: arbor_client::InodeKind::Directory as i32,
                            mode: 0o755,
                            ..Default::default()
                        },
                        None,
                    );
                    attr.ino = INodeNo(0);
                    reply.add(
                        INodeNo(0),
                        i + 1,
                        name,
                        &Duration::ZERO,
                        &attr,
                        Generation(0),
                    )
                }
                n => match entries.get((n - 2) as usize) {
                    Some((name, st)) => {
                        let attr = s.attr(st);
                        let full = reply.add(attr.ino, n + 1, name, &ttl, &attr, Generation(0));
                        if !full {
                            s.inodes.remember(ino.0, name, st.ino);
                            s.statuses.fetched(st);
                        }
                        full
                    }
                    None => break,
                },
            };
            if full {
                break;
            }
            i += 1;
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.shared
            .dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Namespace changes are durable when the namenode answers them.
        reply.ok();
    }

    fn statfs(&self, req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let c = Caller::of(req);
        self.spawn("statfs", move |s| async move {
            match s.statfs(c).await {
                Ok((cap, used)) => {
                    let bsize: u64 = 4096;
                    let blocks = cap / bsize;
                    let free = cap.saturating_sub(used) / bsize;
                    reply.statfs(
                        blocks,
                        free,
                        free,
                        u64::MAX / 2,
                        u64::MAX / 4,
                        bsize as u32,
                        NAME_MAX as u32,
                        bsize as u32,
                    )
                }
                Err(e) => reply.error(metrics::failed("statfs", e)),
            }
        });
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let c = Caller::of(req);
        let name = name.to_owned();
        let value = value.to_vec();
        self.spawn("setxattr", move |s| async move {
            let res = async {
                let name = name.to_str().ok_or(Errno::EINVAL)?;
                if unsupported_xattr(name) {
                    return Err(Errno::ENOTSUP);
                }
                let flag = if flags & libc::XATTR_CREATE != 0 {
                    XattrFlag::Create
                } else if flags & libc::XATTR_REPLACE != 0 {
                    XattrFlag::Replace
                } else {
                    XattrFlag::Any
                };
                let path = s.inodes.path(ino.0)?;
                s.statuses.changed(ino.0);
                s.client(c)
                    .set_xattr_flag(&path, name, &value, flag)
                    .await
                    .map_err(|e| errno_of(&e))
            }
            .await;
            match res {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(metrics::failed("setxattr", e)),
            }
        });
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let c = Caller::of(req);
        let name = name.to_owned();
        self.spawn("getxattr", move |s| async move {
            match s.getxattr(c, ino.0, &name).await {
                Ok(value) => reply_xattr(&value, size, reply),
                Err(e) => reply.error(metrics::failed("getxattr", e)),
            }
        });
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let c = Caller::of(req);
        self.spawn("listxattr", move |s| async move {
            let res = async {
                let path = s.inodes.path(ino.0)?;
                s.client(c)
                    .list_xattrs(&path)
                    .await
                    .map_err(|e| errno_of(&e))
            }
            .await;
            match res {
                Ok(list) => {
                    let mut names = Vec::new();
                    for (name, _) in list {
                        names.extend_from_slice(name.as_bytes());
                        names.push(0);
                    }
                    reply_xattr(&names, size, reply)
                }
                Err(e) => reply.error(metrics::failed("listxattr", e)),
            }
        });
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let c = Caller::of(req);
        let name = name.to_owned();
        self.spawn("removexattr", move |s| async move {
            let res = async {
                let name = name.to_str().ok_or(Errno::EINVAL)?;
                if unsupported_xattr(name) {
                    return Err(Errno::NO_XATTR);
                }
                let path = s.inodes.path(ino.0)?;
                s.statuses.changed(ino.0);
                s.client(c)
                    .remove_xattr(&path, name)
                    .await
                    .map_err(|e| errno_of(&e))
            }
            .await;
            match res {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(metrics::failed("removexattr", e)),
            }
        });
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let c = Caller::of(req);
        let mask = mask.bits();
        self.spawn("access", move |s| async move {
            match s.access(c, ino.0, mask).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(metrics::failed("access", e)),
            }
        });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let c = Caller::of(req);
        let name = name.to_owned();
        self.spawn("create", move |s| async move {
            match s.create(c, parent.0, &name, mode, flags).await {
                Ok((attr, fh)) => reply.created(
                    &s.opts.entry_timeout,
                    &attr,
                    Generation(0),
                    FileHandle(fh),
                    FopenFlags::empty(),
                ),
                Err(e) => reply.error(metrics::failed("create", e)),
            }
        });
    }
}

impl ArborFs {
    fn remove(&self, req: &Request, parent: INodeNo, name: &OsStr, dir: bool, reply: ReplyEmpty) {
        let c = Caller::of(req);
        let name = name.to_owned();
        self.spawn("remove", move |s| async move {
            let res = async {
                let name = name_of(&name)?;
                let path = s.inodes.child_path(parent.0, &name)?;
                let client = s.client(c);
                let res = if dir {
                    client.rmdir(&path).await
                } else {
                    client.unlink(&path).await
                };
                res.map_err(|e| errno_of(&e))?;
                if dir {
                    s.statuses.clear();
                } else {
                    s.statuses.changed(parent.0);
                    if let Some(ino) = s.inodes.name_ino(parent.0, &name) {
                        s.statuses.changed(ino);
                    }
                }
                s.inodes.unlinked(parent.0, &name);
                Ok::<(), Errno>(())
            }
            .await;
            match res {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(metrics::failed("remove", e)),
            }
        });
    }
}
