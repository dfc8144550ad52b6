//! Rollups: one series' samples summarised per interval of a tier ("buckets"), so that a
//! long-range panel reads a summary per hour instead of every raw sample. A bucket keeps
//! what the exactly composable window functions need — count, first and last samples,
//! first minimum and maximum, the sum and the counter corrections, each with the flags that
//! say when composing them gives the raw answer bit for bit (the query engine composes;
//! `query/window.rs` says when and how).
//!
//! Stale markers are left out of the figures, as the window functions leave them out of
//! windows, but flags say where they lie, so that instant selection ("the latest sample, no
//! value if it is a stale marker") can be answered from buckets too. A bucket
//! `[start, start + interval)` exists where the series has a sample; one with only stale
//! markers has a count of zero.
//!
//! Encoding of one tier's buckets (in a segment's rollup block, see `segment.rs`):
//! ```text
//! varint bucket count, then per bucket:
//!   zigzag varint start / interval (the first absolute, then the delta from the previous)
//!   varint count | varint first_t - start | varint start + interval - 1 - last_t
//!   (both small for a series sampled through the interval) | u8 flags
//!   u16 LE kinds: 2 bits per value, in the order first, last, min, max, sum, correction
//!   the six values, each by its kind:
//!     0  the same bits as its reference (first: the previous bucket's last, else 0.0;
//!        the others: this bucket's first), nothing stored
//!     1  an integer of magnitude below 2^53 (not -0.0): zigzag varint
//!     2  any other float: its 8 bits, little-endian
//!     3  a decimal with 1 to 6 places: u8 places | zigzag varint mantissa (the value is
//!        mantissa / 10^places, as `codec/decimal.rs` decodes it, bit for bit)
//! ```

use crate::DecodeError;
use crate::codec::bytes::ByteReader;
use crate::codec::decimal;
use crate::codec::varint::{put_i64, put_u64};
use crate::model::{Sample, is_stale_marker};

/// Below this magnitude sums of integers are exact in any order, with room for 2^14
/// buckets per window: composed sums stay below 2^53, where every integer is a float.
pub const EXACT_LIMIT: f64 = (1u64 << 39) as f64;

/// Most decimal places a value is coded with as a decimal (kind 3).
const MAX_PLACES: usize = 6;

/// Flag: every value is an integer and the sum of their magnitudes is below
/// [`EXACT_LIMIT`], so `sum` is exact and sums of such buckets are exact in any order.
pub const EXACT_SUM: u8 = 1;
/// Flag: some value is below the one before it (a counter reset inside the bucket).
pub const DROPS: u8 = 2;
/// Flag: the values before each drop are integers whose sum is below [`EXACT_LIMIT`], so
/// `correction` is exact.
pub const EXACT_CORRECTION: u8 = 4;
/// Flag: a stale marker lies at the bucket's very start.
pub const STARTS_STALE: u8 = 8;
/// Flag: the bucket's last sample is a stale marker (after its last live one).
pub const ENDS_STALE: u8 = 16;
const FLAGS: u8 = EXACT_SUM | DROPS | EXACT_CORRECTION | STARTS_STALE | ENDS_STALE;

/// One interval of one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Start of the interval (a multiple of the tier's interval).
    pub start: i64,
    /// Live samples in it (zero when it holds only stale markers; then the figures below
    /// are zeros at `start`).
    pub count: u32,
    /// The first live sample.
    pub first: Sample,
    /// The last live sample.
    pub last: Sample,
    /// The first sample in time order that holds the minimum of the non-NaN values (NaN,
    /// the last one's bits, when every value is NaN): PromQL's `min_over_time` composes
    /// from these exactly, signed zeros included.
    pub min: f64,
    /// As `min`, for the maximum.
    pub max: f64,
    /// Sum of the values in time order (exact when [`EXACT_SUM`] is set).
    pub sum: f64,
    /// Sum of the values before each drop (what `rate` adds back for counter resets).
    pub correction: f64,
    /// [`EXACT_SUM`], [`DROPS`], [`EXACT_CORRECTION`], [`STARTS_STALE`], [`ENDS_STALE`].
    pub flags: u8,
}

