//! A remote-write `WriteRequest` read in place: every label as two spans of the request's
//! bytes, samples and series as flat arrays — no allocation per label or series, and none
//! at all when a [`WriteView`] is reused (it holds offsets, not borrows, so that a server
//! can keep one per thread), where the prost structs allocate two `String`s per label and a
//! `Vec` per series. Label bytes are not checked as UTF-8 here: the server looks most series
//! up by their bytes, and only a series it does not know yet is decoded into text and
//! checked.
//!
//! On every input the prost structs ([`super::WriteRequest`]) decode, this reader gives
//! the same labels, samples, histogram counts and metadata (its tests and the
//! `remote_write_decode` fuzz target check it); it also reads requests whose label bytes
//! are not UTF-8, which prost refuses whole, so that the server can refuse just that series.

#![warn(clippy::indexing_slicing, clippy::unwrap_used)]

use std::ops::Range;

use crate::wire::{Cursor, DecodeError, LabelSpans, Span, WireType, read_label};

/// One `TimeSeries` of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesEntry {
    /// Its labels in [`WriteView::labels`].
    pub labels: Range<usize>,
    /// Its samples in [`WriteView::samples`].
    pub samples: Range<usize>,
    /// How many native histogram samples it carried (not stored by iocdb).
    pub histograms: usize,
}

/// One sample as sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleEntry {
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// The value, bit for bit.
    pub value: f64,
}

/// A decoded request: flat arrays of spans into the request's bytes and of samples.
#[derive(Debug, Default)]
pub struct WriteView {
    /// Every series' labels, one series after another.
    pub labels: Vec<LabelSpans>,
    /// Every series' samples, one series after another.
    pub samples: Vec<SampleEntry>,
    /// The series, in request order.
    pub series: Vec<SeriesEntry>,
    /// The `MetricMetadata` messages, still encoded (rare: decode them with prost).
    pub metadata: Vec<Span>,
}

impl WriteView {
    /// Reads `buf`, an uncompressed `prompb.WriteRequest`, into this view (emptied first,
    /// its arrays' memory kept). The spans it records are of `buf`.
    ///
    /// # Errors
    /// What prost refuses (bad varints, lengths past the end, wrong wire types, broken
    /// groups), with the byte offset; a request of 4 GiB or more.
    pub fn read(&mut self, buf: &[u8]) -> Result<(), DecodeError> {
        self.labels.clear();
        self.samples.clear();
        self.series.clear();
        self.metadata.clear();
        let mut c = Cursor::new(buf)?;
        while !c.done() {
            let (field, wire) = c.key()?;
            match field {
                1 => {
                    let series = c.message(wire)?;
                    self.read_series(series)?;
                }
                3 => self.metadata.push(c.span(wire)?),
                _ => c.skip(field, wire)?,
            }
        }
        Ok(())
    }

    fn read_series(&mut self, mut c: Cursor<'_>) -> Result<(), DecodeError> {
        let (labels, samples) = (self.labels.len(), self.samples.len());
        let mut histograms = 0;
        while !c.done() {
            let (field, wire) = c.key()?;
            match field {
                1 => self.labels.push(read_label(c.message(wire)?)?),
                2 => self.samples.push(read_sample(c.message(wire)?)?),
                4 => {
                    c.span(wire)?;
                    histograms += 1;
                }
                _ => c.skip(field, wire)?,
            }
        }
        self.series.push(SeriesEntry {
            labels: labels..self.labels.len(),
            samples: samples..self.samples.len(),
            histograms,
        });
        Ok(())
    }

    /// The labels of `series` as spans (of the request read).
    pub fn labels_of(&self, series: &SeriesEntry) -> &[LabelSpans] {
        self.labels.get(series.labels.clone()).unwrap_or_default()
    }

    /// The samples of `series`.
    pub fn samples_of(&self, series: &SeriesEntry) -> &[SampleEntry] {
        self.samples.get(series.samples.clone()).unwrap_or_default()
    }
}

/// A `Sample`: value (double) and timestamp (int64); the last of each wins.
fn read_sample(mut c: Cursor<'_>) -> Result<SampleEntry, DecodeError> {
    let mut sample = SampleEntry {
        timestamp: 0,
        value: 0.0,
    };
    while !c.done() {
        let (field, wire) = c.key()?;
        match field {
            1 => {
                c.expect(wire, WireType::Fixed64)?;
                sample.value = f64::from_bits(c.fixed64()?);
            }
            2 => {
                c.expect(wire, WireType::Varint)?;
                // int64 is the varint's 64 bits, as prost reads it.
                #[allow(clippy::cast_possible_wrap)]
                let t = c.varint()? as i64;
                sample.timestamp = t;
            }
            _ => c.skip(field, wire)?,
        }
    }
    Ok(sample)
}

