//! What readers see besides the live head: the published segments and the frozen head
//! generations a flush has cut but not yet published, swapped as a whole.

use std::collections::HashMap;
use std::sync::Arc;

use roaring::RoaringBitmap;

use super::delete::Deletion;
use crate::head::{SeriesLayer, SeriesRef};
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
    /// (reference, local id) of each series, sorted by reference: eight bytes a series,
    /// half of what a hash map takes, for every series of every open segment.
    locals: Box<[(SeriesRef, u32)]>,
    pub(crate) refs: RoaringBitmap,
}

impl SegmentHandle {
    /// `segment`, opened as `name`, whose series `locals` gives as (reference, local id).
    pub(crate) fn new(name: String, segment: Segment, mut locals: Vec<(SeriesRef, u32)>) -> Self {
        locals.sort_unstable();
        let refs = locals.iter().map(|&(id, _)| id).collect();
        SegmentHandle {
            name,
            segment,
            locals: locals.into(),
            refs,
        }
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
    ) -> impl Iterator<Item = &ChunkMeta> {
        let seg = &self.segment;
        let series = if seg.max_t < start || seg.min_t > end {
            None
        } else {
            self.series_of(id)
        };
        series
            .into_iter()
            .flat_map(|s| s.chunks.iter())
            .filter(move |c| c.max_t >= start && c.min_t <= end)
    }

    /// Series `id` as this segment holds it, if it does.
    pub(crate) fn series_of(&self, id: SeriesRef) -> Option<SegmentSeries<'_>> {
        if !self.refs.contains(id) {
            return None;
        }
        let at = self.locals.binary_search_by_key(&id, |&(id, _)| id).ok()?;
        self.locals
            .get(at)
            .and_then(|&(_, local)| self.segment.series(local))
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
