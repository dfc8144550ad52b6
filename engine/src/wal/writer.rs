//! Appending to the WAL with group commit.
//!
//! Writers call [`Wal::append`] (cheap: frames are copied into a pending buffer under a
//! short lock and given a ticket) and then [`Wal::commit`]. The first committer to find no
//! write in progress becomes the leader: it takes everything pending, writes it and (under
//! [`FsyncPolicy::Always`]) fsyncs once, then wakes every writer whose ticket that covered.
//! Writers that arrive meanwhile queue up for the next leader, so under load many writers
//! share each fsync.
//!
//! Failures: a failed fsync, or any write error other than a full disk, stops the write path
//! for good (the page cache may have dropped what we wrote; retrying the fsync and then
//! acknowledging would lie). A full disk stops it too, but the next append tries to recover:
//! it cuts the current file back to its last good length and starts a new file.

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::error::IoContext;
use crate::fs::{Vfs, VfsFile, layout};
use crate::options::FsyncPolicy;
use crate::{Error, Limit, Result};

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
    /// Pending bytes, tagged with their file.
    pending: VecDeque<(u64, Vec<u8>)>,
    next_ticket: u64,
    durable_ticket: u64,
    leader_active: bool,
    /// Set while the write path is stopped.
    failure: Option<Failure>,
    /// Tickets up to this one failed (with `last_failure`) and will never be durable.
    failed_upto: u64,
    last_failure: Option<Failure>,
}

#[derive(Debug)]
struct Io {
    file: Option<Box<dyn VfsFile>>,
    file_no: u64,
    /// Bytes of `file_no` known written (and, under `Always`, synced) in full batches.
    good_len: u64,
    written: u64,
}

/// The WAL writer.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    vfs: Arc<dyn Vfs>,
    policy: FsyncPolicy,
    max_file_bytes: u64,
    state: Mutex<State>,
    cond: Condvar,
    io: Mutex<Io>,
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
            }),
            cond: Condvar::new(),
            io: Mutex::new(Io {
                file: None,
                file_no: 0,
                good_len: 0,
                written: 0,
            }),
        }
    }

    /// Queues frames for the current file. `defs` is called with the file number under the
    /// lock and returns the definition frame the batch needs in that file, if any; `frames`
    /// follow it.
    pub fn append(
        &self,
        frames: &[u8],
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
        let buf = match st.pending.back_mut() {
            Some((f, buf)) if *f == file => buf,
            _ => {
                st.pending.push_back((file, Vec::with_capacity(added)));
                &mut st
                    .pending
                    .back_mut()
                    .unwrap_or_else(|| unreachable!("just pushed"))
                    .1
            }
        };
        if let Some(defs) = defs {
            buf.extend_from_slice(&defs);
        }
        buf.extend_from_slice(frames);
        st.file_len += added as u64;
        st.next_ticket += 1;
        Ok(Ticket(st.next_ticket))
    }

    /// Waits until the appended bytes are durable (or written, under an interval policy).
    pub fn commit(&self, ticket: Ticket) -> Result<()> {
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
            let result = self.write_batch(batch);
            st = self.state.lock();
            st.leader_active = false;
            match result {
                Ok(()) => st.durable_ticket = upto,
                Err(failure) => {
                    // Everything appended so far fails with this batch: a later leader
                    // must not write it, and its writers must not be acknowledged.
                    st.pending.clear();
                    st.failed_upto = st.next_ticket;
                    st.last_failure = Some(failure.clone());
                    st.failure = Some(failure);
                }
            }
            self.cond.notify_all();
        }
    }

    fn write_batch(&self, batch: VecDeque<(u64, Vec<u8>)>) -> Result<(), Failure> {
        let mut io = self.io.lock();
        for (file_no, bytes) in batch {
            if io.file.is_none() || io.file_no != file_no {
                self.open_file(&mut io, file_no)?;
            }
            let Some(file) = io.file.as_mut() else {
                continue;
            };
            if let Err(e) = file.write_all(&bytes) {
                return Err(classify_write(&self.path(file_no), e));
            }
            io.written += bytes.len() as u64;
        }
        if self.policy == FsyncPolicy::Always {
            let path = self.path(io.file_no);
            sync_file(&mut io, &path)?;
        }
        io.good_len = io.written;
        Ok(())
    }

    fn open_file(&self, io: &mut Io, file_no: u64) -> Result<(), Failure> {
        if io.file.is_some() {
            // Everything in the old file must be durable before later files count.
            let path = self.path(io.file_no);
            sync_file(io, &path)?;
        }
        let path = self.path(file_no);
        let file = self
            .vfs
            .create(&path)
            .map_err(|e| classify_write(&path, e))?;
        let wal_dir = self.dir.join(layout::WAL_DIR);
        self.vfs
            .sync_dir(&wal_dir)
            .map_err(|e| Failure::Fatal(format!("fsync of {} failed: {e}", wal_dir.display())))?;
        *io = Io {
            file: Some(file),
            file_no,
            good_len: 0,
            written: 0,
        };
        Ok(())
    }

    fn recover(&self, st: &mut State, failure: Failure) -> Result<()> {
        let Failure::DiskFull(_) = failure else {
            return Err(failure.to_error());
        };
        if st.leader_active {
            return Err(failure.to_error());
        }
        let mut io = self.io.lock();
        if io.file.take().is_some() {
            let path = self.path(io.file_no);
            self.vfs
                .truncate(&path, io.good_len)
                .map_err(|e| Error::ResourceExhausted {
                    limit: Limit::Disk,
                    detail: format!("still cannot write {}: {e}", path.display()),
                })?;
        }
        st.file = st.file.max(io.file_no) + 1;
        st.file_len = 0;
        st.failure = None;
        Ok(())
    }

    /// Makes everything written durable (the interval policy's timer, and close).
    pub fn sync(&self) -> Result<()> {
        let result = {
            let mut io = self.io.lock();
            if io.file.is_none() {
                return Ok(());
            }
            let path = self.path(io.file_no);
            sync_file(&mut io, &path)
        };
        // The state lock is taken after the I/O lock is released: `append` takes them in
        // the other order.
        if let Err(failure) = result {
            let err = failure.to_error();
            let mut st = self.state.lock();
            st.last_failure = Some(failure.clone());
            st.failure = Some(failure);
            return Err(err);
        }
        Ok(())
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
        self.state.lock().failure.as_ref().map(Failure::to_error)
    }

    fn path(&self, file_no: u64) -> PathBuf {
        layout::wal_file(&self.dir, file_no)
    }
}

fn sync_file(io: &mut Io, path: &std::path::Path) -> Result<(), Failure> {
    match io.file.as_mut().map(|f| f.sync()) {
        Some(Err(e)) => {
            // Never retry: the kernel may have dropped the dirty pages it could not write.
            io.file = None;
            Err(Failure::Fatal(format!(
                "fsync of {} failed: {e}",
                path.display()
            )))
        }
        _ => Ok(()),
    }
}

fn classify_write(path: &std::path::Path, e: io::Error) -> Failure {
    let msg = format!("write to {} failed: {e}", path.display());
    if e.kind() == io::ErrorKind::StorageFull || e.kind() == io::ErrorKind::QuotaExceeded {
        Failure::DiskFull(msg)
    } else {
        Failure::Fatal(msg)
    }
}
