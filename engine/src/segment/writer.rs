//! Writing a segment file (format in the parent module's doc).

use std::path::Path;

use super::index::IndexBuilder;
use super::reader::ChunkMeta;
use super::table::{Decoded, TableBuilder, TableHeader};
use super::{CHUNK_SAMPLES, COLD_CHUNK_SAMPLES, FLAG_COLD, FOOTER_LEN, HEADER_LEN, MAGIC, VERSION};
use crate::Result;
use crate::codec::chunk;
use crate::codec::rollup;
use crate::codec::rollup::metric::MetricRollup;
use crate::codec::varint::{put_i64, put_str, put_u64};
use crate::error::IoContext;
use crate::fs::Vfs;
use crate::model::{Labels, METRIC_NAME, Namespace, Sample};
use std::collections::BTreeMap;

/// One series' samples for a segment: sorted by time, one sample per timestamp.
#[derive(Debug, Clone)]
pub struct SegmentInput {
    /// Namespace.
    pub namespace: Namespace,
    /// Labels.
    pub labels: Labels,
    /// Samples, strictly increasing in time.
    pub samples: Vec<Sample>,
}

/// Builds a segment one series at a time: each series' chunks are encoded into the file's
/// bytes as soon as it is added, so a flush holds the compressed segment and one series'
/// samples, never every series' samples at once.
#[derive(Debug)]
pub struct SegmentBuilder {
    seq: u64,
    /// The file's bytes not yet handed to [`SegmentFile`] (all of them without one).
    out: Vec<u8>,
    /// Bytes before `out`, already written.
    written: u64,
    /// Where each series' chunks are: the series table.
    table: TableBuilder,
    /// One series' chunks' places, while it is added.
    chunks: Vec<ChunkMeta>,
    /// The series' labels and postings, written as the label index.
    index: IndexBuilder,
    series: u32,
    samples: u64,
    min_t: i64,
    max_t: i64,
    ts: Vec<i64>,
    vs: Vec<f64>,
    /// Whether chunks are encoded cold: zstd-compressed where that saves an eighth
    /// ([`chunk::encode_cold`]).
    compress: bool,
    /// Rollup tiers (interval ms) summarised for every series.
    tiers: Vec<i64>,
    /// Rollup blocks of the series added since the last [`SegmentBuilder::cut_rollups`],
    /// written together after their chunks.
    pending_rollups: Vec<u8>,
    /// Those series (local id) and where their block starts in `pending_rollups`.
    pending: Vec<(u32, u64)>,
    /// Where the data since the last cut starts in the file.
    group_start: u64,
    /// Per series (local id), where its rollup block is (0: none): the rollup directory.
    directory: Vec<u64>,
    /// Bytes of the rollup blocks written.
    rollup_bytes: u64,
    /// Per namespace, per metric name, its series' rollups folded together, one per tier
    /// (written as metric rollups at the end).
    metrics: BTreeMap<String, BTreeMap<String, MetricEntry>>,
}

/// One metric's rollups being built, and the time its series' data covers.
#[derive(Debug)]
struct MetricEntry {
    tiers: Vec<MetricRollup>,
    min_t: i64,
    max_t: i64,
}

/// Chunk and rollup bytes after which a builder writes the rollup blocks gathered so far
/// (see [`SegmentBuilder::cut_rollups`]).
const ROLLUP_GROUP_BYTES: u64 = 4 << 20;

impl SegmentBuilder {
    /// A segment of compaction `seq`: cold data, read less often than it is kept, so its
    /// chunks are [`COLD_CHUNK_SAMPLES`] long and zstd-compressed where that pays.
    pub fn cold(seq: u64) -> Self {
        let mut builder = Self::new(seq);
        builder.compress = true;
        if let Some(flags) = builder.out.get_mut(12..16) {
            flags.copy_from_slice(&FLAG_COLD.to_le_bytes());
        }
        builder
    }

    /// A segment of flush `seq`.
    pub fn new(seq: u64) -> Self {
        let mut out = Vec::with_capacity(HEADER_LEN + 4096);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        SegmentBuilder {
            seq,
            out,
            written: 0,
            table: TableBuilder::default(),
            chunks: Vec::new(),
            index: IndexBuilder::default(),
            series: 0,
            samples: 0,
            min_t: i64::MAX,
            max_t: i64::MIN,
            ts: Vec::new(),
            vs: Vec::new(),
            compress: false,
            tiers: Vec::new(),
            pending_rollups: Vec::new(),
            pending: Vec::new(),
            group_start: HEADER_LEN as u64,
            directory: Vec::new(),
            rollup_bytes: 0,
            metrics: BTreeMap::new(),
        }
    }

