//! The series table as an open segment keeps it in memory: where each series' chunks and
//! rollups are, packed as narrow as the segment's own values allow.
//!
//! Every open segment holds one entry per series of its partition for as long as it is
//! open, so this table is most of what a store's segments cost in memory (a province day
//! flushed into 12 partitions: 200,000 entries). Written as plain arrays of the decoded
//! fields it took 64 bytes an entry, more than half of the server's live heap once
//! settled (BENCHMARKS.md, "Memory at flush"); packed it takes about 10:
//! - a chunk's offset, sample count, earliest time (as a distance from the table's earliest
//!   chunk) and span are bit-packed, each field as wide as its largest value in the table:
//!   about 10 bytes instead of 32 for a day's flushed segment ([`Narrow`]; a segment whose
//!   values do not fit 40, 24 and 32 bits keeps the wide form);
//! - a chunk's length is not kept: its block on disk starts with it, under the checksum;
//! - version 6 lists the rollup blocks in a directory read in place from the file, so the
//!   table keeps nothing of them; in versions 3-5 a series' rollup block lies right after
//!   its last chunk's block, so a set bit says where it is, and only a series without
//!   chunks keeps an offset;
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

/// Widest field the narrow form takes — an offset below 2^40 and a count below 2^24 (a
/// pair of at most 64 bits), times as 32-bit distances (a pair of 64): a table whose
/// values do not fit keeps the wide form.
const MAX_BITS: [u32; 4] = [40, 24, 32, 32];

/// Every chunk's place, bit-packed: two columns of pairs — (offset, sample count) and
/// (earliest time as a distance from the table's earliest chunk, span) — each field as wide
/// as its largest value in this table (a day's flushed segment: about 10 bytes a chunk;
/// series of a few samples each, all in one flush: about 6). A pair is at most 64 bits, so
/// each is read with one or two word loads.
#[derive(Debug)]
struct Narrow {
    base: i64,
    places: Pairs,
    times: Pairs,
}

impl Narrow {
    fn fields(c: &ChunkMeta, base: i64) -> Option<[u64; 4]> {
        let min = u32::try_from(c.min_t.checked_sub(base)?).ok()?;
        let span = u32::try_from(c.max_t.checked_sub(c.min_t)?).ok()?;
        let fields = [
            c.offset,
            u64::from(c.samples),
            u64::from(min),
            u64::from(span),
        ];
        fields
            .iter()
            .zip(MAX_BITS)
            .all(|(&v, bits)| v < 1 << bits)
            .then_some(fields)
    }

    fn new(chunks: &[ChunkMeta], base: i64) -> Option<Narrow> {
        let all = chunks
            .iter()
            .map(|c| Self::fields(c, base))
            .collect::<Option<Vec<_>>>()?;
        Some(Narrow {
            base,
            places: Pairs::new(all.iter().map(|&[o, s, _, _]| (o, s))),
            times: Pairs::new(all.iter().map(|&[_, _, m, p]| (m, p))),
        })
    }

    /// Chunk `i` (the caller keeps `i` below the table's chunk count).
    fn get(&self, i: usize) -> ChunkMeta {
        let (offset, samples) = self.places.get(i);
        let (min, span) = self.times.get(i);
        let min_t = self.base + min as i64;
        ChunkMeta {
            offset,
            samples: samples as u32,
            min_t,
            max_t: min_t + span as i64,
        }
    }

    fn heap_bytes(&self) -> usize {
        self.places.heap_bytes() + self.times.heap_bytes()
    }
}

/// A column of pairs of unsigned integers, each pair's two fields as wide as their largest
/// values (together at most 64 bits), one pair after another in words.
#[derive(Debug)]
struct Pairs {
    /// Bits of the first field; the pair's width is this plus `second_bits`.
    first_bits: u32,
    second_bits: u32,
    /// The pairs, and one word more so that a pair can always be read as two words.
    words: Box<[u64]>,
}

impl Pairs {
    fn new(pairs: impl Iterator<Item = (u64, u64)> + Clone) -> Pairs {
        let bits = |v: u64| u64::BITS - v.leading_zeros();
        let (first_bits, second_bits) = pairs
            .clone()
            .fold((0, 0), |(a, b), (x, y)| (bits(x).max(a), bits(y).max(b)));
        let width = (first_bits + second_bits) as usize;
        let mut words = vec![0u64; (pairs.clone().count() * width).div_ceil(64) + 1];
        for (i, (first, second)) in pairs.enumerate() {
            let value = first | second.checked_shl(first_bits).unwrap_or(0);
            let (word, shift) = ((i * width) / 64, (i * width) % 64);
            if let Some(w) = words.get_mut(word) {
                *w |= value << shift;
            }
            if shift > 0
                && let Some(w) = words.get_mut(word + 1)
            {
                *w |= value >> (64 - shift);
            }
        }
        Pairs {
            first_bits,
            second_bits,
            words: words.into(),
        }
    }

