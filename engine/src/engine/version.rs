//! What readers see besides the live head: the published segments and the frozen head
//! generations a flush has cut but not yet published, swapped as a whole.

use std::collections::HashMap;
use std::sync::Arc;

use roaring::RoaringBitmap;

use super::delete::Deletion;
use crate::head::{ColdLabels, SeriesLayer, SeriesRef};
use crate::index::Matcher;
use crate::model::{Label, Labels, Namespace};
use crate::segment::{ChunkMeta, Segment, SegmentSeries};

/// Immutable: a flush or an open builds a new one and swaps the `Arc`.
#[derive(Debug, Default)]
pub(crate) struct Version {
    /// Live segments, by (seq, name): later ones hold newer writes.
    pub(crate) segments: Vec<Arc<SegmentHandle>>,
    /// Head data cut by a flush and not yet in a published segment, oldest first.
    pub(crate) frozen: Vec<Arc<FrozenGen>>,
    /// Deletions in force (see `delete.rs`), oldest first.
    pub(crate) deletions: Vec<Arc<Deletion>>,
}

/// An open segment and the engine's references for its series.
#[derive(Debug)]
pub(crate) struct SegmentHandle {
    pub(crate) name: String,
    pub(crate) segment: Segment,
    locals: Locals,
    pub(crate) refs: RoaringBitmap,
}

/// Which local id of a segment each engine reference has. Every series of every open
/// segment has one, so the common layouts cost nothing per series: a flush writes the
/// head's series in reference order, so a segment's references ascend with its local ids
/// and are often one unbroken run.
#[derive(Debug)]
enum Locals {
    /// Local id `i` is reference `first + i`.
    Run { first: SeriesRef, len: u32 },
    /// Local id `i` is reference `refs[i]`, ascending.
    Ascending(Box<[SeriesRef]>),
    /// (reference, local id), sorted by reference, and the references by local id: any
    /// other layout.
    Pairs {
        by_ref: Box<[(SeriesRef, u32)]>,
        by_local: Box<[SeriesRef]>,
    },
}

impl Locals {
    /// `locals` as (reference, local id) pairs, sorted by reference.
    fn new(locals: Vec<(SeriesRef, u32)>) -> Locals {
        let by_position = locals
            .iter()
            .enumerate()
            .all(|(i, &(_, local))| local as usize == i)
            && locals.windows(2).all(|w| matches!(w, [a, b] if a.0 < b.0));
        let first = locals.first().map_or(0, |&(id, _)| id);
        let len = locals.len() as u32;
        if !by_position {
            let mut by_local = vec![0; locals.len()];
            for &(id, local) in &locals {
                if let Some(r) = by_local.get_mut(local as usize) {
                    *r = id;
                }
            }
            Locals::Pairs {
                by_ref: locals.into(),
                by_local: by_local.into(),
            }
        } else if locals
            .last()
            .is_none_or(|&(last, _)| u64::from(last) == u64::from(first) + u64::from(len) - 1)
        {
            // Ascending and spanning exactly `len` references: a run.
            Locals::Run { first, len }
        } else {
            Locals::Ascending(locals.into_iter().map(|(id, _)| id).collect())
        }
    }

    /// The local id of reference `id`.
    fn get(&self, id: SeriesRef) -> Option<u32> {
        match self {
            Locals::Run { first, len } => id.checked_sub(*first).filter(|l| l < len),
            Locals::Ascending(refs) => find_sorted(refs, id, |&r| r).map(|i| i as u32),
            Locals::Pairs { by_ref, .. } => {
                find_sorted(by_ref, id, |&(r, _)| r).and_then(|i| by_ref.get(i).map(|&(_, l)| l))
            }
        }
    }

    /// The reference of local id `local`.
    fn reference(&self, local: u32) -> Option<SeriesRef> {
        match self {
            Locals::Run { first, len } => (local < *len).then(|| first + local),
            Locals::Ascending(refs) => refs.get(local as usize).copied(),
            Locals::Pairs { by_local, .. } => by_local.get(local as usize).copied(),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Locals::Run { .. } => 0,
            Locals::Ascending(refs) => refs.len() * 4,
            Locals::Pairs { by_ref, .. } => by_ref.len() * 12,
        }
    }
}

