//! The read view: the one door through which queries see the store (compare Prometheus'
//! `storage.Querier`). [`Querier`] selects series by matchers and answers bounds-only
//! questions; [`Querier::snapshot`] takes, under the cut gate, the live head data of the
//! selected series together with the published [`Version`], so that a flush's cut between
//! the two cannot hide data; [`Snapshot::for_each`] then reads each series — segments,
//! frozen generations, live head, merged with the newest write winning — and hands its
//! samples to the caller's function as soon as they are read, on the engine's shared query
//! pool.
//!
//! Segments and chunks outside the range, or without the series, are skipped by their
//! bounds and reference bitmaps ([`super::version::SegmentHandle::chunks_in`]) without
//! decoding. What a query may spend is the caller's business: its function charges its own
//! budget and stops the reading by returning an error.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use rayon::prelude::*;

use super::Inner;
use super::delete::hide_deleted;
use super::version::Version;
use roaring::RoaringBitmap;

use crate::head::{Series, SeriesLayer, SeriesRef, dedupe_newest_wins};
use crate::index::Matcher;
use crate::metadata::MetricMetadata;
use crate::model::{Namespace, Sample};
use crate::options::QueryLimits;
use crate::{Error, Result};

mod metric;

pub use crate::codec::rollup::{self, Bucket, Wanted};
pub use crate::head::SeriesHandle;
pub use metric::MetricSource;

/// What [`Snapshot::for_each`] does with each series as soon as it is read.
pub type SeriesFn<'a, T> = &'a (dyn Fn(&SeriesHandle, &[Sample]) -> Result<T> + Sync);

/// What [`Snapshot::for_each_rolled`] does with each series' buckets as soon as they are
/// read.
pub type BucketsFn<'a, T> = &'a (dyn Fn(&SeriesHandle, &[Bucket], RollupCost) -> Result<T> + Sync);

/// How [`Snapshot::fold_rolled`] folds each series' buckets into its share's accumulator.
pub type FoldFn<'a, A> =
    &'a (dyn Fn(&mut A, &SeriesHandle, &[Bucket], RollupCost) -> Result<()> + Sync);

/// What reading one series' buckets took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollupCost {
    /// Buckets read from segments' rollups.
    pub stored: usize,
    /// Raw samples read to summarise the other buckets.
    pub raw_samples: usize,
}

/// What [`Querier::with_data`] finds: series in the head by reference, and series out of it
/// by segment and local id.
#[derive(Default)]
struct WithData {
    hot: RoaringBitmap,
    cold: Vec<(Arc<super::version::SegmentHandle>, RoaringBitmap)>,
}

impl WithData {
    /// `listed` (the head's series' names or values) with what `list` finds among the
    /// series out of the head in each segment's label index, sorted, each once.
    fn with_cold(
        &self,
        mut listed: Vec<String>,
        list: impl for<'i> Fn(
            &crate::segment::LabelIndex<'i>,
            &RoaringBitmap,
        ) -> std::result::Result<Vec<&'i str>, crate::DecodeError>,
    ) -> Result<Vec<String>> {
        for (h, locals) in &self.cold {
            let index = h.segment.label_index()?;
            let found = list(&index, locals).map_err(|e| h.segment.index_error(e))?;
            listed.extend(found.into_iter().map(str::to_owned));
        }
        listed.sort_unstable();
        listed.dedup();
        Ok(listed)
    }
}

/// Series a reader of a whole store takes handles on at a time ([`Querier::in_batches`]):
/// enough to keep the query workers busy, few enough that their labels cost megabytes.
pub const BATCH_SERIES: usize = 16_384;

/// Below this many series a snapshot is read on the calling thread.
const PARALLEL_MIN_SERIES: usize = 64;

/// Runs of a snapshot's series per query worker (see [`Snapshot::run_parts`]).
const RUNS_PER_WORKER: usize = 4;

/// A reader of an open store: cheap, borrowed from the engine.
#[derive(Clone, Copy)]
pub struct Querier<'a> {
    inner: &'a Inner,
}

impl<'a> Querier<'a> {
    pub(super) fn new(inner: &'a Inner) -> Self {
        Querier { inner }
    }

    /// `namespace` validated, once the store is known to be open: what every reader by
    /// namespace checks first.
    fn open_namespace(&self, namespace: &str) -> Result<Namespace> {
        self.inner.check_open()?;
        Namespace::new(namespace).map_err(Error::InvalidArgument)
    }

