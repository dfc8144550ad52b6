//! Compaction: the segments of one time window merged into one.
//!
//! Every flush writes one segment per 2-hour partition, and a late upload into an old
//! partition adds another beside the first, so a year is thousands of files and a query over
//! a month opens hundreds. Compaction reads all the live segments whose data falls in one
//! window, merges each series' samples with the newest write winning (later flush sequences
//! win, as queries already answer), and writes one segment for the window. Windows grow as
//! data ages: a finished day is merged into a segment, a finished 8 days and then 32 days
//! into one again ([`plan`] says which segments go together, and how late data beside a
//! merged window is kept from rewriting it for a handful of samples).
//!
//! Crash safety: the new segment is written and synced first; then one atomic manifest
//! replacement lists it in place of the old ones and names those `retired`; only then are the
//! old files deleted. A crash before the manifest leaves the old state (the new file is an
//! unpublished leftover, removed at open); a crash after it leaves retired files, which the
//! next open deletes because the manifest proves them garbage. Readers holding the old
//! version keep their mapped files until they finish.
//!
//! Retention: a segment whose every namespace's retention has passed its newest sample is
//! retired whole; merged windows drop the samples their namespace's retention has passed
//! (from the start of that day when there are rollup tiers), and a segment of a larger
//! window is rewritten without them once they are a quarter of its span. Rollup tiers may
//! be kept longer than samples (`Options::rollup_retention`): a merged window keeps the
//! buckets of the samples it drops, and a settled segment whose samples have all expired is
//! rewritten once with its rollups alone. Queries hide expired samples at once, whether or
//! not compaction has run.
//!
//! Deletions: merged windows leave out what a tombstone hides (a window with one segment is
//! rewritten when a deletion reaches it), and a tombstone that no remaining segment is
//! reached by leaves the manifest in the same replacement.
//!
//! Throttled: it merges at most `Options::compaction_samples_per_sec` (sleeping when ahead),
//! so that it leaves the cores and the disk to writes and queries.
//!
//! Runs under the flush lock (one flush or compaction at a time) and only when no flushed-but-
//! unpublished generation is pending, so a generation's data can never be ordered before the
//! compacted segment that it is newer than. Flushes wait meanwhile (writes do not): a month
//! of the province at ×1 is 1.9 G samples, about six minutes at the default budget, while
//! the head takes in about 0.25 M samples.

use std::sync::Arc;

use roaring::RoaringBitmap;

mod plan;

use super::Engine;
use super::delete::{Deletion, hide_deleted};
use super::version::{SegmentHandle, Version};
use crate::Result;
use crate::codec::rollup::{Bucket, Wanted};
use crate::error::IoContext;
use crate::fs::layout;
use crate::head::dedupe_newest_wins;
use crate::model::Sample;
use crate::segment::{SegmentBuilder, SegmentFile};

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Windows merged.
    pub windows: usize,
    /// Segments replaced.
    pub segments_in: usize,
    /// Segments written.
    pub segments_out: usize,
    /// Samples written (after merging rewrites of the same timestamp).
    pub samples: u64,
    /// Bytes of the replaced segments.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Segments dropped whole because the retention of every namespace in them had passed.
    pub expired: usize,
    /// Bytes of those segments.
    pub bytes_expired: u64,
    /// Deletions applied everywhere they reached, whose tombstones are dropped.
    pub deletions_applied: usize,
    /// Why nothing was done, when nothing could be.
    pub skipped: Option<String>,
}

impl Engine {
    /// Merges, in every time window, the live segments of that window into one (see the
    /// module doc). A window that already has a single compacted segment is left alone; a
    /// lone flushed one is rewritten once, in the cold encoding.
    pub fn compact(&self) -> Result<CompactReport> {
        self.compact_before(i64::MAX)
    }

    /// The time window compaction merges into, ms.
    pub fn compaction_window_ms(&self) -> i64 {
        self.inner.opts.compaction_window_ms.max(1)
    }

