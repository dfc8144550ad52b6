//! Prefix-bucketed signed integers, shared by the timestamp and integer-value codecs.
//!
//! A signed integer is zig-zagged, then written as a unary prefix choosing a payload width:
//!
//! | prefix (first bit first) | payload bits | zig-zag range  |
//! |--------------------------|--------------|----------------|
//! | `0`                      | 0            | 0              |
//! | `10`                     | 3            | < 2^3          |
//! | `110`                    | 7            | < 2^7          |
//! | `1110`                   | 13           | < 2^13         |
//! | `11110`                  | 24           | < 2^24         |
//! | `11111`                  | 64           | anything       |

use super::bits::{BitReader, BitWriter};
use super::{unzigzag, zigzag};
use crate::DecodeError;

const WIDTHS: [u32; 6] = [0, 3, 7, 13, 24, 64];

/// Bits needed to write `x`.
#[inline]
pub fn cost(x: i64) -> u32 {
    let u = zigzag(x);
    let k = bucket(u);
    prefix_len(k) + WIDTHS.get(k).copied().unwrap_or(64)
}

#[inline]
fn bucket(u: u64) -> usize {
    if u == 0 {
        0
    } else if u < 1 << 3 {
        1
    } else if u < 1 << 7 {
        2
    } else if u < 1 << 13 {
        3
    } else if u < 1 << 24 {
        4
    } else {
        5
    }
}

#[inline]
fn prefix_len(k: usize) -> u32 {
    if k < 5 { k as u32 + 1 } else { 5 }
}

/// Writes `x`.
#[inline]
pub fn write(w: &mut BitWriter, x: i64) {
    let u = zigzag(x);
    let k = bucket(u);
    // k ones, then a zero unless k is 5: LSB-first, the ones are the low bits.
    w.write((1u64 << k) - 1, prefix_len(k));
    let width = WIDTHS.get(k).copied().unwrap_or(64);
    w.write(u, width);
}

/// Reads one value written by [`write`].
#[inline]
pub fn read(r: &mut BitReader<'_>) -> Result<i64, DecodeError> {
    let word = r.peek();
    let k = ((word & 0x1f).trailing_ones() as usize).min(5);
    if k == 0 {
        r.consume(1)?;
        return Ok(0);
    }
    let plen = prefix_len(k);
    if k < 5 {
        let width = WIDTHS.get(k).copied().unwrap_or(0);
        let u = (word >> plen) & ((1u64 << width) - 1);
        r.consume(plen + width)?;
        return Ok(unzigzag(u));
    }
    r.consume(plen)?;
    Ok(unzigzag(r.read_wide(64)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_at_every_bucket_edge_round_trip_and_cost_what_they_say() {
        let mut xs = vec![0i64, 1, -1, i64::MIN, i64::MAX];
        for shift in [3u32, 7, 13, 24] {
            let edge = 1i64 << (shift - 1);
            xs.extend([edge - 1, edge, -edge, -edge - 1]);
        }
        let mut w = BitWriter::new();
        let mut bits = 0;
        for &x in &xs {
            write(&mut w, x);
            bits += cost(x) as usize;
        }
        assert_eq!(w.bit_len(), bits);
        let bytes = w.finish();
        let mut r = BitReader::new(&bytes);
        for &x in &xs {
            assert_eq!(read(&mut r).expect("read"), x);
        }
    }
}
