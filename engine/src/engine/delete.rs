//! Deletion by namespace, label matchers and time range, with tombstones.
//!
//! A deletion removes what was written before it, not what comes after: a department that
//! deletes a wrong upload and sends the corrected one must see the correction. So a deletion
//! first flushes the head — everything written before it is then in segments with a sequence
//! number below the manifest's next one — and records a tombstone naming that bound in the
//! same kind of atomic manifest replacement that publishes segments. Readers hide, in the
//! segments (and flushed generations) below the bound, the tombstone's samples; writes after
//! it land in newer generations and are not hidden. Durable across restarts because the
//! manifest is; applied for good by compaction, which leaves the hidden samples out of what
//! it writes and drops a tombstone once no live segment below its bound is reached by it.
//!
//! The tombstone keeps the matchers, not series references (those are not stable across
//! restarts); they are resolved against the series registry when recorded and at open.

use std::sync::Arc;

use roaring::RoaringBitmap;

use super::version::{SegmentHandle, Version};
use super::{Engine, Inner, flush};
use crate::head::{SeriesHandle, SeriesRef};
use crate::index::Matcher;
use crate::manifest::Tombstone;
use crate::model::{Namespace, Sample, echo};
use crate::{Error, Result};

/// What a deletion did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteReport {
    /// Series that had samples in the range and matched: their samples there are gone.
    pub series: u64,
    /// Segments the flush before the deletion wrote.
    pub flushed_segments: usize,
}

/// A deletion in force: its record and the series it reaches.
#[derive(Debug)]
pub(crate) struct Deletion {
    pub(crate) tombstone: Tombstone,
    pub(crate) series: RoaringBitmap,
}

impl Deletion {
    /// Resolves a recorded tombstone against the series registry and, for the series out
    /// of the head, the store's segments.
    pub(crate) fn resolve(
        head: &crate::head::Head,
        segments: &[std::sync::Arc<super::version::SegmentHandle>],
        tombstone: Tombstone,
    ) -> Result<Self> {
        let namespace = Namespace::new(&tombstone.namespace).map_err(|e| Error::Corrupt {
            file: crate::fs::layout::MANIFEST.into(),
            offset: 0,
            reason: format!("a tombstone's namespace: {e}"),
        })?;
        let matchers = tombstone
            .matchers
            .iter()
            .map(|(name, op, value)| Matcher::new(name.clone(), *op, value.clone()))
            .collect::<Result<Vec<_>>>()?;
        let version = super::version::Version {
            segments: segments.to_vec(),
            ..Default::default()
        };
        let series = head
            .select(&namespace, &matchers, |cold| {
                version.select_cold(cold, &namespace, &matchers, (i64::MIN, i64::MAX))
            })?
            .iter()
            .map(|s| s.series().id)
            .collect();
        Ok(Deletion { tombstone, series })
    }

    /// Whether it hides samples of series `id` in a layer with sequence number `seq`.
    pub(crate) fn reaches(&self, seq: u64, id: SeriesRef) -> bool {
        seq < self.tombstone.below_seq && self.series.contains(id)
    }

    /// Whether it hides anything in segment `h`, judged from bounds and references.
    pub(crate) fn reaches_segment(&self, h: &SegmentHandle) -> bool {
        let (seg, t) = (&h.segment, &self.tombstone);
        seg.seq < t.below_seq
            && seg.min_t <= t.max_t
            && seg.max_t >= t.min_t
            && !h.refs.is_disjoint(&self.series)
    }

    /// Whether it hides all of `[start, end]` of series `id` in layer `seq`.
    pub(crate) fn hides_all(&self, seq: u64, id: SeriesRef, start: i64, end: i64) -> bool {
        self.reaches(seq, id) && self.tombstone.min_t <= start && end <= self.tombstone.max_t
    }

    /// Whether it hides any of `[start, end]` of series `id` in layer `seq` (a bucket it
    /// touches summarises samples it hides).
    pub(crate) fn hides_any(&self, seq: u64, id: SeriesRef, start: i64, end: i64) -> bool {
        self.reaches(seq, id) && self.tombstone.min_t <= end && self.tombstone.max_t >= start
    }
}

