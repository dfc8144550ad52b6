//! Rollup buckets in columns: how segment version 5 stores one tier's buckets in a rollup
//! block (see `segment.rs`) wherever that is smaller than [`super::records`] — any tier
//! holding more than a bucket or two. Each field of the buckets is stored for all of them together,
//! packed at the one bit width its values need above their least, so that a reader
//! unpacks a field in a tight loop with no per-value branching — decoding a varint record
//! per bucket ([`super::records`], versions 3 and 4) was most of a long-range panel's time.
//! Fields that repeat (the count of a regular series, its flags, a minimum equal to the
//! first value) take a few bits or none, so the blocks are smaller too.
//!
//! ```text
//! varint n: the buckets; when n > 0:
//!   zigzag varint k: the first bucket starts at k · interval
//!   packed(n − 1): each next bucket's distance from the one before, in intervals, minus 1
//!   packed(n): live samples | packed(n): first_t − start |
//!   packed(n): start + interval − 1 − last_t | packed(n): flags (as in records.rs)
//!   six value columns — first, last, min, max, sum, correction — each a u8 mode, then:
//!     0  every value is its reference: nothing stored (the reference of first and
//!        correction is 0.0, of the others the bucket's first value)
//!     1  integers of magnitude below 2^53, none -0.0: packed(n) of their zigzag
//!     2  decimals of p places, 1 ≤ p ≤ 6: u8 p | packed(n) of the zigzag of their
//!        mantissas (the value is mantissa / 10^p, as `codec/decimal.rs` decodes it)
//!     3  value by value: packed(n) of kinds, then each value of kind 1–3 in bucket order,
//!        coded as records.rs codes a value of that kind (kind 0: the reference)
//! packed(m): varint base | u8 width (0 to 64) | ⌈m · width / 8⌉ bytes holding each
//!   value − base in `width` bits, least significant bit first (`codec/bits.rs`)
//! ```

use super::records::read_value;
use super::{Bucket, MAX_PLACES, Wanted, bucket_times, is_exact_integer};
use crate::DecodeError;
use crate::codec::bits::{BitReader, BitWriter};
use crate::codec::bytes::ByteReader;
use crate::codec::varint::{put_i64, put_u64};
use crate::codec::{decimal, unzigzag, zigzag};

/// Mode of a value column: every value is its reference.
const REFERENCE: u8 = 0;
/// Mode of a value column: integers.
const INTEGERS: u8 = 1;
/// Mode of a value column: decimals of one number of places.
const DECIMALS: u8 = 2;
/// Mode of a value column: a kind per value.
const MIXED: u8 = 3;

/// How the encoder reads one of a bucket's values.
type Getter = fn(&Bucket) -> f64;

/// The six values of a bucket in column order (the decoder sets them in this order too):
/// how to read each, and its reference.
const VALUES: [(Getter, Reference); 6] = [
    (|b| b.first.v, Reference::Zero),
    (|b| b.last.v, Reference::First),
    (|b| b.min, Reference::First),
    (|b| b.max, Reference::First),
    (|b| b.sum, Reference::First),
    (|b| b.correction, Reference::Zero),
];

/// What a value column's values are compared with (mode 0, kind 0).
#[derive(Clone, Copy)]
enum Reference {
    Zero,
    First,
}

impl Reference {
    fn of(self, b: &Bucket) -> f64 {
        match self {
            Reference::Zero => 0.0,
            Reference::First => b.first.v,
        }
    }
}

/// Appends one tier's buckets (sorted by start, each a multiple of `interval`).
pub fn encode(buckets: &[Bucket], interval: i64, out: &mut Vec<u8>) {
    put_u64(out, buckets.len() as u64);
    if buckets.is_empty() {
        return;
    }
    put_starts(out, buckets.iter().map(|b| b.start), interval);
    let column = |f: &dyn Fn(&Bucket) -> u64| buckets.iter().map(f).collect::<Vec<u64>>();
    put_packed(out, &column(&|b| u64::from(b.count)));
    put_packed(out, &column(&|b| b.first.t.wrapping_sub(b.start) as u64));
    put_packed(
        out,
        &column(&|b| b.start.wrapping_add(interval - 1).wrapping_sub(b.last.t) as u64),
    );
    put_packed(out, &column(&|b| u64::from(b.flags)));
    for (get, reference) in VALUES {
        let values: Vec<f64> = buckets.iter().map(get).collect();
        let references: Vec<f64> = buckets.iter().map(|b| reference.of(b)).collect();
        put_values(out, &values, &references);
    }
}