    /// The rollup tiers segments are written with (interval ms).
    pub fn rollup_tiers(&self) -> &'a [i64] {
        &self.inner.opts.rollup_tiers_ms
    }

    /// The oldest time whose buckets of tier `tier` (ms) are kept in `namespace` now.
    pub fn tier_cutoff(&self, namespace: &str, tier: i64) -> i64 {
        // Retentions are kept under the namespace's validated name ("" is "default").
        match Namespace::new(namespace) {
            Ok(ns) => self
                .inner
                .opts
                .tier_cutoff(ns.as_str(), tier, wall_clock_ms()),
            Err(_) => self
                .inner
                .opts
                .tier_cutoff(namespace, tier, wall_clock_ms()),
        }
    }

    /// The query limits in force.
    pub fn limits(&self) -> &'a QueryLimits {
        &self.inner.opts.query_limits
    }

    /// The series of `namespace` matching every matcher that may hold samples in
    /// `[start, end]`, in reference order: every such series in the head, and those out of
    /// it that a segment overlapping the range holds (found through the segments' label
    /// indexes).
    pub fn select(
        &self,
        namespace: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<SeriesHandle>> {
        let namespace = self.open_namespace(namespace)?;
        self.inner.select(&namespace, matchers, start, end)
    }

    /// The references of the series [`Querier::select`] gives, without building a handle
    /// (labels and all) on each: a reader of millions of series takes their handles a batch
    /// at a time ([`Querier::in_batches`]) and holds one batch's, not the store's.
    pub fn select_refs(
        &self,
        namespace: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<RoaringBitmap> {
        let namespace = self.open_namespace(namespace)?;
        self.inner.select_refs(&namespace, matchers, start, end)
    }

    /// Hands `each` handles on the series `refs` of `namespace` (from
    /// [`Querier::select_refs`]) as they are then, [`BATCH_SERIES`] at a time in reference
    /// order; a series gone meanwhile is left out. The first error stops it.
    pub fn in_batches(
        &self,
        namespace: &str,
        refs: &RoaringBitmap,
        each: &mut dyn FnMut(Vec<SeriesHandle>) -> Result<()>,
    ) -> Result<()> {
        let namespace = self.open_namespace(namespace)?;
        let refs: Vec<SeriesRef> = refs.iter().collect();
        for batch in refs.chunks(BATCH_SERIES) {
            each(self.inner.head.handles(&namespace, batch, self.inner))?;
        }
        Ok(())
    }

    /// Hands the pages of every segment mapped so far back to the page cache, as a flush
    /// does with their tables: what a reader of every series ever written (the silent-series
    /// check) calls once done, so that what it read once a minute does not stay counted in
    /// the process's memory — a few tens of bytes per series ever seen. A query reading them
    /// next maps them again from the page cache.
    pub fn release_segment_pages(&self) {
        for h in &self.inner.current_version().segments {
            h.segment.release_pages();
        }
    }

    /// Whether a series may have samples in `[start, end]`, judged from chunk bounds alone.
    pub fn has_data(&self, series: &SeriesHandle, start: i64, end: i64) -> bool {
        self.series_has_data(series.series(), start, end)
    }

    fn series_has_data(&self, series: &Series, start: i64, end: i64) -> bool {
        // Expired data is not there, whether or not compaction has dropped it yet.
        let start = start.max(self.retention_cutoff(series.namespace.as_str()));
        if start > end {
            return false;
        }
        // The live head first, then the version: data only moves from the head to a frozen
        // generation to a segment, so whatever a flush moves meanwhile is still found.
        series.head.overlaps(start, end)
            || self.inner.current_version().has_data(series.id, start, end)
    }

    /// The series of `namespace` matching every matcher that may have samples in
    /// `[start, end]` (by bounds), without rebuilding their labels or taking a handle on
    /// each, so that label listings over a million series stay a pass over references:
    /// those in the head by reference, and those out of it by local id in the segment that
    /// lists them.
    fn with_data(
        &self,
        namespace: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<WithData> {
        let namespace = self.open_namespace(namespace)?;
        let start = start.max(self.retention_cutoff(namespace.as_str()));
        if start > end {
            return Ok(WithData::default());
        }
        let head = &self.inner.head;
        head.with_selection(&namespace, matchers, |hot, cold| {
            let mut found = RoaringBitmap::new();
            let mut elsewhere = RoaringBitmap::new();
            for s in hot {
                if s.head.overlaps(start, end) {
                    found.insert(s.id);
                } else {
                    elsewhere.insert(s.id);
                }
            }
            // The version is taken after every head check, as in `series_has_data`: what
            // a flush moved out of the head meanwhile is in it.
            let version = self.inner.current_version();
            found.extend(
                elsewhere
                    .iter()
                    .filter(|&id| version.has_data(id, start, end)),
            );
            let cold = version.cold_locals(cold, &namespace, matchers, (start, end))?;
            Ok(WithData { hot: found, cold })
        })
    }

    /// The values of label `name` among the series of `namespace` matching every matcher
    /// that may have samples in `[start, end]`, sorted; read from the postings, so a label
    /// with a million values costs a pass over them, not a million label sets.
    pub fn label_values(
        &self,
        namespace: &str,
        matchers: &[Matcher],
        name: &str,
        start: i64,
        end: i64,
    ) -> Result<Vec<String>> {
        let series = self.with_data(namespace, matchers, start, end)?;
        let values = self.inner.head.label_values(name, &series.hot);
        series.with_cold(values, |index, locals| index.label_values(name, locals))
    }

    /// The label names among the same series as [`Querier::label_values`], sorted.
    pub fn label_names(
        &self,
        namespace: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>> {
        let series = self.with_data(namespace, matchers, start, end)?;
        let names = self.inner.head.label_names(&series.hot);
        series.with_cold(names, |index, locals| index.label_names(locals))
    }

    /// The oldest timestamp a query may see in `namespace` now (its retention).
    fn retention_cutoff(&self, namespace: &str) -> i64 {
        self.inner.opts.retention_cutoff(namespace, wall_clock_ms())
    }

    /// The metadata of a namespace's metrics, sorted by metric.
    pub fn metadata(&self, namespace: &str) -> Result<Vec<MetricMetadata>> {
        self.inner.metadata(namespace)
    }

    /// A consistent view of `series` over `[start, end]`.
    pub fn snapshot(&self, series: Vec<SeriesHandle>, start: i64, end: i64) -> Snapshot<'a> {
        self.snapshot_as(series, start, end, false)
    }

    /// A view of `series` over `[start, end]` in which each series shows only its newest
    /// sample there (the one [`Snapshot::for_each`] on [`Querier::snapshot`] would list
    /// last): what an instant selector needs at one step. Most series then cost no
    /// decoding: their newest sample is the head's last one, and no older layer has a chunk
    /// after it (see [`read_newest`]).
    pub fn snapshot_newest(&self, series: Vec<SeriesHandle>, start: i64, end: i64) -> Snapshot<'a> {
        self.snapshot_as(series, start, end, true)
    }

    fn snapshot_as(
        &self,
        series: Vec<SeriesHandle>,
        start: i64,
        end: i64,
        newest: bool,
    ) -> Snapshot<'a> {
        let inner = self.inner;
        let (live, version) = {
            let _gate = inner.gate.read();
            let live: Vec<SeriesLayer> = series
                .iter()
                .map(|s| {
                    let head = &s.series().head;
                    // A series out of the head has nothing there, and never will (a write
                    // brings it back as another struct): no lock to take.
                    if s.series().detached {
                        SeriesLayer::default()
                    } else if newest {
                        head.snapshot_newest(start, end)
                    } else {
                        head.snapshot(start, end)
                    }
                })
                .collect();
            (live, inner.current_version())
        };
        Snapshot {
            inner,
            version,
            work: series.into_iter().zip(live).collect(),
            start,
            end,
            now: wall_clock_ms(),
            newest,
        }
    }
}

