//! Appending to the WAL with group commit.
//!
//! Writers call [`Wal::append`] (cheap: a writer's encoded frames are handed over under a
//! short lock — its buffer swapped for a spare one, no copy — and given a ticket) and then
//! [`Wal::commit`]. The first committer to find no
//! write in progress becomes the leader: it takes everything pending, writes it and (under
//! [`FsyncPolicy::Always`]) fsyncs once, then wakes every writer whose ticket that covered.
//! Writers that arrive meanwhile queue up for the next leader, so under load many writers
//! share each fsync.
//!
//! Failures: a failed write or fsync fails every writer whose ticket it had not yet made
//! durable, and cuts the file back at once to its acknowledged length, so that nothing of a
//! failed batch is left for replay to apply; a batch whose bytes went into an earlier file
//! that was synced before the failure is acknowledged (it is durable). A full disk stops the
//! write path until the next append, which starts a new file. A failed fsync, or any other
//! write error, stops it until [`Wal::recover_fatal`] (the engine calls it with back-off): the
//! fsync is never retried to acknowledge what it covered (the page cache may have dropped
//! those pages); instead the file is read back from disk and checked to hold exactly its
//! acknowledged frames, the cut is made durable, and writing resumes in a new file.
//!
//! Zeros ahead: under [`FsyncPolicy::Always`] the leader writes zeros ahead of its frames
//! ([`ZERO_AHEAD`] at a time, up to the file's size limit), so that most fdatasyncs find the
//! file's length unchanged and flush data alone, without a journal commit of the new length
//! (on ext4 on this project's machines 0.10 ms instead of 0.16 ms after a 20 KB write). Only the
//! newest file can end in zeros: a file is cut to its frames, durably, before the next file is
//! created, and at [`Wal::close`]. Replay cuts zeros after the newest file's last frame as
//! unused space.

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::error::IoContext;
use crate::fs::{Vfs, VfsFile, layout};
use crate::model::{Latency, LatencySnapshot};
use crate::options::FsyncPolicy;
use crate::{Error, Limit, Result};

/// How far ahead of its frames the leader writes zeros, under [`FsyncPolicy::Always`].
pub const ZERO_AHEAD: u64 = 1 << 20;

/// Proof of an append, redeemed by [`Wal::commit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

#[derive(Debug, Clone)]
enum Failure {
    DiskFull(String),
    Fatal(String),
}

impl Failure {
    fn to_error(&self) -> Error {
        match self {
            Failure::DiskFull(detail) => Error::ResourceExhausted {
                limit: Limit::Disk,
                detail: detail.clone(),
            },
            Failure::Fatal(reason) => Error::WritesStopped {
                reason: reason.clone(),
            },
        }
    }
}

#[derive(Debug)]
struct State {
    /// File the next append goes to.
    file: u64,
    /// Bytes appended to that file so far (written or pending).
    file_len: u64,
    /// Pending bytes, tagged with their file and the last ticket they hold.
    pending: VecDeque<Pending>,
    next_ticket: u64,
    durable_ticket: u64,
    leader_active: bool,
    /// Set while the write path is stopped.
    failure: Option<Failure>,
    /// Tickets up to this one failed (with `last_failure`) and will never be durable.
    failed_upto: u64,
    last_failure: Option<Failure>,
    /// Buffers of written batches, emptied, for later appends to fill (see `scratch.rs`):
    /// at most [`SPARE_BUFFERS`].
    spare: Vec<Vec<u8>>,
}

/// Written batches' buffers kept for later appends: a writer hands its buffer over and
/// takes a spare one, so about one per concurrent writer circulates.
const SPARE_BUFFERS: usize = 8;
/// Largest buffer kept (a write of about 250,000 samples): at most 32 MiB kept in all.
const SPARE_BYTES: usize = 4 << 20;

/// Bytes queued for one file.
#[derive(Debug)]
struct Pending {
    file: u64,
    bytes: Vec<u8>,
    last_ticket: u64,
}

#[derive(Debug)]
struct Io {
    /// Shared with [`Wal::sync`], which syncs it outside this lock under the interval
    /// policy.
    file: Option<Arc<dyn VfsFile>>,
    file_no: u64,
    /// Bytes of `file_no` known written (and, under `Always`, synced) in full batches: its
    /// acknowledged length.
    good_len: u64,
    written: u64,
    /// The file's length with the zeros written ahead of its frames (at most `written` when
    /// there are none).
    zeroed: u64,
    /// A failure could not cut `file_no` back to `good_len` yet.
    uncut: bool,
    /// Where a leader joins the batches of several writers into one write.
    joined: Vec<u8>,
}

