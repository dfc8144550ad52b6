//! WAL records: what a frame's payload means.
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

use crate::DecodeError;
use crate::codec::varint::{ByteReader, put_str, put_u64};
use crate::model::{Labels, Namespace, Sample};

/// Kind byte of a series-definitions record.
pub const KIND_SERIES: u8 = 1;
/// Kind byte of a samples record.
pub const KIND_SAMPLES: u8 = 2;

const MAX_STR: usize = 1 << 16;

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

/// Appends one definition to a definitions payload under construction.
pub fn encode_series_def(out: &mut Vec<u8>, wal_ref: u32, namespace: &str, labels: &Labels) {
    put_u64(out, u64::from(wal_ref));
    put_str(out, namespace);
    labels.encode_to(out);
}

/// Decodes a definitions payload.
pub fn decode_series_defs(payload: &[u8]) -> Result<Vec<SeriesDef>, DecodeError> {
    let mut r = ByteReader::new(payload);
    let count = r.len(payload.len(), "series definition count")?;
    let mut defs = Vec::with_capacity(count);
    for _ in 0..count {
        let wal_ref = u32::try_from(r.varint()?).map_err(|_| r.error("series ref exceeds u32"))?;
        let at = r.position();
        let namespace = Namespace::new(r.str(MAX_STR, "namespace")?)
            .map_err(|e| DecodeError::new(at as u64, e))?;
        let labels = Labels::decode_from(&mut r)?;
        defs.push(SeriesDef {
            wal_ref,
            namespace,
            labels,
        });
    }
    Ok(defs)
}

/// Appends one series' samples to a samples payload under construction (after its count).
pub fn encode_samples(out: &mut Vec<u8>, wal_ref: u32, samples: &[Sample]) {
    put_u64(out, u64::from(wal_ref));
    put_u64(out, samples.len() as u64);
    out.reserve(samples.len() * 16);
    for s in samples {
        out.extend_from_slice(&s.t.to_le_bytes());
        out.extend_from_slice(&s.v.to_bits().to_le_bytes());
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
        let wal_ref = u32::try_from(r.varint()?).map_err(|_| r.error("series ref exceeds u32"))?;
        let n = r.len(r.remaining() / 16, "sample count")?;
        let bytes = r.bytes(n * 16)?;
        let mut samples = bytes.chunks_exact(16).map(|b| {
            let (t, v) = b.split_at(8);
            let t = i64::from_le_bytes(t.try_into().unwrap_or([0; 8]));
            let v = u64::from_le_bytes(v.try_into().unwrap_or([0; 8]));
            Sample {
                t,
                v: f64::from_bits(v),
            }
        });
        apply(wal_ref, &mut samples)?;
    }
    if !r.is_empty() {
        return Err(r.error("trailing bytes after the last series"));
    }
    Ok(())
}
