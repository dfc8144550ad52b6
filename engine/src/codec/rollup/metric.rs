//! Metric rollups: one tier's buckets of a whole metric of a segment — per interval, the
//! maximum and minimum over all the metric's series of their buckets' maximum and minimum,
//! and of the samples lying exactly at the interval's start. A panel such as "the busiest
//! camera hour over a month" (`max(max_over_time(camera_people_count[1h]))`) reads one
//! list of a few hundred of these per segment instead of every camera's buckets (thousands
//! of series × hundreds of intervals).
//!
//! The figures fold the series' buckets with [`fold_max`] and [`fold_min`], so a NaN
//! counts only where nothing else does and the first of equal values is kept; the reader
//! uses a figure only where that order cannot matter — a maximum that is neither NaN nor
//! zero is the same bits whatever order the series come in (a signed zero or a NaN's
//! payload is not: those windows are read series by series). Which windows a segment
//! alone answers, and so may take from here, is the query's business (`engine/read.rs`).
//!
//! ```text
//! varint n: the buckets; when n > 0:
//!   zigzag varint k: the first bucket starts at k · interval
//!   packed(n − 1): each next bucket's distance from the one before, in intervals, minus 1
//!   packed(n): the series with a live sample in the bucket (at least 1)
//!   packed(n): 1 where some series has a live sample exactly at the bucket's start, else 0
//!   four value columns, coded as in columns.rs: the maximum (reference 0.0), the minimum
//!     (reference: the maximum), the maximum and minimum of the samples at the start
//!     (references: the maximum, then the start's maximum; where no sample lies at the
//!     start these hold their references)
//! ```

use super::columns::{Column, column, put_packed, put_starts, put_values, read_starts, values};
use super::{Bucket, fold_max, fold_min};
use crate::DecodeError;
use crate::codec::bytes::ByteReader;
use crate::codec::varint::put_u64;
use std::collections::BTreeMap;

/// One interval of one metric: its series' buckets folded together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricBucket {
    /// Start of the interval (a multiple of the tier's interval).
    pub start: i64,
    /// Series with a live sample in the interval (buckets of stale markers alone are left
    /// out, so at least 1).
    pub series: u32,
    /// The series' buckets' maxima folded by [`fold_max`] in the order they were added.
    pub max: f64,
    /// Their minima folded by [`fold_min`].
    pub min: f64,
    /// The maximum and minimum of the live samples lying exactly at `start` — the sample
    /// that closes a window ending there — where some series has one.
    pub at_start: Option<(f64, f64)>,
}

impl MetricBucket {
    /// The interval at `start` with no series in it yet.
    pub fn empty(start: i64) -> Self {
        MetricBucket {
            start,
            series: 0,
            max: 0.0,
            min: 0.0,
            at_start: None,
        }
    }

    /// Whether both hold the same bits (NaN payloads and signed zeros included).
    pub fn same_bits(&self, other: &MetricBucket) -> bool {
        let key = |b: &MetricBucket| {
            (
                (b.start, b.series),
                [b.max, b.min].map(f64::to_bits),
                b.at_start.map(|(hi, lo)| (hi.to_bits(), lo.to_bits())),
            )
        };
        key(self) == key(other)
    }
}

/// Buckets per page of a [`MetricRollup`] being built.
const PAGE: i64 = 256;

/// A metric's buckets of one tier being folded from its series' buckets, one series at a
/// time. The buckets live in pages of consecutive intervals, so that a month of hourly or
/// five-minute buckets is a few flat arrays, while a series with one sample decades away
/// costs one more page, not every interval between.
#[derive(Debug, Clone)]
pub struct MetricRollup {
    interval: i64,
    /// Page number (interval index / [`PAGE`]) → its buckets (`series == 0`: none yet).
    pages: BTreeMap<i64, Vec<MetricBucket>>,
}

impl MetricRollup {
    /// An empty rollup of `interval` ms (positive).
    pub fn new(interval: i64) -> Self {
        MetricRollup {
            interval,
            pages: BTreeMap::new(),
        }
    }

    /// Folds in one series' buckets of this tier (sorted by start).
    pub fn add(&mut self, buckets: &[Bucket]) {
        let interval = self.interval;
        let index = |b: &Bucket| b.start.div_euclid(interval);
        // Each run of buckets in one page finds its page once.
        for run in buckets.chunk_by(|a, b| index(a).div_euclid(PAGE) == index(b).div_euclid(PAGE)) {
            let Some(number) = run.first().map(|b| index(b).div_euclid(PAGE)) else {
                continue;
            };
            let first = number.saturating_mul(PAGE).saturating_mul(interval);
            let slots = self.pages.entry(number).or_insert_with(|| {
                (0..PAGE)
                    .map(|i| MetricBucket::empty(first.saturating_add(i * interval)))
                    .collect()
            });
            for b in run.iter().filter(|b| b.count > 0) {
                if let Some(m) = slots.get_mut(index(b).rem_euclid(PAGE) as usize) {
                    fold(m, b);
                }
            }
        }
    }

