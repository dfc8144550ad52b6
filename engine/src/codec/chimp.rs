//! Chimp (Liakos, Papakonstantinopoulou, Kotidis, "Chimp: Efficient Lossless Floating Point
//! Compression for Time Series Databases", VLDB 2022): XOR with the previous value like
//! Gorilla, but coded for how real floats differ — an XOR with many trailing zeros stores
//! only its centre bits, and the leading zeros are rounded to one of eight counts so that
//! they cost 3 bits and are more often reused. For the floats the decimal path cannot take
//! (value encoding 5, segment format 2), kept per chunk when it saves an eighth over XOR
//! (it decodes more slowly per value).
//!
//! After the first value (64 bits), each value is a 2-bit flag (written as one 2-bit field)
//! and its payload, with `x` the XOR against the previous value:
//!
//! | flag | when | payload |
//! |---|---|---|
//! | 0 | `x == 0` | — |
//! | 1 | more than 6 trailing zeros | 3-bit leading code, 6-bit centre length `c`, `c` bits |
//! | 2 | leading zeros (rounded) as the last stored | the `64 − lead` low bits of `x` |
//! | 3 | otherwise | 3-bit leading code, the `64 − lead` low bits of `x` |
//!
//! Flag 1 forgets the stored leading count, so a flag 2 never follows it directly.

use super::bits::{BitReader, BitWriter};
use crate::DecodeError;

/// The leading-zero counts a code stands for.
pub(super) const LEADING: [u32; 8] = [0, 8, 12, 16, 18, 20, 22, 24];

/// Trailing zeros above which only the centre bits are stored.
const TRAILING_THRESHOLD: u32 = 6;

/// No stored leading count (after flag 1, and at the start).
const NONE: u32 = u32::MAX;

/// The code of the largest listed count not above `lead`.
#[inline]
pub(super) fn leading_code(lead: u32) -> u32 {
    LEADING.iter().rposition(|&l| l <= lead).unwrap_or(0) as u32
}

/// The leading-zero count of a 3-bit code.
#[inline]
pub(super) fn leading(code: u64) -> u32 {
    LEADING.get(code as usize).copied().unwrap_or(0)
}

/// Encodes `values`.
pub fn encode(values: &[f64]) -> Vec<u8> {
    let mut w = BitWriter::new();
    let Some((first, rest)) = values.split_first() else {
        return w.finish();
    };
    let mut prev = first.to_bits();
    w.write(prev, 64);
    let mut stored = NONE;
    for v in rest {
        let bits = v.to_bits();
        let x = bits ^ prev;
        prev = bits;
        if x == 0 {
            w.write(0, 2);
            continue;
        }
        let code = leading_code(x.leading_zeros());
        let lead = LEADING.get(code as usize).copied().unwrap_or(0);
        let trail = x.trailing_zeros();
        if trail > TRAILING_THRESHOLD {
            let centre = 64 - lead - trail;
            w.write(1, 2);
            w.write(u64::from(code), 3);
            w.write(u64::from(centre), 6);
            w.write(x >> trail, centre);
            stored = NONE;
        } else if lead == stored {
            w.write(2, 2);
            w.write(x, 64 - lead);
        } else {
            w.write(3, 2);
            w.write(u64::from(code), 3);
            w.write(x, 64 - lead);
            stored = lead;
        }
    }
    w.finish()
}

/// Decodes `n` Chimp-encoded values, appending them to `out`.
pub fn decode(data: &[u8], n: usize, out: &mut Vec<f64>) -> Result<(), DecodeError> {
    if n == 0 {
        return Ok(());
    }
    let mut r = BitReader::new(data);
    let mut prev = r.read_wide(64)?;
    out.reserve(n);
    out.push(f64::from_bits(prev));
    let mut stored = NONE;
    let at = |r: &BitReader| (r.position() / 8) as u64;
    for _ in 1..n {
        // One look at the next bits serves the flag and the fixed fields after it.
        let word = r.peek();
        match word & 3 {
            0 => r.consume(2)?,
            1 => {
                let lead = leading((word >> 2) & 7);
                let centre = ((word >> 5) & 63) as u32;
                r.consume(11)?;
                let Some(trail) = 64u32
                    .checked_sub(lead + centre)
                    .filter(|&t| t > TRAILING_THRESHOLD && centre > 0)
                else {
                    return Err(DecodeError::new(
                        at(&r),
                        format!("Chimp centre of {centre} bits after {lead} leading zeros"),
                    ));
                };
                prev ^= r.read_wide(centre)? << trail;
                stored = NONE;
            }
            2 => {
                if stored == NONE {
                    return Err(DecodeError::new(
                        at(&r),
                        "Chimp value reuses a leading count before one was stored",
                    ));
                }
                r.consume(2)?;
                prev ^= r.read_wide(64 - stored)?;
            }
            _ => {
                let lead = leading((word >> 2) & 7);
                r.consume(5)?;
                prev ^= r.read_wide(64 - lead)?;
                stored = lead;
            }
        }
        out.push(f64::from_bits(prev));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::codec::float_tests;

    fn round_trip(values: &[f64]) -> Vec<u8> {
        float_tests::round_trip(encode, decode, values)
    }

    proptest! {
        #[test]
        fn any_floats_round_trip_bit_for_bit(values in prop::collection::vec(any::<f64>(), 1..300)) {
            round_trip(&values);
        }

        #[test]
        fn slowly_moving_floats_round_trip(start in any::<f64>(), steps in prop::collection::vec(-3i64..3, 1..300)) {
            let mut bits = start.to_bits();
            let values: Vec<f64> = steps.iter().map(|s| { bits = bits.wrapping_add(*s as u64); f64::from_bits(bits) }).collect();
            round_trip(&values);
        }

        #[test]
        fn garbage_is_an_error_not_a_panic(data in prop::collection::vec(any::<u8>(), 0..100), n in 0usize..200) {
            let _ = decode(&data, n, &mut Vec::new());
        }
    }

    #[test]
    fn specials_and_repeats_round_trip() {
        let mut values = float_tests::SPECIALS.to_vec();
        values.extend([1.0, 1.0, 1.5]);
        round_trip(&values);
    }

    #[test]
    fn measured_floats_take_less_than_gorilla() {
        let values: Vec<f64> = (1..2048)
            .map(|i| (f64::from(i) * 0.731).sin() * 40.0)
            .collect();
        let chimp = round_trip(&values);
        let mut xor = crate::codec::value::XorEncoder::new();
        values.iter().for_each(|&v| xor.push(v));
        let xor = xor.finish();
        assert!(
            chimp.len() < xor.len(),
            "Chimp {} bytes, XOR {}",
            chimp.len(),
            xor.len()
        );
    }
}