/// The position of `id` in `items`, sorted by `key`.
fn find_sorted<T>(items: &[T], id: SeriesRef, key: impl Fn(&T) -> SeriesRef) -> Option<usize> {
    let (first, last) = (key(items.first()?), key(items.last()?));
    if id < first || id > last {
        return None;
    }
    // A segment's references are mostly one dense run (a flush writes the head's series
    // in reference order): the place in proportion is usually the place, which saves the
    // dozen dependent reads of a binary search over every series of the segment.
    let span = u64::from(last - first).max(1);
    let guess = (u64::from(id - first) * (items.len() as u64 - 1) / span) as usize;
    match items.get(guess) {
        Some(at) if key(at) == id => Some(guess),
        _ => items.binary_search_by_key(&id, key).ok(),
    }
}

impl SegmentHandle {
    /// `segment`, opened as `name`, whose series `locals` gives as (reference, local id).
    pub(crate) fn new(name: String, segment: Segment, mut locals: Vec<(SeriesRef, u32)>) -> Self {
        locals.sort_unstable();
        let refs = locals.iter().map(|&(id, _)| id).collect();
        SegmentHandle {
            name,
            segment,
            locals: Locals::new(locals),
            refs,
        }
    }

    /// Heap bytes this open segment holds: its series table and references.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.segment.heap_bytes() + self.locals.heap_bytes() + self.refs.serialized_size()
    }

    /// A segment the engine has just written (by a flush or a compaction), opened from its
    /// file, holding `refs` in the order they were added to its builder.
    pub(crate) fn written(
        inner: &super::Inner,
        name: String,
        refs: Vec<SeriesRef>,
    ) -> crate::Result<Self> {
        use crate::error::IoContext;
        let path = crate::fs::layout::segment_path(&inner.dir, &name);
        let bytes = inner.opts.vfs.open_immutable(&path).at(&path)?;
        let segment = Segment::open(&path, bytes)?;
        let locals = refs
            .into_iter()
            .enumerate()
            .map(|(local, id)| (id, local as u32))
            .collect();
        Ok(SegmentHandle::new(name, segment, locals))
    }

    /// The chunks of series `id` that may hold samples in `[start, end]`, judged from the
    /// segment's, the series' and the chunks' bounds without decoding anything. The one
    /// skip test of every reader.
    pub(crate) fn chunks_in(
        &self,
        id: SeriesRef,
        start: i64,
        end: i64,
    ) -> impl Iterator<Item = ChunkMeta> + '_ {
        let seg = &self.segment;
        let series = if seg.max_t < start || seg.min_t > end {
            None
        } else {
            self.series_of(id)
        };
        series
            .into_iter()
            .flat_map(move |s| s.chunks.overlapping(start, end))
    }

    /// Series `id` as this segment holds it, if it does.
    pub(crate) fn series_of(&self, id: SeriesRef) -> Option<SegmentSeries<'_>> {
        self.local_of(id)
            .and_then(|local| self.segment.series(local))
    }

    /// The local id of series `id` in this segment.
    fn local_of(&self, id: SeriesRef) -> Option<u32> {
        self.locals.get(id)
    }

    /// The namespace and labels of series `id`, read from this segment's label index.
    pub(crate) fn labels_of(&self, id: SeriesRef) -> crate::Result<Option<(Namespace, Labels)>> {
        let Some(local) = self.local_of(id) else {
            return Ok(None);
        };
        let index = self.segment.label_index()?;
        let (namespace, labels) = index
            .labels(local)
            .map_err(|e| self.segment.index_error(e))?;
        let namespace = Namespace::new(namespace).map_err(|e| {
            self.segment
                .index_error(crate::DecodeError::new(0, format!("namespace: {e}")))
        })?;
        Ok(Some((namespace, owned_labels(labels))))
    }

    /// The reference of the series of `namespace` with exactly `labels`, if this segment
    /// holds it (found through its label index).
    pub(crate) fn find_labels(
        &self,
        namespace: &Namespace,
        labels: &Labels,
    ) -> crate::Result<Option<SeriesRef>> {
        let index = self.segment.label_index()?;
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        let local = index
            .find(namespace.as_str(), &pairs)
            .map_err(|e| self.segment.index_error(e))?;
        Ok(local.and_then(|l| self.locals.reference(l)))
    }

    /// The series of `namespace` among `unexamined` (series out of the head that no newer
    /// segment has shown: a series' labels are the same in every segment) this segment
    /// holds that match every matcher, by reference, with their local ids; the series it
    /// holds leave `unexamined`.
    fn select_cold(
        &self,
        unexamined: &mut RoaringBitmap,
        namespace: &Namespace,
        matchers: &[Matcher],
    ) -> crate::Result<Vec<(SeriesRef, u32)>> {
        // Usually disjoint once the newest segments were read: no bitmap is built then, and
        // a few series left are looked up one by one.
        let disjoint = if unexamined.len() <= FEW {
            !unexamined.iter().any(|id| self.refs.contains(id))
        } else {
            self.refs.is_disjoint(unexamined)
        };
        if disjoint {
            return Ok(Vec::new());
        }
        let mine = &self.refs & &*unexamined;
        *unexamined -= &mine;
        let index = self.segment.label_index()?;
        if mine.len() <= FEW {
            // A few series (sparse ones that no newer segment held): their own labels
            // against the matchers, rather than the postings of every value matched.
            let mut out = Vec::new();
            for id in &mine {
                let Some(local) = self.local_of(id) else {
                    continue;
                };
                let (ns, labels) = index
                    .labels(local)
                    .map_err(|e| self.segment.index_error(e))?;
                let value = |name: &str| {
                    labels
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map_or("", |&(_, v)| v)
                };
                if ns == namespace.as_str() && matchers.iter().all(|m| m.matches(value(&m.name))) {
                    out.push((id, local));
                }
            }
            return Ok(out);
        }
        let locals = index
            .select(namespace.as_str(), matchers)
            .map_err(|e| self.segment.index_error(e))?;
        Ok(locals
            .iter()
            .filter_map(|local| self.locals.reference(local).map(|id| (id, local)))
            .filter(|&(id, _)| mine.contains(id))
            .collect())
    }
}