    /// The buckets folded so far, sorted by start.
    pub fn buckets(&self) -> Vec<MetricBucket> {
        self.pages
            .values()
            .flatten()
            .filter(|m| m.series > 0)
            .copied()
            .collect()
    }
}

/// Folds one series' bucket `b` (live) into the metric's bucket `m` of its interval.
fn fold(m: &mut MetricBucket, b: &Bucket) {
    if m.series == 0 {
        (m.max, m.min) = (b.max, b.min);
    } else {
        (m.max, m.min) = (fold_max(m.max, b.max), fold_min(m.min, b.min));
    }
    m.series = m.series.saturating_add(1);
    if b.first.t == b.start {
        let v = b.first.v;
        m.at_start = Some(match m.at_start {
            None => (v, v),
            Some((hi, lo)) => (fold_max(hi, v), fold_min(lo, v)),
        });
    }
}

/// Appends buckets (sorted by start, each a multiple of `interval`) in the layout of the
/// module's doc.
pub fn encode(buckets: &[MetricBucket], interval: i64, out: &mut Vec<u8>) {
    put_u64(out, buckets.len() as u64);
    if buckets.is_empty() {
        return;
    }
    put_starts(out, buckets.iter().map(|b| b.start), interval);
    let series: Vec<u64> = buckets.iter().map(|b| u64::from(b.series)).collect();
    put_packed(out, &series);
    let flags: Vec<u64> = buckets
        .iter()
        .map(|b| u64::from(b.at_start.is_some()))
        .collect();
    put_packed(out, &flags);
    let column = |get: &dyn Fn(&MetricBucket) -> f64| buckets.iter().map(get).collect::<Vec<f64>>();
    let start_max = |b: &MetricBucket| b.at_start.map_or(b.max, |(hi, _)| hi);
    let start_min = |b: &MetricBucket| b.at_start.map_or(start_max(b), |(_, lo)| lo);
    put_values(out, &column(&|b| b.max), &column(&|_| 0.0));
    put_values(out, &column(&|b| b.min), &column(&|b| b.max));
    put_values(out, &column(&start_max), &column(&|b| b.max));
    put_values(out, &column(&start_min), &column(&start_max));
}

/// Reads buckets written by [`encode`] — at most `max_buckets` — checking that they are in
/// order and consistent. On an error `out` is left as it was.
pub fn decode(
    r: &mut ByteReader<'_>,
    interval: i64,
    max_buckets: usize,
    out: &mut Vec<MetricBucket>,
) -> Result<(), DecodeError> {
    let before = out.len();
    let read = decode_into(r, interval, max_buckets, out);
    if read.is_err() {
        out.truncate(before);
    }
    read
}

