//! Reading a segment file. Opening checks magic, version, footer checksum, and the series
//! table and postings blocks (bounds and checksums); chunk blocks are checked when read.
//! Every error names the file and the offset.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use roaring::RoaringBitmap;

use super::index::{IndexBuilder, LabelIndex};
use super::table::{
    ChunkList, Decoded, MAX_TIERS, RollupRef, SeriesTable, TableBuilder, TableHeader,
};
use super::{FLAG_COLD, FOOTER_LEN, HEADER_LEN, MAGIC, OLDEST_READABLE_VERSION, VERSION};
use crate::codec::bytes::{ByteReader, MAX_STR};
use crate::codec::labels::decode_labels;
use crate::codec::{chunk, rollup};
use crate::fs::Bytes;
use crate::model::{Labels, Namespace, Sample};
use crate::{DecodeError, Result};

/// Where one chunk lies and what it covers. Its length is its block's own first field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    /// Offset of the chunk's block (its length field).
    pub offset: u64,
    /// Earliest timestamp.
    pub min_t: i64,
    /// Latest timestamp.
    pub max_t: i64,
    /// Samples.
    pub samples: u32,
}

/// One series in a segment: where its chunks and rollups are. Its labels stay on disk
/// ([`Segment::labels`]): the engine registers them once in the head, and a copy per segment
/// would cost every series' labels again with every flush.
#[derive(Debug, Clone, Copy)]
pub struct SegmentSeries<'a> {
    /// Namespace.
    pub namespace: &'a Namespace,
    /// Chunks in time order.
    pub chunks: ChunkList<'a>,
    pub(super) local: u32,
    pub(super) table: &'a SeriesTable,
}

impl SegmentSeries<'_> {
    /// Where its rollups are, when the segment has tiers and the series a live sample
    /// (looked up only when asked: most reads want the chunks alone).
    pub fn rollup(&self) -> Option<RollupRef> {
        self.table.rollup(self.local, self.chunks)
    }
}

/// Most buckets one series' tier in one segment may hold: a segment of a month at a
/// one-second tier is 2.6 M; this bounds what a damaged file can make a reader allocate.
const MAX_TIER_BUCKETS: usize = 1 << 24;

/// An open segment.
#[derive(Debug)]
pub struct Segment {
    path: PathBuf,
    bytes: Bytes,
    /// Flush sequence number: a higher one holds newer writes.
    pub seq: u64,
    /// Samples in the segment.
    pub samples: u64,
    /// Earliest timestamp.
    pub min_t: i64,
    /// Latest timestamp.
    pub max_t: i64,
    series: SeriesTable,
    /// Bytes of the rollup blocks.
    pub rollup_bytes: u64,
    /// Rollup tiers (interval ms) every series with a rollup block has, in block order.
    pub tiers: Box<[i64]>,
    /// Written by compaction (header flag [`FLAG_COLD`]): its chunks are already as compact
    /// as compaction makes them, so a window holding it alone needs no rewrite.
    pub cold: bool,
    version: u32,
    /// Where the chunk and rollup blocks end: the rollup directory, or the series table.
    data_end: u64,
    /// The rollup directory (version 6).
    directory: Option<Directory>,
    /// The metrics whose rollups the segment keeps (version 7, with tiers), sorted by
    /// namespace and name: a metric it does not list has no series in it. `None`: it keeps
    /// none.
    metrics: Option<Box<[MetricListing]>>,
    table_offset: u64,
    postings_offset: u64,
    /// A label index built at open for a file older than version 4, which has none.
    built_index: Option<Box<[u8]>>,
}

/// Where a version 6 segment's rollup directory lists each series' rollup block.
#[derive(Debug, Clone, Copy)]
struct Directory {
    /// Offset of the first entry in the file.
    entries: u64,
    /// Bytes per entry: 4 or 8.
    width: u8,
}

/// One metric's entry in the metric directory (version 7).
#[derive(Debug)]
struct MetricListing {
    namespace: Box<str>,
    metric: Box<str>,
    /// The time its series' samples and buckets cover in the segment.
    min_t: i64,
    max_t: i64,
    /// Where its block of metric rollups is.
    offset: u64,
}

/// Fields of the rollup directory's payload before its entries: the rollup bytes and the
/// width.
const DIRECTORY_HEADER: usize = 9;

/// The part of the file that is the label index, or the index built for an older file.
const INDEX_IN_FILE: usize = 8;

