//! The facade: [`Engine::open`] and the calls on an open store. The work is split by verb
//! into `engine/open.rs` (recovery), `engine/write.rs`, `engine/read.rs` (the read view
//! queries use) and `engine/select.rs` (the read calls), `engine/flush.rs` and
//! `engine/stats.rs`; `engine/version.rs` is what readers see besides the head; this file
//! holds the shared state.
//!
//! Concurrency: writers of different series share nothing but the WAL's group commit and a
//! shared (read) hold on the *cut gate*. A flush takes the gate exclusively for the moment
//! it moves head data into a frozen generation and rolls the WAL, so that every record in
//! the WAL files before the roll is in that generation. Readers take the gate shared while
//! they snapshot the head and the published [`Version`] (segments and frozen generations),
//! so a flush never hides data from them; they never block writers.
//!
//! May use: every room. Queries reach it only through [`read`], the read view.

mod changes;
mod compact;
mod delete;
pub mod flush;
mod inspect;
mod open;
pub mod read;
mod repair;
mod select;
mod snapshot;
mod stats;
mod verify;
mod version;
mod watch;
pub mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

pub use compact::CompactReport;
pub use delete::DeleteReport;
pub use inspect::{Inspection, SegmentInfo};
pub use repair::RepairReport;
pub use select::{CompletenessReport, DelayFigures, SeriesSamples};
pub use snapshot::SnapshotReport;
pub use stats::{Quarantined, Stats};
pub use verify::{Problem, VerifyReport};
use version::Version;
pub use watch::{Subscription, Wake, WatchEvent};

use crate::Result;
use crate::head::Head;
use crate::manifest::Manifest;
use crate::metadata::{MetadataStore, MetricMetadata};
use crate::model::PerNamespace;
use crate::model::QualityPolicy;
use crate::model::RejectReason;
use crate::options::{FsyncPolicy, Options};
use crate::quality::{Quality, QualityFilter, QualityReport};
use crate::wal::Wal;

/// An open store. Cheap to share: clone the `Arc` you keep it in.
#[derive(Debug)]
pub struct Engine {
    inner: Arc<Inner>,
    maintenance: Mutex<Option<(JoinHandle<()>, Arc<StopSignal>)>>,
}

/// Wakes the maintenance thread at once when the engine closes.
#[derive(Debug, Default)]
struct StopSignal {
    stopped: Mutex<bool>,
    wake: parking_lot::Condvar,
}

impl StopSignal {
    fn stop(&self) {
        *self.stopped.lock() = true;
        self.wake.notify_all();
    }