/// Selected series frozen in time over one range; see the module doc.
pub struct Snapshot<'a> {
    inner: &'a Inner,
    version: Arc<Version>,
    work: Vec<(SeriesHandle, SeriesLayer)>,
    start: i64,
    end: i64,
    /// The wall clock when the snapshot was taken, for retention.
    now: i64,
    /// Taken by [`Querier::snapshot_newest`]: the live layers may hold only what the newest
    /// sample needs.
    newest: bool,
}

/// Milliseconds since the epoch, now.
pub(crate) fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Snapshot<'_> {
    /// The series, in snapshot order (the order of [`Snapshot::for_each`]'s results): what a
    /// caller reading them again, or keeping some, takes back rather than clones.
    pub fn into_series(self) -> Vec<SeriesHandle> {
        self.work.into_iter().map(|(s, _)| s).collect()
    }

    /// Reads every series and maps it with `f` as soon as it is read, in snapshot order.
    /// Each worker reuses one sample buffer, so a query over thousands of series holds one
    /// series' samples per worker, not all of them. The first error stops the reading.
    /// On a snapshot from [`Querier::snapshot_newest`], `f` sees each series' newest sample
    /// in the range alone (or nothing).
    pub fn for_each<T: Send>(&self, f: SeriesFn<'_, T>) -> Result<Vec<T>> {
        self.run(&|series, live, start, buf| {
            if self.newest {
                read_newest(&self.version, series, live, start, self.end, buf)?;
            } else {
                read_one(&self.version, series, live, start, self.end, buf)?;
            }
            f(series, buf)
        })
    }

    /// Reads every series as buckets of `interval` ms over the snapshot's range and maps it
    /// with `f`, as [`Snapshot::for_each`] does with samples. A bucket comes from a
    /// segment's rollup where that segment alone holds the series' data in the bucket's
    /// interval, nothing hides part of it and the interval lies whole in the range;
    /// every other bucket is summarised from the raw samples, newest write winning, so the
    /// buckets are what summarising the series' samples would give — in the values `f`
    /// reads, which it names as `wanted` (the others may be left at zero).
    pub fn for_each_rolled<T: Send>(
        &self,
        interval: i64,
        wanted: Wanted,
        f: BucketsFn<'_, T>,
    ) -> Result<Vec<T>> {
        self.check_rolled(interval)?;
        self.run(&|series, live, start, buf| {
            let (buckets, cost) =
                self.read_buckets((interval, wanted), series, live, start, buf)?;
            f(series, &buckets, cost)
        })
    }

    /// Reads every series as buckets of `interval`, as [`Snapshot::for_each_rolled`] does,
    /// and folds them with `f` into one accumulator (from `init`) per share of the series
    /// (a few per worker). The shares are runs of the snapshot's series in order and the
    /// accumulators come back in that order, so a fold whose partial results combine in
    /// order (`max`, `min`, `count`) gives what folding every series in snapshot order
    /// gives, without a row per series.
    pub fn fold_rolled<A: Send>(
        &self,
        (interval, wanted): (i64, Wanted),
        init: &(dyn Fn() -> A + Sync),
        f: FoldFn<'_, A>,
    ) -> Result<Vec<A>> {
        self.check_rolled(interval)?;
        self.run_parts(init, &|acc, series, live, start, buf| {
            let (buckets, cost) =
                self.read_buckets((interval, wanted), series, live, start, buf)?;
            f(acc, series, &buckets, cost)
        })
    }

    fn check_rolled(&self, interval: i64) -> Result<()> {
        if interval <= 0 {
            return Err(Error::InvalidArgument(format!(
                "rollup interval {interval} ms"
            )));
        }
        if self.newest {
            return Err(Error::Internal(
                "buckets asked of a snapshot of newest samples".into(),
            ));
        }
        Ok(())
    }

    /// One series' buckets of `interval`, with at least the `wanted` values, and what
    /// reading them took.
    fn read_buckets(
        &self,
        (interval, wanted): (i64, Wanted),
        series: &SeriesHandle,
        live: &SeriesLayer,
        start: i64,
        buf: &mut Vec<Sample>,
    ) -> Result<(Vec<Bucket>, RollupCost)> {
        // The tier may be kept longer than the samples it summarises.
        let namespace = series.series().namespace.as_str();
        let kept = self.inner.opts.tier_cutoff(namespace, interval, self.now);
        let range = Range {
            start: self.start.max(kept),
            samples_from: start,
            end: self.end,
            interval,
            wanted,
        };
        let mut buckets = Vec::new();
        let damaged = |e: &Error| self.inner.rollup_damaged(e);
        let cost = read_rolled(
            &self.version,
            series,
            live,
            range,
            (buf, &mut buckets),
            &damaged,
        )?;
        Ok((buckets, cost))
    }

    /// Runs `one` over every series (see [`Snapshot::run_parts`]), one result per series
    /// in snapshot order.
    fn run<T: Send>(&self, one: ReadFn<'_, T>) -> Result<Vec<T>> {
        let parts = self.run_parts(&Vec::new, &|out: &mut Vec<T>, series, live, start, buf| {
            out.push(one(series, live, start, buf)?);
            Ok(())
        })?;
        let mut out = Vec::with_capacity(self.work.len());
        for part in parts {
            out.extend(part);
        }
        Ok(out)
    }

    /// Runs `one` over every series with an accumulator per share of the series, the first
    /// time its namespace's retention lets it read (`one` reads nothing when that is past
    /// the end) and a reused buffer, on the shared query pool: the series split into runs
    /// in snapshot order, [`RUNS_PER_WORKER`] per worker (of at least half
    /// [`PARALLEL_MIN_SERIES`] series); the accumulators in that order.
    fn run_parts<A: Send>(
        &self,
        init: &(dyn Fn() -> A + Sync),
        one: PartFn<'_, A>,
    ) -> Result<Vec<A>> {
        let run = |part: &[(SeriesHandle, SeriesLayer)]| -> Result<A> {
            let mut buf = Vec::new();
            let mut acc = init();
            for (series, live) in part {
                buf.clear();
                // Expired samples are hidden at once, before compaction drops them.
                let namespace = series.series().namespace.as_str();
                let start = self
                    .start
                    .max(self.inner.opts.retention_cutoff(namespace, self.now));
                one(&mut acc, series, live, start, &mut buf)?;
            }
            Ok(acc)
        };
        // A panic in a worker (a bug, never bad input) answers this query with an internal
        // error instead of taking the server down with it.
        let guarded = |part: &[(SeriesHandle, SeriesLayer)]| -> Result<A> {
            std::panic::catch_unwind(AssertUnwindSafe(|| run(part))).unwrap_or_else(|panic| {
                Err(Error::Internal(format!(
                    "a query worker panicked: {}",
                    panic_message(&panic)
                )))
            })
        };
        let pool = &self.inner.query_pool;
        let workers = pool.current_num_threads();
        if workers < 2 || self.work.len() < PARALLEL_MIN_SERIES {
            return Ok(vec![guarded(&self.work)?]);
        }
        // A few runs per worker, so that a worker slowed by a busier share of the series
        // (more segments, more raw reads) or by the machine hands the rest to the others.
        let per = self
            .work
            .len()
            .div_ceil(workers * RUNS_PER_WORKER)
            .max(PARALLEL_MIN_SERIES / 2);
        let results: Vec<Result<A>> =
            pool.install(|| self.work.par_chunks(per).map(guarded).collect());
        results.into_iter().collect()
    }
}

