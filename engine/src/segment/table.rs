//! The series table as an open segment keeps it in memory: where each series' chunks and
//! rollups are, packed as narrow as the segment's own values allow.
//!
//! Every open segment holds one entry per series of its partition for as long as it is
//! open, so this table is most of what a store's segments cost in memory (a province day
//! flushed into 12 partitions: 200,000 entries). Written as plain arrays of the decoded
//! fields it took 64 bytes an entry, more than half of the server's live heap once
//! settled (BENCHMARKS.md, "Memory at flush"); packed it takes about 17:
//! - a chunk's offset and sample count share one word, its times are 32-bit distances from
//!   the table's earliest chunk: 16 bytes instead of 32 ([`Chunks::Packed`]; a segment
//!   whose values do not fit keeps the wide form);
//! - a chunk's length is not kept: its block on disk starts with it, under the checksum;
//! - a series' rollup block lies right after its last chunk's block (the writer puts it
//!   there), so a set bit says where it is; only a series without chunks keeps an offset;
//! - the per-series columns (where its chunks start, its namespace) are as wide as their
//!   largest value, and vanish when every value is its position or the same.

use roaring::RoaringBitmap;

use super::reader::{ChunkMeta, SegmentSeries};
use crate::model::Namespace;

/// A column of unsigned integers, one per entry, as narrow as its values allow.
#[derive(Debug)]
enum Column {
    /// Entry `i` is `first + i`.
    Run(u32),
    /// Every entry is this.
    Same(u32),
    Bytes(Box<[u8]>),
    Words(Box<[u32]>),
}

impl Column {
    fn new(values: Vec<u32>) -> Column {
        let first = values.first().copied().unwrap_or(0);
        let run = values
            .iter()
            .enumerate()
            .all(|(i, &v)| u64::from(v) == u64::from(first) + i as u64);
        if run {
            Column::Run(first)
        } else if values.iter().all(|&v| v == first) {
            Column::Same(first)
        } else if values.iter().all(|&v| v <= u32::from(u8::MAX)) {
            Column::Bytes(values.iter().map(|&v| v as u8).collect())
        } else {
            Column::Words(values.into())
        }
    }

    /// Entry `i`; the caller keeps `i` below the column's length (a run or a constant does
    /// not know it).
    fn get(&self, i: usize) -> Option<u32> {
        match self {
            Column::Run(first) => first.checked_add(u32::try_from(i).ok()?),
            Column::Same(v) => Some(*v),
            Column::Bytes(b) => b.get(i).map(|&v| u32::from(v)),
            Column::Words(w) => w.get(i).copied(),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Column::Run(_) | Column::Same(_) => 0,
            Column::Bytes(b) => b.len(),
            Column::Words(w) => w.len() * 4,
        }
    }
}

/// A chunk's place in 16 bytes: its offset (40 bits) and sample count (24 bits) in one
/// word, its times as distances from the table's earliest chunk.
#[derive(Debug, Clone, Copy)]
struct Packed {
    at: u64,
    min: u32,
    span: u32,
}

const OFFSET_BITS: u32 = 40;
const SAMPLE_BITS: u32 = 24;

impl Packed {
    fn new(c: &ChunkMeta, base: i64) -> Option<Packed> {
        let fits = c.offset < (1 << OFFSET_BITS) && c.samples < (1 << SAMPLE_BITS);
        let min = u32::try_from(c.min_t.checked_sub(base)?).ok()?;
        let span = u32::try_from(c.max_t.checked_sub(c.min_t)?).ok()?;
        fits.then_some(Packed {
            at: (c.offset << SAMPLE_BITS) | u64::from(c.samples),
            min,
            span,
        })
    }

    fn unpack(self, base: i64) -> ChunkMeta {
        let min_t = base + i64::from(self.min);
        ChunkMeta {
            offset: self.at >> SAMPLE_BITS,
            samples: (self.at & ((1 << SAMPLE_BITS) - 1)) as u32,
            min_t,
            max_t: min_t + i64::from(self.span),
        }
    }
}

/// Every series' chunks, series after series.
#[derive(Debug)]
enum Chunks {
    Packed { base: i64, chunks: Box<[Packed]> },
    Wide(Box<[ChunkMeta]>),
}

impl Chunks {
    fn new(chunks: Vec<ChunkMeta>) -> Chunks {
        let base = chunks.iter().map(|c| c.min_t).min().unwrap_or(0);
        let packed: Option<Box<[Packed]>> = chunks.iter().map(|c| Packed::new(c, base)).collect();
        match packed {
            Some(chunks) => Chunks::Packed { base, chunks },
            None => Chunks::Wide(chunks.into()),
        }
    }