impl Bucket {
    /// Whether `flag` is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Whether both hold the same bits (NaN payloads and signed zeros included).
    pub fn same_bits(&self, other: &Bucket) -> bool {
        let key = |b: &Bucket| {
            (
                (b.start, b.count, b.first.t, b.last.t, b.flags),
                [b.first.v, b.last.v, b.min, b.max, b.sum, b.correction].map(f64::to_bits),
            )
        };
        key(self) == key(other)
    }
}

/// Whether `v` is an integer small enough that sums of such values are exact (not -0.0,
/// whose sign a sum may keep or lose depending on the order).
pub fn is_small_integer(v: f64) -> bool {
    v.fract() == 0.0 && v.abs() < EXACT_LIMIT && !(v == 0.0 && v.is_sign_negative())
}

/// The fold PromQL's `max_over_time` uses, started from NaN: keeps the first maximum.
pub fn fold_max(m: f64, v: f64) -> f64 {
    if v > m || m.is_nan() { v } else { m }
}

/// As [`fold_max`], for the minimum.
pub fn fold_min(m: f64, v: f64) -> f64 {
    if v < m || m.is_nan() { v } else { m }
}

/// Summarises `samples` (sorted by time, one per timestamp) into buckets of `interval`
/// milliseconds (positive), appended to `out`. Stale markers count as no value but mark
/// where they lie ([`STARTS_STALE`], [`ENDS_STALE`]); an interval holding only stale
/// markers gets a bucket with no live sample.
pub fn summarize(samples: &[Sample], interval: i64, out: &mut Vec<Bucket>) {
    let mut open: Option<(Bucket, f64, f64)> = None;
    for s in samples {
        // A sample whose interval starts before the first representable time is in no
        // window a query can align to the tier: left out.
        let Some(start) = s.t.div_euclid(interval).checked_mul(interval) else {
            continue;
        };
        if open.as_ref().is_none_or(|(b, ..)| b.start != start) {
            if let Some(done) = open.take() {
                out.push(close(done));
            }
            let empty = Sample::new(start, 0.0);
            let b = Bucket {
                start,
                count: 0,
                first: empty,
                last: empty,
                min: 0.0,
                max: 0.0,
                sum: 0.0,
                correction: 0.0,
                flags: EXACT_SUM | EXACT_CORRECTION,
            };
            open = Some((b, 0.0, 0.0));
        }
        let Some((b, abs_sum, drop_sum)) = open.as_mut() else {
            continue;
        };
        if is_stale_marker(s.v) {
            b.flags |= ENDS_STALE;
            if s.t == start {
                b.flags |= STARTS_STALE;
            }
            continue;
        }
        b.flags &= !ENDS_STALE;
        if b.count == 0 {
            (b.first, b.last, b.min, b.max, b.sum) = (*s, *s, s.v, s.v, s.v);
        } else {
            if s.v < b.last.v {
                b.flags |= DROPS;
                *drop_sum += b.last.v.abs();
                if !is_small_integer(b.last.v) {
                    b.flags &= !EXACT_CORRECTION;
                }
                b.correction += b.last.v;
            }
            b.last = *s;
            b.min = fold_min(b.min, s.v);
            b.max = fold_max(b.max, s.v);
            b.sum += s.v;
        }
        b.count += 1;
        *abs_sum += s.v.abs();
        if !is_small_integer(s.v) {
            b.flags &= !EXACT_SUM;
        }
    }
    if let Some(done) = open {
        out.push(close(done));
    }
}

fn close((mut b, abs_sum, drop_sum): (Bucket, f64, f64)) -> Bucket {
    if abs_sum >= EXACT_LIMIT {
        b.flags &= !EXACT_SUM;
    }
    if drop_sum >= EXACT_LIMIT {
        b.flags &= !EXACT_CORRECTION;
    }
    b
}