    fn get(&self, i: usize) -> (u64, u64) {
        let at = i * (self.first_bits + self.second_bits) as usize;
        let (word, shift) = (at / 64, at % 64);
        let low = self.words.get(word).copied().unwrap_or(0) >> shift;
        let high = match shift {
            0 => 0,
            _ => self.words.get(word + 1).copied().unwrap_or(0) << (64 - shift),
        };
        let value = low | high;
        (
            value & mask(self.first_bits),
            value.checked_shr(self.first_bits).unwrap_or(0) & mask(self.second_bits),
        )
    }

    fn heap_bytes(&self) -> usize {
        std::mem::size_of_val::<[u64]>(&self.words)
    }
}

/// The low `bits` bits set (`bits` ≤ 64).
fn mask(bits: u32) -> u64 {
    u64::MAX.checked_shr(64 - bits).unwrap_or(0)
}

/// Every series' chunks, series after series.
#[derive(Debug)]
enum Chunks {
    Narrow(Narrow, usize),
    Wide(Box<[ChunkMeta]>),
}

impl Chunks {
    fn new(chunks: Vec<ChunkMeta>) -> Chunks {
        let base = chunks.iter().map(|c| c.min_t).min().unwrap_or(0);
        match Narrow::new(&chunks, base) {
            Some(narrow) => Chunks::Narrow(narrow, chunks.len()),
            None => Chunks::Wide(chunks.into()),
        }
    }

    fn slice(&self, start: usize, end: usize) -> Option<ChunkList<'_>> {
        Some(ChunkList(match self {
            Chunks::Narrow(n, len) => {
                if start > end || end > *len {
                    return None;
                }
                List::Narrow(n, start, end)
            }
            Chunks::Wide(c) => List::Wide(c.get(start..end)?),
        }))
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Chunks::Narrow(n, _) => n.heap_bytes(),
            Chunks::Wide(c) => std::mem::size_of_val::<[ChunkMeta]>(c),
        }
    }
}

/// One series' chunks in time order, read out of the table one [`ChunkMeta`] at a time.
#[derive(Debug, Clone, Copy)]
pub struct ChunkList<'a>(List<'a>);