    /// Summarises every series added into rollups of these tiers (interval ms, each
    /// positive).
    pub fn with_rollups(mut self, tiers: &[i64]) -> Self {
        self.tiers = tiers.iter().copied().filter(|&t| t > 0).collect();
        self
    }

    /// Adds one series: `samples` sorted by time, one per timestamp, summarised into the
    /// builder's rollup tiers.
    pub fn add(&mut self, namespace: &Namespace, labels: &Labels, samples: &[Sample]) {
        let buckets: Vec<Vec<rollup::Bucket>> = self
            .tiers
            .iter()
            .map(|&interval| {
                let mut tier = Vec::new();
                rollup::summarize(samples, interval, &mut tier);
                tier
            })
            .collect();
        self.add_with_rollups(namespace, labels, samples, &buckets);
    }

    /// Adds one series with its rollups given, one list per tier of the builder, sorted by
    /// start (compaction keeps the buckets of samples that have expired): the series may
    /// have no samples left, only buckets.
    pub fn add_with_rollups(
        &mut self,
        namespace: &Namespace,
        labels: &Labels,
        samples: &[Sample],
        buckets: &[Vec<rollup::Bucket>],
    ) {
        let local = self.series;
        self.series += 1;
        self.index.add(
            namespace.as_str(),
            labels.iter().map(|l| (l.name.as_str(), l.value.as_str())),
        );
        let length = if self.compress {
            COLD_CHUNK_SAMPLES
        } else {
            CHUNK_SAMPLES
        };
        self.chunks.clear();
        let mut chunk_bytes = 0;
        for c in samples.chunks(length) {
            self.ts.clear();
            self.vs.clear();
            self.ts.extend(c.iter().map(|s| s.t));
            self.vs.extend(c.iter().map(|s| s.v));
            let bytes = if self.compress {
                chunk::encode_cold(&self.ts, &self.vs)
            } else {
                chunk::encode(&self.ts, &self.vs)
            };
            let offset = self.offset();
            self.out
                .extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            self.out
                .extend_from_slice(&crc32c::crc32c(&bytes).to_le_bytes());
            self.out.extend_from_slice(&bytes);
            let (first, last) = (
                self.ts.first().copied().unwrap_or(0),
                self.ts.last().copied().unwrap_or(0),
            );
            self.chunks.push(ChunkMeta {
                offset,
                min_t: first,
                max_t: last,
                samples: c.len() as u32,
            });
            chunk_bytes += bytes.len() as u64 + 8;
            self.samples += c.len() as u64;
            self.min_t = self.min_t.min(first);
            self.max_t = self.max_t.max(last);
        }
        // A namespace is valid by construction, and a segment holds fewer chunks than a
        // `u32` counts (a chunk block takes at least 9 bytes of a file below 2^40).
        let listed = self.table.namespace(namespace.as_str()).unwrap_or_default();
        self.table.push(Decoded {
            namespace: listed,
            chunks: &self.chunks,
            chunk_bytes,
            rollup: None,
            chunks_end: None,
        });
        self.add_rollups(local, buckets);
        self.add_to_metric(namespace, labels, samples, buckets);
        let gathered = self.offset() - self.group_start + self.pending_rollups.len() as u64;
        if gathered >= ROLLUP_GROUP_BYTES {
            self.cut_rollups();
        }
    }

