//! Reading a segment file. Opening checks magic, version, footer checksum, and the series
//! table and postings blocks (bounds and checksums); chunk blocks are checked when read.
//! Every error names the file and the offset.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use roaring::RoaringBitmap;

use super::{FLAG_COLD, FOOTER_LEN, HEADER_LEN, MAGIC, OLDEST_READABLE_VERSION, VERSION};
use crate::codec::bytes::{ByteReader, MAX_STR};
use crate::codec::chunk;
use crate::codec::labels::decode_labels;
use crate::fs::Bytes;
use crate::model::{Labels, Namespace, Sample};
use crate::{DecodeError, Result};

/// Where one chunk lies and what it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    /// Offset of the chunk's block (its length field).
    pub offset: u64,
    /// Length of the chunk bytes.
    pub len: u32,
    /// Earliest timestamp.
    pub min_t: i64,
    /// Latest timestamp.
    pub max_t: i64,
    /// Samples.
    pub samples: u32,
}

/// Where one series' rollup block lies (format version 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollupRef {
    /// Offset of the block (its length field).
    pub offset: u64,
    /// Length of the block's bytes.
    pub len: u32,
}

/// One series in a segment: where its chunks and rollups are. Its labels stay on disk
/// ([`Segment::labels`]): the engine registers them once in the head, and a copy per segment
/// would cost every series' labels again with every flush.
#[derive(Debug, Clone, Copy)]
pub struct SegmentSeries<'a> {
    /// Namespace.
    pub namespace: &'a Namespace,
    /// Chunks in time order.
    pub chunks: &'a [ChunkMeta],
    /// Its rollups, when the segment has tiers and the series a live sample.
    pub rollup: Option<RollupRef>,
}

/// The series table as an open segment keeps it: flat arrays with no allocation of its own
/// per series, since every open segment holds one entry per series of its partition (a
/// `Vec` of chunks, a namespace and an `Option` per series cost ≈ 150 bytes each, 12 × the
/// series of a province day after one flush).
#[derive(Debug, Default)]
struct SeriesTable {
    /// Each distinct namespace once.
    namespaces: Vec<Namespace>,
    /// Per namespace (as `namespaces`), the bytes of its series' chunk blocks: what
    /// `Stats` reports on every call, summed once here rather than per series each time.
    namespace_bytes: Vec<u64>,
    /// Per series (local id): its namespace, an index into `namespaces`.
    namespace_of: Box<[u32]>,
    /// Per series, where its chunks start in `chunks`, and one more entry for the end.
    chunk_start: Box<[u32]>,
    /// Every series' chunks, series after series.
    chunks: Box<[ChunkMeta]>,
    /// Per series, its rollup block (offset 0: none, as in the file); empty when the
    /// segment has none.
    rollups: Box<[RollupRef]>,
}

impl SeriesTable {
    fn len(&self) -> usize {
        self.namespace_of.len()
    }

    fn iter(&self) -> impl Iterator<Item = SegmentSeries<'_>> {
        // Every local id below the count has an entry (see `parse_table`).
        (0..self.len()).filter_map(|l| self.get(l))
    }

    fn get(&self, local: usize) -> Option<SegmentSeries<'_>> {
        let namespace = self
            .namespaces
            .get(*self.namespace_of.get(local)? as usize)?;
        let (start, end) = (
            *self.chunk_start.get(local)? as usize,
            *self.chunk_start.get(local + 1)? as usize,
        );
        Some(SegmentSeries {
            namespace,
            chunks: self.chunks.get(start..end)?,
            rollup: self.rollups.get(local).copied().filter(|r| r.offset != 0),
        })
    }
}

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
    /// Rollup tiers (interval ms) every series with a rollup block has, in block order.
    pub tiers: Box<[i64]>,
    /// Written by compaction (header flag [`FLAG_COLD`]): its chunks are already as compact
    /// as compaction makes them, so a window holding it alone needs no rewrite.
    pub cold: bool,
    version: u32,
    table_offset: u64,
    postings_offset: u64,
}

impl Segment {
    /// Opens and checks a segment held in `bytes`, read from `path`.
    pub fn open(path: &Path, bytes: Bytes) -> Result<Segment> {
        Self::open_with_labels(path, bytes).map(|(segment, _)| segment)
    }

