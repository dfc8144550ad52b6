//! Value column encodings.
//!
//! - **XOR** (Gorilla): the first value's 64 bits, then for each value the XOR with the
//!   previous one: `0` when equal; else `1`, then `0` + the meaningful bits when they fit in
//!   the previous leading/trailing-zero window, or `1` + 5 bits of leading zeros + 6 bits of
//!   (length − 1) + the meaningful bits. Bit-exact for every `f64` (NaN payloads, −0.0, ±Inf).
//! - **Integer delta** / **integer delta-of-delta**: for chunks whose values are all exact
//!   integers in ±2^53 (and not −0.0), the first value then the deltas (or delta-of-deltas),
//!   bucketed ([`super::bucket`]). Gauges that move by small steps cost a few bits; counters
//!   that rise steadily cost about one.
//! - **Integer delta blocks**: the first value bucketed, then the zig-zagged deltas in blocks
//!   of [`BLOCK`], each block a 6-bit width followed by its values at that fixed width.
//!   Noisy small gauges (camera counts) pack tighter than with prefixes, and a block decodes
//!   in one branch-free loop.

use super::bits::{self, BitReader, BitWriter};
use super::bucket;
use crate::DecodeError;

/// Largest integer magnitude the integer path takes: every integer up to it is an exact f64.
pub const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// The value encodings, as stored in a chunk's first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueEncoding {
    /// Gorilla XOR.
    Xor = 0,
    /// Integer deltas.
    IntDelta = 1,
    /// Integer delta-of-deltas.
    IntDeltaOfDelta = 2,
    /// Integer deltas in fixed-width blocks.
    IntDeltaBlocks = 3,
    /// Decimal mantissas with exceptions ([`super::decimal`]); segment format 2 on.
    Decimal = 4,
    /// Chimp's XOR coding ([`super::chimp`]); segment format 2 on.
    Chimp = 5,
    /// Chimp128: XOR with one of the last 128 values ([`super::chimp128`]); segment
    /// format 2 on.
    Chimp128 = 6,
}

/// Values per block of [`ValueEncoding::IntDeltaBlocks`].
pub const BLOCK: usize = bits::BLOCK;

impl TryFrom<u8> for ValueEncoding {
    type Error = DecodeError;

    fn try_from(tag: u8) -> Result<Self, DecodeError> {
        match tag {
            0 => Ok(ValueEncoding::Xor),
            1 => Ok(ValueEncoding::IntDelta),
            2 => Ok(ValueEncoding::IntDeltaOfDelta),
            3 => Ok(ValueEncoding::IntDeltaBlocks),
            4 => Ok(ValueEncoding::Decimal),
            5 => Ok(ValueEncoding::Chimp),
            6 => Ok(ValueEncoding::Chimp128),
            other => Err(DecodeError::new(
                0,
                format!("unknown value encoding tag {other}"),
            )),
        }
    }
}

/// The value as an exact integer, if it is one the integer path can carry bit-exactly.
#[inline]
pub fn as_exact_int(v: f64) -> Option<i64> {
    let exact = v.fract() == 0.0 && v.abs() <= MAX_EXACT_INT && !(v == 0.0 && v.is_sign_negative());
    exact.then_some(v as i64)
}

/// Incremental Gorilla XOR encoder.
#[derive(Debug, Clone, Default)]
pub struct XorEncoder {
    w: BitWriter,
    n: usize,
    prev: u64,
    lead: u32,
    trail: u32,
}