    /// Gathers series `local`'s rollup block (none for a series without tiers or without
    /// buckets).
    fn add_rollups(&mut self, local: u32, buckets: &[Vec<rollup::Bucket>]) {
        if !self.tiers.is_empty() {
            self.directory.push(0);
        }
        let mut block = Vec::new();
        let mut any = false;
        for (i, &interval) in self.tiers.iter().enumerate() {
            let tier = buckets.get(i).map_or(&[][..], Vec::as_slice);
            any |= !tier.is_empty();
            // The segment's bounds cover the samples buckets summarise (the same as the
            // chunks' unless those samples have expired and only their buckets are kept),
            // and the start of a bucket of stale markers alone: a reader bounds the
            // buckets it decodes by the intervals the bounds meet.
            for b in tier {
                self.min_t = self.min_t.min(b.first.t);
                self.max_t = self.max_t.max(b.last.t);
            }
            // Each tier's bytes after their length, so that a reader of one skips the others.
            let mut encoded = Vec::new();
            rollup::encode(tier, interval, &mut encoded);
            put_u64(&mut block, encoded.len() as u64);
            block.extend_from_slice(&encoded);
        }
        if !any {
            return;
        }
        self.pending
            .push((local, self.pending_rollups.len() as u64));
        self.pending_rollups
            .extend_from_slice(&(block.len() as u32).to_le_bytes());
        self.pending_rollups
            .extend_from_slice(&crc32c::crc32c(&block).to_le_bytes());
        self.pending_rollups.extend_from_slice(&block);
    }