/// Removes from `out[from..]` — samples of series `id` just read from layer `seq` — those a
/// deletion hides.
pub(crate) fn hide_deleted(
    deletions: &[Arc<Deletion>],
    seq: u64,
    id: SeriesRef,
    out: &mut Vec<Sample>,
    from: usize,
) {
    for d in deletions {
        if d.reaches(seq, id) {
            let hidden = d.tombstone.min_t..=d.tombstone.max_t;
            let kept: Vec<Sample> = out
                .drain(from..)
                .filter(|s| !hidden.contains(&s.t))
                .collect();
            out.extend(kept);
        }
    }
}

impl Engine {
    /// Deletes the samples in `[min_t, max_t]` (ms) of the series of `namespace` matching
    /// every matcher, as written until now: hidden from queries at once, durable, removed
    /// from disk by the next compaction of the windows they are in (see the module doc).
    /// At least one matcher must not match the empty string, so that a forgotten selector
    /// cannot delete a whole namespace.
    pub fn delete(
        &self,
        namespace: &str,
        matchers: &[Matcher],
        min_t: i64,
        max_t: i64,
    ) -> Result<DeleteReport> {
        let inner = &*self.inner;
        inner.check_open()?;
        let ns = Namespace::new(namespace).map_err(Error::InvalidArgument)?;
        if !matchers.iter().any(|m| !m.matches("")) {
            return Err(Error::InvalidArgument(
                "a deletion needs at least one matcher that does not match the empty \
                 string, such as {__name__=\"metric\"}"
                    .into(),
            ));
        }
        if min_t > max_t {
            return Err(Error::InvalidArgument(format!(
                "the deletion's start {min_t} is after its end {max_t}"
            )));
        }
        let mut state = inner.flush.lock();
        let flushed = flush::flush_locked(inner, &mut state)?;
        // The series with samples in the range, read (chunk bounds alone would count a
        // series whose samples lie around the range).
        let version = inner.current_version();
        let mut candidates: Vec<SeriesHandle> = inner.select(&ns, matchers, min_t, max_t)?;
        candidates.retain(|s| version.has_data(s.series().id, min_t, max_t));
        let found = self
            .querier()
            .snapshot(candidates, min_t, max_t)
            .for_each(&|s, samples| Ok((s.series().id, !samples.is_empty())))?;
        let series: RoaringBitmap = found
            .into_iter()
            .filter_map(|(id, any)| any.then_some(id))
            .collect();
        let report = DeleteReport {
            series: series.len(),
            flushed_segments: flushed.segments,
        };
        if series.is_empty() {
            return Ok(report);
        }
        let tombstone = Tombstone {
            below_seq: state.manifest.next_seq,
            min_t,
            max_t,
            namespace: ns.as_str().to_owned(),
            matchers: matchers
                .iter()
                .map(|m| (m.name.clone(), m.op, m.value.clone()))
                .collect(),
        };
        let mut manifest = state.manifest.clone();
        manifest.tombstones.push(tombstone.clone());
        manifest.store(&*inner.opts.vfs, &inner.dir)?;
        state.manifest = manifest;
        publish_deletion(inner, Arc::new(Deletion { tombstone, series }));
        inner.changes.record(ns.as_str(), min_t);
        tracing::info!(
            namespace = ns.as_str(),
            matchers = %echo(&format!("{matchers:?}")),
            min_t,
            max_t,
            series = report.series,
            "deleted"
        );
        Ok(report)
    }

    /// The deletions recorded and not yet applied by compaction everywhere they reach.
    pub fn tombstones(&self) -> Vec<Tombstone> {
        self.inner.flush.lock().manifest.tombstones.clone()
    }
}

fn publish_deletion(inner: &Inner, deletion: Arc<Deletion>) {
    let mut v = inner.version.write();
    let mut deletions = v.deletions.clone();
    deletions.push(deletion);
    *v = Arc::new(Version {
        segments: v.segments.clone(),
        frozen: v.frozen.clone(),
        deletions,
    });
}
