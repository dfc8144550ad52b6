//! Writing a segment file (format in the parent module's doc).

use std::collections::BTreeMap;
use std::path::Path;

use roaring::RoaringBitmap;

use super::{CHUNK_SAMPLES, FOOTER_LEN, HEADER_LEN, MAGIC, VERSION};
use crate::Result;
use crate::codec::chunk;
use crate::codec::labels::encode_labels;
use crate::codec::varint::{put_i64, put_str, put_u64};
use crate::error::IoContext;
use crate::fs::Vfs;
use crate::model::{Labels, Namespace, Sample};

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

/// Encodes the segment in memory: the whole file's bytes.
pub fn encode_segment(seq: u64, series: &[SegmentInput]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + series.len() * 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());

    let mut table = Vec::new();
    put_u64(&mut table, series.len() as u64);
    let mut postings: BTreeMap<(&str, &str), RoaringBitmap> = BTreeMap::new();
    let (mut samples, mut min_t, mut max_t) = (0u64, i64::MAX, i64::MIN);
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    for (local, s) in series.iter().enumerate() {
        put_str(&mut table, s.namespace.as_str());
        encode_labels(&mut table, &s.labels);
        for l in s.labels.iter() {
            postings
                .entry((&l.name, &l.value))
                .or_default()
                .insert(local as u32);
        }
        let chunks: Vec<&[Sample]> = s.samples.chunks(CHUNK_SAMPLES).collect();
        put_u64(&mut table, chunks.len() as u64);
        for c in chunks {
            ts.clear();
            vs.clear();
            ts.extend(c.iter().map(|s| s.t));
            vs.extend(c.iter().map(|s| s.v));
            let bytes = chunk::encode(&ts, &vs);
            let offset = out.len() as u64;
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&crc32c::crc32c(&bytes).to_le_bytes());
            out.extend_from_slice(&bytes);
            let (first, last) = (
                ts.first().copied().unwrap_or(0),
                ts.last().copied().unwrap_or(0),
            );
            put_u64(&mut table, offset);
            put_u64(&mut table, bytes.len() as u64);
            put_i64(&mut table, first);
            put_i64(&mut table, last.wrapping_sub(first));
            put_u64(&mut table, c.len() as u64);
            samples += c.len() as u64;
            min_t = min_t.min(first);
            max_t = max_t.max(last);
        }
    }
    let table_offset = out.len() as u64;
    put_compressed_block(&mut out, &table);

    let mut post = Vec::new();
    put_u64(&mut post, postings.len() as u64);
    let mut bitmap = Vec::new();
    for ((name, value), ids) in &postings {
        put_str(&mut post, name);
        put_str(&mut post, value);
        bitmap.clear();
        // Writing into a Vec cannot fail.
        let _ = ids.serialize_into(&mut bitmap);
        put_u64(&mut post, bitmap.len() as u64);
        post.extend_from_slice(&bitmap);
    }
    let postings_offset = out.len() as u64;
    put_compressed_block(&mut out, &post);

    if samples == 0 {
        (min_t, max_t) = (0, 0);
    }
    let footer_start = out.len();
    out.extend_from_slice(&table_offset.to_le_bytes());
    out.extend_from_slice(&postings_offset.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&samples.to_le_bytes());
    out.extend_from_slice(&min_t.to_le_bytes());
    out.extend_from_slice(&max_t.to_le_bytes());
    out.extend_from_slice(&(series.len() as u32).to_le_bytes());
    let crc = crc32c::crc32c(out.get(footer_start..).unwrap_or(&[]));
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(MAGIC);
    debug_assert_eq!(out.len() - footer_start, FOOTER_LEN);
    out
}

/// A metadata block: labels repeat across series (names, communes, domains), so zstd
/// shrinks them several times; chunk data is already bit-packed and stays as it is.
fn put_compressed_block(out: &mut Vec<u8>, payload: &[u8]) {
    let mut body = Vec::with_capacity(payload.len() / 4 + 16);
    put_u64(&mut body, payload.len() as u64);
    // Compressing into memory cannot fail short of allocation failure.
    body.extend(zstd::bulk::compress(payload, 3).unwrap_or_default());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
}

/// Writes a segment durably at `path`: temporary name, fsync, rename. The caller fsyncs the
/// directory once after writing all segments of a flush.
pub fn write_segment(vfs: &dyn Vfs, path: &Path, seq: u64, series: &[SegmentInput]) -> Result<u64> {
    let bytes = encode_segment(seq, series);
    let tmp = path.with_extension(crate::fs::layout::SEGMENT_TMP_EXT);
    let mut file = vfs.create(&tmp).at(&tmp)?;
    file.write_all(&bytes).at(&tmp)?;
    file.sync().at(&tmp)?;
    drop(file);
    vfs.rename(&tmp, path).at(path)?;
    Ok(bytes.len() as u64)
}