    /// Folds a series' buckets into its metric's rollups, and widens the time the
    /// metric's data covers by its samples (stale markers included: they hide what other
    /// sources hold at their time) and by its buckets' samples (those whose samples have
    /// expired and only their buckets are kept). The times are the samples' own, not their
    /// buckets': two flushes' segments of one hour hold the metric at different times, so
    /// their buckets of that hour fold together.
    fn add_to_metric(
        &mut self,
        namespace: &Namespace,
        labels: &Labels,
        samples: &[Sample],
        buckets: &[Vec<rollup::Bucket>],
    ) {
        let Some(metric) = labels.get(METRIC_NAME).filter(|_| !self.tiers.is_empty()) else {
            return;
        };
        // Looked up by the borrowed names first: a segment's series are mostly of metrics
        // already met.
        let metrics = match self.metrics.get_mut(namespace.as_str()) {
            Some(metrics) => metrics,
            None => self
                .metrics
                .entry(namespace.as_str().to_owned())
                .or_default(),
        };
        let entry = match metrics.get_mut(metric) {
            Some(entry) => entry,
            None => metrics
                .entry(metric.to_owned())
                .or_insert_with(|| MetricEntry {
                    tiers: self.tiers.iter().map(|&t| MetricRollup::new(t)).collect(),
                    min_t: i64::MAX,
                    max_t: i64::MIN,
                }),
        };
        if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
            entry.min_t = entry.min_t.min(first.t);
            entry.max_t = entry.max_t.max(last.t);
        }
        for (rollup, tier) in entry.tiers.iter_mut().zip(buckets) {
            rollup.add(tier);
            if let (Some(first), Some(last)) = (tier.first(), tier.last()) {
                entry.min_t = entry.min_t.min(first.first.t);
                entry.max_t = entry.max_t.max(last.last.t);
            }
        }
    }

    /// Writes each metric's rollups as a block (per tier: varint length, then the buckets
    /// as `metric::encode` writes them), then the metric directory block listing them:
    /// varint n, then per metric in (namespace, name) order: str namespace | str name |
    /// zigzag min_t | zigzag max_t | varint block offset. Returns the directory's offset.
    fn write_metric_rollups(&mut self) -> u64 {
        // A metric whose series brought neither samples nor buckets holds nothing here: not
        // listed (a reader then reads its series, if any, one by one).
        let entries: Vec<(String, String, MetricEntry)> = std::mem::take(&mut self.metrics)
            .into_iter()
            .flat_map(|(namespace, metrics)| {
                metrics
                    .into_iter()
                    .map(move |(metric, entry)| (namespace.clone(), metric, entry))
            })
            .filter(|(_, _, entry)| entry.min_t <= entry.max_t)
            .collect();
        let mut listing = Vec::new();
        put_u64(&mut listing, entries.len() as u64);
        for (namespace, metric, entry) in entries {
            let mut block = Vec::new();
            for (rollup, &interval) in entry.tiers.iter().zip(&self.tiers) {
                let mut encoded = Vec::new();
                rollup::metric::encode(&rollup.buckets(), interval, &mut encoded);
                put_u64(&mut block, encoded.len() as u64);
                block.extend_from_slice(&encoded);
            }
            put_str(&mut listing, &namespace);
            put_str(&mut listing, &metric);
            put_i64(&mut listing, entry.min_t);
            put_i64(&mut listing, entry.max_t);
            put_u64(&mut listing, self.offset());
            self.put_block(&block);
        }
        let offset = self.offset();
        self.put_block(&listing);
        offset
    }

    /// Appends a block: u32 length, u32 CRC-32C, the payload.
    fn put_block(&mut self, payload: &[u8]) {
        self.out
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.out
            .extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
        self.out.extend_from_slice(payload);
    }

    /// Writes the rollup blocks gathered since the last cut, one after another, and notes
    /// where each is in the directory. A long-range panel reads every series' rollups and
    /// no chunk: kept together, a few megabytes of chunks apart at most, its reads map a
    /// few pages instead of one for each series (and touch no chunk to find them).
    fn cut_rollups(&mut self) {
        let base = self.offset();
        for (local, at) in self.pending.drain(..) {
            if let Some(entry) = self.directory.get_mut(local as usize) {
                *entry = base + at;
            }
        }
        self.out.extend_from_slice(&self.pending_rollups);
        self.rollup_bytes += self.pending_rollups.len() as u64;
        self.pending_rollups.clear();
        self.group_start = self.offset();
    }

    /// Where the next byte goes in the file.
    fn offset(&self) -> u64 {
        self.written + self.out.len() as u64
    }

    /// The whole file's bytes (or what [`SegmentFile`] has not written of them): data,
    /// rollup directory, series table, label index, footer.
    pub fn finish(mut self) -> Vec<u8> {
        self.cut_rollups();
        let metrics_offset = if self.tiers.is_empty() {
            0
        } else {
            self.write_metric_rollups()
        };
        let SegmentBuilder {
            seq,
            mut out,
            written,
            table: body,
            index,
            series,
            samples,
            mut min_t,
            mut max_t,
            tiers,
            directory,
            rollup_bytes,
            ..
        } = self;
        // The directory: with tiers, every series' entry; read in place.
        let directory_offset = if tiers.is_empty() {
            0
        } else {
            let offset = written + out.len() as u64;
            let wide = directory.iter().any(|&o| o > u64::from(u32::MAX));
            let mut payload = Vec::with_capacity(9 + directory.len() * 8);
            payload.extend_from_slice(&rollup_bytes.to_le_bytes());
            payload.push(if wide { 8 } else { 4 });
            for o in directory {
                if wide {
                    payload.extend_from_slice(&o.to_le_bytes());
                } else {
                    payload.extend_from_slice(&(o as u32).to_le_bytes());
                }
            }
            out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
            out.extend_from_slice(&payload);
            offset
        };
        // Packed and uncompressed: read in place (`segment/table.rs`).
        let table_offset = written + out.len() as u64;
        let header = TableHeader {
            tiers,
            directory: directory_offset,
            metrics: metrics_offset,
        };
        let table = body.encode(&header).unwrap_or_default();
        out.extend_from_slice(&(table.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&table).to_le_bytes());
        out.extend_from_slice(&table);

        // Uncompressed: read in place (`segment/index.rs`).
        let index = index.finish();
        let postings_offset = written + out.len() as u64;
        out.extend_from_slice(&(index.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&index).to_le_bytes());
        out.extend_from_slice(&index);

        if min_t > max_t {
            (min_t, max_t) = (0, 0);
        }
        let footer_start = out.len();
        out.extend_from_slice(&table_offset.to_le_bytes());
        out.extend_from_slice(&postings_offset.to_le_bytes());
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(&samples.to_le_bytes());
        out.extend_from_slice(&min_t.to_le_bytes());
        out.extend_from_slice(&max_t.to_le_bytes());
        out.extend_from_slice(&series.to_le_bytes());
        let crc = crc32c::crc32c(out.get(footer_start..).unwrap_or(&[]));
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(MAGIC);
        debug_assert_eq!(out.len() - footer_start, FOOTER_LEN);
        out
    }
}

/// Encodes a whole segment in memory from its series (tests and fixtures; flushes use
/// [`SegmentBuilder`] directly).
pub fn encode_segment(seq: u64, series: &[SegmentInput]) -> Vec<u8> {
    encode_segment_with_rollups(seq, series, &[])
}

/// [`encode_segment`] with rollups of `tiers` (interval ms).
pub fn encode_segment_with_rollups(seq: u64, series: &[SegmentInput], tiers: &[i64]) -> Vec<u8> {
    let mut builder = SegmentBuilder::new(seq).with_rollups(tiers);
    for s in series {
        builder.add(&s.namespace, &s.labels, &s.samples);
    }
    builder.finish()
}

