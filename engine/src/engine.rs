//! The facade: [`Engine::open`] and the calls on an open store. The work is split by verb
//! into `engine/open.rs` (recovery), `engine/write.rs`, `engine/select.rs`,
//! `engine/flush.rs` and `engine/stats.rs`; this file holds the shared state.
//!
//! Concurrency: writers of different series share nothing but the WAL's group commit and a
//! shared (read) hold on the *cut gate*. A flush takes the gate exclusively for the moment
//! it moves head data into a frozen generation and rolls the WAL, so that every record in
//! the WAL files before the roll is in that generation. Readers take the gate shared while
//! they snapshot the head and the published [`Version`] (segments and frozen generations),
//! so a flush never hides data from them; they never block writers.

pub mod flush;
mod open;
mod select;
mod stats;
mod write;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use roaring::RoaringBitmap;

pub use select::SeriesSamples;
pub use stats::{Quarantined, Stats};

use crate::Result;
use crate::head::SeriesLayer;
use crate::index::{Index, SeriesRef};
use crate::manifest::Manifest;
use crate::model::RejectReason;
use crate::options::{FsyncPolicy, Options};
use crate::segment::Segment;
use crate::wal::Wal;

/// An open store. Cheap to share: clone the `Arc` you keep it in.
#[derive(Debug)]
pub struct Engine {
    inner: Arc<Inner>,
    syncer: Option<JoinHandle<()>>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    dir: PathBuf,
    opts: Options,
    index: Index,
    wal: Wal,
    gate: RwLock<()>,
    version: RwLock<Arc<Version>>,
    flush: Mutex<FlushState>,
    head_bytes: AtomicI64,
    accepted: AtomicU64,
    rejections: [AtomicU64; RejectReason::KINDS.len()],
    quarantined: Mutex<Vec<Quarantined>>,
    closed: AtomicBool,
    _lock: std::fs::File,
}

/// What readers see besides the live head: immutable, swapped as a whole.
#[derive(Debug, Default)]
pub(crate) struct Version {
    /// Live segments, by (seq, name): later ones hold newer writes.
    segments: Vec<Arc<SegmentHandle>>,
    /// Head data cut by a flush and not yet in a published segment, oldest first.
    frozen: Vec<Arc<FrozenGen>>,
}

/// An open segment and the engine's references for its series.
#[derive(Debug)]
pub(crate) struct SegmentHandle {
    name: String,
    segment: Segment,
    locals: HashMap<SeriesRef, u32>,
    refs: RoaringBitmap,
}

/// Head data moved out by one flush's cut.
#[derive(Debug)]
pub(crate) struct FrozenGen {
    seq: u64,
    /// WAL files numbered below this are covered by this and earlier generations.
    wal_below: u64,
    series: HashMap<SeriesRef, SeriesLayer>,
}

#[derive(Debug)]
struct FlushState {
    manifest: Manifest,
}

impl Engine {
    /// Opens (or creates) the store in `dir`: reads the manifest, opens the segments
    /// (quarantining any that are corrupt), and replays the WAL.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Engine> {
        let inner = Arc::new(open::open(dir.as_ref(), opts)?);
        let syncer = match inner.opts.fsync {
            FsyncPolicy::Interval(every) => Some(spawn_syncer(Arc::downgrade(&inner), every)),
            FsyncPolicy::Always => None,
        };
        Ok(Engine { inner, syncer })
    }

    /// Makes the WAL durable and closes the store. Later calls on clones fail with
    /// [`crate::Error::Closed`]. Dropping the engine does the same, ignoring errors.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        if let Some(syncer) = self.syncer.take() {
            let _ = syncer.join();
        }
        // Wait for writers in flight, then make what they wrote durable.
        let _gate = self.inner.gate.write();
        match self.inner.wal.failure() {
            Some(_) => Ok(()),
            None => self.inner.wal.sync(),
        }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "closing the engine failed");
        }
    }
}

fn spawn_syncer(inner: Weak<Inner>, every: Duration) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("iocdb-wal-sync".into())
        .spawn(move || {
            let tick = every.min(Duration::from_millis(50)).max(Duration::from_millis(1));
            let mut waited = Duration::ZERO;
            loop {
                std::thread::sleep(tick);
                waited += tick;
                let Some(inner) = inner.upgrade() else { return };
                if inner.closed.load(Ordering::SeqCst) {
                    return;
                }
                if waited >= every {
                    waited = Duration::ZERO;
                    if let Err(e) = inner.wal.sync() {
                        tracing::error!(error = %e, "periodic WAL fsync failed; writes are stopped");
                    }
                }
            }
        })
        .unwrap_or_else(|e| panic!("cannot start the WAL sync thread: {e}"))
}

impl Inner {
    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(crate::Error::Closed);
        }
        Ok(())
    }

    fn current_version(&self) -> Arc<Version> {
        self.version.read().clone()
    }

    fn add_head_bytes(&self, delta: isize) {
        self.head_bytes.fetch_add(delta as i64, Ordering::Relaxed);
    }
}