/// Removes from `buckets` (sorted by start) every bucket whose start is repeated, and
/// returns those starts: two summaries of one interval, from different places, cannot both
/// hold (and cannot be merged without their samples).
pub fn drop_repeated(buckets: &mut Vec<Bucket>) -> Vec<i64> {
    // Sorted, so a repeat sits beside its twin; most calls find none and allocate nothing.
    if buckets
        .windows(2)
        .all(|w| w.first().map(|b| b.start) != w.get(1).map(|b| b.start))
    {
        return Vec::new();
    }
    let mut dropped: Vec<i64> = Vec::new();
    let mut kept = Vec::with_capacity(buckets.len());
    for (i, b) in buckets.iter().enumerate() {
        let twin = |j: Option<usize>| {
            j.and_then(|j| buckets.get(j))
                .is_some_and(|o| o.start == b.start)
        };
        if twin(i.checked_sub(1)) || twin(i.checked_add(1)) {
            if dropped.last() != Some(&b.start) {
                dropped.push(b.start);
            }
        } else {
            kept.push(*b);
        }
    }
    *buckets = kept;
    dropped
}

/// Appends one tier's buckets (sorted by start, each a multiple of `interval`).
pub fn encode(buckets: &[Bucket], interval: i64, out: &mut Vec<u8>) {
    put_u64(out, buckets.len() as u64);
    let mut prev_index = 0i64;
    let mut prev_last = 0.0f64;
    for (i, b) in buckets.iter().enumerate() {
        let index = b.start.div_euclid(interval);
        put_i64(out, if i == 0 { index } else { index - prev_index });
        prev_index = index;
        put_u64(out, u64::from(b.count));
        put_u64(out, b.first.t.wrapping_sub(b.start) as u64);
        put_u64(
            out,
            b.start.wrapping_add(interval - 1).wrapping_sub(b.last.t) as u64,
        );
        out.push(b.flags);
        let values = [
            (b.first.v, prev_last),
            (b.last.v, b.first.v),
            (b.min, b.first.v),
            (b.max, b.first.v),
            (b.sum, b.first.v),
            (b.correction, 0.0),
        ];
        let kinds_at = out.len();
        out.extend_from_slice(&[0, 0]);
        let mut kinds = 0u16;
        for (k, (v, reference)) in values.into_iter().enumerate() {
            let kind = if v.to_bits() == reference.to_bits() {
                0
            } else if v.fract() == 0.0
                && v.abs() < 9_007_199_254_740_992.0
                && v.to_bits() != (-0.0f64).to_bits()
            {
                put_i64(out, v as i64);
                1
            } else if let Some((e, m)) =
                (1..=MAX_PLACES).find_map(|e| decimal::mantissa(v, e).map(|m| (e, m)))
            {
                out.push(e as u8);
                put_i64(out, m);
                3
            } else {
                out.extend_from_slice(&v.to_bits().to_le_bytes());
                2
            };
            kinds |= kind << (2 * k);
        }
        if let Some(slot) = out.get_mut(kinds_at..kinds_at + 2) {
            slot.copy_from_slice(&kinds.to_le_bytes());
        }
        prev_last = b.last.v;
    }
}

