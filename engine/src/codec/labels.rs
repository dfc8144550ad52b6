//! Label sets as WAL records and segment tables store them:
//! `varint count, then (str name, str value)*` (`str` = varint length + UTF-8 bytes).

use super::bytes::{ByteReader, MAX_LABELS, MAX_STR};
use super::varint::{put_str, put_u64};
use crate::DecodeError;
use crate::model::{Label, Labels};

/// Appends `labels`.
pub fn encode_labels(out: &mut Vec<u8>, labels: &Labels) {
    put_u64(out, labels.len() as u64);
    for l in labels.iter() {
        put_str(out, &l.name);
        put_str(out, &l.value);
    }
}

/// Reads labels written by [`encode_labels`] (from our own checksummed files, so they are
/// taken as valid once they decode).
pub fn decode_labels(r: &mut ByteReader<'_>) -> Result<Labels, DecodeError> {
    let n = r.len(MAX_LABELS, "label count")?;
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.str(MAX_STR, "label name")?.to_owned();
        let value = r.str(MAX_STR, "label value")?.to_owned();
        labels.push(Label { name, value });
    }
    Ok(Labels::from_trusted(labels))
}