/// One value column, in the first mode that holds every value exactly.
pub(super) fn put_values(out: &mut Vec<u8>, values: &[f64], references: &[f64]) {
    let same = |(v, r): (&f64, &f64)| v.to_bits() == r.to_bits();
    if values.iter().zip(references).all(same) {
        out.push(REFERENCE);
        return;
    }
    if values.iter().all(|&v| is_exact_integer(v)) {
        out.push(INTEGERS);
        let packed: Vec<u64> = values.iter().map(|&v| zigzag(v as i64)).collect();
        put_packed(out, &packed);
        return;
    }
    let mantissas = |p: usize| -> Option<Vec<u64>> {
        values
            .iter()
            .map(|&v| decimal::mantissa(v, p).map(zigzag))
            .collect()
    };
    if let Some((p, packed)) = (1..=MAX_PLACES).find_map(|p| Some((p, mantissas(p)?))) {
        out.push(DECIMALS);
        out.push(p as u8);
        put_packed(out, &packed);
        return;
    }
    out.push(MIXED);
    let mut kinds = Vec::with_capacity(values.len());
    let mut coded = Vec::new();
    for (&v, &reference) in values.iter().zip(references) {
        kinds.push(super::records::put_value(v, reference, &mut coded));
    }
    put_packed(out, &kinds);
    out.extend_from_slice(&coded);
}

/// `values` as `packed(m)` (see the module's opening doc).
pub(super) fn put_packed(out: &mut Vec<u8>, values: &[u64]) {
    let base = values.iter().copied().min().unwrap_or(0);
    let spread = values.iter().fold(0, |a, &v| a | (v - base));
    let width = 64 - spread.leading_zeros();
    put_u64(out, base);
    out.push(width as u8);
    let mut w = BitWriter::new();
    for &v in values {
        w.write(v - base, width);
    }
    out.extend_from_slice(&w.finish());
}

/// A packed column being read: its values in order, each `base` + `width` bits.
pub(super) struct Packed<'a> {
    base: u64,
    width: u32,
    bits: BitReader<'a>,
    n: usize,
}

impl<'a> Packed<'a> {
    /// Reads the header and takes the bytes of `n` packed values from `r`.
    pub(super) fn read(r: &mut ByteReader<'a>, n: usize) -> Result<Self, DecodeError> {
        let base = r.varint()?;
        let at = r.position();
        let width = u32::from(r.u8()?);
        if width > 64 {
            return Err(DecodeError::new(
                at as u64,
                format!("packed width {width} over 64"),
            ));
        }
        // The reader sees the rest of the block too (the column's last values load eight
        // bytes like the others) but only the column's bits are values.
        let rest = r.rest();
        let bits = n * width as usize;
        r.bytes(bits.div_ceil(8))?;
        Ok(Packed {
            base,
            width,
            bits: BitReader::bounded(rest, bits),
            n,
        })
    }

    /// Moves past the first `k` values (without unpacking them).
    fn skip(&mut self, k: usize) -> Result<(), DecodeError> {
        let k = k.min(self.n);
        self.bits.skip(k.saturating_mul(self.width as usize))?;
        self.n -= k;
        Ok(())
    }

    /// Calls `f` with each value in order.
    #[inline(always)]
    pub(super) fn each(mut self, mut f: impl FnMut(u64)) -> Result<(), DecodeError> {
        let base = self.base;
        if self.width <= crate::codec::bits::MAX_BLOCK_WIDTH {
            return self
                .bits
                .read_run(self.width, self.n, |v| f(base.wrapping_add(v)));
        }
        for _ in 0..self.n {
            f(base.wrapping_add(self.bits.read_wide(self.width)?));
        }
        Ok(())
    }
}