    /// Sleeps for `tick` or until stopped; true once stopped.
    fn sleep(&self, tick: Duration) -> bool {
        let mut stopped = self.stopped.lock();
        if !*stopped {
            self.wake.wait_for(&mut stopped, tick);
        }
        *stopped
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    dir: PathBuf,
    opts: Options,
    head: Head,
    wal: Wal,
    gate: RwLock<()>,
    /// The arrays writes fill, kept for later writes.
    write_buffers: crate::scratch::Pool<write::WriteBuffers>,
    version: RwLock<Arc<Version>>,
    flush: Mutex<FlushState>,
    head_bytes: AtomicI64,
    accepted: AtomicU64,
    /// Times the write path resumed after a WAL failure.
    write_recoveries: AtomicU64,
    /// Rollup blocks queries found damaged (and answered from raw samples instead), and
    /// the last such damage.
    damaged_rollups: AtomicU64,
    last_damaged_rollup: Mutex<Option<String>>,
    /// Flushes that wrote segments, and compactions that wrote segments, since opening.
    flushes: AtomicU64,
    compactions: AtomicU64,
    /// What opening cut off the ends of WAL files.
    wal_cuts: open::WalCuts,
    rejections: [AtomicU64; RejectReason::KINDS.len()],
    quarantined: Mutex<Vec<Quarantined>>,
    metadata: Mutex<MetadataStore>,
    /// The catalog's data-quality rules in force, and what they rejected or flagged.
    quality: Quality,
    /// Live subscribers.
    watch: Arc<watch::Hub>,
    closed: AtomicBool,
    /// Series limits of particular namespaces, overriding `Limits::max_series_per_namespace`
    /// (set by [`Engine::set_series_limits`]); `has_series_limits` spares the write path the
    /// lock while there are none.
    series_limits: RwLock<PerNamespace<usize>>,
    has_series_limits: AtomicBool,
    /// The data directory's lock, released by `close`.
    lock: Mutex<Option<std::fs::File>>,
    /// The workers every query of this engine shares, sized to the machine: eight
    /// concurrent dashboard queries use these, not eight threads per core.
    query_pool: rayon::ThreadPool,
    /// What writes and deletions changed, by namespace and time (for the result cache).
    changes: changes::Changes,
    /// The result cache of range queries; `None` when `query_cache_bytes` is 0.
    cache: Option<crate::query::cache::ResultCache>,
}

#[derive(Debug)]
struct FlushState {
    manifest: Manifest,
}

impl Engine {
    /// Sets the series limits of particular namespaces (replacing earlier ones); the others
    /// keep `Limits::max_series_per_namespace`. Takes effect for the next new series; series
    /// that exist are never dropped.
    pub fn set_series_limits(&self, limits: PerNamespace<usize>) {
        let any = !limits.is_empty();
        *self.inner.series_limits.write() = limits;
        self.inner.has_series_limits.store(any, Ordering::Release);
    }

    /// Sets the share of the head memory (bytes) that particular namespaces may fill,
    /// replacing earlier ones: a write into a namespace that holds its share is refused
    /// whole with [`crate::Limit::HeadMemoryShare`] until a flush makes room, while the others
    /// go on writing. The whole head's budget ([`Options::head_memory_budget`]) still
    /// applies to all.
    pub fn set_head_shares(&self, shares: PerNamespace<u64>) {
        self.inner.head.usages().set_limits(shares);
    }

    /// Opens (or creates) the store in `dir`: reads the manifest, opens the segments
    /// (quarantining any that are corrupt), and replays the WAL.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Engine> {
        let inner = Arc::new(open::open(dir.as_ref(), opts)?);
        let sync_every = match inner.opts.fsync {
            FsyncPolicy::Interval(every) => Some(every),
            FsyncPolicy::Always => None,
        };
        let stop = Arc::new(StopSignal::default());
        let maintenance = spawn_maintenance(Arc::downgrade(&inner), sync_every, stop.clone());
        Ok(Engine {
            inner,
            maintenance: Mutex::new(Some((maintenance, stop))),
        })
    }

    /// Waits for writes in flight, makes the WAL durable and closes the store; later calls
    /// fail with [`crate::Error::Closed`]. Dropping the engine does the same, ignoring errors.
    pub fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        if let Some((maintenance, stop)) = self.maintenance.lock().take() {
            stop.stop();
            let _ = maintenance.join();
        }
        // Wait for writers in flight, then make what they wrote durable.
        let _gate = self.inner.gate.write();
        let synced = match self.inner.wal.failure() {
            Some(_) => Ok(()),
            None => self.inner.wal.close(),
        };
        self.inner.store_arrivals();
        // Another process (or a new `Engine::open`) may have the directory now.
        self.inner.lock.lock().take();
        synced
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
}

impl Engine {
    /// Records what is known of a metric in a namespace (replacing earlier metadata of it).
    pub fn set_metadata(&self, namespace: &str, metadata: MetricMetadata) -> Result<()> {
        let inner = &*self.inner;
        inner.check_open()?;
        let ns = crate::model::Namespace::new(namespace).map_err(crate::Error::InvalidArgument)?;
        if !crate::model::labels::is_valid_metric_name(&metadata.metric) {
            return Err(crate::Error::InvalidArgument(format!(
                "{:?} is not a valid metric name",
                metadata.metric
            )));
        }
        check_catalog_entry(&metadata)?;
        let mut store = inner.metadata.lock();
        let mut next = store.clone();
        next.0
            .insert((ns.to_string(), metadata.metric.clone()), metadata);
        next.store(&*inner.opts.vfs, &inner.dir)?;
        inner.quality.compile(&next);
        *store = next;
        Ok(())
    }

