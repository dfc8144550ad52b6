//! Segment files: immutable, columnar, one time partition of many series.
//!
//! ```text
//! offset            size   field
//! 0                 8      magic "IOCDBSEG"
//! 8                 4      format version, u32 LE (1)
//! 12                4      reserved, zero
//! 16                ...    chunk blocks, series after series:
//!                            u32 LE length | u32 LE CRC-32C of the chunk | chunk bytes
//!                   ...    rollup blocks (version 3): u32 LE length | u32 LE CRC-32C |
//!                            per tier, in the table's tier order: varint length | the
//!                            buckets as `codec/rollup.rs` encodes them.
//!                            Versions 3-5: each right after its series' chunks.
//!                            Version 6: in groups, each group after the chunks of its
//!                            series, a group every 4 MiB of data or so (see
//!                            `SegmentBuilder::cut_rollups`)
//!                   ...    (version 7, a segment with tiers) metric rollup blocks, one
//!                            per namespace and metric name: u32 LE length | u32 LE
//!                            CRC-32C | per tier: varint length | the metric's buckets as
//!                            `codec/rollup/metric.rs` encodes them
//! metrics_offset    ...    (version 7, with tiers) metric directory block: u32 LE length |
//!                            u32 LE CRC-32C | varint n | per metric, sorted by namespace
//!                            and name: str namespace | str name | zigzag min_t | zigzag
//!                            max_t (the time its data covers here) | varint block offset
//! directory_offset  ...    (version 6, a segment with tiers) rollup directory block:
//!                            u32 LE length | u32 LE CRC-32C | u64 LE bytes of the rollup
//!                            blocks | u8 width (4 or 8) | per series (local id order)
//!                            the offset of its rollup block, `width` bytes LE (0: none);
//!                            read in place
//! table_offset      ...    series table block: u32 LE length | u32 LE CRC-32C | payload.
//!                            Version 8: the table packed, uncompressed, read in place
//!                            (`segment/table.rs` gives the layout): per series its
//!                            namespace and where its chunks are, bit-packed.
//!                            Versions 1-7: varint raw length + zstd of:
//!                            varint series count,
//!                            (version 3) varint tier count | varint interval ms per tier,
//!                            (version 6) varint directory_offset (0: none),
//!                            (version 7) varint metrics_offset (0: none),
//!                            then per series (local id order):
//!                              str namespace | (versions 1-3) varint label count |
//!                                (str name, str value)*
//!                              varint chunk count, then per chunk:
//!                                varint block offset | varint chunk length
//!                                zigzag min_t | zigzag (max_t - min_t) | varint samples
//!                              (versions 3-5) varint rollup block offset (0: none) |
//!                                varint rollup block length
//! postings_offset   ...    versions 1-3, postings block: u32 LE length | u32 LE CRC-32C |
//!                            payload: varint entry count, then per label pair:
//!                              str name | str value | varint length | roaring bitmap of local ids
//!                          version 4, label index block: u32 LE length | u32 LE CRC-32C |
//!                            the index, uncompressed, read in place (`segment/index.rs`);
//!                            the series table then holds no labels
//! end - 68          68     footer:
//!                            u64 table_offset | u64 postings_offset | u64 seq
//!                            u64 sample count | i64 min_t | i64 max_t | u32 series count
//!                            u32 CRC-32C of the 52 bytes before it
//!                            u32 format version | 8 bytes magic "IOCDBSEG"
//! ```
//! All integers little-endian. Chunks of one series are in time order and do not overlap.
//! A segment is written to a temporary name, fsynced, then renamed; it never changes after.
//!
//! May use: `model`, `codec` (every read through [`crate::codec::bytes::ByteReader`]), `fs`,
//! `index` (the matchers the label index answers), errors.

mod index;
mod reader;
mod table;
mod writer;

pub use index::LabelIndex;
pub use reader::{ChunkMeta, Segment, SegmentSeries};
pub use writer::{
    SegmentBuilder, SegmentFile, SegmentInput, encode_segment, encode_segment_with_rollups,
    write_segment,
};

/// Magic at both ends of a segment file.
pub const MAGIC: &[u8; 8] = b"IOCDBSEG";
/// Current format version: 2 added the decimal value encoding (chunk encoding 4), 3 the
/// rollup blocks and the table's tier list, 4 the label index read in place (instead of
/// the compressed postings and the table's labels), 5 the rollup buckets in columns
/// (`codec/rollup/columns.rs`, instead of a record per bucket), 6 the rollup blocks in
/// groups with a directory (instead of each after its series' chunks), 7 the metric
/// rollups (`codec/rollup/metric.rs`) and their directory, 8 the series table packed and
/// read in place (`segment/table.rs`, instead of compressed and decoded into memory).
pub const VERSION: u32 = 8;
/// Oldest version still read: version 1 differs only in not using encoding 4, so the one
/// chunk decoder reads both; versions before 3 have no rollups.
pub const OLDEST_READABLE_VERSION: u32 = 1;
/// Header flag (the u32 after the version, 0 in version 1): written by compaction.
pub const FLAG_COLD: u32 = 1;
/// Header length.
pub const HEADER_LEN: usize = 16;
/// Footer length.
pub const FOOTER_LEN: usize = 68;
/// Most samples written into one chunk.
pub const CHUNK_SAMPLES: usize = 2048;
/// Samples per chunk in cold (compacted) segments. Measured (BENCHMARKS.md, "Compression"):
/// 8,192 would store the province in a tenth fewer bytes but made the 6-hour panel over
/// 3,000 cameras 2.2× slower on compacted days (each short range decodes a whole chunk),
/// so cold chunks keep the flushed length; zstd and the cold encodings still apply.
pub const COLD_CHUNK_SAMPLES: usize = 2048;

#[cfg(test)]
mod tests;