    /// Like [`Engine::compact`], for the windows that end at or before `end` (ms) only: the
    /// background compaction leaves the current window alone, which every flush still adds
    /// to, so that a day is rewritten once, not after every flush.
    pub fn compact_before(&self, end: i64) -> Result<CompactReport> {
        let _span = tracing::info_span!("compact", before = end).entered();
        let inner = &*self.inner;
        inner.check_open()?;
        let mut state = inner.flush.lock();
        let mut report = CompactReport::default();
        let version = inner.current_version();
        if !version.frozen.is_empty() {
            report.skipped = Some("a flushed generation is not yet published; flush first".into());
            return Ok(report);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let cutoffs = Cutoffs {
            opts: &inner.opts,
            now,
        };
        // Segments whose every namespace's retention, rollups' included, has passed them
        // go whole.
        let (expired, live): (Vec<_>, Vec<_>) = version.segments.iter().cloned().partition(|h| {
            h.segment
                .all_series()
                .all(|s| cutoffs.kept(s.namespace.as_str()) > h.segment.max_t)
        });
        report.expired = expired.len();
        report.bytes_expired = expired.iter().map(|h| h.segment.file_bytes()).sum();
        let deletions = &version.deletions;
        let deleted_in = |m: &Arc<SegmentHandle>| deletions.iter().any(|d| d.reaches_segment(m));
        // A lone segment is rewritten only to apply a deletion to it, or once, to give a
        // flushed one the cold encoding (compressed chunks), or one written before the
        // current format (older files keep a label index built in memory), or to drop
        // samples retention has passed.
        let facts: Vec<plan::Facts> = live
            .iter()
            .map(|m| plan::Facts {
                min_t: m.segment.min_t,
                max_t: m.segment.max_t,
                seq: m.segment.seq,
                bytes: m.segment.file_bytes(),
                settled: m.segment.cold
                    && m.segment.format_version() == crate::segment::VERSION
                    && !deleted_in(m)
                    && !cutoffs.samples_to_drop(&m.segment),
            })
            .collect();
        let widths: Vec<i64> = std::iter::once(inner.opts.compaction_window_ms.max(1))
            .chain(inner.opts.compaction_aged_windows_ms.iter().copied())
            .collect();
        let mut written: Vec<(Vec<Arc<SegmentHandle>>, SegmentHandle)> = Vec::new();
        // Until the manifest lists them, the new files are nobody's: on failure they go.
        let abandon = |written: &[(Vec<Arc<SegmentHandle>>, SegmentHandle)]| {
            for (_, h) in written {
                let _ = inner.opts.vfs.remove(h.segment.path());
            }
        };
        for plan::Merge { start, members } in plan::plan(&facts, &widths, end) {
            let members: Vec<Arc<SegmentHandle>> = members
                .iter()
                .filter_map(|&i| live.get(i).cloned())
                .collect();
            let seq = state.manifest.next_seq;
            state.manifest.next_seq += 1;
            match merge(
                inner,
                &members,
                seq,
                start,
                &cutoffs,
                deletions,
                &mut report,
            ) {
                Ok(handle) => {
                    report.windows += 1;
                    report.segments_in += members.len();
                    report.bytes_in += members.iter().map(|m| m.segment.file_bytes()).sum::<u64>();
                    written.push((members, handle));
                }
                Err(e) => {
                    abandon(&written);
                    return Err(e);
                }
            }
        }
        let replaced: Vec<String> = written
            .iter()
            .flat_map(|(members, _)| members.iter().map(|m| m.name.clone()))
            .chain(expired.iter().map(|h| h.name.clone()))
            .collect();
        // A deletion stays in force while a segment it reaches stays; the new ones are all
        // newer than every deletion.
        let kept: Vec<&Arc<SegmentHandle>> = version
            .segments
            .iter()
            .filter(|s| !replaced.contains(&s.name))
            .collect();
        let (in_force, applied): (Vec<_>, Vec<_>) = deletions
            .iter()
            .cloned()
            .partition(|d| kept.iter().any(|h| d.reaches_segment(h)));
        report.deletions_applied = applied.len();
        if written.is_empty() && expired.is_empty() && applied.is_empty() {
            return Ok(report);
        }
        let seg_dir = inner.dir.join(layout::SEGMENT_DIR);
        if let Err(e) = inner.opts.vfs.sync_dir(&seg_dir).at(&seg_dir) {
            abandon(&written);
            return Err(e);
        }

        let mut manifest = state.manifest.clone();
        manifest
            .tombstones
            .retain(|t| in_force.iter().any(|d| d.tombstone == *t));
        manifest.segments.retain(|s| !replaced.contains(s));
        manifest
            .segments
            .extend(written.iter().map(|(_, h)| h.name.clone()));
        manifest.retired.extend(replaced.iter().cloned());
        // On failure the store may or may not hold the new manifest (a failed rename or
        // directory sync): the new files may be live, so they stay; the next open sorts it
        // out (an unlisted one is an unpublished leftover, a retired one is deleted).
        manifest.store(&*inner.opts.vfs, &inner.dir)?;
        state.manifest = manifest;
        report.segments_out = written.len();
        {
            let mut v = inner.version.write();
            let mut segments: Vec<Arc<SegmentHandle>> = v
                .segments
                .iter()
                .filter(|s| !replaced.contains(&s.name))
                .cloned()
                .collect();
            segments.extend(written.into_iter().map(|(_, h)| Arc::new(h)));
            segments.sort_by(|a, b| (a.segment.seq, &a.name).cmp(&(b.segment.seq, &b.name)));
            *v = Arc::new(Version {
                segments,
                frozen: v.frozen.clone(),
                deletions: in_force,
            });
        }
        // Series out of the head whose last samples expired or were merged away.
        let forgotten = inner
            .head
            .forget_absent(&inner.current_version().refs(), &*version);
        if forgotten > 0 {
            tracing::info!(series = forgotten, "series with no samples left forgotten");
        }
        // The manifest proves them garbage; a failure here leaves them for the next open.
        let mut removed = Vec::new();
        for name in &state.manifest.retired {
            let path = layout::segment_path(&inner.dir, name);
            match inner.opts.vfs.remove(&path) {
                Ok(()) => removed.push(name.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => removed.push(name.clone()),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "could not remove a compacted segment; the next open will")
                }
            }
        }
        if !removed.is_empty() {
            let mut manifest = state.manifest.clone();
            manifest.retired.retain(|n| !removed.contains(n));
            if let Err(e) = manifest.store(&*inner.opts.vfs, &inner.dir) {
                tracing::warn!(error = %e, "could not record the removal of compacted segments; the next open will");
            } else {
                state.manifest = manifest;
            }
        }
        if report.segments_out > 0 {
            inner
                .compactions
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(report)
    }
}

/// Writes the merge of `members` (oldest first) as segment `seq` of the window starting at
/// `start`, one series at a time, and opens it.
fn merge(
    inner: &super::Inner,
    members: &[Arc<SegmentHandle>],
    seq: u64,
    start: i64,
    cutoffs: &Cutoffs<'_>,
    deletions: &[Arc<Deletion>],
    report: &mut CompactReport,
) -> Result<SegmentHandle> {
    let mut ids: RoaringBitmap = RoaringBitmap::new();
    for m in members {
        ids |= &m.refs;
    }
    let tiers = &inner.opts.rollup_tiers_ms;
    let name = layout::segment_name(seq, start);
    let path = layout::segment_path(&inner.dir, &name);
    let vfs = &*inner.opts.vfs;
    let mut file = SegmentFile::create(vfs, &path, SegmentBuilder::cold(seq).with_rollups(tiers))?;
    match merge_series(inner, members, &ids, cutoffs, deletions, &mut file, report) {
        Ok(refs) => {
            report.bytes_out += file.finish(vfs)?;
            SegmentHandle::written(inner, name, refs)
        }
        Err(e) => {
            file.abandon(vfs);
            Err(e)
        }
    }
}

/// Merges series `ids` of `members` into `file`; the series written.
fn merge_series(
    inner: &super::Inner,
    members: &[Arc<SegmentHandle>],
    ids: &RoaringBitmap,
    cutoffs: &Cutoffs<'_>,
    deletions: &[Arc<Deletion>],
    file: &mut SegmentFile,
    report: &mut CompactReport,
) -> Result<Vec<crate::head::SeriesRef>> {
    let tiers = &inner.opts.rollup_tiers_ms;
    let mut refs = Vec::new();
    let mut samples: Vec<Sample> = Vec::new();
    let throttle = Throttle::new(inner.opts.compaction_samples_per_sec);
    let mut merged = 0u64;
    for id in ids {
        throttle.pace(merged);
        samples.clear();
        for m in members {
            let from = samples.len();
            for c in m.chunks_in(id, i64::MIN, i64::MAX) {
                m.segment.read_chunk(&c, i64::MIN, i64::MAX, &mut samples)?;
            }
            // What a deletion hid is left out here for good.
            hide_deleted(deletions, m.segment.seq, id, &mut samples, from);
        }
        // Members are in flush order, so a later write of a timestamp comes later here.
        dedupe_newest_wins(&mut samples, 0);
        // The labels as a member holds them (the series may have left the head).
        let Some((namespace, labels)) = inner.head.identity(id).or_else(|| {
            use crate::head::ColdLabels;
            super::version::SegmentLabels(members).cold_labels(id)
        }) else {
            continue;
        };
        let ns = namespace.as_str();
        // The buckets of every tier: from the merged samples where there are any (before
        // retention trims them), else as the members kept them, minus what deletions and
        // the tier's own retention have passed.
        let buckets: Vec<Vec<Bucket>> = tiers
            .iter()
            .map(|&tier| {
                let mut out = Vec::new();
                crate::codec::rollup::summarize(&samples, tier, &mut out);
                let keep = cutoffs.opts.tier_cutoff(ns, tier, cutoffs.now);
                // Members hold buckets without samples only where a tier outlives them.
                if keep < cutoffs.raw_keep_from(ns) {
                    carry_buckets(members, id, tier, &samples, deletions, &mut out)?;
                }
                out.retain(|b| b.start.saturating_add(tier) > keep);
                Ok(out)
            })
            .collect::<Result<_>>()?;
        // What the namespace's retention has passed is dropped here for good — from the
        // start of its day, so that no bucket of any tier loses part of its samples.
        let keep_from = cutoffs.raw_keep_from(ns);
        let expired = samples.partition_point(|s| s.t < keep_from);
        samples.drain(..expired);
        if samples.is_empty() && buckets.iter().all(Vec::is_empty) {
            continue;
        }
        file.add_with_rollups(&namespace, &labels, &samples, &buckets)?;
        report.samples += samples.len() as u64;
        merged += samples.len() as u64;
        refs.push(id);
    }
    Ok(refs)
}

/// Adds to `out` (the buckets of the merged `samples`, sorted) the buckets of tier `tier`
/// that members kept for series `id` where no merged sample lies — those of samples that
/// retention has already dropped — unless a deletion reaches them, keeping `out` sorted.
fn carry_buckets(
    members: &[Arc<SegmentHandle>],
    id: crate::head::SeriesRef,
    tier: i64,
    samples: &[Sample],
    deletions: &[Arc<Deletion>],
    out: &mut Vec<Bucket>,
) -> Result<()> {
    let before = out.len();
    let mut kept = Vec::new();
    for m in members {
        let Some(series) = m.series_of(id) else {
            continue;
        };
        kept.clear();
        m.segment
            .read_rollup(series, tier, Wanted::ALL, &mut kept)?;
        for b in &kept {
            let end = b.start.saturating_add(tier - 1);
            let from = samples.partition_point(|s| s.t < b.start);
            let has_samples = samples.get(from).is_some_and(|s| s.t <= end);
            let deleted = deletions
                .iter()
                .any(|d| d.hides_any(m.segment.seq, id, b.start, end));
            if !has_samples && !deleted {
                out.push(*b);
            }
        }
    }
    if out.len() > before {
        out.sort_by_key(|b| b.start);
        // Two members keeping the same interval cannot be merged without their samples:
        // neither is kept (it never happens: samples older than the retention are refused,
        // so an expired interval has one segment).
        crate::codec::rollup::drop_repeated(out);
    }
    Ok(())
}

/// The retention cutoffs a compaction applies, at one wall-clock time.
struct Cutoffs<'a> {
    opts: &'a crate::options::Options,
    now: i64,
}