    fn slice(&self, start: usize, end: usize) -> Option<ChunkList<'_>> {
        Some(ChunkList(match self {
            Chunks::Packed { base, chunks } => List::Packed(*base, chunks.get(start..end)?),
            Chunks::Wide(c) => List::Wide(c.get(start..end)?),
        }))
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Chunks::Packed { chunks, .. } => std::mem::size_of_val::<[Packed]>(chunks),
            Chunks::Wide(c) => std::mem::size_of_val::<[ChunkMeta]>(c),
        }
    }
}

/// One series' chunks in time order, read out of the table one [`ChunkMeta`] at a time.
#[derive(Debug, Clone, Copy)]
pub struct ChunkList<'a>(List<'a>);

#[derive(Debug, Clone, Copy)]
enum List<'a> {
    /// Packed entries and the table's base time.
    Packed(i64, &'a [Packed]),
    Wide(&'a [ChunkMeta]),
}

impl<'a> ChunkList<'a> {
    /// Number of chunks.
    pub fn len(&self) -> usize {
        match self.0 {
            List::Packed(_, p) => p.len(),
            List::Wide(w) => w.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Chunk `i`.
    pub fn get(&self, i: usize) -> Option<ChunkMeta> {
        match self.0 {
            List::Packed(base, p) => p.get(i).map(|p| p.unpack(base)),
            List::Wide(w) => w.get(i).copied(),
        }
    }

    /// The last chunk.
    pub fn last(&self) -> Option<ChunkMeta> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    /// The chunks in time order.
    pub fn iter(self) -> ChunkIter<'a> {
        ChunkIter(match self.0 {
            List::Packed(base, p) => Iter::Packed(base, p.iter()),
            List::Wide(w) => Iter::Wide(w.iter()),
        })
    }
}

impl<'a> IntoIterator for ChunkList<'a> {
    type Item = ChunkMeta;
    type IntoIter = ChunkIter<'a>;

    fn into_iter(self) -> ChunkIter<'a> {
        self.iter()
    }
}

/// The chunks of a [`ChunkList`], in time order.
#[derive(Debug, Clone)]
pub struct ChunkIter<'a>(Iter<'a>);

#[derive(Debug, Clone)]
enum Iter<'a> {
    Packed(i64, std::slice::Iter<'a, Packed>),
    Wide(std::slice::Iter<'a, ChunkMeta>),
}

impl Iterator for ChunkIter<'_> {
    type Item = ChunkMeta;

    fn next(&mut self) -> Option<ChunkMeta> {
        match &mut self.0 {
            Iter::Packed(base, p) => p.next().map(|c| c.unpack(*base)),
            Iter::Wide(w) => w.next().copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            Iter::Packed(_, p) => p.size_hint(),
            Iter::Wide(w) => w.size_hint(),
        }
    }
}

/// Where a series' rollup block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollupRef {
    /// Right after the block of the chunk at this offset.
    AfterChunk(u64),
    /// At this offset.
    At(u64),
}

/// The decoded fields of one series, as [`TableBuilder::push`] takes them.
pub(super) struct Decoded<'a> {
    pub(super) namespace: u32,
    pub(super) chunks: &'a [ChunkMeta],
    /// Where its rollup block is, if it has one.
    pub(super) rollup: Option<u64>,
    /// Where its last chunk's block ends.
    pub(super) chunks_end: Option<u64>,
}

/// Gathers a table's entries as the file's table is decoded.
#[derive(Debug, Default)]
pub(super) struct TableBuilder {
    namespace_of: Vec<u32>,
    chunk_start: Vec<u32>,
    chunks: Vec<ChunkMeta>,
    rollup_after: RoaringBitmap,
    rollup_at: Vec<(u32, u64)>,
}

impl TableBuilder {
    pub(super) fn with_capacity(series: usize) -> Self {
        TableBuilder {
            namespace_of: Vec::with_capacity(series),
            chunk_start: Vec::with_capacity(series + 1),
            chunks: Vec::with_capacity(series),
            ..Default::default()
        }
    }

    /// Adds the next series; false when the table has more chunks than a `u32` counts.
    pub(super) fn push(&mut self, series: Decoded<'_>) -> bool {
        let (Ok(local), Ok(start)) = (
            u32::try_from(self.namespace_of.len()),
            u32::try_from(self.chunks.len()),
        ) else {
            return false;
        };
        self.namespace_of.push(series.namespace);
        self.chunk_start.push(start);
        self.chunks.extend_from_slice(series.chunks);
        match series.rollup {
            Some(at) if series.chunks_end == Some(at) => {
                self.rollup_after.insert(local);
            }
            Some(at) => self.rollup_at.push((local, at)),
            None => {}
        }
        true
    }

    pub(super) fn finish(mut self, namespaces: Vec<Namespace>) -> Option<SeriesTable> {
        self.chunk_start
            .push(u32::try_from(self.chunks.len()).ok()?);
        Some(SeriesTable {
            len: self.namespace_of.len(),
            namespaces,
            namespace_of: Column::new(self.namespace_of),
            chunk_start: Column::new(self.chunk_start),
            chunks: Chunks::new(self.chunks),
            rollup_after: self.rollup_after,
            rollup_at: self.rollup_at.into(),
        })
    }
}