#[derive(Debug, Clone, Copy)]
enum List<'a> {
    /// Chunks `start..end` of the narrow form.
    Narrow(&'a Narrow, usize, usize),
    Wide(&'a [ChunkMeta]),
}

impl<'a> ChunkList<'a> {
    /// Number of chunks.
    pub fn len(&self) -> usize {
        match self.0 {
            List::Narrow(_, start, end) => end - start,
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
            List::Narrow(n, start, end) => (i < end - start).then(|| n.get(start + i)),
            List::Wide(w) => w.get(i).copied(),
        }
    }

    /// The last chunk.
    pub fn last(&self) -> Option<ChunkMeta> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    /// The chunks that hold samples in `[start, end]`, found by binary search (a series'
    /// chunks follow one another in time without overlapping: the reader checks it).
    pub fn overlapping(self, start: i64, end: i64) -> impl Iterator<Item = ChunkMeta> + 'a {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid).is_some_and(|c| c.max_t < start) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        (lo..self.len())
            .map_while(move |i| self.get(i))
            .take_while(move |c| c.min_t <= end)
    }

    /// The chunks in time order.
    pub fn iter(self) -> ChunkIter<'a> {
        ChunkIter(match self.0 {
            List::Narrow(n, start, end) => Iter::Narrow(n, start..end),
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
    Narrow(&'a Narrow, std::ops::Range<usize>),
    Wide(std::slice::Iter<'a, ChunkMeta>),
}

impl Iterator for ChunkIter<'_> {
    type Item = ChunkMeta;

    fn next(&mut self) -> Option<ChunkMeta> {
        match &mut self.0 {
            Iter::Narrow(n, range) => range.next().map(|i| n.get(i)),
            Iter::Wide(w) => w.next().copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            Iter::Narrow(_, range) => range.size_hint(),
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
    /// Where the segment's rollup directory says, for this local id (none where it says 0).
    Listed(u32),
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
    /// The segment lists its rollups in a directory (version 6).
    listed: bool,
}

impl TableBuilder {
    /// A table of `series` series whose rollups a directory lists when `listed`.
    pub(super) fn with_capacity(series: usize, listed: bool) -> Self {
        TableBuilder {
            namespace_of: Vec::with_capacity(series),
            chunk_start: Vec::with_capacity(series + 1),
            chunks: Vec::with_capacity(series),
            listed,
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
            listed: self.listed,
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
    /// The segment lists its rollups in a directory (version 6): the two above are empty.
    listed: bool,
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
        if self.listed {
            Some(RollupRef::Listed(local))
        } else if self.rollup_after.contains(local) {
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
        assert!(matches!(packed, Chunks::Narrow(..)));
        let list = packed.slice(0, fitting.len()).expect("slice");
        assert_eq!(list.iter().collect::<Vec<_>>(), fitting);
        for w in wide {
            let chunks = Chunks::new(vec![meta(16, 3, 0, 10), w]);
            assert!(matches!(chunks, Chunks::Wide(_)), "{w:?}");
            let list = chunks.slice(0, 2).expect("slice");
            assert_eq!(list.iter().collect::<Vec<_>>(), vec![meta(16, 3, 0, 10), w]);
        }
    }

    #[test]
    fn a_flushed_segments_chunks_take_about_ten_bytes() {
        // A 2-hour partition: offsets up to 8 MB, up to 120 samples, times within it.
        let base = 1_700_000_000_000;
        let chunks: Vec<ChunkMeta> = (0..10_000u64)
            .map(|i| {
                let min_t = base + (i as i64 * 7_919) % 7_200_000;
                meta(
                    16 + i * 800,
                    1 + (i % 120) as u32,
                    min_t,
                    min_t + 60_000 * (i % 120) as i64,
                )
            })
            .collect();
        let table = Chunks::new(chunks.clone());
        assert!(matches!(table, Chunks::Narrow(..)));
        let per_chunk = table.heap_bytes() as f64 / chunks.len() as f64;
        assert!(
            (9.0..11.0).contains(&per_chunk),
            "{per_chunk} bytes a chunk"
        );
        let list = table.slice(0, chunks.len()).expect("slice");
        assert_eq!(list.iter().collect::<Vec<_>>(), chunks);
    }

    proptest::proptest! {
        #[test]
        fn narrow_chunks_read_back_exactly_from_any_slice(
            raw in proptest::collection::vec(
                (0u64..1 << 40, 0u32..1 << 24, 0i64..1 << 32, 0i64..1 << 32),
                0..200,
            ),
            cut in (0usize..200, 0usize..200),
        ) {
            let base = 1_764_547_200_000i64;
            let chunks: Vec<ChunkMeta> = raw
                .iter()
                .map(|&(offset, samples, min, span)| {
                    meta(offset, samples, base + min, base + min + span)
                })
                .collect();
            let table = Chunks::new(chunks.clone());
            proptest::prop_assert!(matches!(table, Chunks::Narrow(..)));
            let (a, b) = (cut.0.min(chunks.len()), cut.1.min(chunks.len()));
            let (start, end) = (a.min(b), a.max(b));
            let list = table.slice(start, end).expect("slice");
            proptest::prop_assert_eq!(list.len(), end - start);
            proptest::prop_assert_eq!(list.iter().collect::<Vec<_>>(), &chunks[start..end]);
            for i in 0..list.len() {
                proptest::prop_assert_eq!(list.get(i), chunks.get(start + i).copied());
            }
            proptest::prop_assert_eq!(list.get(list.len()), None);
            proptest::prop_assert!(end == 0 || table.slice(end, end - 1).is_none());
            proptest::prop_assert!(table.slice(0, chunks.len() + 1).is_none());
        }

        /// The chunks a binary search finds for a time range are those that a scan of
        /// every chunk finds, for chunks in time order as the reader accepts them.
        #[test]
        fn overlapping_finds_what_a_scan_finds(
            gaps in proptest::collection::vec((1i64..100, 0i64..100), 0..60),
            range in (-50i64..6_000, 0i64..3_000),
            wide in proptest::bool::ANY,
        ) {
            let mut t = 0;
            let chunks: Vec<ChunkMeta> = gaps
                .iter()
                .enumerate()
                .map(|(i, &(gap, span))| {
                    let min_t = t + gap;
                    t = min_t + span;
                    let offset = if wide { 1 << 41 } else { 16 + 100 * i as u64 };
                    meta(offset, 1, min_t, t)
                })
                .collect();
            let table = Chunks::new(chunks.clone());
            let list = table.slice(0, chunks.len()).expect("slice");
            let (start, end) = (range.0, range.0 + range.1);
            let scanned: Vec<ChunkMeta> = chunks
                .iter()
                .filter(|c| c.max_t >= start && c.min_t <= end)
                .copied()
                .collect();
            proptest::prop_assert_eq!(list.overlapping(start, end).collect::<Vec<_>>(), scanned);
        }
    }
}