impl Cutoffs<'_> {
    /// The oldest time anything of `namespace` is kept.
    fn kept(&self, namespace: &str) -> i64 {
        self.opts.kept_cutoff(namespace, self.now)
    }

    /// The oldest sample of `namespace` a merged segment keeps: the retention's cutoff, or
    /// with rollup tiers the start of its day (every tier divides a day, so no bucket of
    /// any tier is left with part of its samples; queries hide the rest of that day's
    /// expired samples).
    fn raw_keep_from(&self, namespace: &str) -> i64 {
        let cutoff = self.opts.retention_cutoff(namespace, self.now);
        if self.opts.rollup_tiers_ms.is_empty() {
            cutoff
        } else {
            cutoff.div_euclid(DAY_MS).saturating_mul(DAY_MS)
        }
    }

    /// Whether a rewrite of `segment` should drop samples its namespace's retention has
    /// passed. Within one (smallest) compaction window: when a series' every sample has
    /// expired while rollup tiers keep its buckets. A segment of a larger window is
    /// trimmed once what expired reaches a quarter of its span, so that it is rewritten a
    /// few times as it ages out, not every day, and keeps expired samples on disk for at
    /// most a quarter of its span (queries hide them at once).
    fn samples_to_drop(&self, segment: &crate::segment::Segment) -> bool {
        let span = segment.max_t.saturating_sub(segment.min_t);
        if span < self.opts.compaction_window_ms {
            return !self.opts.rollup_tiers_ms.is_empty()
                && segment.all_series().any(|s| {
                    s.chunks
                        .last()
                        .is_some_and(|c| c.max_t < self.raw_keep_from(s.namespace.as_str()))
                });
        }
        let slack = span / 4;
        segment.all_series().any(|s| {
            s.chunks.get(0).is_some_and(|c| {
                c.min_t
                    < self
                        .raw_keep_from(s.namespace.as_str())
                        .saturating_sub(slack)
            })
        })
    }
}

const DAY_MS: i64 = 86_400_000;

/// Keeps a compaction under its samples-per-second budget by sleeping when it runs ahead.
struct Throttle {
    per_sec: u64,
    started: std::time::Instant,
}

impl Throttle {
    fn new(per_sec: u64) -> Self {
        Throttle {
            per_sec,
            started: std::time::Instant::now(),
        }
    }

    /// Sleeps until `done` samples are within budget since the start.
    fn pace(&self, done: u64) {
        if self.per_sec == 0 {
            return;
        }
        let due = std::time::Duration::from_secs_f64(done as f64 / self.per_sec as f64);
        if let Some(ahead) = due.checked_sub(self.started.elapsed())
            && ahead > std::time::Duration::from_millis(1)
        {
            std::thread::sleep(ahead);
        }
    }
}