/// One series' read for [`Snapshot::run_parts`]: the share's accumulator, the series'
/// handle, its live head data, the first time it may read, and a buffer to reuse.
type PartFn<'a, A> =
    &'a (dyn Fn(&mut A, &SeriesHandle, &SeriesLayer, i64, &mut Vec<Sample>) -> Result<()> + Sync);

/// One series' read for [`Snapshot::run`]: its handle, its live head data, the first time
/// it may read, and a buffer to reuse.
type ReadFn<'a, T> =
    &'a (dyn Fn(&SeriesHandle, &SeriesLayer, i64, &mut Vec<Sample>) -> Result<T> + Sync);

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

/// Reads one series into `out`, oldest first: segments by sequence, frozen generations,
/// then the live head, each without what a deletion hides in it; the newest write wins per
/// timestamp.
fn read_one(
    version: &Version,
    handle: &SeriesHandle,
    live: &SeriesLayer,
    start: i64,
    end: i64,
    out: &mut Vec<Sample>,
) -> Result<()> {
    if start > end {
        return Ok(());
    }
    for segment in &version.segments {
        read_segment(version, segment, handle, start, end, out)?;
    }
    for frozen in &version.frozen {
        read_frozen(version, frozen, handle, start, end, out)?;
    }
    decode_layer(handle, live, start, end, out)?;
    dedupe_newest_wins(out, 0);
    Ok(())
}

