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

    /// The bits written so far.
    pub fn bits(&self) -> &BitWriter {
        &self.w
    }

    /// Starts again, empty, keeping the buffer.
    pub fn clear(&mut self) {
        let mut w = std::mem::take(&mut self.w);
        w.clear();
        *self = TimestampEncoder {
            w,
            ..Default::default()
        };
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

/// The blocks encoding of `ts`, or `None` when it has fewer than two timestamps' worth.
pub fn encode_blocks(ts: &[i64]) -> Option<Vec<u8>> {
    let mut w = BitWriter::new();
    let first = *ts.first()?;
    w.write(first as u64, 64);
    if ts.len() < 2 {
        return Some(w.finish());
    }
    let step = step(ts);
    bucket::write(&mut w, step);
    let diffs: Vec<i64> = ts
        .windows(2)
        .map(|pair| match pair {
            [a, b] => b.wrapping_sub(*a).wrapping_sub(step),
            _ => 0,
        })
        .collect();
    let codes: Vec<u64> = diffs.iter().map(|&d| zigzag(d)).collect();
    // The widest code the blocks keep: each width present is tried, wider codes becoming
    // exceptions, and the cheapest kept (a gap or a late scrape costs one exception, not a
    // block of wide values).
    let mut limits: Vec<u32> = codes.iter().map(|&c| code_width(c)).collect();
    limits.push(0);
    limits.sort_unstable();
    limits.dedup();
    let limit = limits
        .into_iter()
        .filter(|&l| l <= bits::MAX_BLOCK_WIDTH)
        .min_by_key(|&l| cost_with_limit(&codes, &diffs, l))?;
    let exceptions: Vec<usize> = (0..codes.len())
        .filter(|&i| codes.get(i).is_some_and(|&c| code_width(c) > limit))
        .collect();
    bucket::write(&mut w, exceptions.len() as i64);
    let mut at = 0;
    for &i in &exceptions {
        bucket::write(&mut w, (i - at) as i64);
        bucket::write(&mut w, diffs.get(i).copied().unwrap_or(0));
        at = i;
    }
    let kept: Vec<u64> = codes
        .iter()
        .map(|&c| if code_width(c) > limit { 0 } else { c })
        .collect();
    bits::write_blocks(&mut w, &kept)?;
    Some(w.finish())
}

fn code_width(code: u64) -> u32 {
    64 - code.leading_zeros()
}

/// Bits of the blocks and exceptions when codes wider than `limit` are exceptions.
fn cost_with_limit(codes: &[u64], diffs: &[i64], limit: u32) -> usize {
    let mut bits = 0usize;
    let mut exceptions = 0i64;
    let mut at = 0usize;
    for (block_start, block) in codes.chunks(BLOCK).enumerate() {
        let mut width = 0;
        for (j, &c) in block.iter().enumerate() {
            if code_width(c) > limit {
                let i = block_start * BLOCK + j;
                exceptions += 1;
                bits += bucket::cost((i - at) as i64) as usize
                    + bucket::cost(diffs.get(i).copied().unwrap_or(0)) as usize;
                at = i;
            } else {
                width = width.max(code_width(c));
            }
        }
        bits += 6 + width as usize * block.len();
    }
    bits + bucket::cost(exceptions) as usize
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
    let k = usize::try_from(bucket::read(&mut r)?)
        .ok()
        .filter(|&k| k < n)
        .ok_or_else(|| {
            DecodeError::new((r.position() / 8) as u64, "bad timestamp exception count")
        })?;
    let mut exceptions = Vec::with_capacity(k);
    let mut at = 0usize;
    for e in 0..k {
        let gap = usize::try_from(bucket::read(&mut r)?).unwrap_or(usize::MAX);
        at = at.saturating_add(gap);
        if at >= n - 1 || (e > 0 && gap == 0) {
            return Err(DecodeError::new(
                (r.position() / 8) as u64,
                format!(
                    "timestamp exception at {at} of {} (out of range or repeated)",
                    n - 1
                ),
            ));
        }
        exceptions.push((at, bucket::read(&mut r)?));
    }
    let mut exceptions = exceptions.into_iter();
    let mut next = exceptions.next().unwrap_or((usize::MAX, 0));
    let mut done = 0usize;
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
        if next.0 >= done + count {
            // No exception in this block: the plain loop.
            r.read_run(width, count, |code| {
                t = t.wrapping_add(step).wrapping_add(unzigzag(code));
                out.push(t);
            })?;
        } else {
            let mut i = done;
            r.read_run(width, count, |code| {
                let diff = if i == next.0 {
                    let d = next.1;
                    next = exceptions.next().unwrap_or((usize::MAX, 0));
                    d
                } else {
                    unzigzag(code)
                };
                t = t.wrapping_add(step).wrapping_add(diff);
                out.push(t);
                i += 1;
            })?;
        }
        done += count;
        left -= count;
    }
    Ok(())
}