impl Segment {
    /// Opens and checks a segment held in `bytes`, read from `path`.
    pub fn open(path: &Path, bytes: Bytes) -> Result<Segment> {
        Self::open_as(path, bytes, false).map(|(segment, _)| segment)
    }

    /// Opens a segment like [`Segment::open`] and also returns its series' labels, by
    /// local id (for registering them at open).
    pub fn open_with_labels(path: &Path, bytes: Bytes) -> Result<(Segment, Vec<Labels>)> {
        Self::open_as(path, bytes, true)
    }

    fn open_as(path: &Path, bytes: Bytes, want_labels: bool) -> Result<(Segment, Vec<Labels>)> {
        Self::parse(&bytes)
            .and_then(|p| {
                // Older files: an index built from the labels read once, here.
                let built_index = (p.version < 4).then(|| {
                    let mut index = IndexBuilder::default();
                    for (s, labels) in p.table.series.iter().zip(p.table.labels.iter().flatten()) {
                        index.add(
                            s.namespace.as_str(),
                            labels.iter().map(|l| (l.name.as_str(), l.value.as_str())),
                        );
                    }
                    index.finish().into_boxed_slice()
                });
                let segment = Segment {
                    path: path.to_path_buf(),
                    bytes: bytes.clone(),
                    seq: p.seq,
                    samples: p.samples,
                    min_t: p.min_t,
                    max_t: p.max_t,
                    tiers: p.table.series.header().tiers.clone().into(),
                    series: p.table.series,
                    rollup_bytes: p.table.rollup_bytes,
                    cold: p.flags & FLAG_COLD != 0,
                    version: p.version,
                    data_end: p.data_end,
                    directory: p.directory,
                    metrics: p.metrics,
                    table_offset: p.table_offset,
                    postings_offset: p.postings_offset,
                    built_index,
                };
                let labels = match p.table.labels {
                    Some(labels) if want_labels => labels,
                    None if want_labels => segment.index_labels()?,
                    _ => Vec::new(),
                };
                // The series table and the label index were read once, into memory; the
                // index is read in place again when asked.
                segment.release_tables();
                Ok((segment, labels))
            })
            .map_err(|e| e.in_file(path, 0))
    }

    /// Every series' labels, by local id, from the label index.
    fn index_labels(&self) -> Result<Vec<Labels>, DecodeError> {
        let index = self.index_body().and_then(LabelIndex::parse)?;
        (0..index.series_count() as u32)
            .map(|local| {
                let (_, labels) = index.labels(local)?;
                Ok(Labels::from_trusted(
                    labels
                        .into_iter()
                        .map(|(n, v)| crate::model::Label::new(n, v))
                        .collect(),
                ))
            })
            .collect::<Result<_, DecodeError>>()
            .map_err(|e| e.shifted(self.postings_offset + INDEX_IN_FILE as u64))
    }

    /// The label index's bytes (the file's, checksummed at open, or the one built).
    fn index_body(&self) -> Result<&[u8], DecodeError> {
        if let Some(built) = &self.built_index {
            return Ok(built);
        }
        let data: &[u8] = &self.bytes;
        let len = ByteReader::at(data, self.postings_offset)?.u32_le()? as usize;
        let start = self.postings_offset as usize + INDEX_IN_FILE;
        data.get(start..start + len)
            .ok_or_else(|| DecodeError::new(self.postings_offset, "label index runs past the file"))
    }

