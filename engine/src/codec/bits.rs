//! Bit-level writer and reader. Bits are packed least-significant first into little-endian
//! 64-bit words, so the reader can load eight bytes and shift, with no per-bit loop.

use crate::DecodeError;

/// Appends bit fields to a byte buffer.
#[derive(Debug, Clone, Default)]
pub struct BitWriter {
    buf: Vec<u8>,
    acc: u64,
    nbits: u32,
}

impl BitWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the low `n` bits of `value` (`n` ≤ 64).
    #[inline]
    pub fn write(&mut self, value: u64, n: u32) {
        debug_assert!(n <= 64);
        if n == 0 {
            return;
        }
        let v = if n == 64 {
            value
        } else {
            value & ((1u64 << n) - 1)
        };
        self.acc |= v << self.nbits;
        let total = self.nbits + n;
        if total >= 64 {
            self.buf.extend_from_slice(&self.acc.to_le_bytes());
            self.acc = if self.nbits == 0 {
                0
            } else {
                v >> (64 - self.nbits)
            };
            self.nbits = total - 64;
        } else {
            self.nbits = total;
        }
    }

    /// Bits written so far.
    #[cfg(test)]
    pub fn bit_len(&self) -> usize {
        self.buf.len() * 8 + self.nbits as usize
    }

    /// The bytes written so far, the last one padded with zero bits, without ending the writer.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.byte_len());
        self.write_to(&mut out);
        out
    }

    /// Bytes [`BitWriter::snapshot`] would return.
    pub fn byte_len(&self) -> usize {
        self.buf.len() + self.nbits.div_ceil(8) as usize
    }

    /// Appends what [`BitWriter::snapshot`] would return to `out`.
    pub fn write_to(&self, out: &mut impl bytes::BufMut) {
        out.put_slice(&self.buf);
        self.append_tail(out);
    }

    /// Empties the writer, keeping its buffer for what is written next.
    pub fn clear(&mut self) {
        self.buf.clear();
        (self.acc, self.nbits) = (0, 0);
    }

    /// Ends the writer and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.buf);
        self.append_tail(&mut buf);
        buf
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity()
    }

    fn append_tail(&self, out: &mut impl bytes::BufMut) {
        let tail = self.acc.to_le_bytes();
        out.put_slice(tail.get(..self.nbits.div_ceil(8) as usize).unwrap_or(&[]));
    }
}

/// Reads bit fields written by [`BitWriter`], refusing to read past the end.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    len_bits: usize,
}