/// Reads one tier's buckets written by [`encode`], checking that they are in order, inside
/// their intervals and consistent.
pub fn decode(
    r: &mut ByteReader<'_>,
    interval: i64,
    out: &mut Vec<Bucket>,
) -> Result<(), DecodeError> {
    // A bucket takes at least seven bytes.
    let count = r.len(r.remaining() / 7, "bucket count")?;
    let mut index = 0i64;
    let mut prev_last = 0.0f64;
    let mut prev_start = i64::MIN;
    for i in 0..count {
        let at = r.position();
        let step = r.varint_i64()?;
        index = if i == 0 {
            step
        } else {
            index.checked_add(step).unwrap_or(i64::MAX)
        };
        let start = index.checked_mul(interval);
        let n = r.varint_u32("bucket sample count")?;
        let first_off = r.varint()?;
        let end_gap = r.varint()?;
        let last_off = (interval as u64 - 1)
            .checked_sub(end_gap)
            .unwrap_or(u64::MAX);
        let flags = r.u8()?;
        let kinds = u16::from_le_bytes(r.array()?);
        let bad =
            |reason: &str| DecodeError::new(at as u64, format!("rollup bucket {i}: {reason}"));
        let Some(start) = start.filter(|&s| s > prev_start) else {
            return Err(bad("starts out of order"));
        };
        let ok_offset = |off: u64| off < interval as u64;
        if !ok_offset(first_off) || !ok_offset(last_off) || last_off < first_off {
            return Err(bad("times inconsistent"));
        }
        let times_agree = match n {
            0 => first_off == 0 && last_off == 0 && flags & ENDS_STALE != 0,
            1 => first_off == last_off,
            _ => first_off < last_off,
        };
        if !times_agree || flags & !FLAGS != 0 {
            return Err(bad("count, times or flags inconsistent"));
        }
        // Values are read in order: each refers to ones read before it. An error is told
        // once after all six, keeping its formatting out of this hot loop.
        let kind = |k: u16| (kinds >> (2 * k)) & 3;
        let values = (|| {
            let first = read_value(r, kind(0), prev_last)?;
            Some([
                first,
                read_value(r, kind(1), first)?,
                read_value(r, kind(2), first)?,
                read_value(r, kind(3), first)?,
                read_value(r, kind(4), first)?,
                read_value(r, kind(5), 0.0)?,
            ])
        })();
        let Some([first_v, last_v, min, max, sum, correction]) = values else {
            return Err(bad(
                "a value is truncated or its decimal places out of range",
            ));
        };
        let at_offset = |off: u64| {
            start
                .checked_add(off as i64)
                .ok_or_else(|| bad("time overflows"))
        };
        let first = Sample::new(at_offset(first_off)?, first_v);
        let last = Sample::new(at_offset(last_off)?, last_v);
        out.push(Bucket {
            start,
            count: n,
            first,
            last,
            min,
            max,
            sum,
            correction,
            flags,
        });
        prev_last = last_v;
        prev_start = start;
    }
    Ok(())
}