/// Checks [`WriteView::read`] against prost on `buf`: when prost decodes it, the view must
/// read the same request; when the view refuses it, prost must too. Panics on a
/// difference (for the tests and the fuzz target).
#[doc(hidden)]
pub fn check_against_prost(buf: &[u8]) {
    use prost::Message;
    let mut view = WriteView::default();
    let ours = view.read(buf);
    let Ok(theirs) = super::WriteRequest::decode(buf) else {
        return;
    };
    assert!(ours.is_ok(), "prost reads what the view refused: {ours:?}");
    assert_eq!(view.series.len(), theirs.timeseries.len(), "series");
    for (entry, t) in view.series.iter().zip(&theirs.timeseries) {
        let labels: Vec<(&[u8], &[u8])> = view
            .labels_of(entry)
            .iter()
            .map(|l| (l.name.of(buf), l.value.of(buf)))
            .collect();
        let expected: Vec<(&[u8], &[u8])> = t
            .labels
            .iter()
            .map(|l| (l.name.as_bytes(), l.value.as_bytes()))
            .collect();
        assert_eq!(labels, expected, "labels");
        let samples: Vec<(i64, u64)> = view
            .samples_of(entry)
            .iter()
            .map(|s| (s.timestamp, s.value.to_bits()))
            .collect();
        let expected: Vec<(i64, u64)> = t
            .samples
            .iter()
            .map(|s| (s.timestamp, s.value.to_bits()))
            .collect();
        assert_eq!(samples, expected, "samples");
        assert_eq!(entry.histograms, t.histograms.len(), "histograms");
    }
    let metadata: Vec<super::MetricMetadata> = view
        .metadata
        .iter()
        .map(|m| {
            super::MetricMetadata::decode(m.of(buf)).expect("prost read it inside the request")
        })
        .collect();
    assert_eq!(metadata, theirs.metadata, "metadata");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompb::{Label, MetricMetadata, Sample, TimeSeries, WriteRequest};
    use proptest::prelude::*;
    use prost::Message;

    fn label() -> impl Strategy<Value = Label> {
        ("[a-z_]{0,4}", "(Châu Đốc|Long Xuyên|[a-z]{0,3}|)")
            .prop_map(|(name, value)| Label { name, value })
    }

    fn request() -> impl Strategy<Value = WriteRequest> {
        let series = (
            prop::collection::vec(label(), 0..5),
            prop::collection::vec(
                (any::<i64>(), any::<u64>()).prop_map(|(timestamp, bits)| Sample {
                    timestamp,
                    value: f64::from_bits(bits),
                }),
                0..4,
            ),
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..4), 0..2),
        )
            .prop_map(|(labels, samples, histograms)| TimeSeries {
                labels,
                samples,
                histograms,
            });
        (
            prop::collection::vec(series, 0..5),
            prop::collection::vec(
                (0..8i32, "[a-z]{0,5}").prop_map(|(r#type, name)| MetricMetadata {
                    r#type,
                    metric_family_name: name,
                    help: "giúp".into(),
                    unit: String::new(),
                }),
                0..2,
            ),
        )
            .prop_map(|(timeseries, metadata)| WriteRequest {
                timeseries,
                metadata,
            })
    }

    proptest! {
        #[test]
        fn the_view_reads_what_prost_writes(req in request()) {
            let buf = req.encode_to_vec();
            check_against_prost(&buf);
            let mut view = WriteView::default();
            view.read(&buf).unwrap();
            prop_assert_eq!(view.series.len(), req.timeseries.len());
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
    fn fields_in_any_order_repeated_and_unknown_read_as_prost_reads_them() {
        // A label with its value before its name and its name twice, an unknown fixed32
        // field, a sample with its timestamp first; the last value of a field wins.
        let label = [
            0x12, 0x01, b'v', 0x0a, 0x01, b'x', 0x0a, 0x01, b'n', 0x1d, 1, 2, 3, 4,
        ];
        let mut sample = vec![0x10, 0x05, 0x09];
        sample.extend_from_slice(&1.5f64.to_le_bytes());
        let mut series = vec![0x12, sample.len() as u8];
        series.extend_from_slice(&sample);
        series.push(0x0a);
        series.push(label.len() as u8);
        series.extend_from_slice(&label);
        // An exemplar (field 3), skipped.
        series.extend_from_slice(&[0x1a, 0x00]);
        let mut buf = vec![0x0a, series.len() as u8];
        buf.extend_from_slice(&series);
        check_against_prost(&buf);
        let mut view = WriteView::default();
        view.read(&buf).unwrap();
        let labels: Vec<(&[u8], &[u8])> = view
            .labels
            .iter()
            .map(|l| (l.name.of(&buf), l.value.of(&buf)))
            .collect();
        assert_eq!(labels, vec![(&b"n"[..], &b"v"[..])]);
        assert_eq!(
            view.samples,
            vec![SampleEntry {
                timestamp: 5,
                value: 1.5
            }]
        );
    }

    #[test]
    fn label_bytes_that_are_not_utf8_are_read_though_prost_refuses_them() {
        let buf = [0x0a, 0x07, 0x0a, 0x05, 0x0a, 0x01, 0xff, 0x12, 0x00];
        assert!(WriteRequest::decode(&buf[..]).is_err());
        let mut view = WriteView::default();
        view.read(&buf).unwrap();
        assert_eq!(view.labels[0].name.of(&buf), &[0xff]);
    }

    #[test]
    fn a_reused_view_forgets_the_last_request() {
        let one = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label {
                    name: "__name__".into(),
                    value: "a".into(),
                }],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 1,
                }],
                histograms: vec![],
            }],
            metadata: vec![],
        }
        .encode_to_vec();
        let mut view = WriteView::default();
        view.read(&one).unwrap();
        view.read(&[]).unwrap();
        assert!(view.series.is_empty() && view.labels.is_empty() && view.samples.is_empty());
    }
}