    /// Sets each namespace's data-quality policy for the indicators that declare none
    /// (replacing earlier ones; a namespace not named gets `flag`). Not stored: the server
    /// sets them from its catalog file at every start.
    pub fn set_quality_policies(&self, policies: BTreeMap<String, QualityPolicy>) {
        let store = self.inner.metadata.lock();
        self.inner.quality.set_policies(policies);
        self.inner.quality.compile(&store);
    }

    /// Subscribes to the newly acknowledged samples of `namespace`'s series that match
    /// `matchers` (see [`WatchEvent`]); at most `capacity` series-writes wait in its queue
    /// before it starts losing samples (and is told). `wake` is called whenever the queue
    /// has something new. Dropping the subscription ends it.
    pub fn watch(
        &self,
        namespace: &str,
        matchers: Vec<crate::index::Matcher>,
        capacity: usize,
        wake: watch::Wake,
    ) -> Result<Subscription> {
        let inner = &*self.inner;
        inner.check_open()?;
        let ns = crate::model::Namespace::new(namespace).map_err(crate::Error::InvalidArgument)?;
        // Between writes: see `commit`.
        let _gate = inner.gate.write();
        Ok(Subscription::new(
            inner.watch.clone(),
            ns,
            matchers,
            capacity,
            wake,
        ))
    }

    /// What the data-quality rules rejected and flagged: counters since the store was
    /// created, and the newest events.
    pub fn quality(&self, filter: &QualityFilter) -> QualityReport {
        self.inner.quality.report(filter)
    }

    /// The metadata of a namespace's metrics, sorted by metric.
    pub fn metadata(&self, namespace: &str) -> Result<Vec<MetricMetadata>> {
        self.inner.metadata(namespace)
    }
}

/// Refuses a catalog entry whose numbers cannot mean anything.
fn check_catalog_entry(m: &MetricMetadata) -> Result<()> {
    let invalid = |what: String| Err(crate::Error::InvalidArgument(what));
    let r = &m.rules;
    if m.expected_interval_ms.is_some_and(|i| i <= 0) {
        return invalid("the expected interval must be positive".into());
    }
    if [r.valid_min, r.valid_max, r.max_change_factor]
        .iter()
        .flatten()
        .any(|v| !v.is_finite())
    {
        return invalid("valid_min, valid_max and max_change_factor must be finite".into());
    }
    if let (Some(min), Some(max)) = (r.valid_min, r.valid_max)
        && min > max
    {
        return invalid(format!("valid_min {min} is above valid_max {max}"));
    }
    if r.max_change_factor.is_some_and(|f| f < 1.0) {
        return invalid("max_change_factor must be at least 1".into());
    }
    if r.revision_window_ms.is_some_and(|w| w < 0) {
        return invalid("the revision window must not be negative".into());
    }
    if let Some(bad) = r
        .required_labels
        .iter()
        .find(|l| !crate::model::is_valid_label_name(l))
    {
        return invalid(format!(
            "required label {} is not a valid label name",
            crate::model::echo(bad)
        ));
    }
    Ok(())
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "closing the engine failed");
        }
    }
}

/// How often the maintenance thread looks at the write path.
const MAINTENANCE_TICK: Duration = Duration::from_millis(10);
/// How long the write path's buffers are kept without a write (see `scratch.rs`).
const SCRATCH_IDLE: Duration = Duration::from_secs(1);
/// First and longest wait between attempts to resume writing after a WAL failure.
const RECOVERY_BACKOFF: (Duration, Duration) = (Duration::from_millis(20), Duration::from_secs(5));