impl<'a> BitReader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            pos: 0,
            len_bits: data.len() * 8,
        }
    }

    /// A reader of the first `len_bits` bits of `data` (at most all of them): the bytes
    /// after them are loaded with the ones before, so that reading the last fields takes the
    /// same fast path as the others, but never read as fields.
    pub fn bounded(data: &'a [u8], len_bits: usize) -> Self {
        BitReader {
            data,
            pos: 0,
            len_bits: len_bits.min(data.len() * 8),
        }
    }

    /// The next 64 bits from the current position (zero past the end); at least 57 are real.
    #[inline]
    pub fn peek(&self) -> u64 {
        let byte = self.pos >> 3;
        let shift = self.pos & 7;
        let word = match self.data.get(byte..byte + 8) {
            Some(b) => u64::from_le_bytes(b.try_into().unwrap_or([0; 8])),
            None => {
                let mut tmp = [0u8; 8];
                let rest = self.data.get(byte..).unwrap_or(&[]);
                if let Some(dst) = tmp.get_mut(..rest.len()) {
                    dst.copy_from_slice(rest);
                }
                u64::from_le_bytes(tmp)
            }
        };
        word >> shift
    }

    /// Skips `n` bits already examined with [`BitReader::peek`].
    #[inline]
    pub fn consume(&mut self, n: u32) -> Result<(), DecodeError> {
        let next = self.pos + n as usize;
        if next > self.len_bits {
            return Err(self.underrun());
        }
        self.pos = next;
        Ok(())
    }

    /// Reads `n` ≤ 56 bits.
    #[inline]
    pub fn read(&mut self, n: u32) -> Result<u64, DecodeError> {
        debug_assert!(n <= 56);
        let v = self.peek() & ((1u64 << n) - 1);
        self.consume(n)?;
        Ok(v)
    }

    /// Reads `n` ≤ 64 bits.
    #[inline]
    pub fn read_wide(&mut self, n: u32) -> Result<u64, DecodeError> {
        if n <= 56 {
            return self.read(n);
        }
        let low = self.read(32)?;
        let high = self.read(n - 32)?;
        Ok(low | (high << 32))
    }

    /// Reads `n` fields of `width` ≤ 56 bits each, calling `f` with each; checks the bounds
    /// once for the whole run, which lets the loop run without branches on the length.
    #[inline]
    pub fn read_run(
        &mut self,
        width: u32,
        n: usize,
        mut f: impl FnMut(u64),
    ) -> Result<(), DecodeError> {
        debug_assert!(width <= 56);
        let bits = width as usize * n;
        if self.pos + bits > self.len_bits {
            return Err(self.underrun());
        }
        if width == 0 {
            (0..n).for_each(|_| f(0));
            return Ok(());
        }
        let end = self.pos + bits;
        // Fastest path: eight values at a time, each unpacked by code made for its width.
        let mut group = [0u64; 8];
        while width <= GROUP_MAX_WIDTH
            && end - self.pos >= 8 * width as usize
            && unpack_group(width, self.data, self.pos, &mut group)
        {
            group.iter().for_each(|&v| f(v));
            self.pos += 8 * width as usize;
        }
        let mask = (1u64 << width) - 1;
        // Fast path: while eight whole bytes follow the position, load them straight (the
        // common case: the rest of a run but the end of the column).
        while self.pos < end {
            let byte = self.pos >> 3;
            let Some(word) = self.data.get(byte..byte + 8) else {
                break;
            };
            let word = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
            f((word >> (self.pos & 7)) & mask);
            self.pos += width as usize;
        }
        while self.pos < end {
            f(self.peek() & mask);
            self.pos += width as usize;
        }
        Ok(())
    }

    /// Moves past `bits` bits.
    pub fn skip(&mut self, bits: usize) -> Result<(), DecodeError> {
        match self.pos.checked_add(bits) {
            Some(to) if to <= self.len_bits => {
                self.pos = to;
                Ok(())
            }
            _ => Err(self.underrun()),
        }
    }

    /// Bit position.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn underrun(&self) -> DecodeError {
        DecodeError::new((self.pos / 8) as u64, "bit stream ends early")
    }
}

/// Widest field [`unpack_group`] unpacks: value `i` of a group lies `i · width` bits after
/// the group's first bit, and that first bit up to 7 bits into its byte, so one 8-byte load
/// holds it while its shift (under 14) and width stay within 64 bits.
const GROUP_MAX_WIDTH: u32 = 50;

/// Unpacks the eight `width`-bit fields that start at bit `pos` of `data` into `out`, by a
/// function made for that width (its loads at constant offsets, unrolled, with one bounds
/// check for the group): a third less time than field by field on the indicator chunks of
/// `benches/benches/codec.rs`. `false`, with nothing read, where `width` is 0 or over
/// [`GROUP_MAX_WIDTH`] or the group's bytes and the 8 after them are not all in `data`.
#[inline]
fn unpack_group(width: u32, data: &[u8], pos: usize, out: &mut [u64; 8]) -> bool {
    macro_rules! widths {
        ($($w:literal)*) => {
            match width {
                $($w => unpack_group_of::<$w>(data, pos, out),)*
                _ => false,
            }
        };
    }
    widths!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30
        31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50)
}