fn decode_into(
    r: &mut ByteReader<'_>,
    interval: i64,
    max_buckets: usize,
    out: &mut Vec<MetricBucket>,
) -> Result<(), DecodeError> {
    let n = r.len(max_buckets, "metric bucket count")?;
    if n == 0 {
        return Ok(());
    }
    let at = r.position() as u64;
    let base = out.len();
    read_starts(r, n, interval, |start| out.push(MetricBucket::empty(start)))?;
    let Some(buckets) = out.get_mut(base..) else {
        return Ok(());
    };
    let col: Column = (n, 0);
    let mut bad_count = false;
    column(r, col, buckets, |b, v| match u32::try_from(v) {
        Ok(series) if series > 0 => b.series = series,
        _ => bad_count = true,
    })?;
    let mut bad_flag = false;
    let mut has_start = Vec::with_capacity(n);
    column(r, col, buckets, |_, v| {
        bad_flag |= v > 1;
        has_start.push(v == 1);
    })?;
    if bad_count || bad_flag {
        return Err(DecodeError::new(
            at,
            "a metric bucket's series count or flag out of range",
        ));
    }
    let mut previous = i64::MIN;
    for (i, b) in buckets.iter().enumerate() {
        if b.start <= previous {
            return Err(DecodeError::new(
                at,
                format!("metric bucket {i}: starts out of order"),
            ));
        }
        previous = b.start;
    }
    // The start's figures are read into the `at_start` of every bucket (their references
    // fill those without), then dropped again where the flag says there is none.
    let start_max = |b: &MetricBucket| b.at_start.map_or(b.max, |(hi, _)| hi);
    values(r, col, buckets, |b, v| b.max = v, |_| 0.0)?;
    values(r, col, buckets, |b, v| b.min = v, |b| b.max)?;
    values(r, col, buckets, |b, v| b.at_start = Some((v, v)), |b| b.max)?;
    values(
        r,
        col,
        buckets,
        |b, v| b.at_start = b.at_start.map(|(hi, _)| (hi, v)),
        start_max,
    )?;
    for (b, has) in buckets.iter_mut().zip(has_start) {
        if !has {
            b.at_start = None;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::rollup::summarize;
    use crate::model::Sample;

    const STALE_NAN: f64 = f64::from_bits(crate::model::STALE_NAN_BITS);
    use proptest::prelude::*;

    const HOUR: i64 = 3_600_000;

    fn round_trip(buckets: &[MetricBucket], interval: i64) -> Vec<MetricBucket> {
        let mut bytes = Vec::new();
        encode(buckets, interval, &mut bytes);
        let mut r = ByteReader::new(&bytes);
        let mut back = Vec::new();
        decode(&mut r, interval, buckets.len(), &mut back).unwrap();
        assert!(r.is_empty(), "trailing bytes");
        back
    }

    #[test]
    fn a_metric_hour_folds_every_series_and_the_samples_at_its_start() {
        let series = [
            vec![
                Sample::new(0, 3.0),
                Sample::new(60_000, 7.0),
                Sample::new(HOUR, 1.0),
            ],
            vec![Sample::new(30_000, 9.0), Sample::new(HOUR + 5, 2.0)],
            vec![Sample::new(0, -4.0), Sample::new(HOUR, STALE_NAN)],
        ];
        let mut rollup = MetricRollup::new(HOUR);
        for samples in &series {
            let mut buckets = Vec::new();
            summarize(samples, HOUR, &mut buckets);
            rollup.add(&buckets);
        }
        let got = rollup.buckets();
        let want = [
            MetricBucket {
                start: 0,
                series: 3,
                max: 9.0,
                min: -4.0,
                at_start: Some((3.0, -4.0)),
            },
            // The third series' bucket holds a stale marker alone: not a live series.
            MetricBucket {
                start: HOUR,
                series: 2,
                max: 2.0,
                min: 1.0,
                at_start: Some((1.0, 1.0)),
            },
        ];
        assert_eq!(got, want);
        assert_eq!(round_trip(&got, HOUR), want);
    }

    #[test]
    fn buckets_decades_apart_cost_a_page_each() {
        let mut rollup = MetricRollup::new(1_000);
        rollup.add(&summarized(
            &[Sample::new(-5_000, 1.0), Sample::new(1_000 << 40, 2.0)],
            1_000,
        ));
        assert_eq!(rollup.pages.len(), 2);
        let got = rollup.buckets();
        assert_eq!(
            got.iter().map(|b| b.start).collect::<Vec<_>>(),
            [-5_000, 1_000 << 40]
        );
        assert_eq!(round_trip(&got, 1_000), got);
    }

    fn summarized(samples: &[Sample], interval: i64) -> Vec<Bucket> {
        let mut buckets = Vec::new();
        summarize(samples, interval, &mut buckets);
        buckets
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            (-50i64..50).prop_map(|v| v as f64),
            (-5000i64..5000).prop_map(|v| v as f64 / 100.0),
            Just(0.0),
            Just(-0.0),
            Just(f64::NAN),
            Just(STALE_NAN),
            Just(f64::INFINITY),
            any::<f64>(),
        ]
    }

    proptest! {
        /// What comes back is what was folded, bit for bit; and the fold is what folding
        /// each interval's series' buckets one by one gives.
        #[test]
        fn metric_buckets_read_what_was_folded(
            series in proptest::collection::vec(
                proptest::collection::btree_map(0i64..40_000, value(), 0..30), 1..6),
            interval in prop_oneof![Just(1i64), Just(1_000), Just(7_000)],
        ) {
            let all: Vec<Vec<Bucket>> = series
                .iter()
                .map(|s| {
                    let samples: Vec<Sample> = s.iter().map(|(&t, &v)| Sample::new(t, v)).collect();
                    summarized(&samples, interval)
                })
                .collect();
            let mut rollup = MetricRollup::new(interval);
            for b in &all {
                rollup.add(b);
            }
            let got = rollup.buckets();
            let mut starts: Vec<i64> = all.iter().flatten().filter(|b| b.count > 0).map(|b| b.start).collect();
            starts.sort_unstable();
            starts.dedup();
            prop_assert_eq!(got.len(), starts.len());
            for (m, &start) in got.iter().zip(&starts) {
                let live: Vec<&Bucket> =
                    all.iter().flatten().filter(|b| b.start == start && b.count > 0).collect();
                let fold = |get: fn(&Bucket) -> f64, f: fn(f64, f64) -> f64| {
                    live.iter().map(|b| get(b)).reduce(f).unwrap()
                };
                let at: Vec<f64> =
                    live.iter().filter(|b| b.first.t == start).map(|b| b.first.v).collect();
                let want = MetricBucket {
                    start,
                    series: live.len() as u32,
                    max: fold(|b| b.max, fold_max),
                    min: fold(|b| b.min, fold_min),
                    at_start: at.iter().copied().reduce(fold_max)
                        .zip(at.iter().copied().reduce(fold_min)),
                };
                prop_assert!(m.same_bits(&want), "{:?} != {:?}", m, want);
            }
            let back = round_trip(&got, interval);
            prop_assert_eq!(back.len(), got.len());
            for (b, g) in back.iter().zip(&got) {
                prop_assert!(b.same_bits(g), "{:?} != {:?}", b, g);
            }
        }

        /// Damaged bytes are refused or read as some buckets, never a panic.
        #[test]
        fn damaged_metric_buckets_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut out = Vec::new();
            let _ = decode(&mut ByteReader::new(&bytes), 60_000, 1 << 10, &mut out);
        }
    }
}