/// The engine's one background thread: fsyncs the WAL periodically under the interval
/// policy, resumes writing after a failed fsync or write ([`Inner::recover_writes`]),
/// with exponential back-off between attempts, and lets the write path's buffers go once
/// no write has come for [`SCRATCH_IDLE`].
fn spawn_maintenance(
    inner: Weak<Inner>,
    sync_every: Option<Duration>,
    stop: Arc<StopSignal>,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("iocdb-maintenance".into())
        .spawn(move || {
            let tick = sync_every.map_or(MAINTENANCE_TICK, |every| {
                every.min(MAINTENANCE_TICK).max(Duration::from_millis(1))
            });
            let mut since_sync = Duration::ZERO;
            let mut backoff = RECOVERY_BACKOFF.0;
            let mut next_attempt = Duration::ZERO;
            loop {
                if stop.sleep(tick) {
                    return;
                }
                since_sync += tick;
                let Some(inner) = inner.upgrade() else { return };
                if inner.closed.load(Ordering::SeqCst) {
                    return;
                }
                inner.write_buffers.release_idle(SCRATCH_IDLE);
                if let Some(every) = sync_every
                    && since_sync >= every
                {
                    since_sync = Duration::ZERO;
                    if let Err(e) = inner.wal.sync() {
                        tracing::error!(error = %e, "periodic WAL fsync failed; writes are stopped until the WAL recovers");
                    }
                }
                if inner.wal.failure().is_none() {
                    backoff = RECOVERY_BACKOFF.0;
                    next_attempt = Duration::ZERO;
                    continue;
                }
                next_attempt = next_attempt.saturating_sub(tick);
                if !next_attempt.is_zero() {
                    continue;
                }
                match inner.recover_writes() {
                    Ok(()) => backoff = RECOVERY_BACKOFF.0,
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?backoff, "the WAL cannot resume writing yet");
                        next_attempt = backoff;
                        backoff = (backoff * 2).min(RECOVERY_BACKOFF.1);
                    }
                }
            }
        })
        .unwrap_or_else(|e| panic!("cannot start the maintenance thread: {e}"))
}

impl Inner {
    /// Resumes writing after a WAL failure (see [`Wal::recover_fatal`]), with no write in
    /// flight: the head already holds exactly the acknowledged writes (a failed batch never
    /// reaches it), so what must be proved is that the disk holds them too.
    ///
    /// After a failed fsync or write (not a full disk) it then flushes the head. The WAL's
    /// check reads the damaged file back through the page cache, and after a failed
    /// write-back the kernel may have dropped pages it could not write while still showing
    /// them (marked clean): under the interval policy, writes acknowledged since the last
    /// good fsync may be gone from the disk whatever the check saw. The flush puts every
    /// acknowledged sample in a segment and retires the damaged file.
    fn recover_writes(&self) -> Result<()> {
        let failure = {
            let _gate = self.gate.write();
            let Some(failure) = self.wal.failure() else {
                return Ok(());
            };
            let started = std::time::Instant::now();
            self.wal.recover_fatal()?;
            self.write_recoveries.fetch_add(1, Ordering::Relaxed);
            tracing::info!(after = %failure, took = ?started.elapsed(), "the WAL recovered; writes resume");
            failure
        };
        if !failure.is_disk_full() {
            let mut state = self.flush.lock();
            match flush::flush_locked(self, &mut state) {
                Ok(report) => {
                    tracing::info!(
                        segments = report.segments,
                        samples = report.samples,
                        "the head flushed after the WAL's recovery"
                    )
                }
                Err(e) => {
                    tracing::error!(error = %e, "the flush after the WAL's recovery failed; the head keeps its samples until the next flush")
                }
            }
        }
        Ok(())
    }

    /// Notes a rollup block a query found damaged: the query reads those buckets' raw
    /// samples instead, which give the same answer (rollups are only ever a shortcut).
    fn rollup_damaged(&self, error: &crate::Error) {
        self.damaged_rollups.fetch_add(1, Ordering::Relaxed);
        *self.last_damaged_rollup.lock() = Some(error.to_string());
        tracing::error!(%error, "a damaged rollup block; its buckets are read from raw samples (run `iocdb verify`)");
    }

