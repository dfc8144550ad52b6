//! The decimal path for floats (the idea of ALP, Afroozeh et al., SIGMOD 2024): most
//! measured values were written as decimals with a few places — money, percentages, sensor
//! readings, a hospital's occupancy `87.25` — and a double holding one is exactly
//! `m / 10^e` for an integer mantissa `m` and a small exponent `e`. Such a column is stored
//! as its mantissas, through the integer path ([`super::value`]: deltas, delta-of-deltas or
//! fixed-width blocks, whichever is smallest), and the few values that are not — NaN (the
//! Prometheus stale marker), ±Inf, −0.0, a value with more places — are kept aside whole as
//! exceptions, so one of them does not push the whole chunk onto XOR.
//!
//! Lossless bit for bit: a value is coded as a mantissa only when decoding it, by the very
//! division the decoder does (IEEE division is correctly rounded, so it gives the double
//! nearest `m / 10^e`, which is what parsing the decimal gave), returns the same 64 bits.
//!
//! ```text
//! u8       e, the exponent (0 ..= MAX_EXPONENT)
//! varint   k, the number of exceptions (< n)
//! k ×      varint gap to the exception's position (from the previous exception's, the
//!          first from 0) | u64 LE its bits
//! u8       the mantissas' integer encoding (1 delta, 2 delta-of-delta, 3 blocks)
//! rest     the n mantissas in that encoding; an exception's place holds the mantissa
//!          before it (0 at the start), so it costs a zero delta
//! ```

use super::bytes::ByteReader;
use super::value::{self, MAX_EXACT_INT, ValueEncoding};
use super::varint::put_u64;
use crate::DecodeError;

/// Largest exponent: 18 decimal places (every power of ten up to 10^22 is an exact double).
pub const MAX_EXPONENT: usize = 18;

const POW10: [f64; MAX_EXPONENT + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18,
];

/// How much larger (percent) the blocks encoding of the mantissas may be and still be
/// chosen over delta or delta-of-delta prefix codes, for its decode speed.
const BLOCKS_SLACK_PERCENT: usize = 10;

/// Values sampled to choose the exponent: enough to see the common number of places, few
/// enough that a chunk of non-decimal floats is recognised cheaply.
const SAMPLE: usize = 64;

/// The value of mantissa `m` at exponent `e` (`None` past [`MAX_EXPONENT`]).
#[inline]
pub(crate) fn from_mantissa(m: i64, e: usize) -> Option<f64> {
    POW10.get(e).map(|p| m as f64 / p)
}

/// The mantissa of `v` at exponent `e`, when decoding it gives back exactly `v`.
#[inline]
pub(crate) fn mantissa(v: f64, e: usize) -> Option<i64> {
    let p = POW10.get(e).copied()?;
    let scaled = (v * p).round();
    // NaN and ±Inf are not finite; beyond 2^53 integers are not all exact.
    if !scaled.is_finite() || scaled.abs() > MAX_EXACT_INT {
        return None;
    }
    let m = scaled as i64;
    ((m as f64 / p).to_bits() == v.to_bits()).then_some(m)
}

/// The fewest places that carry `v` exactly, if any up to [`MAX_EXPONENT`] do.
fn places(v: f64) -> Option<usize> {
    (0..=MAX_EXPONENT).find(|&e| mantissa(v, e).is_some())
}

/// A column split into mantissas and exceptions, ready to encode.
#[derive(Debug, Clone, PartialEq)]
pub struct Decimal {
    /// The exponent.
    pub exponent: usize,
    /// One mantissa per value (exceptions hold the one before), as exact doubles, which is
    /// what the integer encoders take.
    pub mantissas: Vec<f64>,
    /// (position, bits) of the values that are not mantissas.
    pub exceptions: Vec<(usize, u64)>,
}

