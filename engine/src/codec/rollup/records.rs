//! Rollup buckets as records, one after another: how segment versions 3 and 4 store one
//! tier's buckets in a rollup block (see `segment.rs`), and version 5 where it is smaller
//! than [`super::columns`] (one or two buckets: a flushed partition), which decode several
//! times faster over many.
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

use super::{Bucket, MAX_PLACES, bucket_times};
use crate::DecodeError;
use crate::codec::bytes::ByteReader;
use crate::codec::decimal;
use crate::codec::varint::{put_i64, put_u64};
use crate::model::Sample;

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
            kinds |= (put_value(v, reference, out) as u16) << (2 * k);
        }
        if let Some(slot) = out.get_mut(kinds_at..kinds_at + 2) {
            slot.copy_from_slice(&kinds.to_le_bytes());
        }
        prev_last = b.last.v;
    }
}

/// Appends `v` coded by its kind (see the module's opening doc) against `reference`, and
/// returns the kind.
pub(super) fn put_value(v: f64, reference: f64, out: &mut Vec<u8>) -> u64 {
    if v.to_bits() == reference.to_bits() {
        0
    } else if super::is_exact_integer(v) {
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
        let flags = r.u8()?;
        let kinds = u16::from_le_bytes(r.array()?);
        let bad =
            |reason: &str| DecodeError::new(at as u64, format!("rollup bucket {i}: {reason}"));
        let Some(start) = start.filter(|&s| s > prev_start) else {
            return Err(bad("starts out of order"));
        };
        let (first_t, last_t) =
            bucket_times(start, interval, n, (first_off, end_gap), flags).map_err(bad)?;
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
        let first = Sample::new(first_t, first_v);
        let last = Sample::new(last_t, last_v);
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
pub(super) fn read_value(r: &mut ByteReader<'_>, kind: u16, reference: f64) -> Option<f64> {
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