    /// The segment's label index, read in place: which of its series match, and their
    /// labels, without holding any of it in memory. Errors name the file and the offset
    /// (relative to the index, which starts 8 bytes into its block at `postings_offset`).
    pub fn label_index(&self) -> Result<LabelIndex<'_>> {
        self.index_body()
            .and_then(LabelIndex::parse)
            .map_err(|e| e.in_file(&self.path, self.postings_offset + INDEX_IN_FILE as u64))
    }

    /// Wraps an error of the label index with this segment's file and the index's offset.
    pub fn index_error(&self, e: DecodeError) -> crate::Error {
        e.in_file(&self.path, self.postings_offset + INDEX_IN_FILE as u64)
    }

    fn parse(bytes: &Bytes) -> Result<Parsed, DecodeError> {
        let data: &[u8] = bytes;
        let len = data.len();
        if len < HEADER_LEN + FOOTER_LEN {
            return Err(DecodeError::new(
                0,
                format!("{len} bytes is too short for a segment"),
            ));
        }
        if data.get(..8) != Some(MAGIC.as_slice()) {
            return Err(DecodeError::new(0, "bad magic at the start"));
        }
        let version = ByteReader::at(data, 8)?.u32_le()?;
        if !(OLDEST_READABLE_VERSION..=VERSION).contains(&version) {
            return Err(DecodeError::new(
                8,
                format!(
                    "unsupported segment version {version} (this build reads \
                     {OLDEST_READABLE_VERSION} to {VERSION})"
                ),
            ));
        }
        let flags = ByteReader::at(data, 12)?.u32_le()?;
        if flags & !FLAG_COLD != 0 {
            return Err(DecodeError::new(
                12,
                format!("unknown segment flags {flags:#x}"),
            ));
        }
        let f = len - FOOTER_LEN;
        if data.get(len - 8..) != Some(MAGIC.as_slice()) {
            return Err(DecodeError::new(
                (len - 8) as u64,
                "bad magic at the end (truncated?)",
            ));
        }
        let mut footer = ByteReader::at(data, f as u64)?;
        let table_offset = footer.u64_le()?;
        let postings_offset = footer.u64_le()?;
        let seq = footer.u64_le()?;
        let samples = footer.u64_le()?;
        let min_t = footer.i64_le()?;
        let max_t = footer.i64_le()?;
        let series_count = footer.u32_le()? as usize;
        let stored_crc = footer.u32_le()?;
        let actual_crc = crc32c::crc32c(data.get(f..f + 52).unwrap_or_default());
        if stored_crc != actual_crc {
            return Err(DecodeError::new(f as u64, "footer checksum mismatch"));
        }

        let table_end = postings_offset;
        let payload = block(data, table_offset, HEADER_LEN as u64, table_end)?;
        let table_at = table_offset + 8;
        let (mut table, total) = if version >= 8 {
            // Read in place: packed, uncompressed (`segment/table.rs`).
            let (series, total) = SeriesTable::open(
                bytes.clone(),
                table_at as usize,
                payload.len(),
                series_count,
                table_offset,
            )?;
            let table = Table {
                series,
                rollup_bytes: 0,
                labels: None,
            };
            (table, total)
        } else {
            let payload = decompress(payload).map_err(|e| e.shifted(table_at))?;
            parse_table(&payload, table_offset, series_count, version)
                .map_err(|e| DecodeError::new(table_at, format!("series table: {}", e.reason)))?
        };
        let header = table.series.header();
        let data_end = header
            .data_end(table_offset)
            .map_err(|reason| DecodeError::new(table_at, reason))?;
        let directory = match header.directory {
            0 => None,
            at => {
                let (directory, rollup_bytes) =
                    parse_directory(data, at, table_offset, series_count)?;
                table.rollup_bytes = rollup_bytes;
                Some(directory)
            }
        };
        let metrics = match table.series.header().metrics {
            0 => None,
            at => Some(parse_metrics(data, at, data_end)?),
        };
        let index = block(data, postings_offset, table_end, f as u64)?;
        if version >= 4 {
            let index = LabelIndex::parse(index)
                .map_err(|e| e.shifted(postings_offset + INDEX_IN_FILE as u64))?;
            if index.series_count() != series_count {
                return Err(DecodeError::new(
                    postings_offset,
                    format!(
                        "label index holds {} series, footer says {series_count}",
                        index.series_count()
                    ),
                ));
            }
        }
        if total != samples {
            return Err(DecodeError::new(
                f as u64 + 24,
                format!("footer says {samples} samples, table {total}"),
            ));
        }
        Ok(Parsed {
            version,
            flags,
            seq,
            samples,
            min_t,
            max_t,
            table,
            data_end,
            directory,
            metrics,
            table_offset,
            postings_offset,
        })
    }

    /// The file's format version.
    pub fn format_version(&self) -> u32 {
        self.version
    }

    /// Heap bytes of the series table this open segment keeps (and of the label index built
    /// for a file older than version 4).
    pub fn heap_bytes(&self) -> usize {
        let metrics: usize = self
            .metrics
            .iter()
            .flatten()
            .map(|m| std::mem::size_of::<MetricListing>() + m.namespace.len() + m.metric.len())
            .sum();
        self.series.heap_bytes() + self.built_index.as_ref().map_or(0, |b| b.len()) + metrics
    }

    /// Number of series.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Series `local`, if there is one.
    pub fn series(&self, local: u32) -> Option<SegmentSeries<'_>> {
        self.series.get(local as usize)
    }

    /// Every series, by local id.
    pub fn all_series(&self) -> impl Iterator<Item = SegmentSeries<'_>> {
        self.series.iter()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the file in bytes.
    pub fn file_bytes(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Reads one chunk's samples in `[start, end]` into `out`, checking its checksum.
    pub fn read_chunk(
        &self,
        meta: &ChunkMeta,
        start: i64,
        end: i64,
        out: &mut Vec<Sample>,
    ) -> Result<()> {
        let bytes = self.chunk_bytes(meta)?;
        chunk::decode_range(bytes, start, end, out)
            .map_err(|e| e.in_file(&self.path, meta.offset + 8))
    }

    /// Appends `series`' buckets of the tier of `interval` ms to `out`, with at least the
    /// `wanted` values (see [`rollup::Wanted`]), checking the block's checksum; false
    /// (nothing appended) when the segment has no such tier or the series no rollups.
    pub fn read_rollup(
        &self,
        series: SegmentSeries<'_>,
        interval: i64,
        wanted: rollup::Wanted,
        out: &mut Vec<rollup::Bucket>,
    ) -> Result<bool> {
        self.read_rollup_from(series, interval, wanted, i64::MIN, out)
    }

    /// [`Segment::read_rollup`], leaving out (most of) the buckets that end before `from`:
    /// see [`rollup::decode`].
    pub fn read_rollup_from(
        &self,
        series: SegmentSeries<'_>,
        interval: i64,
        wanted: rollup::Wanted,
        from: i64,
        out: &mut Vec<rollup::Bucket>,
    ) -> Result<bool> {
        let Some(tier) = self.tiers.iter().position(|&t| t == interval) else {
            return Ok(false);
        };
        let Some(offset) = self.rollup_offset(series)? else {
            return Ok(false);
        };
        let at = offset + 8;
        let read = read_tier(self.data(), offset, tier, "rollup block", |buckets| {
            if self.version >= 5 {
                // No more buckets than intervals the segment's time span meets (and never
                // more than a reader would hold for one series).
                let most = most_buckets(self.min_t, self.max_t, interval);
                rollup::decode(buckets, interval, most, wanted, from, out)
            } else {
                rollup::records::decode(buckets, interval, out)
            }
        });
        read.map_err(|e| e.in_file(&self.path, at))?;
        Ok(true)
    }

    /// Whether the segment keeps metric rollups of the tier of `interval` ms (version 7):
    /// then a metric it does not list has no series in it.
    pub fn has_metric_rollups(&self, interval: i64) -> bool {
        self.metrics.is_some() && self.tiers.contains(&interval)
    }

    /// The metrics whose rollups the segment keeps, as (namespace, name, where their block
    /// is), sorted.
    pub fn metrics_listed(&self) -> impl Iterator<Item = (&str, &str, u64)> {
        self.metrics
            .iter()
            .flatten()
            .map(|m| (&*m.namespace, &*m.metric, m.offset))
    }

    /// Appends the buckets of the tier of `interval` ms of metric `metric` of `namespace`
    /// ([`rollup::metric`]) to `out`, checking the block's checksum, and returns the time
    /// the metric's data covers in the segment; `None` (nothing appended) when the segment
    /// does not list the metric or has no such tier.
    pub fn read_metric_rollup(
        &self,
        namespace: &str,
        metric: &str,
        interval: i64,
        out: &mut Vec<rollup::metric::MetricBucket>,
    ) -> Result<Option<(i64, i64)>> {
        let Some(tier) = self.tiers.iter().position(|&t| t == interval) else {
            return Ok(None);
        };
        let listed = self.metrics.as_deref().unwrap_or_default();
        let Ok(i) =
            listed.binary_search_by(|m| (&*m.namespace, &*m.metric).cmp(&(namespace, metric)))
        else {
            return Ok(None);
        };
        let Some(listing) = listed.get(i) else {
            return Ok(None);
        };
        let at = listing.offset + 8;
        let read = read_tier(
            self.data(),
            listing.offset,
            tier,
            "metric rollups",
            |buckets| {
                let most = most_buckets(listing.min_t, listing.max_t, interval);
                rollup::metric::decode(buckets, interval, most, out)
            },
        );
        read.map_err(|e| e.in_file(&self.path, at))?;
        Ok(Some((listing.min_t, listing.max_t)))
    }

    /// Reads a byte of every cache line of `series`' rollup block, if it has one, and
    /// returns their sum: a caller about to read several segments' blocks touches them all
    /// first, so that their cache misses overlap instead of following one another.
    pub fn touch_rollup(&self, series: SegmentSeries<'_>) -> u8 {
        let Some(offset) = self.rollup_offset(series).ok().flatten() else {
            return 0;
        };
        let data = self.data();
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let Some(header) = data.get(start..start.saturating_add(4)) else {
            return 0;
        };
        let len = u32::from_le_bytes(header.try_into().unwrap_or_default()) as usize;
        let end = start.saturating_add(8).saturating_add(len).min(data.len());
        (start..end)
            .step_by(64)
            .filter_map(|i| data.get(i))
            .fold(0u8, |sum, &b| sum.wrapping_add(b))
    }

    /// Where the rollup block of `series`, one of this segment's, starts; `None` when it
    /// has none.
    pub fn rollup_offset(&self, series: SegmentSeries<'_>) -> Result<Option<u64>> {
        match series.rollup() {
            None => Ok(None),
            Some(RollupRef::At(offset)) => Ok(Some(offset)),
            // The block after a chunk's: past its length field, checksum and bytes.
            Some(RollupRef::AfterChunk(chunk)) => ByteReader::at(self.data(), chunk)
                .and_then(|mut r| r.u32_le())
                .map(|len| Some(chunk + 8 + u64::from(len)))
                .map_err(|e| e.in_file(&self.path, 0)),
            Some(RollupRef::Listed(local)) => {
                let Some(Directory { entries, width }) = self.directory else {
                    return Ok(None);
                };
                let at = entries + u64::from(local) * u64::from(width);
                // The directory was checked at open to hold an entry per series; an entry
                // read since is checked where it points (a block's bounds and checksum).
                let entry = ByteReader::at(&self.bytes, at).and_then(|mut r| {
                    if width == 8 {
                        r.u64_le()
                    } else {
                        r.u32_le().map(u64::from)
                    }
                });
                entry
                    .map(|offset| (offset != 0).then_some(offset))
                    .map_err(|e| e.in_file(&self.path, 0))
            }
        }
    }

    /// The region of chunk and rollup blocks: every block read lies whole inside it.
    fn data(&self) -> &[u8] {
        let data: &[u8] = &self.bytes;
        data.get(..self.data_end as usize).unwrap_or(data)
    }

    /// The raw bytes of one chunk, checksum verified.
    pub fn chunk_bytes(&self, meta: &ChunkMeta) -> Result<&[u8]> {
        ByteReader::at(self.data(), meta.offset)
            .and_then(|mut r| r.crc_block("chunk"))
            .map_err(|e| e.in_file(&self.path, 0))
    }

    /// The labels of every series, by local id, read again from the file.
    pub fn labels(&self) -> Result<Vec<Labels>> {
        if self.version >= 4 {
            let labels = self.index_labels().map_err(|e| e.in_file(&self.path, 0));
            self.release_tables();
            return labels;
        }
        let data: &[u8] = &self.bytes;
        let at = self.table_offset + 8;
        let table = block(
            data,
            self.table_offset,
            HEADER_LEN as u64,
            self.postings_offset,
        )
        .map_err(|e| e.in_file(&self.path, 0))?;
        let table = decompress(table).map_err(|e| e.in_file(&self.path, at))?;
        let (table, _) = parse_table(&table, self.table_offset, self.series.len(), self.version)
            .map_err(|e| e.in_file(&self.path, at))?;
        self.release_tables();
        Ok(table.labels.unwrap_or_default())
    }

    /// The postings stored in the file: label pair → local series ids.
    pub fn postings(&self) -> Result<BTreeMap<(String, String), RoaringBitmap>> {
        if self.version >= 4 {
            let postings = self
                .label_index()?
                .all_postings()
                .map_err(|e| self.index_error(e));
            self.release_tables();
            return postings;
        }
        let data: &[u8] = &self.bytes;
        let f = (data.len() - FOOTER_LEN) as u64;
        let at = self.postings_offset + 8;
        let payload =
            block(data, self.postings_offset, 0, f).map_err(|e| e.in_file(&self.path, 0))?;
        let payload = decompress(payload).map_err(|e| e.in_file(&self.path, at))?;
        let postings = parse_postings(&payload).map_err(|e| e.in_file(&self.path, at));
        self.release_tables();
        postings
    }

    /// Drops the process's mapping of the series table and the label index (see
    /// [`Bytes::release`]): read at open, and again only when a query needs series out of
    /// the head (the engine releases them again once a store has opened).
    pub fn release_tables(&self) {
        // From the rollup directory on (version 6): checked at open, then read an entry at
        // a time.
        self.bytes.release(self.data_end as usize, self.bytes.len());
    }

    /// Drops the process's mapping of the whole file (see [`Bytes::release`]): after a read
    /// of every series it holds, so that what was read stays in the page cache and not in
    /// the process's memory.
    pub fn release_pages(&self) {
        self.bytes.release(0, self.bytes.len());
    }

    /// Bytes of chunk data per namespace (what each department's data costs on disk).
    pub fn bytes_by_namespace(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        let bytes_of = self.series.namespace_bytes();
        for (namespace, &bytes) in self.series.namespaces().iter().zip(bytes_of) {
            *out.entry(namespace.to_string()).or_default() += bytes;
        }
        out
    }
}