/// The WAL writer.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    vfs: Arc<dyn Vfs>,
    policy: FsyncPolicy,
    max_file_bytes: u64,
    state: Mutex<State>,
    /// Whether `State::failure` is set, for [`Wal::failure`] to answer without the state
    /// lock in the common case: every write asks, and two writers' asks met each other's
    /// appends and commits on that lock. Changed only under the lock, with the failure.
    stopped: AtomicBool,
    cond: Condvar,
    io: Mutex<Io>,
    /// What each group commit's leader took to write (and, under `Always`, sync) its batch.
    group_commits: Latency,
    /// What each writer waited in [`Wal::commit`] for its bytes to be durable.
    commit_waits: Latency,
}

/// The WAL's timings, for the engine's statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalTimings {
    /// Per group commit: the leader's write and sync of its batch.
    pub group_commits: LatencySnapshot,
    /// Per writer: the wait for its bytes to be durable.
    pub commit_waits: LatencySnapshot,
}

impl Wal {
    /// A writer whose first file will be number `first_file` (created on first write).
    pub fn new(
        dir: PathBuf,
        vfs: Arc<dyn Vfs>,
        policy: FsyncPolicy,
        max_file_bytes: u64,
        first_file: u64,
    ) -> Self {
        Wal {
            dir,
            vfs,
            policy,
            max_file_bytes,
            state: Mutex::new(State {
                file: first_file,
                file_len: 0,
                pending: VecDeque::new(),
                next_ticket: 0,
                durable_ticket: 0,
                leader_active: false,
                failure: None,
                failed_upto: 0,
                last_failure: None,
                spare: Vec::new(),
            }),
            stopped: AtomicBool::new(false),
            cond: Condvar::new(),
            group_commits: Latency::default(),
            commit_waits: Latency::default(),
            io: Mutex::new(Io {
                file: None,
                file_no: 0,
                good_len: 0,
                written: 0,
                zeroed: 0,
                uncut: false,
                joined: Vec::new(),
            }),
        }
    }

    /// Queues `frames` for the current file, taking the buffer (the caller gets a spare one,
    /// empty, in its place): under this lock, which every write takes, nothing is copied.
    /// `defs` is called with the file number under the lock and returns the definition
    /// frame the batch needs in that file, if any; `frames` follow it.
    pub fn append(
        &self,
        frames: &mut Vec<u8>,
        defs: impl FnOnce(u64) -> Option<Vec<u8>>,
    ) -> Result<Ticket> {
        let mut st = self.state.lock();
        if let Some(failure) = &st.failure {
            let failure = failure.clone();
            self.recover(&mut st, failure)?;
        }
        if st.file_len >= self.max_file_bytes {
            st.file += 1;
            st.file_len = 0;
        }
        let file = st.file;
        let defs = defs(file);
        let added = frames.len() + defs.as_ref().map_or(0, Vec::len);
        st.next_ticket += 1;
        let ticket = st.next_ticket;
        if let Some(defs) = defs {
            // Written, this leaves the earlier tickets written, not this one.
            st.pending.push_back(Pending {
                file,
                bytes: defs,
                last_ticket: ticket - 1,
            });
        }
        let spare = st.spare.pop().unwrap_or_default();
        st.pending.push_back(Pending {
            file,
            bytes: std::mem::replace(frames, spare),
            last_ticket: ticket,
        });
        st.file_len += added as u64;
        Ok(Ticket(ticket))
    }

    /// Waits until the appended bytes are durable (or written, under an interval policy).
    pub fn commit(&self, ticket: Ticket) -> Result<()> {
        let start = Instant::now();
        let result = self.commit_inner(ticket);
        self.commit_waits.observe(start.elapsed());
        result
    }

    /// The WAL's timings so far.
    pub fn timings(&self) -> WalTimings {
        WalTimings {
            group_commits: self.group_commits.snapshot(),
            commit_waits: self.commit_waits.snapshot(),
        }
    }

