//! Timestamp column: the first timestamp in 64 bits, then the first delta, then
//! delta-of-deltas, each bucketed ([`super::bucket`]). Arithmetic wraps, so any `i64`
//! sequence (out of order, negative, extreme) round-trips exactly.

use super::bits::{BitReader, BitWriter};
use super::bucket;
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
