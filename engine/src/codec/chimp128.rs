//! Chimp128 (the same paper as [`super::chimp`], its §4.2): Chimp, but a value may be XORed
//! with any of the last [`WINDOW`] values rather than only the previous one — the one that
//! shares its low [`KEY_BITS`] bits, found through a table of where each low-bit pattern was
//! last seen — when that leaves more trailing zeros. Series that come back to earlier values
//! (a gauge stepping between a few readings, a counter kept as a float with a repeating
//! fraction) pay a 7-bit index instead of the XOR's centre bits. Value encoding 6, segment
//! format 2 on; kept per chunk when it is the smallest float coding and saves an eighth over
//! Gorilla's XOR.
//!
//! After the first value (64 bits), each value is a 2-bit flag and its payload, with `i` a
//! 7-bit position in the ring of the last 128 values and `x` the XOR against the value it
//! names (flags 0 and 1) or against the previous value (flags 2 and 3):
//!
//! | flag | when | payload |
//! |---|---|---|
//! | 0 | the value at `i` is equal | `i` |
//! | 1 | more than 13 trailing zeros against the value at `i` | `i`, 3-bit leading code, 6-bit centre length `c`, `c` bits |
//! | 2 | leading zeros (rounded) as the last stored | the `64 − lead` low bits of `x` |
//! | 3 | otherwise | 3-bit leading code, the `64 − lead` low bits of `x` |
//!
//! Flags 0 and 1 forget the stored leading count, so a flag 2 never follows them directly.
//! The ring position of the `k`-th value (from 0) is `k mod 128`.

use super::bits::{BitReader, BitWriter};
use super::chimp::{LEADING, leading, leading_code};
use crate::DecodeError;

/// Previous values a value may be XORed with.
pub const WINDOW: usize = 128;

/// Bits of a ring position.
const INDEX_BITS: u32 = WINDOW.trailing_zeros();

/// Trailing zeros above which an XOR against a ring value is worth its index: Chimp's 6
/// plus the index's bits.
const TRAILING_THRESHOLD: u32 = 6 + INDEX_BITS;

/// Low bits by which earlier values are looked up: one more than the threshold, so that a
/// match is sure to leave more trailing zeros than it.
const KEY_BITS: u32 = TRAILING_THRESHOLD + 1;

/// No stored leading count.
const NONE: u32 = u32::MAX;