/// Reads one tier's buckets written by [`encode`] that end at or after `from` — at most
/// `max_buckets` (bounded by the caller from the segment's time span: a column of width 0
/// costs no bytes, so its length alone bounds nothing) — checking that they are in order,
/// inside their intervals and consistent. The fields of the buckets before `from` are read
/// past without being unpacked (a 32-day segment's block read for the last days of a 30-day
/// panel: most of its buckets). On an error `out` is left as it was.
pub fn decode(
    r: &mut ByteReader<'_>,
    interval: i64,
    max_buckets: usize,
    wanted: Wanted,
    from: i64,
    out: &mut Vec<Bucket>,
) -> Result<(), DecodeError> {
    let before = out.len();
    let read = decode_into(r, interval, max_buckets, wanted, from, out);
    if read.is_err() {
        out.truncate(before);
    }
    read
}

fn decode_into(
    r: &mut ByteReader<'_>,
    interval: i64,
    max_buckets: usize,
    wanted: Wanted,
    from: i64,
    out: &mut Vec<Bucket>,
) -> Result<(), DecodeError> {
    let n = r.len(max_buckets, "bucket count")?;
    if n == 0 {
        return Ok(());
    }
    let at = r.position();
    let bad = |reason: String| DecodeError::new(at as u64, reason);
    let mut starts = Vec::with_capacity(n);
    read_starts(r, n, interval, |start| starts.push(start))?;
    // The buckets that end before `from` (the first ones: checked in order below for those
    // kept) are left out; their other fields are read past.
    let skip = starts.partition_point(|&s| s.saturating_add(interval - 1) < from);
    let base = out.len();
    let kept = starts.get(skip..).unwrap_or_default();
    out.extend(kept.iter().map(|&start| Bucket {
        start,
        ..Bucket::empty(0, 0)
    }));
    let Some(buckets) = out.get_mut(base..) else {
        return Ok(());
    };
    let col: Column = (n, skip);
    // The counts, then the offsets kept in the times until checked, then the flags.
    let mut too_many = false;
    column(r, col, buckets, |b, v| {
        b.count = u32::try_from(v).unwrap_or_else(|_| {
            too_many = true;
            0
        });
    })?;
    column(r, col, buckets, |b, v| b.first.t = v as i64)?;
    column(r, col, buckets, |b, v| b.last.t = v as i64)?;
    let mut wide_flags = false;
    column(r, col, buckets, |b, v| {
        b.flags = u8::try_from(v).unwrap_or_else(|_| {
            wide_flags = true;
            0
        });
    })?;
    if too_many || wide_flags {
        return Err(bad("a bucket's count or flags out of range".into()));
    }
    let mut prev_start = i64::MIN;
    for (i, b) in buckets.iter_mut().enumerate() {
        if b.start <= prev_start {
            return Err(bad(format!("rollup bucket {i}: starts out of order")));
        }
        prev_start = b.start;
        let offsets = (b.first.t as u64, b.last.t as u64);
        let (first_t, last_t) = bucket_times(b.start, interval, b.count, offsets, b.flags)
            .map_err(|reason| bad(format!("rollup bucket {i}: {reason}")))?;
        (b.first.t, b.last.t) = (first_t, last_t);
    }
    // Each column with its own setter, so that the loops inline it; a column not wanted
    // is read past (its values checked no further than their encoding needs).
    let (zero, first) = (Reference::Zero, Reference::First);
    let at = r.position();
    let want = |w| wanted.has(w);
    values(r, col, buckets, |b, v| b.first.v = v, |b| zero.of(b))
        .and_then(|()| values(r, col, buckets, |b, v| b.last.v = v, |b| first.of(b)))
        .and_then(|()| values_if(want(Wanted::MIN), r, col, buckets, |b, v| b.min = v, first))
        .and_then(|()| values_if(want(Wanted::MAX), r, col, buckets, |b, v| b.max = v, first))
        .and_then(|()| values_if(want(Wanted::SUM), r, col, buckets, |b, v| b.sum = v, first))
        .and_then(|()| {
            values_if(
                want(Wanted::CORRECTION),
                r,
                col,
                buckets,
                |b, v| b.correction = v,
                zero,
            )
        })
        .map_err(|e| DecodeError::new(at as u64, format!("rollup values: {}", e.reason)))
}

