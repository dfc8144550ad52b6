//! The series table: where each series' chunks and rollups are, packed as narrow as the
//! segment's own values allow, and read in place.
//!
//! Every open segment answers for every series of its partition for as long as it is open,
//! so this table was most of what a store's segments cost in memory: a province day flushed
//! into 12 partitions is 200,000 entries, and a series that stopped writing keeps its
//! entries in every segment that holds it (BENCHMARKS.md, "Churn"). Since version 8 the
//! file holds the table in the packed form below, uncompressed, and an open segment reads it
//! from the mapped file: checked once at open (the file never changes once written,
//! `fs/mmap.rs`; should it all the same, every read stays bounds-checked and a chunk's block
//! is checked when read), then paged in by the kernel only where a query looks (the process
//! holds none of it; its pages are the file's, and the open gives them back,
//! [`crate::fs::Bytes::release`]). An older file's table is decoded at open and
//! packed the same way into memory, so one reader serves both.
//!
//! The packed form (all integers little-endian):
//! ```text
//! u32 series n | u32 chunks m
//! u8 tier count | u64 interval ms per tier
//! u64 rollup directory offset (0: none) | u64 metric directory offset (0: none)
//! u32 namespace count | per namespace: str name | u64 bytes of its series' chunk blocks
//! column: each series' namespace, an index into the list above (n entries)
//! column: where each series' chunks start among the m, then m (n + 1 entries)
//! chunks: u8 form
//!   0, packed: i64 base | pairs (block offset, samples) | pairs (earliest time - base,
//!      latest - earliest), each field as wide as its largest value: about 10 bytes a chunk
//!      for a day's flushed segment, about 6 for a flush of series of a few samples
//!   1, wide (a value past 40, 24, 32 or 32 bits): m × (u64 block offset | i64 earliest
//!      time | i64 latest | u32 samples)
//! column = u8 kind | u32 v | values: kind 0, entry i is v + i; 1, every entry is v;
//!          2, a byte an entry; 3, a u32 an entry
//! pairs  = u8 bits of the first field | u8 bits of the second | u32 words | words (u64),
//!          pair i at bit i × (sum of the bits), the first field in its low bits
//! ```
//! A chunk's length is not kept: its block on disk starts with it, under the checksum.
//! Versions 3-5 placed each series' rollup block right after its last chunk's block (a set
//! bit says so; only a series without chunks keeps an offset, in memory); version 6 on list
//! them in a directory read in place, so the table keeps nothing of them.

use roaring::RoaringBitmap;

use super::HEADER_LEN;
use super::reader::{ChunkMeta, SegmentSeries};
use crate::DecodeError;
use crate::codec::bytes::{ByteReader, MAX_STR};
use crate::codec::varint::put_str;
use crate::fs::Bytes;
use crate::model::Namespace;

/// Most rollup tiers a segment may name.
pub(super) const MAX_TIERS: usize = 16;

/// Widest field the packed form takes — an offset below 2^40 and a count below 2^24 (a
/// pair of at most 64 bits), times as 32-bit distances (a pair of 64): a table whose
/// values do not fit takes the wide form.
const MAX_BITS: [u32; 4] = [40, 24, 32, 32];

/// Bytes of a chunk's row in the wide form.
const WIDE_ROW: usize = 28;

