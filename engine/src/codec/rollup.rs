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
//! A tier's buckets are stored in a segment's rollup block as [`columns`] (each field
//! packed at one width, decoded in a few tight loops) or as [`records`] (a varint record
//! per bucket): segment version 5 keeps whichever is smaller after a layout byte
//! ([`encode`], [`decode`]); versions 3 and 4 hold records alone.
//!

pub mod columns;
pub mod metric;
pub mod records;

use crate::DecodeError;
use crate::codec::bytes::ByteReader;
use crate::model::{Sample, is_stale_marker};

/// Layout byte of a tier's buckets (segment version 5): records.
const RECORDS: u8 = 0;
/// Layout byte of a tier's buckets (segment version 5): columns.
const COLUMNS: u8 = 1;

/// Appends one tier's buckets (sorted by start, each a multiple of `interval`) as segment
/// version 5 stores them: a layout byte, then the buckets as columns, or as records where
/// those are smaller (a bucket or two, as in a flushed partition, where columns' per-field
/// headers outweigh the fields).
pub fn encode(buckets: &[Bucket], interval: i64, out: &mut Vec<u8>) {
    let (mut as_columns, mut as_records) = (Vec::new(), Vec::new());
    columns::encode(buckets, interval, &mut as_columns);
    records::encode(buckets, interval, &mut as_records);
    if as_records.len() < as_columns.len() {
        out.push(RECORDS);
        out.extend_from_slice(&as_records);
    } else {
        out.push(COLUMNS);
        out.extend_from_slice(&as_columns);
    }
}

/// Which of a bucket's summary values a reader needs. Its start, count, times, flags and
/// first and last samples are always read; the minimum, maximum, sum and correction only
/// when wanted: stored in columns, an unwanted one is skipped and left at zero (a month of
/// hourly buckets over thousands of series is millions of values a `max_over_time` never
/// looks at). Records hold every value together and are always read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted(u8);

impl Wanted {
    /// Only what is always read.
    pub const NONE: Wanted = Wanted(0);
    /// The minimum.
    pub const MIN: Wanted = Wanted(1);
    /// The maximum.
    pub const MAX: Wanted = Wanted(2);
    /// The sum.
    pub const SUM: Wanted = Wanted(4);
    /// The counter correction.
    pub const CORRECTION: Wanted = Wanted(8);
    /// Every value (compaction, verification).
    pub const ALL: Wanted = Wanted(15);

    /// Both sets.
    pub const fn and(self, other: Wanted) -> Wanted {
        Wanted(self.0 | other.0)
    }

    /// Whether every value of `other` is wanted.
    pub const fn has(self, other: Wanted) -> bool {
        self.0 & other.0 == other.0
    }
}

/// Reads one tier's buckets written by [`encode`], at most `max_buckets` of them, with at
/// least the `wanted` values, leaving out those in columns that end before `from` (see
/// [`columns::decode`]; buckets in records are all read).
pub fn decode(
    r: &mut ByteReader<'_>,
    interval: i64,
    max_buckets: usize,
    wanted: Wanted,
    from: i64,
    out: &mut Vec<Bucket>,
) -> Result<(), DecodeError> {
    let at = r.position();
    match r.u8()? {
        RECORDS => records::decode(r, interval, out),
        COLUMNS => columns::decode(r, interval, max_buckets, wanted, from, out),
        layout => Err(DecodeError::new(
            at as u64,
            format!("rollup layout {layout} unknown"),
        )),
    }
}

/// Below this magnitude sums of integers are exact in any order, with room for 2^14
/// buckets per window: composed sums stay below 2^53, where every integer is a float.
pub const EXACT_LIMIT: f64 = (1u64 << 39) as f64;

/// Most decimal places a value is coded with as a decimal.
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
    /// A bucket at `start` with no live sample, its figures zeros at `start`, and `flags`.
    pub fn empty(start: i64, flags: u8) -> Bucket {
        let zero = Sample::new(start, 0.0);
        Bucket {
            start,
            count: 0,
            first: zero,
            last: zero,
            min: 0.0,
            max: 0.0,
            sum: 0.0,
            correction: 0.0,
            flags,
        }
    }

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