/// The last sample [`read_one`] would give, alone, in `out`. The layers are read the other
/// way round, from the newest write to the oldest: since a newer layer wins a tie, an older
/// one only matters for samples after the best found so far, and a layer without a chunk
/// in that span (found by bounds) is not decoded. For a series written live, one of the
/// samples the open chunk keeps at hand is the answer and nothing is decoded at all.
fn read_newest(
    version: &Version,
    handle: &SeriesHandle,
    live: &SeriesLayer,
    start: i64,
    end: i64,
    out: &mut Vec<Sample>,
) -> Result<()> {
    out.clear();
    let mut best: Option<Sample> = None;
    // The newest sample `out` holds (one layer's, deletions hidden), taken as the best.
    let keep = |out: &mut Vec<Sample>, best: &mut Option<Sample>| {
        dedupe_newest_wins(out, 0);
        if let Some(&s) = out.last() {
            *best = Some(s);
        }
        out.clear();
    };
    // Where an older layer starts to matter; `None` when nothing can come after the best.
    let after = |best: &Option<Sample>| match best {
        Some(b) => b.t.checked_add(1).map(|t| t.max(start)),
        None => Some(start),
    };
    if start <= end {
        decode_layer(handle, live, start, end, out)?;
        keep(out, &mut best);
    }
    for frozen in version.frozen.iter().rev() {
        let Some(from) = after(&best).filter(|&from| from <= end) else {
            break;
        };
        read_frozen(version, frozen, handle, from, end, out)?;
        keep(out, &mut best);
    }
    for segment in version.segments.iter().rev() {
        let Some(from) = after(&best).filter(|&from| from <= end) else {
            break;
        };
        read_segment(version, segment, handle, from, end, out)?;
        keep(out, &mut best);
    }
    out.extend(best);
    Ok(())
}

