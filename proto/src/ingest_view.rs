//! `iocdb.v1.WriteRequest` read in place, for the server's `Ingest.Write` and
//! `Ingest.WriteStream`: the request arrives as its encoded bytes ([`WriteRequestBytes`],
//! what the server's generated service takes instead of the prost struct) and is read into
//! spans and flat columns ([`WriteView`]) — no `String` per label, no `Vec` per series,
//! nothing at all when the view is reused. Clients keep the prost structs ([`crate::v1`]).
//!
//! On every input prost decodes into [`crate::v1::WriteRequest`] this reader gives the same
//! namespace, labels, columns and stream ids (its tests and the `ingest_decode` fuzz target
//! check it); label bytes that are not UTF-8, which prost refuses whole, are read, so that
//! the server can refuse just their series.

#![warn(clippy::indexing_slicing, clippy::unwrap_used)]

use std::ops::Range;

use prost::bytes::{Buf, BufMut, Bytes};

use crate::wire::{Cursor, DecodeError, LabelSpans, Span, WireType, read_label};

/// An `iocdb.v1.WriteRequest` as its encoded bytes. Decoding it with prost keeps the bytes
/// as they are; encoding writes them back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteRequestBytes(pub Bytes);

impl prost::Message for WriteRequestBytes {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        // Not reached: `merge` takes the message whole.
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn merge(&mut self, mut buf: impl Buf) -> Result<(), prost::DecodeError> {
        self.0 = buf.copy_to_bytes(buf.remaining());
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0 = Bytes::new();
    }
}

/// One `Series` of the request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SeriesEntry {
    /// Its labels in [`WriteView::labels`].
    pub labels: Range<usize>,
    /// Its timestamps in [`WriteView::timestamps`].
    pub timestamps: Range<usize>,
    /// Its values in [`WriteView::values`].
    pub values: Range<usize>,
    /// The stream id the client gave it (`WriteStream`), 0 for none.
    pub stream_id: u64,
}

/// A decoded request: the namespace, and flat arrays of label spans and columns.
#[derive(Debug, Default)]
pub struct WriteView {
    /// The namespace's bytes.
    pub namespace: Span,
    /// Every series' labels, one series after another.
    pub labels: Vec<LabelSpans>,
    /// Every series' timestamps (ms), one series after another.
    pub timestamps: Vec<i64>,
    /// Every series' values, one series after another.
    pub values: Vec<f64>,
    /// The series, in request order.
    pub series: Vec<SeriesEntry>,
}

impl WriteView {
    /// Reads `buf`, an encoded `iocdb.v1.WriteRequest`, into this view (emptied first, its
    /// arrays' memory kept). The spans it records are of `buf`.
    ///
    /// # Errors
    /// What prost refuses (bad varints, lengths past the end, wrong wire types, broken
    /// groups), with the byte offset; a request of 4 GiB or more.
    pub fn read(&mut self, buf: &[u8]) -> Result<(), DecodeError> {
        self.namespace = Span::default();
        self.labels.clear();
        self.timestamps.clear();
        self.values.clear();
        self.series.clear();
        let mut c = Cursor::new(buf)?;
        while !c.done() {
            let (field, wire) = c.key()?;
            match field {
                1 => self.namespace = c.span(wire)?,
                2 => {
                    let series = c.message(wire)?;
                    self.read_series(series)?;
                }
                _ => c.skip(field, wire)?,
            }
        }
        Ok(())
    }

    fn read_series(&mut self, mut c: Cursor<'_>) -> Result<(), DecodeError> {
        let (labels, timestamps, values) =
            (self.labels.len(), self.timestamps.len(), self.values.len());
        let mut stream_id = 0;
        while !c.done() {
            let (field, wire) = c.key()?;
            match field {
                1 => self.labels.push(read_label(c.message(wire)?)?),
                // Repeated numbers come packed (proto3's default) or one per field; prost
                // reads both.
                2 => match wire {
                    WireType::Len => {
                        let mut packed = c.message(wire)?;
                        while !packed.done() {
                            self.timestamps.push(int64(packed.varint()?));
                        }
                    }
                    _ => {
                        c.expect(wire, WireType::Varint)?;
                        self.timestamps.push(int64(c.varint()?));
                    }
                },
                3 => match wire {
                    WireType::Len => {
                        // A length that is not a multiple of 8 ends inside a double: the
                        // last `fixed64` refuses it, as prost does.
                        let mut packed = c.message(wire)?;
                        while !packed.done() {
                            self.values.push(f64::from_bits(packed.fixed64()?));
                        }
                    }
                    _ => {
                        c.expect(wire, WireType::Fixed64)?;
                        self.values.push(f64::from_bits(c.fixed64()?));
                    }
                },
                4 => {
                    c.expect(wire, WireType::Varint)?;
                    stream_id = c.varint()?;
                }
                _ => c.skip(field, wire)?,
            }
        }
        self.series.push(SeriesEntry {
            labels: labels..self.labels.len(),
            timestamps: timestamps..self.timestamps.len(),
            values: values..self.values.len(),
            stream_id,
        });
        Ok(())
    }

