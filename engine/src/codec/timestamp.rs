//! Timestamp column: the first timestamp in 64 bits, then the first delta, then
//! delta-of-deltas, each bucketed ([`super::bucket`]). Arithmetic wraps, so any `i64`
//! sequence (out of order, negative, extreme) round-trips exactly.
//!
//! **Blocks** (segment format 2, chosen per chunk when smaller): the same first timestamp,
//! a step (the median delta, bucketed), then each delta's difference from the step,
//! zig-zagged, in blocks of [`BLOCK`], each a 6-bit width followed by its values at that
//! width. A perfectly regular interval costs 6 bits per block instead of one bit per
//! sample; a scrape's jitter of ±J ms costs the bits of ±2J, where delta-of-deltas would
//! need ±4J; a gap costs one wide value, where delta-of-deltas would pay twice.

use super::bits::{self, BitReader, BitWriter};
use super::bucket;
use super::{unzigzag, zigzag};
use crate::DecodeError;

/// Incremental timestamp encoder.
#[derive(Debug, Clone, Default)]
pub struct TimestampEncoder {
    w: BitWriter,
    n: usize,
    prev: i64,
    prev_delta: i64,
}

impl TimestampEncoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `t`.
    #[inline]
    pub fn push(&mut self, t: i64) {
        match self.n {
            0 => self.w.write(t as u64, 64),
            1 => {
                let delta = t.wrapping_sub(self.prev);
                bucket::write(&mut self.w, delta);
                self.prev_delta = delta;
            }
            _ => {
                let delta = t.wrapping_sub(self.prev);
                bucket::write(&mut self.w, delta.wrapping_sub(self.prev_delta));
                self.prev_delta = delta;
            }
        }
        self.prev = t;
        self.n += 1;
    }

    /// Timestamps pushed.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True when nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The last timestamp pushed.
    pub fn last(&self) -> Option<i64> {
        (self.n > 0).then_some(self.prev)
    }

    /// The bytes so far (the writer goes on).
    pub fn snapshot(&self) -> Vec<u8> {
        self.w.snapshot()
    }

    /// Ends the encoder.
    pub fn finish(self) -> Vec<u8> {
        self.w.finish()
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.w.heap_bytes()
    }
}

/// Timestamps per block of the blocks encoding.
pub const BLOCK: usize = bits::BLOCK;

/// The interval the blocks encoding measures deltas against: the median delta, so that
/// jitter on both sides of it, and a rare gap, stay small.
fn step(ts: &[i64]) -> i64 {
    let mut deltas: Vec<i64> = ts
        .windows(2)
        .map(|w| match w {
            [a, b] => b.wrapping_sub(*a),
            _ => 0,
        })
        .collect();
    if deltas.is_empty() {
        return 0;
    }
    let middle = deltas.len() / 2;
    *deltas.select_nth_unstable(middle).1
}

/// The blocks encoding of `ts`, or `None` when a delta strays from the step by more than
/// 55 bits.
pub fn encode_blocks(ts: &[i64]) -> Option<Vec<u8>> {
    let mut w = BitWriter::new();
    let first = *ts.first()?;
    w.write(first as u64, 64);
    if ts.len() < 2 {
        return Some(w.finish());
    }
    let step = step(ts);
    bucket::write(&mut w, step);
    let codes: Vec<u64> = ts
        .windows(2)
        .map(|pair| match pair {
            [a, b] => zigzag(b.wrapping_sub(*a).wrapping_sub(step)),
            _ => 0,
        })
        .collect();
    bits::write_blocks(&mut w, &codes)?;
    Some(w.finish())
}

/// Reads and pushes the first of `n` timestamps (64 bits, the same in both layouts); `None`
/// when there is no more to read.
fn first(r: &mut BitReader, n: usize, out: &mut Vec<i64>) -> Result<Option<i64>, DecodeError> {
    if n == 0 {
        return Ok(None);
    }
    let t = r.read_wide(64)? as i64;
    out.reserve(n);
    out.push(t);
    Ok((n > 1).then_some(t))
}

/// Decodes `n` bucketed timestamps, appending them to `out`.
pub fn decode(data: &[u8], n: usize, out: &mut Vec<i64>) -> Result<(), DecodeError> {
    let mut r = BitReader::new(data);
    let Some(mut t) = first(&mut r, n, out)? else {
        return Ok(());
    };
    let mut delta = bucket::read(&mut r)?;
    t = t.wrapping_add(delta);
    out.push(t);
    for _ in 2..n {
        delta = delta.wrapping_add(bucket::read(&mut r)?);
        t = t.wrapping_add(delta);
        out.push(t);
    }
    Ok(())
}

/// Decodes `n` block-encoded timestamps, appending them to `out`.
pub fn decode_blocks(data: &[u8], n: usize, out: &mut Vec<i64>) -> Result<(), DecodeError> {
    let mut r = BitReader::new(data);
    let Some(mut t) = first(&mut r, n, out)? else {
        return Ok(());
    };
    let step = bucket::read(&mut r)?;
    let mut left = n - 1;
    while left > 0 {
        let width = r.read(6)? as u32;
        if width > bits::MAX_BLOCK_WIDTH {
            return Err(DecodeError::new(
                (r.position() / 8) as u64,
                format!("block width {width} exceeds {}", bits::MAX_BLOCK_WIDTH),
            ));
        }
        let count = left.min(BLOCK);
        // The unpacking loop stays here, not behind a shared helper: handing the closure
        // on through one more generic function cost a tenth of the decode speed.
        r.read_run(width, count, |code| {
            t = t.wrapping_add(step).wrapping_add(unzigzag(code));
            out.push(t);
        })?;
        left -= count;
    }
    Ok(())
}