    fn commit_inner(&self, ticket: Ticket) -> Result<()> {
        let mut st = self.state.lock();
        loop {
            if st.durable_ticket >= ticket.0 {
                return Ok(());
            }
            if ticket.0 <= st.failed_upto {
                let failure = st.last_failure.as_ref();
                return Err(failure.map_or(Error::Closed, Failure::to_error));
            }
            if st.leader_active {
                self.cond.wait(&mut st);
                continue;
            }
            st.leader_active = true;
            let batch = std::mem::take(&mut st.pending);
            let upto = st.next_ticket;
            drop(st);
            let started = Instant::now();
            let result = self.write_batch(&batch);
            self.group_commits.observe(started.elapsed());
            st = self.state.lock();
            st.leader_active = false;
            for p in batch {
                if st.spare.len() < SPARE_BUFFERS && p.bytes.capacity() <= SPARE_BYTES {
                    let mut bytes = p.bytes;
                    bytes.clear();
                    st.spare.push(bytes);
                }
            }
            match result {
                Ok(()) => st.durable_ticket = upto,
                Err((failure, durable)) => {
                    // What an earlier, synced file holds is durable and acknowledged;
                    // everything else appended so far fails with this batch: a later
                    // leader must not write it, and its writers must not be acknowledged.
                    st.durable_ticket = st.durable_ticket.max(durable);
                    st.pending.clear();
                    st.failed_upto = st.next_ticket;
                    self.stop(&mut st, failure);
                }
            }
            self.cond.notify_all();
        }
    }