    /// The labels of `series` as spans.
    pub fn labels_of(&self, series: &SeriesEntry) -> &[LabelSpans] {
        self.labels.get(series.labels.clone()).unwrap_or_default()
    }

    /// The timestamps of `series`.
    pub fn timestamps_of(&self, series: &SeriesEntry) -> &[i64] {
        self.timestamps
            .get(series.timestamps.clone())
            .unwrap_or_default()
    }

    /// The values of `series`.
    pub fn values_of(&self, series: &SeriesEntry) -> &[f64] {
        self.values.get(series.values.clone()).unwrap_or_default()
    }
}

/// An int64 field: the varint's 64 bits, as prost reads it.
#[allow(clippy::cast_possible_wrap)]
fn int64(v: u64) -> i64 {
    v as i64
}

/// Checks [`WriteView::read`] against prost on `buf`: when prost decodes it, the view must
/// read the same request. Panics on a difference (for the tests and the fuzz target).
#[doc(hidden)]
pub fn check_against_prost(buf: &[u8]) {
    use prost::Message;
    let mut view = WriteView::default();
    let ours = view.read(buf);
    let Ok(theirs) = crate::v1::WriteRequest::decode(buf) else {
        return;
    };
    assert!(ours.is_ok(), "prost reads what the view refused: {ours:?}");
    assert_eq!(
        view.namespace.of(buf),
        theirs.namespace.as_bytes(),
        "namespace"
    );
    assert_eq!(view.series.len(), theirs.series.len(), "series");
    for (entry, s) in view.series.iter().zip(&theirs.series) {
        let labels: Vec<(&[u8], &[u8])> = view
            .labels_of(entry)
            .iter()
            .map(|l| (l.name.of(buf), l.value.of(buf)))
            .collect();
        let expected: Vec<(&[u8], &[u8])> = s
            .labels
            .iter()
            .map(|l| (l.name.as_bytes(), l.value.as_bytes()))
            .collect();
        assert_eq!(labels, expected, "labels");
        assert_eq!(
            view.timestamps_of(entry),
            s.timestamps_ms.as_slice(),
            "timestamps"
        );
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(view.values_of(entry)), bits(&s.values), "values");
        assert_eq!(entry.stream_id, s.stream_id, "stream id");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1;
    use proptest::prelude::*;
    use prost::Message;

    fn request() -> impl Strategy<Value = v1::WriteRequest> {
        let label = ("[a-z_]{0,4}", "(Châu Đốc|Long Xuyên|[a-z]{0,3}|)")
            .prop_map(|(name, value)| v1::Label { name, value });
        let series = (
            prop::collection::vec(label, 0..5),
            prop::collection::vec((any::<i64>(), any::<u64>()), 0..4),
            any::<u64>(),
        )
            .prop_map(|(labels, samples, stream_id)| v1::Series {
                labels,
                timestamps_ms: samples.iter().map(|s| s.0).collect(),
                values: samples.iter().map(|s| f64::from_bits(s.1)).collect(),
                stream_id,
            });
        ("(|health|y_te)", prop::collection::vec(series, 0..5))
            .prop_map(|(namespace, series)| v1::WriteRequest { namespace, series })
    }

    proptest! {
        #[test]
        fn the_view_reads_what_prost_writes(req in request()) {
            let buf = req.encode_to_vec();
            check_against_prost(&buf);
            let mut view = WriteView::default();
            view.read(&buf).unwrap();
            prop_assert_eq!(view.series.len(), req.series.len());
        }

        #[test]
        fn damaged_requests_agree_with_prost_or_are_refused(
            req in request(),
            cuts in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            truncate in any::<prop::sample::Index>(),
        ) {
            crate::wire::check_damaged(req.encode_to_vec(), cuts, truncate, check_against_prost);
        }

        #[test]
        fn any_bytes_never_panic(buf in prop::collection::vec(any::<u8>(), 0..256)) {
            check_against_prost(&buf);
        }
    }

    #[test]
    fn unpacked_columns_read_as_packed_ones() {
        // Series { timestamps_ms: 5 (unpacked), values: 1.5 (unpacked), stream_id: 7 }.
        let mut series = vec![0x10, 0x05, 0x19];
        series.extend_from_slice(&1.5f64.to_le_bytes());
        series.extend_from_slice(&[0x20, 0x07]);
        let mut buf = vec![0x12, series.len() as u8];
        buf.extend_from_slice(&series);
        check_against_prost(&buf);
        let mut view = WriteView::default();
        view.read(&buf).unwrap();
        assert_eq!(view.timestamps, vec![5]);
        assert_eq!(view.values, vec![1.5]);
        assert_eq!(view.series[0].stream_id, 7);
    }

    #[test]
    fn the_bytes_type_keeps_the_message_as_sent() {
        let req = v1::WriteRequest {
            namespace: "y_te".into(),
            series: vec![],
        };
        let encoded = req.encode_to_vec();
        let kept = WriteRequestBytes::decode(encoded.as_slice()).unwrap();
        assert_eq!(kept.0.as_ref(), encoded.as_slice());
        assert_eq!(kept.encode_to_vec(), encoded);
    }
}