    /// Stores the arrival delays, dropping hours past retention; a failure is logged (the
    /// delays are a report: the samples are safe either way).
    fn store_arrivals(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let cutoff = |ns: &str| self.opts.retention_cutoff(ns, now);
        if let Err(e) = self
            .quality
            .store_arrivals(&*self.opts.vfs, &self.dir, cutoff)
        {
            tracing::warn!(error = %e, "arrival delays not stored; those since the last store are lost at a crash");
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(crate::Error::Closed);
        }
        Ok(())
    }

    fn metadata(&self, namespace: &str) -> Result<Vec<MetricMetadata>> {
        let ns = crate::model::Namespace::new(namespace).map_err(crate::Error::InvalidArgument)?;
        let store = self.metadata.lock();
        Ok(store
            .0
            .iter()
            .filter(|((n, _), _)| n == ns.as_str())
            .map(|(_, m)| m.clone())
            .collect())
    }

    fn current_version(&self) -> Arc<Version> {
        self.version.read().clone()
    }

    /// The series of `namespace` matching every matcher that may hold samples in
    /// `[start, end]`: in the head, and out of it in the segments overlapping the range.
    fn select(
        &self,
        namespace: &crate::model::Namespace,
        matchers: &[crate::index::Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<crate::head::SeriesHandle>> {
        self.head.select(namespace, matchers, |cold| {
            // Taken under the registry's lock: a series that left the head meanwhile left
            // it after its samples were published in this version or an earlier one.
            self.current_version()
                .select_cold(cold, namespace, matchers, (start, end))
        })
    }

    /// The references of the series [`Inner::select`] gives, without their handles.
    fn select_refs(
        &self,
        namespace: &crate::model::Namespace,
        matchers: &[crate::index::Matcher],
        start: i64,
        end: i64,
    ) -> Result<roaring::RoaringBitmap> {
        self.head.with_selection(namespace, matchers, |hot, cold| {
            let mut refs: roaring::RoaringBitmap = hot.map(|s| s.id).collect();
            // Under the registry's lock, as in `select`.
            refs |= self
                .current_version()
                .cold_refs(cold, namespace, matchers, (start, end))?;
            Ok(refs)
        })
    }

    /// The namespace and labels of series `id`, in the head or only in segments.
    fn identity(
        &self,
        id: crate::head::SeriesRef,
    ) -> Option<(crate::model::Namespace, crate::model::Labels)> {
        use crate::head::ColdLabels;
        self.head.identity(id).or_else(|| self.cold_labels(id))
    }

    fn add_head_bytes(&self, delta: isize) {
        self.head_bytes.fetch_add(delta as i64, Ordering::Relaxed);
    }

    /// Bytes the head holds: its samples and what its series cost (structs, registry, index).
    fn head_memory_bytes(&self) -> u64 {
        self.head_bytes.load(Ordering::Relaxed).max(0) as u64 + self.head.registry_bytes()
    }
}

/// Series out of the head as the version published *now* holds them: the head asks under
/// its registry's lock, and a series leaves the head only after a flush published the
/// segment with its samples, so a version read then holds every series out of the head —
/// one a writer read before taking the lock might not (two flushes may pass meanwhile).
impl crate::head::ColdLabels for Inner {
    fn find_labels(
        &self,
        namespace: &crate::model::Namespace,
        labels: &crate::model::Labels,
        cold: &roaring::RoaringBitmap,
    ) -> Option<crate::head::SeriesRef> {
        self.current_version().find_labels(namespace, labels, cold)
    }

    fn cold_labels(
        &self,
        id: crate::head::SeriesRef,
    ) -> Option<(crate::model::Namespace, crate::model::Labels)> {
        self.current_version().cold_labels(id)
    }

    fn last_sample(&self, id: crate::head::SeriesRef) -> Option<crate::model::Sample> {
        self.current_version().last_sample(id)
    }
}