    /// Opens a segment like [`Segment::open`] and also returns its series' labels, by
    /// local id, from the same read of the series table (for registering them at open).
    pub fn open_with_labels(path: &Path, bytes: Bytes) -> Result<(Segment, Vec<Labels>)> {
        Self::parse(&bytes)
            .map(|p| {
                let segment = Segment {
                    path: path.to_path_buf(),
                    bytes: bytes.clone(),
                    seq: p.seq,
                    samples: p.samples,
                    min_t: p.min_t,
                    max_t: p.max_t,
                    series: p.series,
                    tiers: p.tiers,
                    cold: p.flags & FLAG_COLD != 0,
                    version: p.version,
                    table_offset: p.table_offset,
                    postings_offset: p.postings_offset,
                };
                // The series table and the postings were read once, into memory.
                segment.release_tables();
                (segment, p.labels)
            })
            .map_err(|e| e.in_file(path, 0))
    }

    fn parse(data: &[u8]) -> Result<Parsed, DecodeError> {
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
        let table = block(data, table_offset, HEADER_LEN as u64, table_end)?;
        let table_at = table_offset + 8;
        let table = decompress(table).map_err(|e| e.shifted(table_at))?;
        let (tiers, series, labels) = parse_table(&table, table_offset, series_count, version)
            .map_err(|e| DecodeError::new(table_at, format!("series table: {}", e.reason)))?;
        block(data, postings_offset, table_end, f as u64)?;
        let mut total = 0u64;
        for s in series.iter() {
            for c in s.chunks {
                let end = c.offset + 8 + u64::from(c.len);
                if c.offset < HEADER_LEN as u64 || end > table_offset {
                    return Err(DecodeError::new(
                        table_at,
                        format!(
                            "chunk at {} of {} bytes lies outside the data region",
                            c.offset, c.len
                        ),
                    ));
                }
                total += u64::from(c.samples);
            }
            if let Some(r) = s.rollup
                && (r.offset < HEADER_LEN as u64
                    || r.offset.saturating_add(8 + u64::from(r.len)) > table_offset)
            {
                return Err(DecodeError::new(
                    table_at,
                    format!(
                        "rollup block at {} of {} bytes lies outside the data region",
                        r.offset, r.len
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
            series,
            tiers,
            labels,
            table_offset,
            postings_offset,
        })
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

    /// Appends `series`' buckets of the tier of `interval` ms to `out`, checking the
    /// block's checksum; false (nothing appended) when the segment has no such tier or the
    /// series no rollups.
    pub fn read_rollup(
        &self,
        series: SegmentSeries<'_>,
        interval: i64,
        out: &mut Vec<crate::codec::rollup::Bucket>,
    ) -> Result<bool> {
        let (Some(r), Some(tier)) = (
            series.rollup,
            self.tiers.iter().position(|&t| t == interval),
        ) else {
            return Ok(false);
        };
        let data: &[u8] = &self.bytes;
        let at = r.offset + 8;
        let mut read = || -> Result<(), DecodeError> {
            let block = ByteReader::at(data, r.offset)?.crc_block("rollup block")?;
            if block.len() != r.len as usize {
                return Err(DecodeError::new(
                    0,
                    "rollup block length differs from the table",
                ));
            }
            let mut reader = ByteReader::new(block);
            // Each tier's bytes follow their length: the tiers before it are skipped whole.
            for _ in 0..tier {
                let n = reader.len(reader.remaining(), "rollup tier length")?;
                reader.bytes(n)?;
            }
            let n = reader.len(reader.remaining(), "rollup tier length")?;
            let at = reader.position() as u64;
            let mut buckets = ByteReader::new(reader.bytes(n)?);
            crate::codec::rollup::decode(&mut buckets, interval, out).map_err(|e| e.shifted(at))?;
            if !buckets.is_empty() {
                return Err(DecodeError::new(
                    at + buckets.position() as u64,
                    "trailing bytes after a tier's buckets",
                ));
            }
            Ok(())
        };
        read().map_err(|e| e.in_file(&self.path, at))?;
        Ok(true)
    }

    /// The raw bytes of one chunk, checksum verified.
    pub fn chunk_bytes(&self, meta: &ChunkMeta) -> Result<&[u8]> {
        let data: &[u8] = &self.bytes;
        let bytes = ByteReader::at(data, meta.offset)
            .and_then(|mut r| r.crc_block("chunk"))
            .map_err(|e| e.in_file(&self.path, 0))?;
        if bytes.len() != meta.len as usize {
            return Err(DecodeError::new(
                meta.offset,
                format!(
                    "chunk length {} != {} in the series table",
                    bytes.len(),
                    meta.len
                ),
            )
            .in_file(&self.path, 0));
        }
        Ok(bytes)
    }

    /// The labels of every series, by local id, read again from the file's series table.
    pub fn labels(&self) -> Result<Vec<Labels>> {
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
        let (_, _, labels) =
            parse_table(&table, self.table_offset, self.series.len(), self.version)
                .map_err(|e| e.in_file(&self.path, at))?;
        self.release_tables();
        Ok(labels)
    }

    /// The postings stored in the file: label pair → local series ids.
    pub fn postings(&self) -> Result<BTreeMap<(String, String), RoaringBitmap>> {
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

    /// Drops the process's mapping of the series table and postings (see
    /// [`Bytes::release`]): they are read once, into memory, by whoever asks for them.
    fn release_tables(&self) {
        self.bytes
            .release(self.table_offset as usize, self.bytes.len());
    }

    /// Bytes of chunk data per namespace (what each department's data costs on disk).
    pub fn bytes_by_namespace(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        let table = &self.series;
        for (namespace, &bytes) in table.namespaces.iter().zip(&table.namespace_bytes) {
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
    series: SeriesTable,
    tiers: Box<[i64]>,
    labels: Vec<Labels>,
    table_offset: u64,
    postings_offset: u64,
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

/// Most rollup tiers a segment may name.
const MAX_TIERS: usize = 16;

type Table = (Box<[i64]>, SeriesTable, Vec<Labels>);

fn parse_table(
    payload: &[u8],
    data_end: u64,
    expected: usize,
    version: u32,
) -> Result<Table, DecodeError> {
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
    let mut table = SeriesTable::default();
    let mut namespace_of = Vec::with_capacity(count);
    let mut chunk_start = Vec::with_capacity(count + 1);
    let mut chunks = Vec::with_capacity(count);
    let mut rollups = Vec::new();
    let mut all_labels = Vec::with_capacity(count);
    for local in 0..count {
        let at = r.position() as u64;
        let name = r.str(MAX_STR, "namespace")?;
        // A segment names few namespaces, each once.
        let namespace = match table.namespaces.iter().rposition(|n| n.as_str() == name) {
            Some(i) => i,
            None => {
                let ns = Namespace::new(name).map_err(|e| DecodeError::new(at, e))?;
                table.namespaces.push(ns);
                table.namespace_bytes.push(0);
                table.namespaces.len() - 1
            }
        };
        namespace_of.push(namespace as u32);
        let labels = decode_labels(&mut r)?;
        chunk_start.push(u32::try_from(chunks.len()).map_err(|_| r.error("too many chunks"))?);
        let nchunks = r.len(r.remaining(), "chunk count")?;
        for _ in 0..nchunks {
            let offset = r.varint()?;
            let len = r.varint_u32("chunk length")?;
            let min_t = r.varint_i64()?;
            let max_t = min_t.wrapping_add(r.varint_i64()?);
            let samples = r.varint_u32("sample count")?;
            if offset >= data_end || samples == 0 || max_t < min_t {
                return Err(r.error(format!("chunk entry at {offset} is inconsistent")));
            }
            chunks.push(ChunkMeta {
                offset,
                len,
                min_t,
                max_t,
                samples,
            });
            if let Some(bytes) = table.namespace_bytes.get_mut(namespace) {
                // The chunk's block: its length and checksum, then the chunk.
                *bytes += u64::from(len) + 8;
            }
        }
        if version >= 3 {
            let offset = r.varint()?;
            let len = r.varint_u32("rollup block length")?;
            if offset != 0 {
                if tiers.is_empty() {
                    return Err(r.error("a rollup block in a segment without tiers"));
                }
                // Only segments with rollups pay for the column.
                if rollups.is_empty() {
                    rollups.resize(local, RollupRef { offset: 0, len: 0 });
                }
            }
            if offset != 0 || !rollups.is_empty() {
                rollups.push(RollupRef { offset, len });
            }
        }
        all_labels.push(labels);
    }
    chunk_start.push(u32::try_from(chunks.len()).map_err(|_| r.error("too many chunks"))?);
    table.namespace_of = namespace_of.into();
    table.chunk_start = chunk_start.into();
    table.chunks = chunks.into();
    table.rollups = rollups.into();
    if !r.is_empty() {
        return Err(r.error("trailing bytes after the series table"));
    }
    Ok((tiers.into(), table, all_labels))
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