/// Appends a segment's samples of a series in `[start, end]` to `out`, without what a
/// deletion hides in it.
fn read_segment(
    version: &Version,
    segment: &super::version::SegmentHandle,
    handle: &SeriesHandle,
    start: i64,
    end: i64,
    out: &mut Vec<Sample>,
) -> Result<()> {
    let (id, from) = (handle.series().id, out.len());
    for c in segment.chunks_in(id, start, end) {
        segment.segment.read_chunk(&c, start, end, out)?;
    }
    hide_deleted(&version.deletions, segment.segment.seq, id, out, from);
    Ok(())
}

/// The same for a frozen generation of the head.
fn read_frozen(
    version: &Version,
    frozen: &super::version::FrozenGen,
    handle: &SeriesHandle,
    start: i64,
    end: i64,
    out: &mut Vec<Sample>,
) -> Result<()> {
    let (id, from) = (handle.series().id, out.len());
    if let Some(layer) = frozen.series.get(&id) {
        decode_layer(handle, layer, start, end, out)?;
        hide_deleted(&version.deletions, frozen.seq, id, out, from);
    }
    Ok(())
}

/// Appends an in-memory layer's samples in `[start, end]` to `out` (see
/// [`SeriesLayer::decode_into`]); a chunk that does not decode is reported as the head's.
fn decode_layer(
    handle: &SeriesHandle,
    layer: &SeriesLayer,
    start: i64,
    end: i64,
    out: &mut Vec<Sample>,
) -> Result<()> {
    layer
        .decode_into(start, end, out)
        .map_err(|e| Error::Corrupt {
            file: "head".into(),
            offset: e.offset,
            reason: format!("in-memory chunk of {}: {}", handle.labels(), e.reason),
        })
}

/// What [`read_rolled`] reads: buckets of `interval` over `[start, end]` with at least the
/// `wanted` values, and raw samples from `samples_from` on (later than `start` when the
/// tier is kept longer than samples).
#[derive(Clone, Copy)]
struct Range {
    start: i64,
    samples_from: i64,
    end: i64,
    interval: i64,
    wanted: Wanted,
}