/// One value of a bucket coded as `kind` (see the module's opening doc); `None` when its
/// bytes run out or a decimal's places are out of range.
#[inline(always)]
fn read_value(r: &mut ByteReader<'_>, kind: u16, reference: f64) -> Option<f64> {
    match kind {
        0 => Some(reference),
        1 => r.varint_i64().ok().map(|v| v as f64),
        2 => r
            .array()
            .ok()
            .map(|b| f64::from_bits(u64::from_le_bytes(b))),
        _ => {
            let e = usize::from(r.u8().ok()?);
            let m = r.varint_i64().ok()?;
            decimal::from_mantissa(m, e).filter(|_| (1..=MAX_PLACES).contains(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            (-50i64..50).prop_map(|v| v as f64),
            any::<f64>(),
            Just(f64::NAN),
            Just(-0.0),
            Just(f64::from_bits(crate::model::STALE_NAN_BITS)),
            (0u32..1000).prop_map(|v| f64::from(v) / 7.0),
            (-100_000i64..100_000).prop_map(|v| v as f64 / 100.0),
        ]
    }

    fn samples() -> impl Strategy<Value = Vec<Sample>> {
        prop::collection::vec((0i64..5_000, value()), 0..200).prop_map(|mut v| {
            v.sort_by_key(|s| s.0);
            v.dedup_by_key(|s| s.0);
            v.into_iter()
                .map(|(t, v)| Sample::new(t * 997 - 1_000_000, v))
                .collect()
        })
    }

    fn same(a: &[Bucket], b: &[Bucket]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_bits(y))
    }

    proptest! {
        #[test]
        fn buckets_round_trip_bit_for_bit(samples in samples(), interval in prop_oneof![Just(1_000i64), Just(60_000), Just(300_000)]) {
            let mut buckets = Vec::new();
            summarize(&samples, interval, &mut buckets);
            let mut bytes = Vec::new();
            encode(&buckets, interval, &mut bytes);
            let mut back = Vec::new();
            let mut r = ByteReader::new(&bytes);
            decode(&mut r, interval, &mut back).expect("decodes");
            prop_assert!(r.is_empty());
            prop_assert!(same(&buckets, &back));
        }

        #[test]
        fn buckets_hold_what_their_samples_say(samples in samples()) {
            let interval = 60_000;
            let mut buckets = Vec::new();
            summarize(&samples, interval, &mut buckets);
            let live: Vec<Sample> = samples.iter().filter(|s| !is_stale_marker(s.v)).copied().collect();
            prop_assert_eq!(buckets.iter().map(|b| b.count as usize).sum::<usize>(), live.len());
            for b in &buckets {
                let raw: Vec<&Sample> = samples.iter().filter(|s| s.t >= b.start && s.t < b.start + interval).collect();
                prop_assert!(!raw.is_empty());
                prop_assert_eq!(b.has(ENDS_STALE), raw.last().is_some_and(|s| is_stale_marker(s.v)));
                prop_assert_eq!(b.has(STARTS_STALE), raw.first().is_some_and(|s| s.t == b.start && is_stale_marker(s.v)));
                let inside: Vec<&Sample> = live.iter().filter(|s| s.t >= b.start && s.t < b.start + interval).collect();
                prop_assert_eq!(inside.len(), b.count as usize);
                if b.count == 0 {
                    continue;
                }
                prop_assert_eq!(inside.first().map(|s| s.t), Some(b.first.t));
                prop_assert_eq!(inside.last().map(|s| s.t), Some(b.last.t));
                let max = inside.iter().fold(f64::NAN, |m, s| fold_max(m, s.v));
                prop_assert_eq!(max.to_bits(), b.max.to_bits());
                if b.has(EXACT_SUM) {
                    prop_assert!(inside.iter().all(|s| is_small_integer(s.v)));
                }
            }
        }

        #[test]
        fn repeated_starts_are_all_dropped_and_named_once(starts in prop::collection::vec(0i64..12, 0..30)) {
            let mut starts = starts;
            starts.sort_unstable();
            let bucket = |start: i64, count: u32| Bucket {
                start,
                count,
                first: Sample::new(start, 0.0),
                last: Sample::new(start, 0.0),
                min: 0.0,
                max: 0.0,
                sum: 0.0,
                correction: 0.0,
                flags: 0,
            };
            let mut buckets: Vec<Bucket> =
                starts.iter().enumerate().map(|(i, &s)| bucket(s, i as u32)).collect();
            let dropped = drop_repeated(&mut buckets);
            let times = |s: i64| starts.iter().filter(|&&t| t == s).count();
            let mut want_dropped: Vec<i64> = starts.iter().copied().filter(|&s| times(s) > 1).collect();
            want_dropped.dedup();
            prop_assert_eq!(dropped, want_dropped);
            let want_kept: Vec<(i64, u32)> = starts
                .iter()
                .enumerate()
                .filter(|&(_, &s)| times(s) == 1)
                .map(|(i, &s)| (s, i as u32))
                .collect();
            let kept: Vec<(i64, u32)> = buckets.iter().map(|b| (b.start, b.count)).collect();
            prop_assert_eq!(kept, want_kept);
        }

        #[test]
        fn garbage_is_refused_or_read_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let mut out = Vec::new();
            let _ = decode(&mut ByteReader::new(&bytes), 300_000, &mut out);
        }
    }

    #[test]
    fn a_gauge_of_decimals_costs_a_few_bytes_a_value() {
        // An occupancy in percent with two places, every 15 s.
        let samples: Vec<Sample> = (0..2400)
            .map(|i| Sample::new(i * 15_000, ((i * 37) % 10_000) as f64 / 100.0))
            .collect();
        let mut buckets = Vec::new();
        summarize(&samples, 3_600_000, &mut buckets);
        let mut bytes = Vec::new();
        encode(&buckets, 3_600_000, &mut bytes);
        // Raw floats would take 8 bytes for each of the five values that are decimals.
        assert!(
            bytes.len() < buckets.len() * 32,
            "{} bytes for {} buckets",
            bytes.len(),
            buckets.len()
        );
        let mut back = Vec::new();
        decode(&mut ByteReader::new(&bytes), 3_600_000, &mut back).expect("decodes");
        assert!(same(&buckets, &back));
    }

    #[test]
    fn a_constant_gauge_costs_a_few_bytes_a_bucket() {
        let samples: Vec<Sample> = (0..600).map(|i| Sample::new(i * 15_000, 42.0)).collect();
        let mut buckets = Vec::new();
        summarize(&samples, 300_000, &mut buckets);
        assert_eq!(buckets.len(), 30);
        let mut bytes = Vec::new();
        encode(&buckets, 300_000, &mut bytes);
        assert!(bytes.len() < 30 * 12, "{} bytes", bytes.len());
    }
}