/// Up to this many series out of the head in a segment are matched by their own labels
/// (a read of each series' entry) rather than through the postings.
const FEW: u64 = 32;

/// Labels read from a label index (our own checksummed file, in label order).
fn owned_labels(labels: Vec<(&str, &str)>) -> Labels {
    Labels::from_trusted(labels.into_iter().map(|(n, v)| Label::new(n, v)).collect())
}

/// The labels of series out of the head, from a list of segments (oldest first): the newest
/// that holds the series answers.
pub(crate) struct SegmentLabels<'a>(pub(crate) &'a [Arc<SegmentHandle>]);

impl ColdLabels for SegmentLabels<'_> {
    fn last_sample(&self, id: SeriesRef) -> Option<crate::model::Sample> {
        // The chunk reaching latest (of the newest segment among equals) ends with it.
        let (h, chunk) = self
            .0
            .iter()
            .filter(|h| h.refs.contains(id))
            .filter_map(|h| Some((h, h.series_of(id)?.chunks.iter().last()?)))
            .max_by_key(|(h, c)| (c.max_t, h.segment.seq))?;
        let mut samples = Vec::new();
        match h
            .segment
            .read_chunk(&chunk, chunk.max_t, chunk.max_t, &mut samples)
        {
            Ok(()) => samples.last().copied(),
            Err(e) => {
                tracing::error!(error = %e, "a series' last sample cannot be read");
                None
            }
        }
    }

    fn find_labels(
        &self,
        namespace: &Namespace,
        labels: &Labels,
        cold: &RoaringBitmap,
    ) -> Option<SeriesRef> {
        // Newest first: a series that came back soon after it left is in a recent one.
        self.0
            .iter()
            .rev()
            .find_map(|h| match h.find_labels(namespace, labels) {
                Ok(found) => found.filter(|id| cold.contains(*id)),
                Err(e) => {
                    tracing::error!(error = %e, "a segment's label index cannot be read");
                    None
                }
            })
    }

    fn cold_labels(&self, id: SeriesRef) -> Option<(Namespace, Labels)> {
        self.0
            .iter()
            .rev()
            .filter(|h| h.refs.contains(id))
            .find_map(|h| match h.labels_of(id) {
                Ok(found) => found,
                Err(e) => {
                    tracing::error!(error = %e, "a segment's label index cannot be read");
                    None
                }
            })
    }
}