/// Reads one series as buckets of `interval` over `[start, end]` into `out` (sorted by
/// start): from segments' rollups where one segment alone holds the series' data in a
/// bucket that lies whole in the range and that no deletion reaches, the rest summarised
/// from raw samples read gap by gap (`buf`). See [`Snapshot::for_each_rolled`].
fn read_rolled(
    version: &Version,
    handle: &SeriesHandle,
    live: &SeriesLayer,
    Range {
        start,
        samples_from,
        end,
        interval,
        wanted,
    }: Range,
    (buf, out): (&mut Vec<Sample>, &mut Vec<Bucket>),
    damaged: &dyn Fn(&Error),
) -> Result<RollupCost> {
    let mut cost = RollupCost::default();
    if start > end {
        return Ok(cost);
    }
    let series = handle.series();
    let id = series.id;
    let Stored {
        buckets: stored,
        raw,
    } = stored_buckets(version, id, live, (start, end, interval, wanted), damaged);
    cost.stored = stored.len();
    // The gaps between stored buckets, summarised from the raw samples.
    let mut cursor = Some(start);
    let mut gaps = Vec::new();
    for b in &stored {
        if let Some(from) = cursor.filter(|&c| b.start > c) {
            gaps.push((from, b.start - 1));
        }
        // None: the bucket reaches the end of time.
        cursor = b.start.checked_add(interval);
    }
    if let Some(from) = cursor.filter(|&c| c <= end) {
        gaps.push((from, end));
    }
    // The stored buckets go first, moved rather than copied when `out` is empty (a long
    // panel over compacted days has only them); buckets summarised from the gaps follow
    // and are put in place by one sort, as they lie between stored ones.
    let first = out.len();
    if out.is_empty() {
        *out = stored;
    } else {
        out.extend(stored);
    }
    let stored_end = out.len();
    for (from, to) in gaps {
        // A gap where only segments with this tier hold data, and they have no bucket in
        // it, has no sample: nothing to read.
        if let Some(raw) = &raw {
            let i = raw.partition_point(|r| r.1 < from);
            if raw.get(i).is_none_or(|r| r.0 > to) {
                continue;
            }
        }
        buf.clear();
        // Samples older than their retention are not there, whatever a tier keeps.
        read_one(version, handle, live, from.max(samples_from), to, buf)?;
        cost.raw_samples += buf.len();
        crate::codec::rollup::summarize(buf, interval, out);
    }
    if out.len() > stored_end
        && let Some(series_buckets) = out.get_mut(first..)
    {
        series_buckets.sort_by_key(|b| b.start);
    }
    Ok(cost)
}

/// What segments' rollups give of one series (see [`stored_buckets`]).
struct Stored {
    /// The buckets usable as they are, sorted by start.
    buckets: Vec<Bucket>,
    /// Where raw samples may lie besides them, disjoint and sorted (`None`: anywhere): data
    /// of sources without this tier, and the intervals of buckets that could not be used.
    raw: Option<Vec<(i64, i64)>>,
}