/// Splits `values` if enough of them are decimals with the same few places: `None` when
/// more than one in eight would be an exception, or the column is empty.
pub fn split(values: &[f64]) -> Option<Decimal> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    // A sample first, so that a chunk of floats that are not decimals is let go cheaply.
    let step = n.div_ceil(SAMPLE);
    let sampled = n.div_ceil(step);
    let decimals = values
        .iter()
        .step_by(step)
        .filter(|&&v| places(v).is_some())
        .count();
    if decimals * 8 < sampled * 7 {
        return None;
    }
    // The exponent: the fewest places that carry nearly all values (an occasional value
    // with more places becomes an exception rather than costing every mantissa digits).
    let mut counts = [0usize; MAX_EXPONENT + 1];
    for &v in values {
        if let Some(c) = places(v).and_then(|e| counts.get_mut(e)) {
            *c += 1;
        }
    }
    let decimal: usize = counts.iter().sum();
    let mut covered = 0;
    let exponent = counts.iter().position(|&c| {
        covered += c;
        covered * 64 >= decimal * 63
    })?;

    let mut mantissas = Vec::with_capacity(n);
    let mut exceptions = Vec::new();
    let mut prev = 0i64;
    for (i, &v) in values.iter().enumerate() {
        match mantissa(v, exponent) {
            Some(m) => prev = m,
            None => {
                exceptions.push((i, v.to_bits()));
                if exceptions.len() * 8 > n {
                    return None;
                }
            }
        }
        mantissas.push(prev as f64);
    }
    Some(Decimal {
        exponent,
        mantissas,
        exceptions,
    })
}

/// Encodes a split column with the mantissas' smallest integer encoding.
pub fn encode(d: &Decimal) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(16 + d.exceptions.len() * 10);
    out.push(d.exponent as u8);
    put_u64(&mut out, d.exceptions.len() as u64);
    let mut at = 0;
    for &(position, bits) in &d.exceptions {
        put_u64(&mut out, (position - at) as u64);
        out.extend_from_slice(&bits.to_le_bytes());
        at = position;
    }
    // Mantissas are exact integers in ±2^53: the integer path takes them. Blocks decode
    // about three times faster than the prefix codes, worth up to a tenth more bytes.
    let (encoding, bytes) = value::encode_int(&d.mantissas, BLOCKS_SLACK_PERCENT)?;
    out.push(encoding as u8);
    out.extend_from_slice(&bytes);
    Some(out)
}