/// [`unpack_group`] for width `W`.
#[inline(always)]
fn unpack_group_of<const W: usize>(data: &[u8], pos: usize, out: &mut [u64; 8]) -> bool {
    let byte = pos >> 3;
    let shift = pos & 7;
    let Some(group) = data.get(byte..byte + W + 8) else {
        return false;
    };
    let mask = (1u64 << W) - 1;
    for (i, v) in out.iter_mut().enumerate() {
        let bit = i * W;
        let at = bit >> 3;
        let word = group
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes);
        *v = (word >> (shift + (bit & 7))) & mask;
    }
    true
}

/// Values per block of the fixed-width block layout shared by the integer values and the
/// timestamps: each block is a 6-bit width, then its values at that width.
pub const BLOCK: usize = 32;

/// Widest value a block may hold (what [`BitReader::read_run`] reads in one load).
pub const MAX_BLOCK_WIDTH: u32 = 56;

/// Bits needed by the widest of `values`.
fn block_width(values: &[u64]) -> u32 {
    64 - values.iter().fold(0u64, |a, &b| a | b).leading_zeros()
}

/// Bits `values` take in blocks, or `None` when one needs more than [`MAX_BLOCK_WIDTH`].
pub fn blocks_bits(values: &[u64]) -> Option<usize> {
    values.chunks(BLOCK).try_fold(0usize, |bits, block| {
        let width = block_width(block);
        (width <= MAX_BLOCK_WIDTH).then(|| bits + 6 + width as usize * block.len())
    })
}

/// Writes `values` in blocks; `None` (with `w` partly written) when one needs more than
/// [`MAX_BLOCK_WIDTH`] bits.
pub fn write_blocks(w: &mut BitWriter, values: &[u64]) -> Option<()> {
    for block in values.chunks(BLOCK) {
        let width = block_width(block);
        if width > MAX_BLOCK_WIDTH {
            return None;
        }
        w.write(u64::from(width), 6);
        for &v in block {
            w.write(v, width);
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_every_width_round_trip() {
        let mut w = BitWriter::new();
        let fields: Vec<(u64, u32)> = (0..=64u32)
            .map(|n| (u64::MAX.wrapping_mul(0x9E37_79B9) >> (64 - n.max(1)), n))
            .collect();
        for &(v, n) in &fields {
            w.write(v, n);
        }
        let bytes = w.finish();
        let mut r = BitReader::new(&bytes);
        for &(v, n) in &fields {
            let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
            assert_eq!(r.read_wide(n).expect("read"), v & mask, "width {n}");
        }
    }

    proptest::proptest! {
        /// A run read at any width from any bit gives what was written, whichever of its
        /// paths (eight at a time, field by field, the column's last bytes) reads each.
        #[test]
        fn runs_read_what_was_written(
            width in 0u32..=MAX_BLOCK_WIDTH,
            lead in 0u32..64,
            seeds in proptest::collection::vec(proptest::prelude::any::<u64>(), 0..80),
            trailing in 0usize..16,
        ) {
            let mask = if width == 0 { 0 } else { u64::MAX >> (64 - width) };
            let values: Vec<u64> = seeds.iter().map(|v| v & mask).collect();
            let mut w = BitWriter::new();
            w.write(u64::MAX, lead);
            for &v in &values {
                w.write(v, width);
            }
            let mut bytes = w.finish();
            bytes.extend(std::iter::repeat_n(0xA5, trailing));
            let bits = lead as usize + values.len() * width as usize;
            let mut r = BitReader::bounded(&bytes, bits);
            r.skip(lead as usize).expect("skip");
            let mut read = Vec::new();
            r.read_run(width, values.len(), |v| read.push(v)).expect("read");
            proptest::prop_assert_eq!(read, values);
            proptest::prop_assert_eq!(r.position(), bits);
            let past_the_end = r.read_run(width.max(1), 1, |_| {});
            proptest::prop_assert!(past_the_end.is_err());
        }
    }

    #[test]
    fn reading_past_the_end_is_an_error() {
        let mut r = BitReader::new(&[0xff]);
        assert_eq!(r.read(8).ok(), Some(0xff));
        assert!(r.read(1).is_err());
    }
}