impl ColdLabels for Version {
    fn find_labels(
        &self,
        namespace: &Namespace,
        labels: &Labels,
        cold: &RoaringBitmap,
    ) -> Option<SeriesRef> {
        SegmentLabels(&self.segments).find_labels(namespace, labels, cold)
    }

    fn cold_labels(&self, id: SeriesRef) -> Option<(Namespace, Labels)> {
        SegmentLabels(&self.segments).cold_labels(id)
    }

    fn last_sample(&self, id: SeriesRef) -> Option<crate::model::Sample> {
        SegmentLabels(&self.segments).last_sample(id)
    }
}

/// Head data moved out by one flush's cut.
#[derive(Debug)]
pub(crate) struct FrozenGen {
    pub(crate) seq: u64,
    /// WAL files numbered below this are covered by this and earlier generations.
    pub(crate) wal_below: u64,
    pub(crate) series: HashMap<SeriesRef, SeriesLayer>,
}

impl Version {
    /// Every reference some segment holds.
    pub(crate) fn refs(&self) -> RoaringBitmap {
        let mut all = RoaringBitmap::new();
        for h in &self.segments {
            all |= &h.refs;
        }
        all
    }

    /// The segments that may hold samples in `[start, end]`, newest first.
    fn segments_in(&self, start: i64, end: i64) -> impl Iterator<Item = &Arc<SegmentHandle>> {
        self.segments
            .iter()
            .rev()
            .filter(move |h| h.segment.max_t >= start && h.segment.min_t <= end)
    }

    /// Walks the segments overlapping `[start, end]`, newest first, handing `each` the series
    /// out of the head (`cold`) of `namespace` matching every matcher that each segment
    /// holds (reference, local id) — each series once, in the newest segment that has it
    /// (a series' labels are the same in every segment).
    fn each_cold(
        &self,
        cold: &RoaringBitmap,
        namespace: &Namespace,
        matchers: &[Matcher],
        (start, end): (i64, i64),
        mut each: impl FnMut(&Arc<SegmentHandle>, Vec<(SeriesRef, u32)>) -> crate::Result<()>,
    ) -> crate::Result<()> {
        let mut unexamined = cold.clone();
        for h in self.segments_in(start, end) {
            if unexamined.is_empty() {
                break;
            }
            let found = h.select_cold(&mut unexamined, namespace, matchers)?;
            if !found.is_empty() {
                each(h, found)?;
            }
        }
        Ok(())
    }

    /// The series out of the head (`cold`) of `namespace` matching every matcher that the
    /// segments overlapping `[start, end]` hold, each once, with its labels from the newest
    /// segment that holds it.
    pub(crate) fn select_cold(
        &self,
        cold: &RoaringBitmap,
        namespace: &Namespace,
        matchers: &[Matcher],
        range: (i64, i64),
    ) -> crate::Result<Vec<(SeriesRef, Labels)>> {
        let mut out = Vec::new();
        self.each_cold(cold, namespace, matchers, range, |h, found| {
            let names = h
                .segment
                .label_index()?
                .name_table()
                .map_err(|e| h.segment.index_error(e))?;
            for (id, local) in found {
                let (_, labels) = names.labels(local).map_err(|e| h.segment.index_error(e))?;
                out.push((id, owned_labels(labels)));
            }
            Ok(())
        })?;
        out.sort_unstable_by_key(|&(id, _)| id);
        Ok(out)
    }

    /// The references among `cold` (series out of the head) of `namespace` matching every
    /// matcher that a segment overlapping `[start, end]` holds: what [`Version::select_cold`]
    /// finds, without reading their labels.
    pub(crate) fn cold_refs(
        &self,
        cold: &RoaringBitmap,
        namespace: &Namespace,
        matchers: &[Matcher],
        range: (i64, i64),
    ) -> crate::Result<RoaringBitmap> {
        let mut out = RoaringBitmap::new();
        self.each_cold(cold, namespace, matchers, range, |_, found| {
            out.extend(found.into_iter().map(|(id, _)| id));
            Ok(())
        })?;
        Ok(out)
    }