    /// Writes (and under `Always` syncs) a leader's batch. On failure, returns the last ticket
    /// that is durable all the same (its bytes are in an earlier file synced before the
    /// failure; 0 if none) after cutting the current file back to its acknowledged length.
    fn write_batch(&self, batch: &VecDeque<Pending>) -> Result<(), (Failure, u64)> {
        let mut io = self.io.lock();
        let (mut written_upto, mut durable) = (0, 0);
        let result = (|| {
            let mut entries = batch.iter().peekable();
            while let Some(first) = entries.next() {
                // The entries bound for one file go out in one write, joined in the
                // leader's buffer when there are several.
                let file_no = first.file;
                let (mut last, mut joined) = (first, None::<Vec<u8>>);
                while let Some(p) = entries.next_if(|p| p.file == file_no) {
                    let buf = joined.get_or_insert_with(|| {
                        let mut buf = std::mem::take(&mut io.joined);
                        buf.clear();
                        buf.extend_from_slice(&first.bytes);
                        buf
                    });
                    buf.extend_from_slice(&p.bytes);
                    last = p;
                }
                let bytes: &[u8] = joined.as_deref().unwrap_or(&first.bytes);
                if io.file.is_none() || io.file_no != file_no {
                    self.open_file(&mut io, file_no)?;
                    // Opening synced the earlier file: all written so far is durable.
                    durable = written_upto;
                }
                self.zero_ahead(&mut io, file_no, bytes.len() as u64)?;
                let Some(file) = io.file.as_ref() else {
                    continue;
                };
                if let Err(e) = file.write_all(bytes) {
                    return Err(classify_write(&self.path(file_no), e));
                }
                io.written += bytes.len() as u64;
                written_upto = last.last_ticket;
                if let Some(buf) = joined.filter(|b| b.capacity() <= SPARE_BYTES) {
                    io.joined = buf;
                }
            }
            if self.policy == FsyncPolicy::Always {
                let path = self.path(io.file_no);
                sync_file(&mut io, &path)?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                io.good_len = io.written;
                Ok(())
            }
            Err(failure) => {
                self.cut_back(&mut io);
                Err((failure, durable))
            }
        }
    }

    /// Under [`FsyncPolicy::Always`], writes zeros ahead when the next `len` bytes would run
    /// past those written before.
    fn zero_ahead(&self, io: &mut Io, file_no: u64, len: u64) -> Result<(), Failure> {
        let end = io.written + len;
        if self.policy != FsyncPolicy::Always || end <= io.zeroed {
            return Ok(());
        }
        let to = (end + ZERO_AHEAD).min(self.max_file_bytes);
        let Some(file) = io.file.as_ref() else {
            return Ok(());
        };
        if to > end {
            file.write_zeros(io.written.max(io.zeroed), to)
                .map_err(|e| classify_write(&self.path(file_no), e))?;
            io.zeroed = to;
        }
        Ok(())
    }

    /// Cuts the zeros written ahead off the current file, durably.
    fn trim(&self, io: &mut Io) -> Result<(), Failure> {
        let written = io.written;
        match io.file.as_ref() {
            Some(file) if io.zeroed > written => {
                file.trim(written)
                    .map_err(|e| classify_write(&self.path(io.file_no), e))?;
                io.zeroed = written;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Cuts the current file back to its acknowledged length, so that replay never applies
    /// the frames of a batch that failed; `uncut` remembers a cut that failed too.
    fn cut_back(&self, io: &mut Io) {
        io.file = None;
        if io.file_no == 0 {
            return;
        }
        let path = self.path(io.file_no);
        match self.vfs.truncate(&path, io.good_len) {
            Ok(()) => {
                io.written = io.good_len;
                io.zeroed = io.good_len;
                io.uncut = false;
            }
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "could not cut a failed batch off the WAL; retrying at recovery");
                io.uncut = true;
            }
        }
    }

    fn open_file(&self, io: &mut Io, file_no: u64) -> Result<(), Failure> {
        if io.file.is_some() {
            // Everything in the old file must be durable before later files count.
            let path = self.path(io.file_no);
            sync_file(io, &path)?;
            // Before the next file exists: only the newest file may end in zeros.
            self.trim(io)?;
        }
        let path = self.path(file_no);
        let file = self
            .vfs
            .create(&path)
            .map_err(|e| classify_write(&path, e))?;
        let wal_dir = self.dir.join(layout::WAL_DIR);
        self.vfs
            .sync_dir(&wal_dir)
            .map_err(|e| fsync_failed(&wal_dir, e))?;
        *io = Io {
            file: Some(Arc::from(file)),
            file_no,
            good_len: 0,
            written: 0,
            zeroed: 0,
            uncut: false,
            joined: std::mem::take(&mut io.joined),
        };
        Ok(())
    }

    /// After a full disk: start a new file at the next append.
    fn recover(&self, st: &mut State, failure: Failure) -> Result<()> {
        let Failure::DiskFull(_) = failure else {
            return Err(failure.to_error());
        };
        if st.leader_active {
            return Err(failure.to_error());
        }
        let mut io = self.io.lock();
        if io.uncut {
            self.cut_back(&mut io);
            if io.uncut {
                return Err(Error::ResourceExhausted {
                    limit: Limit::Disk,
                    detail: format!("still cannot cut {}", self.path(io.file_no).display()),
                });
            }
        }
        self.resume_in_new_file(st, &mut io);
        Ok(())
    }

    /// Resumes writing after a fatal failure (a failed fsync or write): checks that the
    /// current file, read back from disk, holds exactly its acknowledged frames, makes that
    /// length durable with a new fsync, and moves later appends to a new file. Call with no
    /// append in flight. Fails, leaving writes stopped, when any step fails.
    pub fn recover_fatal(&self) -> Result<()> {
        let mut st = self.state.lock();
        let Some(failure) = st.failure.clone() else {
            return Ok(());
        };
        if let Failure::DiskFull(_) = failure {
            return self.recover(&mut st, failure);
        }
        if st.leader_active {
            return Err(failure.to_error());
        }
        let mut io = self.io.lock();
        if io.file_no != 0 {
            if io.uncut {
                self.cut_back(&mut io);
            }
            let path = self.path(io.file_no);
            let stopped = |why: String| Error::WritesStopped { reason: why };
            if io.uncut {
                return Err(stopped(format!("cannot cut {} back", path.display())));
            }
            let data = self.vfs.read(&path).at(&path)?;
            let mut frames = super::frame::FrameReader::new(&data);
            let good = frames.by_ref().count();
            if data.len() as u64 != io.good_len || frames.end() != Some(&super::frame::End::Clean) {
                return Err(stopped(format!(
                    "{} reads back as {} bytes ({good} whole frames), {} acknowledged",
                    path.display(),
                    data.len(),
                    io.good_len
                )));
            }
            // Cutting again syncs through a new descriptor: an fsync of the cut, not a retry
            // of the one that failed.
            self.vfs.truncate(&path, io.good_len).at(&path)?;
        }
        self.resume_in_new_file(&mut st, &mut io);
        Ok(())
    }

    /// Makes everything written before the call durable (the interval policy's timer, a
    /// snapshot, and close).
    ///
    /// Under the interval policy the fsync runs outside the I/O lock, so that leaders go on
    /// writing while it runs: it covers up to an interval of writes and takes milliseconds,
    /// and holding the lock stalled every writer for it. Under `Always` the lock is held: a
    /// leader's own fsync decides what is acknowledged, and the kernel reports a failed
    /// write-back once per open file — a failure taken by this fsync beside a leader's
    /// could let the leader's succeed and acknowledge pages that were dropped.
    pub fn sync(&self) -> Result<()> {
        let mut io = self.io.lock();
        let Some(file) = io.file.clone() else {
            return Ok(());
        };
        let file_no = io.file_no;
        let synced = if self.policy == FsyncPolicy::Always {
            file.sync()
        } else {
            parking_lot::MutexGuard::unlocked(&mut io, || file.sync())
        };
        let Err(e) = synced else {
            return Ok(());
        };
        // Never retry: the kernel may have dropped the dirty pages it could not write. Later
        // writes go nowhere until recovery checks the file.
        if io.file_no == file_no {
            io.file = None;
        }
        drop(io);
        let failure = fsync_failed(&self.path(file_no), e);
        let err = failure.to_error();
        // The state lock is taken after the I/O lock is released: `append` takes them in
        // the other order.
        let mut st = self.state.lock();
        self.stop(&mut st, failure);
        Err(err)
    }

    /// Makes everything written durable and cuts the current file's zeros off, for a clean
    /// close (a crash leaves them to replay). Call with no append in flight.
    pub fn close(&self) -> Result<()> {
        self.sync()?;
        let mut io = self.io.lock();
        let trimmed = self.trim(&mut io);
        io.file = None;
        trimmed.map_err(|failure| failure.to_error())
    }

    /// Starts a new file for later appends and returns its number: every record appended
    /// before the call is in an earlier file. Call only with no append in flight.
    pub fn roll(&self) -> Result<u64> {
        let mut st = self.state.lock();
        if let Some(failure) = &st.failure {
            return Err(failure.to_error());
        }
        debug_assert!(st.pending.is_empty(), "roll with appends in flight");
        st.file += 1;
        st.file_len = 0;
        Ok(st.file)
    }

    /// Removes the files numbered below `n` (their records are in segments now). The removal
    /// need not be durable: a file that comes back after a crash is below the manifest's
    /// flush point, and opening skips and removes it.
    pub fn remove_before(&self, n: u64) -> Result<()> {
        let wal_dir = self.dir.join(layout::WAL_DIR);
        let entries = self.vfs.list_dir(&wal_dir).at(&wal_dir)?;
        for path in entries {
            if layout::parse_wal_file(&path).is_some_and(|f| f < n) {
                self.vfs.remove(&path).at(&path)?;
            }
        }
        Ok(())
    }

    /// The error writes get now, if the write path is stopped.
    pub fn failure(&self) -> Option<Error> {
        // A failure set a moment ago may not be seen here; the append that follows sees it.
        if !self.stopped.load(Ordering::Acquire) {
            return None;
        }
        self.state.lock().failure.as_ref().map(Failure::to_error)
    }

    /// Stops the write path with `failure` until a recovery.
    fn stop(&self, st: &mut State, failure: Failure) {
        st.last_failure = Some(failure.clone());
        st.failure = Some(failure);
        self.stopped.store(true, Ordering::Release);
    }

    /// Clears the failure and sends later appends to a new file (the current one is cut
    /// back to what was acknowledged).
    fn resume_in_new_file(&self, st: &mut State, io: &mut Io) {
        io.file = None;
        st.file = st.file.max(io.file_no) + 1;
        st.file_len = 0;
        st.failure = None;
        self.stopped.store(false, Ordering::Release);
    }

    fn path(&self, file_no: u64) -> PathBuf {
        layout::wal_file(&self.dir, file_no)
    }
}

fn sync_file(io: &mut Io, path: &std::path::Path) -> Result<(), Failure> {
    match io.file.as_ref().map(|f| f.sync()) {
        Some(Err(e)) => {
            // Never retry: the kernel may have dropped the dirty pages it could not write.
            io.file = None;
            Err(fsync_failed(path, e))
        }
        _ => Ok(()),
    }
}

fn fsync_failed(path: &std::path::Path, e: io::Error) -> Failure {
    Failure::Fatal(format!("fsync of {} failed: {e}", path.display()))
}

fn classify_write(path: &std::path::Path, e: io::Error) -> Failure {
    let msg = format!("write to {} failed: {e}", path.display());
    if e.kind() == io::ErrorKind::StorageFull || e.kind() == io::ErrorKind::QuotaExceeded {
        Failure::DiskFull(msg)
    } else {
        Failure::Fatal(msg)
    }
}