struct Parsed {
    version: u32,
    flags: u32,
    seq: u64,
    samples: u64,
    min_t: i64,
    max_t: i64,
    table: Table,
    data_end: u64,
    directory: Option<Directory>,
    metrics: Option<Box<[MetricListing]>>,
    table_offset: u64,
    postings_offset: u64,
}

/// Decodes tier number `tier` of the checksummed block at `offset` (`what` names it in
/// errors), which holds each tier's bytes after their varint length, with `decode`, which
/// must read them all; the tiers before it are skipped whole. Error offsets are relative to
/// the block's payload.
fn read_tier(
    data: &[u8],
    offset: u64,
    tier: usize,
    what: &str,
    decode: impl FnOnce(&mut ByteReader<'_>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let block = ByteReader::at(data, offset)?.crc_block(what)?;
    let mut reader = ByteReader::new(block);
    for _ in 0..tier {
        let n = reader.len(reader.remaining(), "tier length")?;
        reader.bytes(n)?;
    }
    let n = reader.len(reader.remaining(), "tier length")?;
    let at = reader.position() as u64;
    let mut buckets = ByteReader::new(reader.bytes(n)?);
    decode(&mut buckets).map_err(|e| e.shifted(at))?;
    if !buckets.is_empty() {
        return Err(DecodeError::new(
            at + buckets.position() as u64,
            "trailing bytes after a tier's buckets",
        ));
    }
    Ok(())
}

/// Most buckets of `interval` ms that data within `[min_t, max_t]` may have: one per
/// interval the span meets, and never more than a reader holds for one series or metric.
fn most_buckets(min_t: i64, max_t: i64, interval: i64) -> usize {
    let span = (max_t.div_euclid(interval))
        .saturating_sub(min_t.div_euclid(interval))
        .saturating_add(1);
    usize::try_from(span).unwrap_or(0).min(MAX_TIER_BUCKETS)
}

/// The payload of the block at `offset`, which must lie in `[min, max)`.
fn block(data: &[u8], offset: u64, min: u64, max: u64) -> Result<&[u8], DecodeError> {
    if offset < min || offset.saturating_add(8) > max {
        return Err(DecodeError::new(
            offset,
            format!("block offset {offset} is outside [{min}, {max})"),
        ));
    }
    // A `max` past the end of the file bounds nothing more than the file itself does.
    let region = data.get(..max as usize).unwrap_or(data);
    ByteReader::at(region, offset)?.crc_block("block")
}

/// Largest decompressed metadata block accepted.
const MAX_METADATA: usize = 256 << 20;

/// Decompresses a metadata block: varint raw length, then zstd bytes.
fn decompress(body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut r = ByteReader::new(body);
    // zstd cannot expand more than about 1:1000 of real data; a larger claim is corruption.
    let max = MAX_METADATA.min(body.len().saturating_mul(1024));
    let raw_len = r.len(max, "decompressed block length")?;
    let at = r.position() as u64;
    let out = zstd::bulk::decompress(r.bytes(r.remaining())?, raw_len)
        .map_err(|e| DecodeError::new(at, format!("zstd: {e}")))?;
    if out.len() != raw_len {
        return Err(DecodeError::new(
            at,
            format!(
                "block decompressed to {} bytes, expected {raw_len}",
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// A segment's series table.
struct Table {
    series: SeriesTable,
    /// Bytes of rollup blocks (versions 3-5: summed from the table; later, the directory's).
    rollup_bytes: u64,
    /// Versions 1-3: the labels the table holds (version 4 keeps them in the label index).
    labels: Option<Vec<Labels>>,
}

/// Decodes the series table of a segment older than version 8 whose table starts at
/// `table_offset` (its chunk and rollup blocks lie in `[HEADER_LEN, table_offset)`, before
/// its directories), packing it into memory; returns it and the samples its chunks hold.
fn parse_table(
    payload: &[u8],
    table_offset: u64,
    expected: usize,
    version: u32,
) -> Result<(Table, u64), DecodeError> {
    let data_end = table_offset;
    let mut r = ByteReader::new(payload);
    let count = r.len(payload.len(), "series count")?;
    if count != expected {
        return Err(r.error(format!(
            "table holds {count} series, footer says {expected}"
        )));
    }
    let mut tiers = Vec::new();
    if version >= 3 {
        let n = r.len(MAX_TIERS, "tier count")?;
        for _ in 0..n {
            let at = r.position() as u64;
            let t = r.varint()?;
            if t == 0 || t > i64::MAX as u64 || tiers.contains(&(t as i64)) {
                return Err(DecodeError::new(at, format!("bad rollup tier {t}")));
            }
            tiers.push(t as i64);
        }
    }
    let mut data_end = data_end;
    let mut directory = None;
    if version >= 6 {
        directory = directory_offset(&mut r, &tiers, data_end, "rollup directory")?;
        // Chunk and rollup blocks lie before the directory.
        data_end = directory.unwrap_or(data_end);
    }
    let mut metrics = None;
    if version >= 7 {
        metrics = directory_offset(&mut r, &tiers, data_end, "metric directory")?;
    }
    // A block of `len` bytes at `offset` must lie whole in the data region.
    let inside = |offset: u64, len: u32| {
        offset >= HEADER_LEN as u64 && offset.saturating_add(8 + u64::from(len)) <= data_end
    };
    let mut rollup_bytes = 0u64;
    let mut builder = TableBuilder::with_capacity(count);
    let mut all_labels = Vec::with_capacity(count);
    // One series' chunks at a time, in one buffer: its count is the file's to claim.
    let mut chunks = Vec::new();
    for _ in 0..count {
        let at = r.position() as u64;
        let name = r.str(MAX_STR, "namespace")?;
        let namespace = builder
            .namespace(name)
            .map_err(|e| DecodeError::new(at, e))?;
        let labels = if version < 4 {
            Some(decode_labels(&mut r)?)
        } else {
            None
        };
        let nchunks = r.len(r.remaining(), "chunk count")?;
        chunks.clear();
        let mut chunks_end = None;
        let mut chunk_bytes = 0;
        // The writer cuts a series' samples, sorted and one per timestamp, into chunks:
        // they follow one another in time without overlapping, which readers rely on to
        // find the chunks of a time range by binary search.
        let mut previous_max_t = None;
        for _ in 0..nchunks {
            let offset = r.varint()?;
            let len = r.varint_u32("chunk length")?;
            let min_t = r.varint_i64()?;
            let max_t = min_t.wrapping_add(r.varint_i64()?);
            let samples = r.varint_u32("sample count")?;
            if samples == 0 || max_t < min_t {
                return Err(r.error(format!("chunk entry at {offset} is inconsistent")));
            }
            if previous_max_t.is_some_and(|previous| min_t <= previous) {
                return Err(r.error(format!(
                    "chunk at {offset} starts before the series' chunk before it ends"
                )));
            }
            previous_max_t = Some(max_t);
            if !inside(offset, len) {
                return Err(r.error(format!(
                    "chunk at {offset} of {len} bytes lies outside the data region"
                )));
            }
            chunks.push(ChunkMeta {
                offset,
                min_t,
                max_t,
                samples,
            });
            chunks_end = Some(offset + 8 + u64::from(len));
            // The chunk's block: its length and checksum, then the chunk.
            chunk_bytes += u64::from(len) + 8;
        }
        let mut rollup = None;
        if (3..6).contains(&version) {
            let offset = r.varint()?;
            let len = r.varint_u32("rollup block length")?;
            if offset != 0 {
                if tiers.is_empty() {
                    return Err(r.error("a rollup block in a segment without tiers"));
                }
                if !inside(offset, len) {
                    return Err(r.error(format!(
                        "rollup block at {offset} of {len} bytes lies outside the data region"
                    )));
                }
                rollup = Some(offset);
                rollup_bytes += u64::from(len) + 8;
            }
        }
        let decoded = Decoded {
            namespace,
            chunks: &chunks,
            chunk_bytes,
            rollup,
            chunks_end,
        };
        if !builder.push(decoded) {
            return Err(r.error("too many chunks"));
        }
        all_labels.extend(labels);
    }
    if !r.is_empty() {
        return Err(r.error("trailing bytes after the series table"));
    }
    let header = TableHeader {
        tiers,
        directory: directory.unwrap_or(0),
        metrics: metrics.unwrap_or(0),
    };
    let (series, total) = builder.finish(&header, table_offset)?;
    let table = Table {
        series,
        rollup_bytes,
        labels: (version < 4).then_some(all_labels),
    };
    Ok((table, total))
}

/// Reads the offset of a directory (`what`) of a segment with `tiers` from its series
/// table: `None` for 0, else a place in the data region before `data_end`.
fn directory_offset(
    r: &mut ByteReader<'_>,
    tiers: &[i64],
    data_end: u64,
    what: &str,
) -> Result<Option<u64>, DecodeError> {
    let at = r.position() as u64;
    let offset = r.varint()?;
    if offset == 0 {
        return Ok(None);
    }
    if tiers.is_empty() || offset < HEADER_LEN as u64 || offset >= data_end {
        return Err(DecodeError::new(
            at,
            format!("{what} at {offset} is misplaced"),
        ));
    }
    Ok(Some(offset))
}

/// Checks the rollup directory block at `offset` (before `table_offset`) of a segment of
/// `series` series; where its entries are, and the bytes of rollup blocks it counts.
fn parse_directory(
    data: &[u8],
    offset: u64,
    table_offset: u64,
    series: usize,
) -> Result<(Directory, u64), DecodeError> {
    let payload = block(data, offset, HEADER_LEN as u64, table_offset)?;
    let mut r = ByteReader::new(payload);
    let rollup_bytes = r.u64_le()?;
    let width = r.u8()?;
    let entries = series.saturating_mul(usize::from(width));
    if !matches!(width, 4 | 8) || r.remaining() != entries {
        return Err(DecodeError::new(
            offset,
            format!(
                "rollup directory of {} bytes, {width} a series, for {series} series",
                payload.len()
            ),
        ));
    }
    let directory = Directory {
        entries: offset + 8 + DIRECTORY_HEADER as u64,
        width,
    };
    Ok((directory, rollup_bytes))
}

/// Checks the metric directory block at `offset` (in the data region, which ends at
/// `data_end`): its entries sorted by namespace and name, each once, and their blocks'
/// places in the data region (their checksums are checked when read).
fn parse_metrics(
    data: &[u8],
    offset: u64,
    data_end: u64,
) -> Result<Box<[MetricListing]>, DecodeError> {
    let payload = block(data, offset, HEADER_LEN as u64, data_end)?;
    let at = offset + 8;
    let mut r = ByteReader::new(payload);
    let read = |r: &mut ByteReader<'_>| -> Result<Box<[MetricListing]>, DecodeError> {
        // Each entry takes at least five bytes.
        let n = r.len(r.remaining() / 5, "metric count")?;
        let mut listings: Vec<MetricListing> = Vec::with_capacity(n);
        for _ in 0..n {
            let entry_at = r.position() as u64;
            let namespace = r.str(MAX_STR, "namespace")?.into();
            let metric = r.str(MAX_STR, "metric name")?.into();
            let (min_t, max_t) = (r.varint_i64()?, r.varint_i64()?);
            let block_at = r.varint()?;
            let listing = MetricListing {
                namespace,
                metric,
                min_t,
                max_t,
                offset: block_at,
            };
            let ordered = listings
                .last()
                .is_none_or(|p| (&p.namespace, &p.metric) < (&listing.namespace, &listing.metric));
            if !ordered || min_t > max_t || block_at < HEADER_LEN as u64 || block_at >= offset {
                return Err(DecodeError::new(
                    entry_at,
                    format!("metric entry for {} is inconsistent", listing.metric),
                ));
            }
            listings.push(listing);
        }
        if !r.is_empty() {
            return Err(r.error("trailing bytes after the metric directory"));
        }
        Ok(listings.into())
    };
    read(&mut r).map_err(|e| e.shifted(at))
}

fn parse_postings(
    payload: &[u8],
) -> Result<BTreeMap<(String, String), RoaringBitmap>, DecodeError> {
    let mut r = ByteReader::new(payload);
    let count = r.len(payload.len(), "postings count")?;
    let mut out = BTreeMap::new();
    for _ in 0..count {
        let name = r.str(MAX_STR, "label name")?.to_owned();
        let value = r.str(MAX_STR, "label value")?.to_owned();
        let n = r.len(r.remaining(), "bitmap length")?;
        let at = r.position();
        let bitmap = RoaringBitmap::deserialize_from(r.bytes(n)?)
            .map_err(|e| DecodeError::new(at as u64, format!("bad roaring bitmap: {e}")))?;
        out.insert((name, value), bitmap);
    }
    Ok(out)
}