/// The series table of an open segment (see the module doc).
#[derive(Debug)]
pub(super) struct SeriesTable {
    len: usize,
    /// Each distinct namespace once.
    namespaces: Vec<Namespace>,
    /// Per series (local id): its namespace, an index into `namespaces`.
    namespace_of: Column,
    /// Per series, where its chunks start in `chunks`, and one more entry for the end.
    chunk_start: Column,
    chunks: Chunks,
    /// The series whose rollup block follows their last chunk's block.
    rollup_after: RoaringBitmap,
    /// (local id, offset) of the other series' rollup blocks, by local id.
    rollup_at: Box<[(u32, u64)]>,
}

impl SeriesTable {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn namespaces(&self) -> &[Namespace] {
        &self.namespaces
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = SegmentSeries<'_>> {
        // Every local id below the count has an entry (see `TableBuilder`).
        (0..self.len()).filter_map(|l| self.get(l))
    }

    pub(super) fn get(&self, local: usize) -> Option<SegmentSeries<'_>> {
        if local >= self.len {
            return None;
        }
        let namespace = self
            .namespaces
            .get(self.namespace_of.get(local)? as usize)?;
        let start = self.chunk_start.get(local)? as usize;
        let end = self.chunk_start.get(local + 1)? as usize;
        let chunks = self.chunks.slice(start, end)?;
        Some(SegmentSeries {
            namespace,
            chunks,
            local: local as u32,
            table: self,
        })
    }

    /// Where the rollup block of series `local`, whose chunks are `chunks`, is.
    pub(super) fn rollup(&self, local: u32, chunks: ChunkList<'_>) -> Option<RollupRef> {
        if self.rollup_after.contains(local) {
            chunks.last().map(|c| RollupRef::AfterChunk(c.offset))
        } else {
            let at = self
                .rollup_at
                .binary_search_by_key(&local, |&(l, _)| l)
                .ok()?;
            self.rollup_at.get(at).map(|&(_, at)| RollupRef::At(at))
        }
    }

    /// Heap bytes the table holds.
    pub(super) fn heap_bytes(&self) -> usize {
        self.namespace_of.heap_bytes()
            + self.chunk_start.heap_bytes()
            + self.chunks.heap_bytes()
            + self.rollup_after.serialized_size()
            + self.rollup_at.len() * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_is_as_narrow_as_its_values_and_reads_them_back() {
        for (values, heap) in [
            (vec![0, 1, 2, 3], 0),
            (vec![7, 8, 9], 0),
            (vec![4, 4, 4], 0),
            (vec![0, 3, 255, 1], 4),
            (vec![0, 256, 1], 12),
            (vec![u32::MAX, 0], 8),
            (vec![], 0),
        ] {
            let column = Column::new(values.clone());
            assert_eq!(column.heap_bytes(), heap, "{values:?}");
            for (i, &v) in values.iter().enumerate() {
                assert_eq!(column.get(i), Some(v), "{values:?} at {i}");
            }
        }
    }

    fn meta(offset: u64, samples: u32, min_t: i64, max_t: i64) -> ChunkMeta {
        ChunkMeta {
            offset,
            samples,
            min_t,
            max_t,
        }
    }

    #[test]
    fn chunks_are_packed_when_they_fit_and_kept_wide_when_not() {
        let fitting = vec![
            meta(16, 2048, 1_700_000_000_000, 1_700_000_007_200),
            meta(
                (1 << 40) - 1,
                (1 << 24) - 1,
                1_700_000_000_000 + u32::MAX as i64,
                1_700_000_000_000 + u32::MAX as i64 * 2,
            ),
            meta(16, 1, 1_700_000_000_000, 1_700_000_000_000),
        ];
        let wide = [
            meta(1 << 40, 1, 0, 0),
            meta(16, 1 << 24, 0, 0),
            meta(16, 1, 0, i64::from(u32::MAX) + 1),
            meta(16, 1, i64::MIN, i64::MAX),
        ];
        let packed = Chunks::new(fitting.clone());
        assert!(matches!(packed, Chunks::Packed { .. }));
        let list = packed.slice(0, fitting.len()).expect("slice");
        assert_eq!(list.iter().collect::<Vec<_>>(), fitting);
        for w in wide {
            let chunks = Chunks::new(vec![meta(16, 3, 0, 10), w]);
            assert!(matches!(chunks, Chunks::Wide(_)), "{w:?}");
            let list = chunks.slice(0, 2).expect("slice");
            assert_eq!(list.iter().collect::<Vec<_>>(), vec![meta(16, 3, 0, 10), w]);
        }
    }
}