/// Largest single write of a segment file. Linux keeps a file's page cache in folios as
/// large as the writes that filled it (up to 2 MiB) and recent kernels (6.18 here) map a whole
/// folio into a process on its first touch: a segment written in one call was mapped whole by the
/// reader that opened it for its footer and tables (measured: every segment of a flushed
/// province day resident, ≈ 50 MiB of the server's RSS, `BENCHMARKS.md` "Memory at
/// flush"). In pieces of 64 KiB, a read maps at most the 64 KiB around it, as for a file
/// read from disk; a 36 MB segment takes 576 calls.
const WRITE_PIECE: usize = 64 << 10;

/// Writes a segment's bytes durably at `path`: temporary name, fsync, rename. The caller
/// fsyncs the directory once after writing all segments of a flush.
pub fn write_segment(vfs: &dyn Vfs, path: &Path, bytes: &[u8]) -> Result<u64> {
    let (file, tmp) = create_tmp(vfs, path)?;
    write_pieces(&*file, bytes, &tmp)?;
    publish(vfs, file, &tmp, path)?;
    Ok(bytes.len() as u64)
}

/// A segment written to its file while it is built, a few MiB at a time: a compacted
/// month of the province is gigabytes, which [`SegmentBuilder`] alone would hold whole.
/// Durable as [`write_segment`] (temporary name until [`SegmentFile::finish`]).
#[derive(Debug)]
pub struct SegmentFile {
    builder: SegmentBuilder,
    file: Box<dyn crate::fs::VfsFile>,
    tmp: std::path::PathBuf,
    path: std::path::PathBuf,
}

/// Bytes a [`SegmentFile`] gathers before writing them.
const SPILL_BYTES: usize = 4 << 20;

impl SegmentFile {
    /// Starts the file of `builder`'s segment at `path` (under a temporary name).
    pub fn create(vfs: &dyn Vfs, path: &Path, builder: SegmentBuilder) -> Result<Self> {
        let (file, tmp) = create_tmp(vfs, path)?;
        Ok(SegmentFile {
            builder,
            file,
            tmp,
            path: path.to_path_buf(),
        })
    }

    /// [`SegmentBuilder::add_with_rollups`], writing what has gathered.
    pub fn add_with_rollups(
        &mut self,
        namespace: &Namespace,
        labels: &Labels,
        samples: &[Sample],
        buckets: &[Vec<rollup::Bucket>],
    ) -> Result<()> {
        self.builder
            .add_with_rollups(namespace, labels, samples, buckets);
        if self.builder.out.len() >= SPILL_BYTES {
            write_pieces(&*self.file, &self.builder.out, &self.tmp)?;
            self.builder.written += self.builder.out.len() as u64;
            self.builder.out.clear();
        }
        Ok(())
    }

    /// Writes the rest, syncs and renames the file into place; its size.
    pub fn finish(self, vfs: &dyn Vfs) -> Result<u64> {
        let SegmentFile {
            builder,
            file,
            tmp,
            path,
        } = self;
        let written = builder.written;
        let tail = builder.finish();
        write_pieces(&*file, &tail, &tmp)?;
        publish(vfs, file, &tmp, &path)?;
        Ok(written + tail.len() as u64)
    }

    /// Removes the unfinished file (after a failure; the next open would otherwise).
    pub fn abandon(self, vfs: &dyn Vfs) {
        drop(self.file);
        let _ = vfs.remove(&self.tmp);
    }
}

fn create_tmp(
    vfs: &dyn Vfs,
    path: &Path,
) -> Result<(Box<dyn crate::fs::VfsFile>, std::path::PathBuf)> {
    let tmp = path.with_extension(crate::fs::layout::SEGMENT_TMP_EXT);
    let file = vfs.create(&tmp).at(&tmp)?;
    Ok((file, tmp))
}

fn write_pieces(file: &dyn crate::fs::VfsFile, bytes: &[u8], tmp: &Path) -> Result<()> {
    for piece in bytes.chunks(WRITE_PIECE) {
        file.write_all(piece).at(tmp)?;
    }
    Ok(())
}

fn publish(
    vfs: &dyn Vfs,
    file: Box<dyn crate::fs::VfsFile>,
    tmp: &Path,
    path: &Path,
) -> Result<()> {
    file.sync().at(tmp)?;
    drop(file);
    vfs.rename(tmp, path).at(path)?;
    Ok(())
}
