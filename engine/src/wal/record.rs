//! WAL records: what a frame's payload means. Each record kind has an encoder and a decoder
//! that mirror each other, and [`series_defs_frame`] / [`samples_frame`] give the whole
//! framed record the writer appends.
//!
//! ```text
//! kind 1, series definitions:
//!   varint count, then per series:
//!     varint wal_ref | str namespace | varint label_count | (str name, str value)*
//! kind 2, samples:
//!   varint series_count, then per series:
//!     varint wal_ref | varint n | n × (i64 LE timestamp, u64 LE value bits)
//! ```
//! (`str` = varint length + UTF-8 bytes.) A `wal_ref` is only meaningful inside the file
//! that defines it.

use super::frame;
use crate::DecodeError;
use crate::codec::bytes::{ByteReader, MAX_STR};
use crate::codec::labels::{decode_labels, encode_labels};
use crate::codec::varint::{put_str, put_u64};
use crate::model::{Labels, Namespace, Sample};

/// Kind byte of a series-definitions record.
pub const KIND_SERIES: u8 = 1;
/// Kind byte of a samples record.
pub const KIND_SAMPLES: u8 = 2;

/// A series definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesDef {
    /// Reference used by sample records in the same file.
    pub wal_ref: u32,
    /// Namespace.
    pub namespace: Namespace,
    /// Labels.
    pub labels: Labels,
}

/// One definition to encode, borrowed from the series it defines.
#[derive(Debug, Clone, Copy)]
pub struct SeriesDefRef<'a> {
    /// Reference used by sample records in the same file.
    pub wal_ref: u32,
    /// Namespace.
    pub namespace: &'a Namespace,
    /// Labels.
    pub labels: &'a Labels,
}

/// Encodes a definitions payload; the mirror of [`decode_series_defs`].
pub fn encode_series_defs(out: &mut Vec<u8>, defs: &[SeriesDefRef<'_>]) {
    put_u64(out, defs.len() as u64);
    for def in defs {
        put_u64(out, u64::from(def.wal_ref));
        put_str(out, def.namespace.as_str());
        encode_labels(out, def.labels);
    }
}

/// Decodes a definitions payload.
pub fn decode_series_defs(payload: &[u8]) -> Result<Vec<SeriesDef>, DecodeError> {
    let mut r = ByteReader::new(payload);
    let count = r.len(payload.len(), "series definition count")?;
    let mut defs = Vec::with_capacity(count);
    for _ in 0..count {
        let wal_ref = r.varint_u32("series ref")?;
        let at = r.position();
        let namespace = Namespace::new(r.str(MAX_STR, "namespace")?)
            .map_err(|e| DecodeError::new(at as u64, e))?;
        let labels = decode_labels(&mut r)?;
        defs.push(SeriesDef {
            wal_ref,
            namespace,
            labels,
        });
    }
    Ok(defs)
}

/// Encodes a samples payload, `(wal_ref, samples)` per series; the mirror of
/// [`decode_samples`].
pub fn encode_samples<'a>(
    out: &mut Vec<u8>,
    batch: impl ExactSizeIterator<Item = (u32, &'a [Sample])>,
) {
    put_u64(out, batch.len() as u64);
    for (wal_ref, samples) in batch {
        put_u64(out, u64::from(wal_ref));
        put_u64(out, samples.len() as u64);
        out.reserve(samples.len() * 16);
        for s in samples {
            out.extend_from_slice(&s.t.to_le_bytes());
            out.extend_from_slice(&s.v.to_bits().to_le_bytes());
        }
    }
}

/// Decodes a samples payload, calling `apply(wal_ref, samples)` per series.
pub fn decode_samples(
    payload: &[u8],
    mut apply: impl FnMut(u32, &mut dyn Iterator<Item = Sample>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut r = ByteReader::new(payload);
    let count = r.len(payload.len(), "series count")?;
    for _ in 0..count {
        let wal_ref = r.varint_u32("series ref")?;
        let n = r.len(r.remaining() / 16, "sample count")?;
        let mut samples = ByteReader::new(r.bytes(n * 16)?);
        let mut decoded = std::iter::from_fn(|| {
            // `n × 16` bytes were taken above, so each read of a pair succeeds.
            let t = samples.i64_le().ok()?;
            let v = samples.u64_le().ok()?;
            Some(Sample {
                t,
                v: f64::from_bits(v),
            })
        });
        apply(wal_ref, &mut decoded)?;
    }
    if !r.is_empty() {
        return Err(r.error("trailing bytes after the last series"));
    }
    Ok(())
}

/// A whole framed definitions record, ready to append.
pub fn series_defs_frame(defs: &[SeriesDefRef<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame::HEADER_LEN + 16 + defs.len() * 96);
    frame::encode_with(&mut out, KIND_SERIES, |payload| {
        encode_series_defs(payload, defs)
    });
    out
}

/// A whole framed samples record, ready to append.
pub fn samples_frame<'a>(
    batch: impl ExactSizeIterator<Item = (u32, &'a [Sample])> + Clone,
) -> Vec<u8> {
    let mut out = Vec::new();
    samples_frame_into(&mut out, batch);
    out
}

/// [`samples_frame`] into `out` (emptied first), encoded in place: the write path keeps
/// `out` for its next batch.
pub fn samples_frame_into<'a>(
    out: &mut Vec<u8>,
    batch: impl ExactSizeIterator<Item = (u32, &'a [Sample])> + Clone,
) {
    let bytes: usize = batch.clone().map(|(_, s)| 12 + s.len() * 16).sum();
    out.clear();
    out.reserve(frame::HEADER_LEN + 16 + bytes);
    frame::encode_with(out, KIND_SAMPLES, |payload| encode_samples(payload, batch));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_samples_frame_encoded_into_a_used_buffer_is_the_fresh_one() {
        let a = [Sample::new(1, 1.5), Sample::new(2, f64::NAN)];
        let b = [Sample::new(3, -0.0)];
        let batch = || [(7, &a[..]), (9, &b[..])].into_iter();
        let mut used = samples_frame([(1, &b[..])].into_iter());
        used.extend_from_slice(&[0xff; 100]);
        samples_frame_into(&mut used, batch());
        assert_eq!(used, samples_frame(batch()));
        let frame = frame::FrameReader::new(&used).next().expect("one frame");
        let mut read = Vec::new();
        decode_samples(frame.payload, |wal_ref, samples| {
            read.push((
                wal_ref,
                samples.map(|s| (s.t, s.v.to_bits())).collect::<Vec<_>>(),
            ));
            Ok(())
        })
        .expect("decodes");
        let bits = |s: &[Sample]| s.iter().map(|s| (s.t, s.v.to_bits())).collect::<Vec<_>>();
        assert_eq!(read, [(7, bits(&a)), (9, bits(&b))]);
    }
}