impl XorEncoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bits written so far.
    pub fn bits(&self) -> &BitWriter {
        &self.w
    }

    /// Its buffer, emptied, for another encoder to reuse.
    pub fn into_cleared_bits(self) -> BitWriter {
        let mut w = self.w;
        w.clear();
        w
    }

    /// The last value appended.
    pub fn last(&self) -> Option<f64> {
        (self.n > 0).then(|| f64::from_bits(self.prev))
    }

    /// Appends `v`.
    #[inline]
    pub fn push(&mut self, v: f64) {
        let bits = v.to_bits();
        if self.n == 0 {
            self.w.write(bits, 64);
        } else {
            let x = bits ^ self.prev;
            if x == 0 {
                self.w.write(0, 1);
            } else {
                let lead = x.leading_zeros().min(31);
                let trail = x.trailing_zeros();
                if self.n > 1
                    && lead >= self.lead
                    && trail >= self.trail
                    && self.lead + self.trail > 0
                {
                    let width = 64 - self.lead - self.trail;
                    self.w.write(0b01, 2);
                    self.w.write(x >> self.trail, width);
                } else {
                    let width = 64 - lead - trail;
                    self.w.write(0b11, 2);
                    self.w.write(u64::from(lead), 5);
                    self.w.write(u64::from(width - 1), 6);
                    self.w.write(x >> trail, width);
                    self.lead = lead;
                    self.trail = trail;
                }
            }
        }
        self.prev = bits;
        self.n += 1;
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

/// Decodes `n` XOR-encoded values, appending them to `out`.
pub fn decode_xor(data: &[u8], n: usize, out: &mut Vec<f64>) -> Result<(), DecodeError> {
    if n == 0 {
        return Ok(());
    }
    let mut r = BitReader::new(data);
    let mut prev = r.read_wide(64)?;
    out.reserve(n);
    out.push(f64::from_bits(prev));
    let (mut lead, mut trail) = (0u32, 0u32);
    for _ in 1..n {
        let word = r.peek();
        if word & 1 == 0 {
            r.consume(1)?;
        } else if word & 0b10 == 0 {
            r.consume(2)?;
            let width = 64 - lead - trail;
            if width == 64 || lead + trail == 0 {
                return Err(DecodeError::new(
                    (r.position() / 8) as u64,
                    "XOR value reuses a window before one was set",
                ));
            }
            prev ^= r.read_wide(width)? << trail;
        } else {
            r.consume(2)?;
            let header = r.read(11)?;
            lead = (header & 0x1f) as u32;
            let width = ((header >> 5) & 0x3f) as u32 + 1;
            if lead + width > 64 {
                return Err(DecodeError::new(
                    (r.position() / 8) as u64,
                    format!("XOR window of {lead} leading zeros and {width} bits exceeds 64"),
                ));
            }
            trail = 64 - lead - width;
            prev ^= r.read_wide(width)? << trail;
        }
        out.push(f64::from_bits(prev));
    }
    Ok(())
}

/// Incremental integer encoder (delta or delta-of-delta of exact integers).
#[derive(Debug, Clone)]
pub struct IntEncoder {
    w: BitWriter,
    encoding: ValueEncoding,
    n: usize,
    prev: i64,
    prev_delta: i64,
}

impl IntEncoder {
    /// An empty encoder; `encoding` must be one of the integer encodings.
    pub fn new(encoding: ValueEncoding) -> Self {
        Self::writing_into(encoding, BitWriter::new())
    }

    /// An empty encoder writing into `w`, which must be empty (a buffer reused).
    pub fn writing_into(encoding: ValueEncoding, w: BitWriter) -> Self {
        IntEncoder {
            w,
            encoding,
            n: 0,
            prev: 0,
            prev_delta: 0,
        }
    }

    /// The bits written so far.
    pub fn bits(&self) -> &BitWriter {
        &self.w
    }

    /// Starts again, empty, keeping the buffer.
    pub fn clear(&mut self) {
        let mut w = std::mem::take(&mut self.w);
        w.clear();
        *self = Self::writing_into(self.encoding, w);
    }

    /// The last value appended.
    pub fn last(&self) -> Option<i64> {
        (self.n > 0).then_some(self.prev)
    }

    /// Appends `v`, which must satisfy [`as_exact_int`].
    #[inline]
    pub fn push(&mut self, v: i64) {
        let delta = v.wrapping_sub(self.prev);
        match (self.n, self.encoding) {
            (0, _) => bucket::write(&mut self.w, v),
            (1, _) | (_, ValueEncoding::IntDelta) => bucket::write(&mut self.w, delta),
            _ => bucket::write(&mut self.w, delta.wrapping_sub(self.prev_delta)),
        }
        self.prev_delta = delta;
        self.prev = v;
        self.n += 1;
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

/// Bits the integer path would need for `values` under `encoding`, or `None` when a value
/// is not an exact integer.
pub fn int_cost(values: &[f64], encoding: ValueEncoding) -> Option<usize> {
    let mut bits = 0usize;
    let (mut prev, mut prev_delta) = (0i64, 0i64);
    for (i, &v) in values.iter().enumerate() {
        let x = as_exact_int(v)?;
        let delta = x.wrapping_sub(prev);
        let coded = match (i, encoding) {
            (0, _) => x,
            (1, _) | (_, ValueEncoding::IntDelta) => delta,
            _ => delta.wrapping_sub(prev_delta),
        };
        bits += bucket::cost(coded) as usize;
        prev_delta = delta;
        prev = x;
    }
    Some(bits)
}

/// Encodes exact integers (as doubles) with whichever integer encoding is smallest — the
/// blocks counted as if `blocks_slack_percent` smaller, for their faster decoding: the
/// encoding and its bytes, or `None` when a value is not an exact integer.
pub fn encode_int(values: &[f64], blocks_slack_percent: usize) -> Option<(ValueEncoding, Vec<u8>)> {
    let candidates = [
        (
            ValueEncoding::IntDelta,
            int_cost(values, ValueEncoding::IntDelta),
        ),
        (
            ValueEncoding::IntDeltaOfDelta,
            int_cost(values, ValueEncoding::IntDeltaOfDelta),
        ),
        (
            ValueEncoding::IntDeltaBlocks,
            blocks_cost(values).map(|bits| bits * 100 / (100 + blocks_slack_percent)),
        ),
    ];
    let (_, best) = candidates
        .iter()
        .filter_map(|&(e, c)| c.map(|c| (c, e)))
        .min_by_key(|&(c, _)| c)?;
    if best == ValueEncoding::IntDeltaBlocks {
        return encode_blocks(values).map(|bytes| (best, bytes));
    }
    let mut e = IntEncoder::new(best);
    values.iter().for_each(|&v| e.push(v as i64));
    Some((best, e.finish()))
}

/// Decodes `n` integer-encoded values, appending them to `out`.
pub fn decode_int(
    data: &[u8],
    n: usize,
    encoding: ValueEncoding,
    out: &mut Vec<f64>,
) -> Result<(), DecodeError> {
    if n == 0 {
        return Ok(());
    }
    let mut r = BitReader::new(data);
    let mut v = bucket::read(&mut r)?;
    out.reserve(n);
    out.push(v as f64);
    if n == 1 {
        return Ok(());
    }
    let mut delta = bucket::read(&mut r)?;
    v = v.wrapping_add(delta);
    out.push(v as f64);
    for _ in 2..n {
        let coded = bucket::read(&mut r)?;
        delta = if encoding == ValueEncoding::IntDelta {
            coded
        } else {
            delta.wrapping_add(coded)
        };
        v = v.wrapping_add(delta);
        out.push(v as f64);
    }
    Ok(())
}

fn zz_deltas(values: &[f64]) -> Option<(i64, Vec<u64>)> {
    let first = as_exact_int(*values.first()?)?;
    let mut prev = first;
    let mut out = Vec::with_capacity(values.len());
    for &v in values.get(1..).unwrap_or(&[]) {
        let x = as_exact_int(v)?;
        out.push(super::zigzag(x.wrapping_sub(prev)));
        prev = x;
    }
    Some((first, out))
}

/// Bits the block encoding would need, or `None` when a value is not an exact integer or
/// a delta needs more than 56 bits.
pub fn blocks_cost(values: &[f64]) -> Option<usize> {
    let (first, deltas) = zz_deltas(values)?;
    Some(bucket::cost(first) as usize + bits::blocks_bits(&deltas)?)
}

/// Encodes with [`ValueEncoding::IntDeltaBlocks`]; `None` under the conditions of
/// [`blocks_cost`].
pub fn encode_blocks(values: &[f64]) -> Option<Vec<u8>> {
    let (first, deltas) = zz_deltas(values)?;
    let mut w = BitWriter::new();
    bucket::write(&mut w, first);
    bits::write_blocks(&mut w, &deltas)?;
    Some(w.finish())
}

/// Decodes `n` block-encoded values, appending them to `out`.
pub fn decode_blocks(data: &[u8], n: usize, out: &mut Vec<f64>) -> Result<(), DecodeError> {
    decode_blocks_as(data, n, out, |v| v as f64)
}

/// [`decode_blocks`], each integer turned into its value by `value` on the way (the decimal
/// path divides there, in the same pass).
#[inline]
pub fn decode_blocks_as(
    data: &[u8],
    n: usize,
    out: &mut Vec<f64>,
    value: impl Fn(i64) -> f64,
) -> Result<(), DecodeError> {
    if n == 0 {
        return Ok(());
    }
    let mut r = BitReader::new(data);
    let mut v = bucket::read(&mut r)?;
    out.reserve(n);
    out.push(value(v));
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
        r.read_run(width, count, |zz| {
            v = v.wrapping_add(super::unzigzag(zz));
            out.push(value(v));
        })?;
        left -= count;
    }
    Ok(())
}