/// Writes the starts of buckets (at least one, ascending, each a multiple of `interval`) as
/// [`read_starts`] reads them: the first's index, then the packed gaps.
pub(super) fn put_starts(out: &mut Vec<u8>, starts: impl Iterator<Item = i64>, interval: i64) {
    let indexes: Vec<i64> = starts.map(|s| s.div_euclid(interval)).collect();
    put_i64(out, indexes.first().copied().unwrap_or(0));
    let steps: Vec<u64> = indexes
        .windows(2)
        .filter_map(|w| Some(w.get(1)?.wrapping_sub(*w.first()?).wrapping_sub(1) as u64))
        .collect();
    put_packed(out, &steps);
}

/// Reads the starts of `n` (at least one) buckets of `interval` ms — the first's index,
/// then the packed gaps — handing each to `push` in order. An index that overflows gives
/// `i64::MIN` or a start out of order, which the caller refuses with the others.
pub(super) fn read_starts(
    r: &mut ByteReader<'_>,
    n: usize,
    interval: i64,
    mut push: impl FnMut(i64),
) -> Result<(), DecodeError> {
    let mut index = r.varint_i64()?;
    let start_of = |index: i64| index.checked_mul(interval).unwrap_or(i64::MIN);
    push(start_of(index));
    Packed::read(r, n.saturating_sub(1))?.each(|step| {
        index = index
            .checked_add(1)
            .and_then(|i| i.checked_add_unsigned(step))
            .unwrap_or(i64::MAX);
        push(start_of(index));
    })
}

/// [`values`] when `wanted`, else [`skip_values`].
#[inline]
fn values_if(
    wanted: bool,
    r: &mut ByteReader<'_>,
    col: Column,
    buckets: &mut [Bucket],
    set: impl Fn(&mut Bucket, f64),
    reference: Reference,
) -> Result<(), DecodeError> {
    if wanted {
        values(r, col, buckets, set, |b| reference.of(b))
    } else {
        skip_values(r, col.0)
    }
}

/// A column's length, and how many of its first values are read past (the buckets dropped
/// before `decode`'s time): `buckets` holds the others.
pub(super) type Column = (usize, usize);

/// Reads past one value column of `n` values.
fn skip_values(r: &mut ByteReader<'_>, n: usize) -> Result<(), DecodeError> {
    let at = r.position();
    match r.u8()? {
        REFERENCE => {}
        INTEGERS => {
            Packed::read(r, n)?;
        }
        DECIMALS => {
            r.u8()?;
            Packed::read(r, n)?;
        }
        MIXED => {
            let mut kinds = Vec::with_capacity(n);
            Packed::read(r, n)?.each(|k| kinds.push(k))?;
            read_past(r, &kinds)?;
        }
        mode => return Err(DecodeError::new(at as u64, format!("mode {mode}"))),
    }
    Ok(())
}

/// Reads past values of a mixed column, one of each of `kinds`. Each value's length
/// depends on its kind: each is read against a reference of zero (a value's kind, not its
/// reference, decides how many bytes it takes).
fn read_past(r: &mut ByteReader<'_>, kinds: &[u64]) -> Result<(), DecodeError> {
    for &kind in kinds {
        let kind = u16::try_from(kind).ok().filter(|&k| k <= 3);
        kind.and_then(|k| read_value(r, k, 0.0))
            .ok_or_else(|| r.error("a value truncated or of no kind"))?;
    }
    Ok(())
}

