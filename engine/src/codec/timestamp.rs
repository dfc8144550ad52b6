//! Timestamp column: the first timestamp in 64 bits, then the first delta, then
//! delta-of-deltas, each bucketed ([`super::bucket`]). Arithmetic wraps, so any `i64`
//! sequence (out of order, negative, extreme) round-trips exactly.
//!
//! **Blocks** (segment format 2, chosen per chunk when smaller): the same first timestamp
//! and bucketed first delta, then the delta-of-deltas zig-zagged in blocks of [`BLOCK`],
//! each a 6-bit width followed by its values at that width. A perfectly regular interval costs 6
//! bits per block instead of one bit per sample, and a scrape's few milliseconds of jitter
//! a few bits per sample instead of a 5–10-bit bucket.

use super::bits::{BitReader, BitWriter};
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

/// Decodes `n` timestamps from `data`, appending them to `out`.
pub fn decode(data: &[u8], n: usize, out: &mut Vec<i64>) -> Result<(), DecodeError> {
    if n == 0 {
        return Ok(());
    }
    let mut r = BitReader::new(data);
    let mut t = r.read_wide(64)? as i64;
    out.reserve(n);
    out.push(t);
    if n == 1 {
        return Ok(());
    }
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

/// Timestamps per block of the blocks encoding.
pub const BLOCK: usize = 32;

/// The zig-zagged delta-of-deltas from the third timestamp on.
fn codes(ts: &[i64]) -> Vec<u64> {
    let deltas: Vec<i64> = ts
        .windows(2)
        .map(|w| match w {
            [a, b] => b.wrapping_sub(*a),
            _ => 0,
        })
        .collect();
    deltas
        .windows(2)
        .map(|w| match w {
            [a, b] => zigzag(b.wrapping_sub(*a)),
            _ => 0,
        })
        .collect()
}

fn width(block: &[u64]) -> u32 {
    64 - block.iter().fold(0u64, |a, &b| a | b).leading_zeros()
}

/// The blocks encoding of `ts`, or `None` when a delta-of-delta needs more than 56 bits.
pub fn encode_blocks(ts: &[i64]) -> Option<Vec<u8>> {
    let mut w = BitWriter::new();
    let first = *ts.first()?;
    w.write(first as u64, 64);
    if let Some(second) = ts.get(1) {
        bucket::write(&mut w, second.wrapping_sub(first));
    }
    for block in codes(ts).chunks(BLOCK) {
        let width = width(block);
        if width > 56 {
            return None;
        }
        w.write(u64::from(width), 6);
        for &c in block {
            w.write(c, width);
        }
    }
    Some(w.finish())
}

/// Decodes `n` block-encoded timestamps, appending them to `out`.
pub fn decode_blocks(data: &[u8], n: usize, out: &mut Vec<i64>) -> Result<(), DecodeError> {
    if n == 0 {
        return Ok(());
    }
    let mut r = BitReader::new(data);
    let mut t = r.read_wide(64)? as i64;
    out.reserve(n);
    out.push(t);
    if n == 1 {
        return Ok(());
    }
    let mut delta = bucket::read(&mut r)?;
    t = t.wrapping_add(delta);
    out.push(t);
    let mut left = n - 2;
    while left > 0 {
        let width = r.read(6)? as u32;
        if width > 56 {
            return Err(DecodeError::new(
                (r.position() / 8) as u64,
                format!("timestamp block width {width} exceeds 56"),
            ));
        }
        let count = left.min(BLOCK);
        r.read_run(width, count, |code| {
            delta = delta.wrapping_add(unzigzag(code));
            t = t.wrapping_add(delta);
            out.push(t);
        })?;
        left -= count;
    }
    Ok(())
}