    /// For label listings: in each segment overlapping `[start, end]`, the local ids of the
    /// series out of the head (`cold`) of `namespace` matching every matcher with samples in
    /// the range — each series once, in the newest segment that has it.
    pub(crate) fn cold_locals(
        &self,
        cold: &RoaringBitmap,
        namespace: &Namespace,
        matchers: &[Matcher],
        (start, end): (i64, i64),
    ) -> crate::Result<Vec<(Arc<SegmentHandle>, RoaringBitmap)>> {
        let mut out = Vec::new();
        self.each_cold(cold, namespace, matchers, (start, end), |h, found| {
            let locals: RoaringBitmap = found
                .into_iter()
                .filter(|&(id, _)| self.has_data(id, start, end))
                .map(|(_, local)| local)
                .collect();
            if !locals.is_empty() {
                out.push((h.clone(), locals));
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Whether series `id` may have samples in `[start, end]` outside the live head: a chunk
    /// overlaps it and no deletion hides all of the overlap.
    pub(crate) fn has_data(&self, id: SeriesRef, start: i64, end: i64) -> bool {
        let hidden = |seq: u64, min_t: i64, max_t: i64| {
            let (from, to) = (start.max(min_t), end.min(max_t));
            self.deletions
                .iter()
                .any(|d| d.hides_all(seq, id, from, to))
        };
        self.frozen.iter().any(|g| {
            g.series
                .get(&id)
                .is_some_and(|l| l.overlaps(start, end) && !hidden(g.seq, start, end))
        }) || self.segments.iter().any(|h| {
            h.chunks_in(id, start, end)
                .any(|c| !hidden(h.segment.seq, c.min_t, c.max_t))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::Bytes;
    use crate::model::{Label, Labels, Limits, Namespace, Sample};
    use crate::segment::{SegmentInput, encode_segment};

    /// A segment of `refs.len()` series, series `i` holding `i + 1` samples, registered
    /// under `refs` (local id `i` as `refs[i]`).
    fn handle(refs: &[SeriesRef]) -> SegmentHandle {
        let inputs: Vec<SegmentInput> = (0..refs.len())
            .map(|i| SegmentInput {
                namespace: Namespace::new("health").expect("namespace"),
                labels: Labels::validate(
                    vec![Label::new("__name__", "m"), Label::new("i", i.to_string())],
                    &Limits::default(),
                )
                .expect("labels"),
                samples: (0..=i as i64).map(|t| Sample::new(t, 1.0)).collect(),
            })
            .collect();
        let bytes = Bytes::owned(encode_segment(1, &inputs));
        let segment = Segment::open(std::path::Path::new("t.seg"), bytes).expect("opens");
        let locals = refs
            .iter()
            .enumerate()
            .map(|(l, &r)| (r, l as u32))
            .collect();
        SegmentHandle::new("t".into(), segment, locals)
    }

    fn samples_of(h: &SegmentHandle, id: SeriesRef) -> Option<u32> {
        h.series_of(id)
            .map(|s| s.chunks.iter().map(|c| c.samples).sum())
    }

    #[test]
    fn each_reference_finds_its_own_series_however_the_references_lie() {
        for (refs, layout) in [
            (vec![0, 1, 2, 3, 4, 5], "run"),
            (vec![10, 11, 12, 13, 14, 15], "run"),
            (vec![3, 7, 8, 9, 50, 100], "ascending"),
            (vec![3, 100, 7, 50, 8, 9], "pairs"),
            (vec![1_000_000, 2, 999, 4, 0, 5], "pairs"),
            (vec![42], "run"),
        ] {
            let h = handle(&refs);
            let got = match h.locals {
                Locals::Run { .. } => "run",
                Locals::Ascending(_) => "ascending",
                Locals::Pairs { .. } => "pairs",
            };
            assert_eq!(got, layout, "{refs:?}");
            for (local, &id) in refs.iter().enumerate() {
                assert_eq!(samples_of(&h, id), Some(local as u32 + 1), "{refs:?} {id}");
            }
            for absent in [1, 6, 9, 16, 49, 51, 101, 998, 1_000_001, u32::MAX] {
                if !refs.contains(&absent) {
                    assert_eq!(samples_of(&h, absent), None, "{refs:?} {absent}");
                }
            }
        }
    }
}