/// Whether `v` is an integer a float holds exactly, below 2^53 in magnitude and not -0.0:
/// what the codecs store as an integer.
fn is_exact_integer(v: f64) -> bool {
    v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 && v.to_bits() != (-0.0f64).to_bits()
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
            let b = Bucket::empty(start, EXACT_SUM | EXACT_CORRECTION);
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

/// A bucket's sample times from their offsets as stored (`first_t - start` and
/// `start + interval - 1 - last_t`), checked against its interval, its count of live
/// samples and its flags; `Err` says what disagrees. Called for every bucket decoded:
/// inlined into the decoders' loops.
#[inline(always)]
fn bucket_times(
    start: i64,
    interval: i64,
    count: u32,
    (first_off, end_gap): (u64, u64),
    flags: u8,
) -> Result<(i64, i64), &'static str> {
    let last_off = (interval as u64 - 1)
        .checked_sub(end_gap)
        .unwrap_or(u64::MAX);
    let ok_offset = |off: u64| off < interval as u64;
    if !ok_offset(first_off) || !ok_offset(last_off) || last_off < first_off {
        return Err("times inconsistent");
    }
    let times_agree = match count {
        0 => first_off == 0 && last_off == 0 && flags & ENDS_STALE != 0,
        1 => first_off == last_off,
        _ => first_off < last_off,
    };
    if !times_agree || flags & !FLAGS != 0 {
        return Err("count, times or flags inconsistent");
    }
    let at = |off: u64| start.checked_add(off as i64).ok_or("time overflows");
    Ok((at(first_off)?, at(last_off)?))
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

    /// The two layouts a tier's buckets are stored in.
    #[derive(Debug, Clone, Copy)]
    enum Codec {
        Records,
        Columns,
        /// Segment version 5: the smaller of the two after a layout byte.
        Smaller,
    }

    fn encode(codec: Codec, buckets: &[Bucket], interval: i64) -> Vec<u8> {
        let mut bytes = Vec::new();
        match codec {
            Codec::Records => records::encode(buckets, interval, &mut bytes),
            Codec::Columns => columns::encode(buckets, interval, &mut bytes),
            Codec::Smaller => super::encode(buckets, interval, &mut bytes),
        }
        bytes
    }

    /// Decodes all of `bytes`, allowing as many buckets as intervals `[lo, hi]` meets (as
    /// a segment's reader does with its bounds).
    fn decode(
        codec: Codec,
        bytes: &[u8],
        interval: i64,
        (lo, hi): (i64, i64),
    ) -> Result<Vec<Bucket>, crate::DecodeError> {
        let mut r = crate::codec::bytes::ByteReader::new(bytes);
        let mut out = Vec::new();
        let most = (hi.div_euclid(interval) - lo.div_euclid(interval) + 1).max(0) as usize;
        match codec {
            Codec::Records => records::decode(&mut r, interval, &mut out)?,
            Codec::Columns => {
                columns::decode(&mut r, interval, most, Wanted::ALL, i64::MIN, &mut out)?
            }
            Codec::Smaller => {
                super::decode(&mut r, interval, most, Wanted::ALL, i64::MIN, &mut out)?
            }
        }
        if !r.is_empty() {
            return Err(r.error("trailing bytes"));
        }
        Ok(out)
    }

    fn codec() -> impl Strategy<Value = Codec> {
        prop_oneof![
            Just(Codec::Records),
            Just(Codec::Columns),
            Just(Codec::Smaller)
        ]
    }

    fn bounds(samples: &[Sample]) -> (i64, i64) {
        let t = |s: Option<&Sample>| s.map_or(0, |s| s.t);
        (t(samples.first()), t(samples.last()))
    }

    proptest! {
        #[test]
        fn buckets_round_trip_bit_for_bit(codec in codec(), samples in samples(), interval in prop_oneof![Just(1_000i64), Just(60_000), Just(300_000)]) {
            let mut buckets = Vec::new();
            summarize(&samples, interval, &mut buckets);
            let bytes = encode(codec, &buckets, interval);
            let back = decode(codec, &bytes, interval, bounds(&samples)).expect("decodes");
            prop_assert!(same(&buckets, &back));
            if matches!(codec, Codec::Smaller) {
                let smallest = [Codec::Records, Codec::Columns].map(|c| encode(c, &buckets, interval).len());
                prop_assert_eq!(bytes.len(), 1 + smallest[0].min(smallest[1]));
            }
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
            let bucket = |start: i64, count: u32| Bucket { count, ..Bucket::empty(start, 0) };
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
        fn garbage_is_refused_or_read_without_panicking(codec in codec(), bytes in prop::collection::vec(any::<u8>(), 0..300), span in 0i64..1_000_000_000) {
            let _ = decode(codec, &bytes, 300_000, (0, span));
        }

        #[test]
        fn flipped_bytes_are_refused_or_read_without_panicking(codec in codec(), samples in samples(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
            let mut buckets = Vec::new();
            summarize(&samples, 60_000, &mut buckets);
            let mut bytes = encode(codec, &buckets, 60_000);
            for (at, bits) in flips {
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    if let Some(b) = bytes.get_mut(i) {
                        *b ^= bits;
                    }
                }
            }
            let _ = decode(codec, &bytes, 60_000, bounds(&samples));
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
        for codec in [Codec::Records, Codec::Columns, Codec::Smaller] {
            let bytes = encode(codec, &buckets, 3_600_000);
            // Raw floats would take 8 bytes for each of the five values that are decimals.
            assert!(
                bytes.len() < buckets.len() * 32,
                "{codec:?}: {} bytes for {} buckets",
                bytes.len(),
                buckets.len()
            );
            let back = decode(codec, &bytes, 3_600_000, bounds(&samples)).expect("decodes");
            assert!(same(&buckets, &back));
        }
    }

    #[test]
    fn a_constant_gauge_costs_a_few_bytes_a_bucket() {
        let samples: Vec<Sample> = (0..600).map(|i| Sample::new(i * 15_000, 42.0)).collect();
        let mut buckets = Vec::new();
        summarize(&samples, 300_000, &mut buckets);
        assert_eq!(buckets.len(), 30);
        let records = encode(Codec::Records, &buckets, 300_000);
        assert!(records.len() < 30 * 12, "{} bytes", records.len());
        // In columns, what repeats costs nothing a bucket.
        let columns = encode(Codec::Columns, &buckets, 300_000);
        assert!(columns.len() < 30, "{} bytes", columns.len());
    }
}