/// The buckets of series `id` in `[start, end]` that segments' rollups can give as they
/// are (see [`read_rolled`]), and where the rest of its samples may be. A damaged block is
/// told to `damaged` and its segment's samples are read instead.
fn stored_buckets(
    version: &Version,
    id: crate::head::SeriesRef,
    live: &SeriesLayer,
    (start, end, interval, wanted): (i64, i64, i64, Wanted),
    damaged: &dyn Fn(&Error),
) -> Stored {
    // Where each source holds data of the series: (first, last, source), a segment's index
    // or `usize::MAX` for in-memory data (which has no rollups).
    let mut spans: Vec<(i64, i64, usize)> = Vec::new();
    // The segments with this tier that hold the series, by index, with the series.
    let mut with_rollups = Vec::new();
    for (i, h) in version.segments.iter().enumerate() {
        // A segment may keep a series' rollups after its samples have expired: judged by
        // the segment's bounds, which cover both.
        let seg = &h.segment;
        if seg.max_t < start || seg.min_t > end {
            continue;
        }
        let Some(series) = h.series_of(id) else {
            continue;
        };
        spans.extend(
            series
                .chunks
                .overlapping(start, end)
                .map(|c| (c.min_t, c.max_t, i)),
        );
        if seg.tiers.contains(&interval) {
            with_rollups.push((i, series));
        }
    }
    if with_rollups.is_empty() {
        return Stored {
            buckets: Vec::new(),
            raw: None,
        };
    }
    let memory = version
        .frozen
        .iter()
        .filter_map(|g| g.series.get(&id))
        .chain(std::iter::once(live));
    for layer in memory {
        spans.extend(layer.chunks.iter().map(|c| (c.min_t, c.max_t, usize::MAX)));
        spans.extend(layer.ooo.iter().map(|s| (s.t, s.t, usize::MAX)));
    }
    spans.sort_unstable();
    // The latest end among the spans up to each one, to find the spans meeting a time
    // range by binary search (a year of day segments is hundreds of spans per series).
    let reach: Vec<i64> = spans
        .iter()
        .scan(i64::MIN, |m, s| {
            *m = (*m).max(s.1);
            Some(*m)
        })
        .collect();
    let tiered = |source: usize| with_rollups.binary_search_by_key(&source, |w| w.0).is_ok();
    let mut raw: Vec<(i64, i64)> = spans
        .iter()
        .filter(|s| !tiered(s.2))
        .map(|s| (s.0, s.1))
        .collect();
    // The blocks lie far apart (one per segment): touched all at once first, their memory
    // reads overlap instead of each waiting on the last.
    std::hint::black_box(with_rollups.iter().fold(0u8, |acc, &(i, series)| {
        let touched = version
            .segments
            .get(i)
            .map(|h| h.segment.touch_rollup(series));
        acc.wrapping_add(touched.unwrap_or(0))
    }));
    // Each segment's buckets are decoded straight into `out` and those that cannot be
    // used are dropped in place (most are used: a bucket is 80 bytes, copied millions of
    // times by a month-long panel).
    let mut out: Vec<Bucket> = Vec::new();
    for &(i, series) in &with_rollups {
        let Some(h) = version.segments.get(i) else {
            continue;
        };
        let base = out.len();
        let usable = h
            .segment
            .read_rollup_from(series, interval, wanted, start, &mut out)
            .unwrap_or_else(|e| {
                out.truncate(base);
                damaged(&e);
                false
            });
        if !usable {
            // No buckets: wherever its chunks are, read them.
            raw.extend(h.chunks_in(id, start, end).map(|c| (c.min_t, c.max_t)));
            continue;
        }
        let hidden = |lo: i64, hi: i64| {
            version
                .deletions
                .iter()
                .any(|d| d.hides_any(h.segment.seq, id, lo, hi))
        };
        let (Some(first), Some(last)) = (out.get(base), out.last().filter(|_| out.len() > base))
        else {
            continue;
        };
        let (lo, hi) = (first.start, last.start.saturating_add(interval - 1));
        // Where the other sources hold data within these buckets' time, merged into
        // disjoint runs in time order.
        let from = reach.partition_point(|&r| r < lo);
        let to = spans.partition_point(|s| s.0 <= hi);
        let mut others: Vec<(i64, i64)> = Vec::new();
        for &(lo, hi, source) in spans.get(from..to).unwrap_or_default() {
            if source == i {
                continue;
            }
            match others.last_mut() {
                Some(run) if lo <= run.1 => run.1 = run.1.max(hi),
                _ => others.push((lo, hi)),
            }
        }
        // The buckets cut by the range (at most one at each end): their samples inside
        // the range are read raw.
        let bounds = |b: &Bucket| (b.start, b.start.saturating_add(interval - 1));
        let ours = out.get(base..).unwrap_or_default();
        let (inside_from, inside_to) = (
            base + ours.partition_point(|b| b.start < start),
            base + ours.partition_point(|b| bounds(b).1 <= end),
        );
        let cut = |b: &Bucket| {
            let (lo, hi) = bounds(b);
            (lo.max(start), hi.min(end))
        };
        raw.extend(out.get(inside_to..).unwrap_or_default().iter().map(cut));
        out.truncate(inside_to);
        raw.extend(out.drain(base..inside_from.min(inside_to)).map(|b| cut(&b)));
        // Most often no other source holds data in these buckets' time and no deletion
        // reaches them: every bucket left is kept as it is, without looking at each.
        if others.is_empty() && !hidden(lo, hi) {
            continue;
        }
        let mut run = 0usize;
        let mut kept = base;
        for j in base..out.len() {
            let Some((lo, hi)) = out.get(j).map(bounds) else {
                break;
            };
            while others.get(run).is_some_and(|r| r.1 < lo) {
                run += 1;
            }
            let alone = others.get(run).is_none_or(|r| r.0 > hi);
            if alone && !hidden(lo, hi) {
                if kept != j {
                    out.swap(kept, j);
                }
                kept += 1;
            } else {
                raw.push((lo, hi));
            }
        }
        out.truncate(kept);
    }
    out.sort_unstable_by_key(|b| b.start);
    // Two segments keeping the same interval without its samples cannot both be right:
    // neither is used (compaction never leaves two).
    for start in crate::codec::rollup::drop_repeated(&mut out) {
        raw.push((start, start.saturating_add(interval - 1)));
    }
    raw.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(raw.len());
    for (lo, hi) in raw {
        match merged.last_mut() {
            Some(m) if lo <= m.1.saturating_add(1) => m.1 = m.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    Stored {
        buckets: out,
        raw: Some(merged),
    }
}