/// Reads the little-endian `u64` at byte `at` of `data` (0 past its end: the table's
/// bounds are checked at open, so a read out of them only happens on a wrong index).
fn u64_at(data: &[u8], at: usize) -> u64 {
    data.get(at..at.saturating_add(8))
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

fn u32_at(data: &[u8], at: usize) -> u32 {
    data.get(at..at.saturating_add(4))
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

/// A column of unsigned integers, one per entry, as narrow as its values allow; its values
/// (if it stores any) lie at a place in the table's bytes.
#[derive(Debug, Clone, Copy)]
enum Column {
    /// Entry `i` is `first + i`.
    Run(u32),
    /// Every entry is this.
    Same(u32),
    /// A byte an entry, from here.
    Bytes(usize),
    /// A `u32` an entry, from here.
    Words(usize),
}

impl Column {
    /// Appends the column of `values` in the packed form.
    fn put(values: &[u32], out: &mut Vec<u8>) {
        let first = values.first().copied().unwrap_or(0);
        let run = values
            .iter()
            .enumerate()
            .all(|(i, &v)| u64::from(v) == u64::from(first) + i as u64);
        let (kind, width) = if run {
            (0, 0)
        } else if values.iter().all(|&v| v == first) {
            (1, 0)
        } else if values.iter().all(|&v| v <= u32::from(u8::MAX)) {
            (2, 1)
        } else {
            (3, 4)
        };
        out.push(kind);
        out.extend_from_slice(&first.to_le_bytes());
        for &v in values {
            out.extend(v.to_le_bytes().into_iter().take(width));
        }
    }

    /// Reads a column of `len` entries.
    fn read(r: &mut ByteReader<'_>, base: usize, len: usize) -> Result<Column, DecodeError> {
        let at = r.position() as u64;
        let kind = r.u8()?;
        let v = r.u32_le()?;
        let values = base + r.position();
        Ok(match kind {
            0 => Column::Run(v),
            1 => Column::Same(v),
            2 => {
                r.bytes(len)?;
                Column::Bytes(values)
            }
            3 => {
                r.bytes(
                    len.checked_mul(4)
                        .ok_or_else(|| r.error("column too long"))?,
                )?;
                Column::Words(values)
            }
            _ => return Err(DecodeError::new(at, format!("unknown column kind {kind}"))),
        })
    }

    /// Entry `i`; the caller keeps `i` below the column's length (a run or a constant does
    /// not know it).
    fn get(self, data: &[u8], i: usize) -> Option<u32> {
        match self {
            Column::Run(first) => first.checked_add(u32::try_from(i).ok()?),
            Column::Same(v) => Some(v),
            Column::Bytes(at) => data.get(at.checked_add(i)?).map(|&v| u32::from(v)),
            Column::Words(at) => Some(u32_at(data, at.checked_add(i.checked_mul(4)?)?)),
        }
    }
}

/// A column of pairs of unsigned integers, each pair's two fields as wide as their largest
/// values (together at most 64 bits), one pair after another in words.
#[derive(Debug, Clone, Copy)]
struct Pairs {
    /// Bits of the first field; the pair's width is this plus `second_bits`.
    first_bits: u32,
    second_bits: u32,
    /// Where the words are, and how many.
    at: usize,
    words: usize,
}

impl Pairs {
    /// Appends `pairs` in the packed form.
    fn put(pairs: impl Iterator<Item = (u64, u64)> + Clone, out: &mut Vec<u8>) {
        let bits = |v: u64| u64::BITS - v.leading_zeros();
        let (first_bits, second_bits) = pairs
            .clone()
            .fold((0, 0), |(a, b), (x, y)| (bits(x).max(a), bits(y).max(b)));
        let width = (first_bits + second_bits) as usize;
        let mut words = vec![0u64; (pairs.clone().count() * width).div_ceil(64)];
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
        out.push(first_bits as u8);
        out.push(second_bits as u8);
        out.extend_from_slice(&(words.len() as u32).to_le_bytes());
        for w in words {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }

    /// Reads a column of `len` pairs whose fields take at most `max` bits.
    fn read(
        r: &mut ByteReader<'_>,
        base: usize,
        len: usize,
        max: [u32; 2],
    ) -> Result<Pairs, DecodeError> {
        let at = r.position() as u64;
        let (first_bits, second_bits) = (u32::from(r.u8()?), u32::from(r.u8()?));
        let words = r.u32_le()? as usize;
        let width = (first_bits + second_bits) as usize;
        if first_bits > max[0]
            || second_bits > max[1]
            || len.checked_mul(width).map(|b| b.div_ceil(64)) != Some(words)
        {
            return Err(DecodeError::new(
                at,
                format!(
                    "{len} pairs of {first_bits} + {second_bits} bits in {words} words \
                     (at most {} + {})",
                    max[0], max[1]
                ),
            ));
        }
        let start = base + r.position();
        r.bytes(words * 8)?;
        Ok(Pairs {
            first_bits,
            second_bits,
            at: start,
            words,
        })
    }

    fn get(&self, data: &[u8], i: usize) -> (u64, u64) {
        let at = i * (self.first_bits + self.second_bits) as usize;
        let (word, shift) = (at / 64, at % 64);
        let read = |w: usize| {
            if w < self.words {
                u64_at(data, self.at + w * 8)
            } else {
                0
            }
        };
        let low = read(word) >> shift;
        let high = match shift {
            0 => 0,
            _ => read(word + 1) << (64 - shift),
        };
        let value = low | high;
        (
            value & mask(self.first_bits),
            value.checked_shr(self.first_bits).unwrap_or(0) & mask(self.second_bits),
        )
    }
}

/// The low `bits` bits set (`bits` ≤ 64).
fn mask(bits: u32) -> u64 {
    u64::MAX.checked_shr(64 - bits).unwrap_or(0)
}

/// Every series' chunks, series after series.
#[derive(Debug, Clone, Copy)]
enum Chunks {
    /// Times as distances from `base`.
    Packed {
        base: i64,
        places: Pairs,
        times: Pairs,
    },
    /// Rows of [`WIDE_ROW`] bytes from here.
    Wide(usize),
}

impl Chunks {
    /// The packed fields of `c`, if they fit.
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

    /// Appends `chunks` in the packed form if they fit it, else in the wide form.
    fn put(chunks: &[ChunkMeta], out: &mut Vec<u8>) {
        let base = chunks.iter().map(|c| c.min_t).min().unwrap_or(0);
        let packed = chunks
            .iter()
            .map(|c| Self::fields(c, base))
            .collect::<Option<Vec<_>>>();
        match packed {
            Some(all) => {
                out.push(0);
                out.extend_from_slice(&base.to_le_bytes());
                Pairs::put(all.iter().map(|&[o, s, _, _]| (o, s)), out);
                Pairs::put(all.iter().map(|&[_, _, m, p]| (m, p)), out);
            }
            None => {
                out.push(1);
                for c in chunks {
                    out.extend_from_slice(&c.offset.to_le_bytes());
                    out.extend_from_slice(&c.min_t.to_le_bytes());
                    out.extend_from_slice(&c.max_t.to_le_bytes());
                    out.extend_from_slice(&c.samples.to_le_bytes());
                }
            }
        }
    }

    /// Reads `len` chunks' places.
    fn read(r: &mut ByteReader<'_>, base: usize, len: usize) -> Result<Chunks, DecodeError> {
        let at = r.position() as u64;
        match r.u8()? {
            0 => {
                let time_base = r.i64_le()?;
                // Every time read is `time_base` plus two 32-bit distances.
                if time_base.checked_add(1 << 33).is_none() {
                    return Err(DecodeError::new(at, format!("time base {time_base}")));
                }
                let places = Pairs::read(r, base, len, [MAX_BITS[0], MAX_BITS[1]])?;
                let times = Pairs::read(r, base, len, [MAX_BITS[2], MAX_BITS[3]])?;
                Ok(Chunks::Packed {
                    base: time_base,
                    places,
                    times,
                })
            }
            1 => {
                let rows = base + r.position();
                r.bytes(
                    len.checked_mul(WIDE_ROW)
                        .ok_or_else(|| r.error("too many chunks"))?,
                )?;
                Ok(Chunks::Wide(rows))
            }
            form => Err(DecodeError::new(at, format!("unknown chunk form {form}"))),
        }
    }

    /// Chunk `i` (the caller keeps `i` below the table's chunk count).
    fn get(&self, data: &[u8], i: usize) -> ChunkMeta {
        match *self {
            Chunks::Packed {
                base,
                places,
                times,
            } => {
                let (offset, samples) = places.get(data, i);
                let (min, span) = times.get(data, i);
                // The base leaves room for both distances (checked at open).
                let min_t = base.wrapping_add(min as i64);
                ChunkMeta {
                    offset,
                    samples: samples as u32,
                    min_t,
                    max_t: min_t.wrapping_add(span as i64),
                }
            }
            Chunks::Wide(rows) => {
                let at = rows + i * WIDE_ROW;
                ChunkMeta {
                    offset: u64_at(data, at),
                    min_t: u64_at(data, at + 8) as i64,
                    max_t: u64_at(data, at + 16) as i64,
                    samples: u32_at(data, at + 24),
                }
            }
        }
    }
}

/// One series' chunks in time order, read out of the table one [`ChunkMeta`] at a time.
#[derive(Clone, Copy)]
pub struct ChunkList<'a> {
    /// The bytes the table lies in (the whole file, when read in place).
    data: &'a [u8],
    chunks: &'a Chunks,
    start: usize,
    end: usize,
}

impl std::fmt::Debug for ChunkList<'_> {
    // Not the bytes it reads from: they may be the whole file.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> ChunkList<'a> {
    /// Number of chunks.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Chunk `i`.
    pub fn get(&self, i: usize) -> Option<ChunkMeta> {
        (i < self.len()).then(|| self.chunks.get(self.data, self.start + i))
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
        ChunkIter {
            list: self,
            next: 0,
        }
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
pub struct ChunkIter<'a> {
    list: ChunkList<'a>,
    next: usize,
}

impl Iterator for ChunkIter<'_> {
    type Item = ChunkMeta;

    fn next(&mut self) -> Option<ChunkMeta> {
        let chunk = self.list.get(self.next)?;
        self.next += 1;
        Some(chunk)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.list.len().saturating_sub(self.next);
        (left, Some(left))
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
    /// Its namespace, an index given by [`TableBuilder::namespace`].
    pub(super) namespace: u32,
    pub(super) chunks: &'a [ChunkMeta],
    /// Bytes of its chunk blocks.
    pub(super) chunk_bytes: u64,
    /// Where its rollup block is, if it has one and the segment has no rollup directory.
    pub(super) rollup: Option<u64>,
    /// Where its last chunk's block ends.
    pub(super) chunks_end: Option<u64>,
}

/// The fields of a table before its series.
#[derive(Debug, Clone, Default)]
pub(super) struct TableHeader {
    /// Rollup tiers, interval ms.
    pub(super) tiers: Vec<i64>,
    /// Where the rollup directory is (version 6 on, with tiers), else 0.
    pub(super) directory: u64,
    /// Where the metric directory is (version 7 on, with tiers), else 0.
    pub(super) metrics: u64,
}

impl TableHeader {
    /// Where the chunk and rollup blocks end in a segment whose table starts at
    /// `table_offset`: at the rollup directory, if there is one. Checks that the
    /// directories lie in order before the table (the metric directory before the rollup
    /// directory), and that only a segment with tiers has them.
    pub(super) fn data_end(&self, table_offset: u64) -> Result<u64, String> {
        let mut end = table_offset;
        for (offset, what) in [
            (self.directory, "rollup directory"),
            (self.metrics, "metric directory"),
        ] {
            if offset == 0 {
                continue;
            }
            if self.tiers.is_empty() || offset < HEADER_LEN as u64 || offset >= end {
                return Err(format!("{what} at {offset} is misplaced"));
            }
            end = offset;
        }
        Ok(if self.directory == 0 {
            table_offset
        } else {
            self.directory
        })
    }
}

/// Gathers a table's entries: the writer's as it adds series, an older file's as its table
/// is decoded.
#[derive(Debug, Default)]
pub(super) struct TableBuilder {
    namespaces: Vec<Namespace>,
    namespace_bytes: Vec<u64>,
    namespace_of: Vec<u32>,
    chunk_start: Vec<u32>,
    chunks: Vec<ChunkMeta>,
    rollup_after: RoaringBitmap,
    rollup_at: Vec<(u32, u64)>,
}

impl TableBuilder {
    /// A table of about `series` series.
    pub(super) fn with_capacity(series: usize) -> Self {
        TableBuilder {
            namespace_of: Vec::with_capacity(series),
            chunk_start: Vec::with_capacity(series + 1),
            chunks: Vec::with_capacity(series),
            ..Default::default()
        }
    }

    /// The index of namespace `name` in the table's list, added if new.
    pub(super) fn namespace(&mut self, name: &str) -> Result<u32, String> {
        // A segment names few namespaces, each once.
        if let Some(i) = self.namespaces.iter().rposition(|n| n.as_str() == name) {
            return Ok(i as u32);
        }
        self.namespaces.push(Namespace::new(name)?);
        self.namespace_bytes.push(0);
        Ok(self.namespaces.len() as u32 - 1)
    }

    /// Adds the next series; false when the table has more chunks than a `u32` counts.
    pub(super) fn push(&mut self, series: Decoded<'_>) -> bool {
        let (Ok(local), Ok(start)) = (
            u32::try_from(self.namespace_of.len()),
            u32::try_from(self.chunks.len()),
        ) else {
            return false;
        };
        if let Some(bytes) = self.namespace_bytes.get_mut(series.namespace as usize) {
            *bytes += series.chunk_bytes;
        }
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

    /// The table in the packed form (the module doc).
    pub(super) fn encode(&self, header: &TableHeader) -> Option<Vec<u8>> {
        let chunks = u32::try_from(self.chunks.len()).ok()?;
        let mut out = Vec::with_capacity(64 + self.namespace_of.len() * 2 + self.chunks.len() * 10);
        out.extend_from_slice(&u32::try_from(self.namespace_of.len()).ok()?.to_le_bytes());
        out.extend_from_slice(&chunks.to_le_bytes());
        out.push(u8::try_from(header.tiers.len()).ok()?);
        for t in &header.tiers {
            out.extend_from_slice(&t.to_le_bytes());
        }
        out.extend_from_slice(&header.directory.to_le_bytes());
        out.extend_from_slice(&header.metrics.to_le_bytes());
        out.extend_from_slice(&(self.namespaces.len() as u32).to_le_bytes());
        for (ns, bytes) in self.namespaces.iter().zip(&self.namespace_bytes) {
            put_str(&mut out, ns.as_str());
            out.extend_from_slice(&bytes.to_le_bytes());
        }
        Column::put(&self.namespace_of, &mut out);
        let mut starts = self.chunk_start.clone();
        starts.push(chunks);
        Column::put(&starts, &mut out);
        Chunks::put(&self.chunks, &mut out);
        Some(out)
    }

    /// The table, packed into memory (an older file's, decoded), with `header`; checked as
    /// a file's is, for a segment whose table starts at `table_offset`.
    pub(super) fn finish(
        self,
        header: &TableHeader,
        table_offset: u64,
    ) -> Result<(SeriesTable, u64), DecodeError> {
        let packed = self
            .encode(header)
            .ok_or_else(|| DecodeError::new(0, "too many chunks"))?;
        let len = packed.len();
        let (mut table, samples) = SeriesTable::open(
            Bytes::owned(packed),
            0,
            len,
            self.namespace_of.len(),
            table_offset,
        )?;
        table.rollup_after = self.rollup_after;
        table.rollup_at = self.rollup_at.into();
        Ok((table, samples))
    }
}

/// The series table of an open segment (see the module doc).
#[derive(Debug)]
pub(super) struct SeriesTable {
    /// The bytes the table lies in: the mapped file (version 8 on) or its packed copy.
    data: Bytes,
    /// Its length in them.
    bytes: usize,
    len: usize,
    chunk_count: usize,
    header: TableHeader,
    /// Each distinct namespace once.
    namespaces: Vec<Namespace>,
    /// Per namespace, the bytes of its series' chunk blocks.
    namespace_bytes: Vec<u64>,
    /// Per series (local id): its namespace, an index into `namespaces`.
    namespace_of: Column,
    /// Per series, where its chunks start in `chunks`, and one more entry for the end.
    chunk_start: Column,
    chunks: Chunks,
    /// Versions 3-5: the series whose rollup block follows their last chunk's block.
    rollup_after: RoaringBitmap,
    /// Versions 3-5: (local id, offset) of the other series' rollup blocks, by local id.
    rollup_at: Box<[(u32, u64)]>,
}

impl SeriesTable {
    /// Opens the table of `series` series packed at `at..at + bytes` of `data`, a segment
    /// whose table block starts at `table_offset`, checking everything a reader relies on:
    /// its fields in bounds, the directories before the table, each series' chunks in time
    /// order without overlapping, every chunk's block starting in the data region (before
    /// the directories; its length and checksum are checked when read). Returns the
    /// samples its chunks hold. Error offsets are places in `data`.
    pub(super) fn open(
        data: Bytes,
        at: usize,
        bytes: usize,
        series: usize,
        table_offset: u64,
    ) -> Result<(SeriesTable, u64), DecodeError> {
        let payload = data
            .get(at..at.saturating_add(bytes))
            .ok_or_else(|| DecodeError::new(at as u64, "series table runs past the file"))?;
        let mut r = ByteReader::new(payload);
        let read = |r: &mut ByteReader<'_>| -> Result<SeriesTable, DecodeError> {
            let len = r.u32_le()? as usize;
            if len != series {
                return Err(r.error(format!("table holds {len} series, footer says {series}")));
            }
            let chunk_count = r.u32_le()? as usize;
            let tier_count = usize::from(r.u8()?);
            if tier_count > MAX_TIERS {
                return Err(r.error(format!("{tier_count} rollup tiers")));
            }
            let mut tiers = Vec::with_capacity(tier_count);
            for _ in 0..tier_count {
                let t = r.i64_le()?;
                if t <= 0 || tiers.contains(&t) {
                    return Err(r.error(format!("bad rollup tier {t}")));
                }
                tiers.push(t);
            }
            let (directory, metrics) = (r.u64_le()?, r.u64_le()?);
            // Each namespace is named by some series (or the table is empty).
            let count = r.u32_le()? as usize;
            if count > len.max(1) {
                return Err(r.error(format!("{count} namespaces for {len} series")));
            }
            let mut namespaces = Vec::with_capacity(count);
            let mut namespace_bytes = Vec::with_capacity(count);
            for _ in 0..count {
                let place = r.position() as u64;
                let name = r.str(MAX_STR, "namespace")?;
                namespaces.push(Namespace::new(name).map_err(|e| DecodeError::new(place, e))?);
                namespace_bytes.push(r.u64_le()?);
            }
            let namespace_of = Column::read(r, at, len)?;
            let chunk_start = Column::read(r, at, len + 1)?;
            let chunks = Chunks::read(r, at, chunk_count)?;
            if !r.is_empty() {
                return Err(r.error("trailing bytes after the series table"));
            }
            Ok(SeriesTable {
                data: data.clone(),
                bytes,
                len,
                chunk_count,
                header: TableHeader {
                    tiers,
                    directory,
                    metrics,
                },
                namespaces,
                namespace_bytes,
                namespace_of,
                chunk_start,
                chunks,
                rollup_after: RoaringBitmap::new(),
                rollup_at: Box::default(),
            })
        };
        let table = read(&mut r).map_err(|e| e.shifted(at as u64))?;
        let data_end = table
            .header
            .data_end(table_offset)
            .map_err(|reason| DecodeError::new(at as u64, format!("series table: {reason}")))?;
        let samples = table
            .check(data_end)
            .map_err(|reason| DecodeError::new(at as u64, format!("series table: {reason}")))?;
        Ok((table, samples))
    }

    /// Reads every entry once (see [`SeriesTable::open`]); the samples they hold.
    fn check(&self, data_end: u64) -> Result<u64, String> {
        let data: &[u8] = &self.data;
        let column = |c: Column, i: usize| {
            c.get(data, i)
                .ok_or_else(|| format!("series {i}'s entry cannot be read"))
        };
        let mut samples = 0u64;
        let mut start = column(self.chunk_start, 0)? as usize;
        if start != 0 {
            return Err(format!("the first series' chunks start at {start}"));
        }
        for local in 0..self.len {
            if column(self.namespace_of, local)? as usize >= self.namespaces.len() {
                return Err(format!("series {local}'s namespace is not listed"));
            }
            let end = column(self.chunk_start, local + 1)? as usize;
            if end < start || end > self.chunk_count {
                return Err(format!(
                    "series {local}'s chunks {start}..{end} of {}",
                    self.chunk_count
                ));
            }
            // The writer cuts a series' samples, sorted and one per timestamp, into
            // chunks: they follow one another in time without overlapping, which readers
            // rely on to find the chunks of a time range by binary search.
            let mut previous_max_t = None;
            for i in start..end {
                let c = self.chunks.get(data, i);
                if c.samples == 0 || c.max_t < c.min_t {
                    return Err(format!("chunk entry at {} is inconsistent", c.offset));
                }
                if previous_max_t.is_some_and(|previous| c.min_t <= previous) {
                    return Err(format!(
                        "chunk at {} starts before the series' chunk before it ends",
                        c.offset
                    ));
                }
                if c.offset < HEADER_LEN as u64 || c.offset.saturating_add(8) > data_end {
                    return Err(format!(
                        "chunk at {} lies outside the data region",
                        c.offset
                    ));
                }
                previous_max_t = Some(c.max_t);
                samples += u64::from(c.samples);
            }
            start = end;
        }
        if start != self.chunk_count {
            return Err(format!(
                "the series hold {start} chunks, the table {}",
                self.chunk_count
            ));
        }
        Ok(samples)
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn header(&self) -> &TableHeader {
        &self.header
    }

    pub(super) fn namespaces(&self) -> &[Namespace] {
        &self.namespaces
    }

    /// Per namespace of [`SeriesTable::namespaces`], the bytes of its series' chunk blocks.
    pub(super) fn namespace_bytes(&self) -> &[u64] {
        &self.namespace_bytes
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = SegmentSeries<'_>> {
        // Every local id below the count has an entry (checked at open).
        (0..self.len()).filter_map(|l| self.get(l))
    }

    pub(super) fn get(&self, local: usize) -> Option<SegmentSeries<'_>> {
        if local >= self.len {
            return None;
        }
        let data: &[u8] = &self.data;
        let namespace = self
            .namespaces
            .get(self.namespace_of.get(data, local)? as usize)?;
        let start = self.chunk_start.get(data, local)? as usize;
        let end = self.chunk_start.get(data, local + 1)? as usize;
        if start > end || end > self.chunk_count {
            return None;
        }
        Some(SegmentSeries {
            namespace,
            chunks: ChunkList {
                data,
                chunks: &self.chunks,
                start,
                end,
            },
            local: local as u32,
            table: self,
        })
    }

    /// Where the rollup block of series `local`, whose chunks are `chunks`, is.
    pub(super) fn rollup(&self, local: u32, chunks: ChunkList<'_>) -> Option<RollupRef> {
        if self.header.directory != 0 {
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

    /// Heap bytes the table holds: none when read in place from a mapped file.
    pub(super) fn heap_bytes(&self) -> usize {
        let packed = if self.data.is_mapped() { 0 } else { self.bytes };
        packed + self.rollup_after.serialized_size() + self.rollup_at.len() * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `values` as a packed column, read back: the bytes and the column.
    fn column_of(values: &[u32]) -> (Vec<u8>, Column) {
        let mut out = Vec::new();
        Column::put(values, &mut out);
        let column = Column::read(&mut ByteReader::new(&out), 0, values.len()).expect("column");
        (out, column)
    }

    /// `chunks` packed, read back: the bytes and the chunks' places.
    fn chunks_of(chunks: &[ChunkMeta]) -> (Vec<u8>, Chunks) {
        let mut out = Vec::new();
        Chunks::put(chunks, &mut out);
        let mut r = ByteReader::new(&out);
        let read = Chunks::read(&mut r, 0, chunks.len()).expect("chunks");
        assert!(r.is_empty());
        (out, read)
    }

    fn list<'a>(data: &'a [u8], chunks: &'a Chunks, start: usize, end: usize) -> ChunkList<'a> {
        ChunkList {
            data,
            chunks,
            start,
            end,
        }
    }

    #[test]
    fn a_column_is_as_narrow_as_its_values_and_reads_them_back() {
        for (values, bytes) in [
            (vec![0, 1, 2, 3], 0),
            (vec![7, 8, 9], 0),
            (vec![4, 4, 4], 0),
            (vec![0, 3, 255, 1], 4),
            (vec![0, 256, 1], 12),
            (vec![u32::MAX, 0], 8),
            (vec![], 0),
        ] {
            let (out, column) = column_of(&values);
            assert_eq!(out.len(), 5 + bytes, "{values:?}");
            for (i, &v) in values.iter().enumerate() {
                assert_eq!(column.get(&out, i), Some(v), "{values:?} at {i}");
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
        let (data, packed) = chunks_of(&fitting);
        assert!(matches!(packed, Chunks::Packed { .. }));
        let read = list(&data, &packed, 0, fitting.len());
        assert_eq!(read.iter().collect::<Vec<_>>(), fitting);
        for w in wide {
            let chunks = [meta(16, 3, 0, 10), w];
            let (data, read) = chunks_of(&chunks);
            assert!(matches!(read, Chunks::Wide(_)), "{w:?}");
            assert_eq!(list(&data, &read, 0, 2).iter().collect::<Vec<_>>(), chunks);
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
        let (data, read) = chunks_of(&chunks);
        assert!(matches!(read, Chunks::Packed { .. }));
        let per_chunk = data.len() as f64 / chunks.len() as f64;
        assert!(
            (9.0..11.0).contains(&per_chunk),
            "{per_chunk} bytes a chunk"
        );
        assert_eq!(
            list(&data, &read, 0, chunks.len())
                .iter()
                .collect::<Vec<_>>(),
            chunks
        );
    }

    /// A table of two namespaces' series, packed and opened; then every damaged copy of it
    /// is refused or reads entries that pass the checks, never panics.
    #[test]
    fn a_table_reads_back_and_a_damaged_one_is_refused_or_safe() {
        let mut builder = TableBuilder::with_capacity(3);
        let series: [(&str, Vec<ChunkMeta>); 3] = [
            ("health", vec![meta(16, 5, 100, 200), meta(60, 2, 300, 301)]),
            ("education", vec![]),
            ("health", vec![meta(90, 1, 50, 50)]),
        ];
        for (ns, chunks) in &series {
            let namespace = builder.namespace(ns).expect("namespace");
            assert!(builder.push(Decoded {
                namespace,
                chunks,
                chunk_bytes: 40 * chunks.len() as u64,
                rollup: None,
                chunks_end: None,
            }));
        }
        let header = TableHeader {
            tiers: vec![3_600_000],
            directory: 100,
            metrics: 0,
        };
        let packed = builder.encode(&header).expect("encode");
        let open = |packed: &[u8], series, table_offset| {
            SeriesTable::open(
                Bytes::owned(packed.to_vec()),
                0,
                packed.len(),
                series,
                table_offset,
            )
        };
        let (table, samples) = open(&packed, 3, 120).expect("open");
        assert_eq!(samples, 8);
        assert_eq!(table.header().tiers, vec![3_600_000]);
        assert_eq!(table.namespace_bytes(), &[120, 0]);
        for (local, (ns, chunks)) in series.iter().enumerate() {
            let s = table.get(local).expect("series");
            assert_eq!(s.namespace.as_str(), *ns);
            assert_eq!(s.chunks.iter().collect::<Vec<_>>(), *chunks);
        }
        assert!(table.get(3).is_none());
        assert!(open(&packed, 4, 120).is_err());
        // The rollup directory after the table.
        assert!(open(&packed, 3, 100).is_err());
        // A chunk's block past the data region, which ends at the directory.
        let early = TableHeader {
            directory: 95,
            ..header.clone()
        };
        let past = builder.encode(&early).expect("encode");
        assert!(open(&past, 3, 120).is_err());
        // Without tiers, no directories.
        let untiered = TableHeader {
            tiers: Vec::new(),
            ..header.clone()
        };
        assert!(open(&builder.encode(&untiered).expect("encode"), 3, 120).is_err());
        for i in 0..packed.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut damaged = packed.clone();
                damaged[i] ^= flip;
                if let Ok((t, _)) = open(&damaged, 3, 120) {
                    for s in t.iter() {
                        let _ = s.chunks.iter().count();
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn packed_chunks_read_back_exactly_from_any_slice(
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
            let (data, read) = chunks_of(&chunks);
            let packed = matches!(read, Chunks::Packed { .. });
            proptest::prop_assert!(packed);
            let (a, b) = (cut.0.min(chunks.len()), cut.1.min(chunks.len()));
            let (start, end) = (a.min(b), a.max(b));
            let sliced = list(&data, &read, start, end);
            proptest::prop_assert_eq!(sliced.len(), end - start);
            proptest::prop_assert_eq!(sliced.iter().collect::<Vec<_>>(), &chunks[start..end]);
            for i in 0..sliced.len() {
                proptest::prop_assert_eq!(sliced.get(i), chunks.get(start + i).copied());
            }
            proptest::prop_assert_eq!(sliced.get(sliced.len()), None);
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
            let (data, read) = chunks_of(&chunks);
            let all = list(&data, &read, 0, chunks.len());
            let (start, end) = (range.0, range.0 + range.1);
            let scanned: Vec<ChunkMeta> = chunks
                .iter()
                .filter(|c| c.max_t >= start && c.min_t <= end)
                .copied()
                .collect();
            proptest::prop_assert_eq!(all.overlapping(start, end).collect::<Vec<_>>(), scanned);
        }
    }
}