/// Decodes `n` decimal-encoded values, appending them to `out`.
pub fn decode(data: &[u8], n: usize, out: &mut Vec<f64>) -> Result<(), DecodeError> {
    let mut r = ByteReader::new(data);
    let exponent = usize::from(r.u8()?);
    let Some(&p) = POW10.get(exponent) else {
        return Err(r.error(format!(
            "decimal exponent {exponent} exceeds {MAX_EXPONENT}"
        )));
    };
    let k = r.len(n.saturating_sub(1), "decimal exception count")?;
    // Each exception takes at least 9 bytes: bounds the allocation by the input.
    if k.saturating_mul(9) > r.remaining() {
        return Err(r.error(format!("{k} decimal exceptions cannot fit in the column")));
    }
    let mut exceptions = Vec::with_capacity(k);
    let mut at = 0usize;
    for i in 0..k {
        let gap = r.len(n, "decimal exception position")?;
        at = at.saturating_add(gap);
        if at >= n || (i > 0 && gap == 0) {
            return Err(r.error(format!(
                "decimal exception at position {at} of {n} values (out of range or repeated)"
            )));
        }
        exceptions.push((at, r.u64_le()?));
    }
    let encoding = ValueEncoding::try_from(r.u8()?).map_err(|e| e.shifted(r.position() as u64))?;
    let start = r.position();
    let column = r.bytes(r.remaining())?;
    let min_bits = match encoding {
        ValueEncoding::IntDelta | ValueEncoding::IntDeltaOfDelta => n,
        ValueEncoding::IntDeltaBlocks => 1 + (n - 1).div_ceil(value::BLOCK) * 6,
        ValueEncoding::Xor
        | ValueEncoding::Decimal
        | ValueEncoding::Chimp
        | ValueEncoding::Chimp128 => {
            return Err(DecodeError::new(
                start as u64 - 1,
                format!("decimal mantissas cannot be {encoding:?}-encoded"),
            ));
        }
    };
    if column.len() * 8 < min_bits {
        return Err(DecodeError::new(
            start as u64,
            format!("{n} mantissas cannot fit in {} bytes", column.len()),
        ));
    }
    let before = out.len();
    // The same division `mantissa` checked against: exact by construction.
    let decoded = match encoding {
        ValueEncoding::IntDeltaBlocks => value::decode_blocks_as(column, n, out, |m| m as f64 / p),
        int => value::decode_int(column, n, int, out).map(|()| {
            if exponent > 0 {
                out.iter_mut().skip(before).for_each(|v| *v /= p);
            }
        }),
    };
    if let Err(e) = decoded {
        out.truncate(before);
        return Err(e.shifted(start as u64));
    }
    let values = out.get_mut(before..).unwrap_or_default();
    for (position, bits) in exceptions {
        if let Some(v) = values.get_mut(position) {
            *v = f64::from_bits(bits);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(values: &[f64]) -> Option<Decimal> {
        let d = split(values)?;
        let bytes = encode(&d).expect("encodes");
        let mut out = Vec::new();
        decode(&bytes, values.len(), &mut out).expect("decodes");
        let got: Vec<u64> = out.iter().map(|v| v.to_bits()).collect();
        let want: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want);
        Some(d)
    }

    #[test]
    fn two_place_decimals_are_mantissas_at_exponent_two() {
        let values: Vec<f64> = (0..500).map(|i| (8_725 + i % 13) as f64 / 100.0).collect();
        let d = round_trip(&values).expect("decimal");
        assert_eq!(d.exponent, 2);
        assert!(d.exceptions.is_empty());
    }

    #[test]
    fn special_values_are_exceptions_and_keep_their_bits() {
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let mut values: Vec<f64> = (0..400).map(|i| f64::from(i % 7) * 0.5).collect();
        for (i, v) in [
            (0, stale),
            (17, -0.0),
            (18, f64::INFINITY),
            (200, f64::from_bits(0x7ff8_0000_dead_beef)),
            (399, 5e-324),
        ] {
            values[i] = v;
        }
        let d = round_trip(&values).expect("decimal");
        assert_eq!(d.exponent, 1);
        assert_eq!(d.exceptions.len(), 5);
    }

    #[test]
    fn floats_that_are_not_decimals_are_left_to_xor() {
        let values: Vec<f64> = (1..300).map(|i| (f64::from(i) * 0.731).sin()).collect();
        assert_eq!(split(&values), None);
    }

    #[test]
    fn a_rare_value_with_more_places_is_an_exception_not_a_wider_exponent() {
        let mut values: Vec<f64> = (0..1000).map(|i| f64::from(i % 50) / 4.0).collect();
        values[500] = 1.0 / 3.0;
        let d = round_trip(&values).expect("decimal");
        assert_eq!(d.exponent, 2);
        assert_eq!(d.exceptions, vec![(500, (1.0f64 / 3.0).to_bits())]);
    }

    #[test]
    fn damaged_columns_are_errors_not_panics() {
        let values: Vec<f64> = (0..100).map(|i| f64::from(i) / 10.0).collect();
        let mut with_exception = values.clone();
        with_exception[3] = f64::NAN;
        let bytes = encode(&split(&with_exception).expect("decimal")).expect("encodes");
        for cut in 0..bytes.len() {
            let _ = decode(&bytes[..cut], 100, &mut Vec::new());
        }
        let mut bad = bytes.clone();
        bad[0] = 40;
        assert!(decode(&bad, 100, &mut Vec::new()).is_err(), "exponent");
        let mut bad = bytes.clone();
        bad[1] = 100;
        assert!(
            decode(&bad, 100, &mut Vec::new()).is_err(),
            "exception count"
        );
        let mut bad = bytes;
        bad[2] = 120;
        assert!(decode(&bad, 100, &mut Vec::new()).is_err(), "position");
    }
}