thread_local! {
    /// Where each low-bit pattern was last seen: reused by each encode on the thread, since
    /// a fresh table per chunk (64 KiB) left freed pages behind in the allocator after
    /// every flush.
    static LAST_SEEN: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Encodes `values`.
pub fn encode(values: &[f64]) -> Vec<u8> {
    LAST_SEEN.with(|table| {
        let mut table = table.borrow_mut();
        table.clear();
        table.resize(1 << KEY_BITS, 0);
        encode_with(values, &mut table)
    })
}

/// [`encode`] with `last_seen` (all zero, `2^KEY_BITS` entries): for each low-bit pattern,
/// the count of values up to and including the last that had it (0: none).
fn encode_with(values: &[f64], last_seen: &mut [u32]) -> Vec<u8> {
    let mut w = BitWriter::new();
    let Some((first, rest)) = values.split_first() else {
        return w.finish();
    };
    let mut ring = [0u64; WINDOW];
    let key = |bits: u64| (bits & ((1 << KEY_BITS) - 1)) as usize;
    let mut prev = first.to_bits();
    w.write(prev, 64);
    ring[0] = prev;
    if let Some(seen) = last_seen.get_mut(key(prev)) {
        *seen = 1;
    }
    let mut stored = NONE;
    for (k, v) in rest.iter().enumerate() {
        let count = k + 1; // values before this one
        let bits = v.to_bits();
        let slot = key(bits);
        let candidate = last_seen.get(slot).copied().unwrap_or(0) as usize;
        let from_ring = (candidate > 0 && count - (candidate - 1) <= WINDOW)
            .then(|| {
                let i = (candidate - 1) % WINDOW;
                (i, bits ^ ring.get(i).copied().unwrap_or(0))
            })
            .filter(|&(_, x)| x.trailing_zeros() > TRAILING_THRESHOLD);
        match from_ring {
            Some((i, 0)) => {
                w.write(0, 2);
                w.write(i as u64, INDEX_BITS);
                stored = NONE;
            }
            Some((i, x)) => {
                let code = leading_code(x.leading_zeros());
                let lead = LEADING.get(code as usize).copied().unwrap_or(0);
                let trail = x.trailing_zeros();
                let centre = 64 - lead - trail;
                w.write(1, 2);
                w.write(i as u64, INDEX_BITS);
                w.write(u64::from(code), 3);
                w.write(u64::from(centre), 6);
                w.write(x >> trail, centre);
                stored = NONE;
            }
            None => {
                let x = bits ^ prev;
                let code = leading_code(x.leading_zeros());
                let lead = LEADING.get(code as usize).copied().unwrap_or(0);
                if lead == stored {
                    w.write(2, 2);
                    w.write(x, 64 - lead);
                } else {
                    w.write(3, 2);
                    w.write(u64::from(code), 3);
                    w.write(x, 64 - lead);
                    stored = lead;
                }
            }
        }
        prev = bits;
        if let Some(r) = ring.get_mut(count % WINDOW) {
            *r = bits;
        }
        if let Some(seen) = last_seen.get_mut(slot) {
            // Chunks hold far fewer than 2^32 values.
            *seen = (count + 1) as u32;
        }
    }
    w.finish()
}

/// Decodes `n` Chimp128-encoded values, appending them to `out`.
pub fn decode(data: &[u8], n: usize, out: &mut Vec<f64>) -> Result<(), DecodeError> {
    if n == 0 {
        return Ok(());
    }
    let mut r = BitReader::new(data);
    let mut prev = r.read_wide(64)?;
    out.reserve(n);
    out.push(f64::from_bits(prev));
    let mut ring = [0u64; WINDOW];
    ring[0] = prev;
    let mut stored = NONE;
    let at = |r: &BitReader| (r.position() / 8) as u64;
    for count in 1..n {
        // One look at the next bits serves the flag and the fixed fields after it.
        let word = r.peek();
        let flag = word & 3;
        // Flags 0 and 1 name a ring position, which must hold a value already decoded.
        let earlier = |r: &BitReader| -> Result<u64, DecodeError> {
            let i = ((word >> 2) & (WINDOW as u64 - 1)) as usize;
            if i >= count {
                return Err(DecodeError::new(
                    at(r),
                    format!("Chimp128 value {count} refers to ring position {i}, not yet filled"),
                ));
            }
            Ok(ring.get(i).copied().unwrap_or(0))
        };
        let bits = match flag {
            0 => {
                let base = earlier(&r)?;
                r.consume(2 + INDEX_BITS)?;
                stored = NONE;
                base
            }
            1 => {
                let base = earlier(&r)?;
                let fields = word >> (2 + INDEX_BITS);
                let lead = leading(fields & 7);
                let centre = ((fields >> 3) & 63) as u32;
                r.consume(2 + INDEX_BITS + 9)?;
                let Some(trail) = 64u32
                    .checked_sub(lead + centre)
                    .filter(|&t| t > TRAILING_THRESHOLD && centre > 0)
                else {
                    return Err(DecodeError::new(
                        at(&r),
                        format!("Chimp128 centre of {centre} bits after {lead} leading zeros"),
                    ));
                };
                stored = NONE;
                base ^ (r.read_wide(centre)? << trail)
            }
            2 => {
                if stored == NONE {
                    return Err(DecodeError::new(
                        at(&r),
                        "Chimp128 value reuses a leading count before one was stored",
                    ));
                }
                r.consume(2)?;
                prev ^ r.read_wide(64 - stored)?
            }
            _ => {
                let lead = leading((word >> 2) & 7);
                r.consume(5)?;
                stored = lead;
                prev ^ r.read_wide(64 - lead)?
            }
        };
        prev = bits;
        if let Some(slot) = ring.get_mut(count % WINDOW) {
            *slot = bits;
        }
        out.push(f64::from_bits(bits));
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
        fn any_floats_round_trip_bit_for_bit(values in prop::collection::vec(any::<f64>(), 1..400)) {
            round_trip(&values);
        }

        /// Values drawn again and again from a few: the ring's case, across its wrap.
        #[test]
        fn returning_values_round_trip(
            pool in prop::collection::vec(any::<f64>(), 1..6),
            picks in prop::collection::vec(any::<prop::sample::Index>(), 1..600),
        ) {
            let values: Vec<f64> = picks.iter().map(|i| *i.get(&pool)).collect();
            round_trip(&values);
        }

        #[test]
        fn garbage_is_an_error_not_a_panic(data in prop::collection::vec(any::<u8>(), 0..100), n in 0usize..300) {
            let _ = decode(&data, n, &mut Vec::new());
        }
    }

    #[test]
    fn specials_round_trip() {
        let mut values = float_tests::SPECIALS.to_vec();
        values.extend([1.0, -0.0, f64::NAN]);
        round_trip(&values);
    }

    #[test]
    fn values_that_come_back_take_less_than_chimp() {
        // A reading that moves between a few levels with noise below them.
        let levels = [21.37, 22.91, 19.03, 24.58];
        let values: Vec<f64> = (0..2048)
            .map(|i: usize| levels[(i * 7 / 3) % 4] + f64::from((i % 5) as u32) * 1e-9)
            .collect();
        let window = round_trip(&values);
        let chimp = crate::codec::chimp::encode(&values);
        assert!(
            window.len() * 2 < chimp.len(),
            "Chimp128 {} bytes, Chimp {}",
            window.len(),
            chimp.len()
        );
    }

    #[test]
    fn a_ring_position_not_yet_filled_is_an_error() {
        // First value, then flag 0 naming position 5 while only position 0 holds a value.
        let mut w = BitWriter::new();
        w.write(1.0f64.to_bits(), 64);
        w.write(0, 2);
        w.write(5, INDEX_BITS);
        let bytes = w.finish();
        let err = decode(&bytes, 2, &mut Vec::new()).expect_err("refused");
        assert!(err.reason.contains("ring position 5"), "{err:?}");
    }
}