/// Reads a packed column, giving each bucket kept its own value.
#[inline(always)]
pub(super) fn column<T>(
    r: &mut ByteReader<'_>,
    (n, skip): Column,
    buckets: &mut [T],
    mut set: impl FnMut(&mut T, u64),
) -> Result<(), DecodeError> {
    let mut each = buckets.iter_mut();
    let mut packed = Packed::read(r, n)?;
    packed.skip(skip)?;
    packed.each(|v| {
        if let Some(b) = each.next() {
            set(b, v);
        }
    })
}

/// Reads one value column (its mode, then its values) into the buckets kept, each of
/// whose reference value is `reference` of it.
#[inline]
pub(super) fn values<T>(
    r: &mut ByteReader<'_>,
    (n, skip): Column,
    buckets: &mut [T],
    set: impl Fn(&mut T, f64),
    reference: impl Fn(&T) -> f64,
) -> Result<(), DecodeError> {
    let at = r.position();
    match r.u8()? {
        REFERENCE => buckets.iter_mut().for_each(|b| {
            let v = reference(b);
            set(b, v);
        }),
        INTEGERS => column(r, (n, skip), buckets, |b, v| set(b, unzigzag(v) as f64))?,
        DECIMALS => {
            let p = usize::from(r.u8()?);
            if !(1..=MAX_PLACES).contains(&p) {
                return Err(DecodeError::new(at as u64, format!("{p} decimal places")));
            }
            // Every p in range has a power of ten: `from_mantissa` gives a value.
            column(r, (n, skip), buckets, |b, v| {
                set(
                    b,
                    decimal::from_mantissa(unzigzag(v), p).unwrap_or(f64::NAN),
                );
            })?;
        }
        MIXED => {
            let mut kinds = Vec::with_capacity(n);
            Packed::read(r, n)?.each(|k| kinds.push(k))?;
            read_past(r, kinds.get(..skip).unwrap_or_default())?;
            for (b, kind) in buckets.iter_mut().zip(kinds.into_iter().skip(skip)) {
                let kind = u16::try_from(kind).ok().filter(|&k| k <= 3);
                let v = kind.and_then(|k| read_value(r, k, reference(b)));
                set(
                    b,
                    v.ok_or_else(|| r.error("a value truncated or of no kind"))?,
                );
            }
        }
        mode => return Err(DecodeError::new(at as u64, format!("mode {mode}"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Sample;

    fn bucket(start: i64, count: u32, v: f64) -> Bucket {
        Bucket {
            start,
            count,
            first: Sample::new(start, v),
            last: Sample::new(start + 59_000, v),
            min: v,
            max: v,
            sum: v * f64::from(count),
            correction: 0.0,
            flags: crate::codec::rollup::EXACT_SUM,
        }
    }

    #[test]
    fn a_regular_series_costs_a_few_bytes_a_bucket() {
        // A camera's people count: an hour of 240 samples per bucket, small integers.
        let buckets: Vec<Bucket> = (0..24)
            .map(|h| bucket(h * 3_600_000, 240, f64::from((h * 7 % 40) as u32)))
            .collect();
        let mut bytes = Vec::new();
        encode(&buckets, 3_600_000, &mut bytes);
        assert!(bytes.len() < 24 * 8, "{} bytes", bytes.len());
        let mut back = Vec::new();
        decode(
            &mut ByteReader::new(&bytes),
            3_600_000,
            24,
            Wanted::ALL,
            i64::MIN,
            &mut back,
        )
        .expect("decodes");
        assert!(buckets.iter().zip(&back).all(|(a, b)| a.same_bits(b)));
        assert_eq!(back.len(), 24);
    }

    /// Hourly buckets at these hours whose value columns take every mode: the minimum equal
    /// to the first value (reference), the maximum integers, the sum decimals, the
    /// correction values of mixed kinds.
    fn in_every_mode(hours: Vec<i64>) -> Vec<Bucket> {
        hours
            .into_iter()
            .map(|h| {
                let mut b = bucket(h * 3_600_000, 240, (h % 7) as f64);
                b.max = (h * 3) as f64;
                b.sum = h as f64 + 0.25;
                b.correction = match h % 3 {
                    0 => 0.0,
                    1 => f64::NAN,
                    _ => 1e300 * h as f64,
                };
                b
            })
            .collect()
    }

    #[test]
    fn a_value_not_wanted_is_read_past_and_left_at_zero() {
        let buckets = in_every_mode((0..40).collect());
        let mut bytes = Vec::new();
        encode(&buckets, 3_600_000, &mut bytes);
        let wanted_sets = [
            Wanted::NONE,
            Wanted::MIN,
            Wanted::MAX,
            Wanted::SUM.and(Wanted::CORRECTION),
            Wanted::ALL,
        ];
        for wanted in wanted_sets {
            let mut r = ByteReader::new(&bytes);
            let mut back = Vec::new();
            decode(&mut r, 3_600_000, 40, wanted, i64::MIN, &mut back).expect("decodes");
            assert!(r.is_empty(), "{wanted:?} leaves bytes unread");
            for (a, b) in buckets.iter().zip(&back) {
                let value = |w: Wanted, v: f64| if wanted.has(w) { v } else { 0.0 };
                let expected = Bucket {
                    min: value(Wanted::MIN, a.min),
                    max: value(Wanted::MAX, a.max),
                    sum: value(Wanted::SUM, a.sum),
                    correction: value(Wanted::CORRECTION, a.correction),
                    ..*a
                };
                assert!(
                    expected.same_bits(b),
                    "{wanted:?}: {expected:?} read as {b:?}"
                );
            }
        }
    }

    #[test]
    fn more_buckets_than_the_caller_allows_are_refused_and_nothing_is_kept() {
        let buckets: Vec<Bucket> = (0..5).map(|h| bucket(h * 60_000, 2, 1.0)).collect();
        let mut bytes = Vec::new();
        encode(&buckets, 60_000, &mut bytes);
        let mut out = vec![bucket(-60_000, 1, 0.0)];
        assert!(
            decode(
                &mut ByteReader::new(&bytes),
                60_000,
                4,
                Wanted::ALL,
                i64::MIN,
                &mut out
            )
            .is_err()
        );
        assert_eq!(out.len(), 1);
        // Cut anywhere, the bytes are refused and leave nothing behind.
        for cut in 0..bytes.len() {
            let mut out = Vec::new();
            let r = decode(
                &mut ByteReader::new(bytes.get(..cut).unwrap_or_default()),
                60_000,
                5,
                Wanted::ALL,
                i64::MIN,
                &mut out,
            );
            assert!(r.is_err() && out.is_empty(), "cut at {cut}");
        }
    }

    #[test]
    fn decoding_from_a_time_reads_the_same_buckets_as_decoding_all_then_dropping_earlier() {
        // Columns in every mode, with gaps between buckets, so that the dropped values are
        // read past in each.
        let interval = 3_600_000;
        let buckets = in_every_mode((0..40).map(|i| i + i / 7).collect());
        let mut bytes = Vec::new();
        encode(&buckets, interval, &mut bytes);
        let last_end = buckets.last().map_or(0, |b| b.start + interval);
        for from in (-interval..=last_end + interval).step_by(1_800_000) {
            for wanted in [Wanted::NONE, Wanted::MAX, Wanted::ALL] {
                let mut r = ByteReader::new(&bytes);
                let mut back = vec![bucket(-interval, 1, 0.0)];
                decode(&mut r, interval, 40, wanted, from, &mut back).expect("decodes");
                assert!(r.is_empty(), "from {from}: bytes left unread");
                let mut all = vec![bucket(-interval, 1, 0.0)];
                decode(
                    &mut ByteReader::new(&bytes),
                    interval,
                    40,
                    wanted,
                    i64::MIN,
                    &mut all,
                )
                .expect("decodes");
                let (first, rest) = all.split_at(1);
                let expected: Vec<&Bucket> = first
                    .iter()
                    .chain(rest.iter().filter(|b| b.start + interval > from))
                    .collect();
                assert_eq!(back.len(), expected.len(), "from {from}");
                for (a, b) in expected.iter().zip(&back) {
                    assert!(a.same_bits(b), "from {from}: {a:?} read as {b:?}");
                }
            }
        }
    }
}
