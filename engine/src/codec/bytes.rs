//! [`ByteReader`]: the one cursor every binary format of the engine reads with — segment
//! files, WAL frames and records, chunk headers, label sets. Every read is checked against
//! the end; a failed read is a [`DecodeError`] with its offset, never a silent zero. The
//! limits on what a file may claim are named once, here.

use crate::DecodeError;

/// Longest string (namespace, label name or value) a file may hold, bytes.
pub const MAX_STR: usize = 1 << 16;

/// Most labels one stored label set may hold.
pub const MAX_LABELS: usize = 1 << 10;

/// A bounds-checked cursor over untrusted bytes.
#[derive(Debug, Clone)]
pub struct ByteReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        ByteReader { data, pos: 0 }
    }

    /// A cursor at `offset` of `data`; errors then name offsets in all of `data`.
    pub fn at(data: &'a [u8], offset: u64) -> Result<Self, DecodeError> {
        match usize::try_from(offset) {
            Ok(pos) if pos <= data.len() => Ok(ByteReader { data, pos }),
            _ => Err(DecodeError::new(
                offset,
                format!("offset {offset} is past the end ({} bytes)", data.len()),
            )),
        }
    }

    /// Current offset.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// True when everything was read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// An error at the current offset.
    pub fn error(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError::new(self.pos as u64, reason)
    }

    /// Reads `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end.and_then(|end| self.data.get(self.pos..end)) {
            Some(slice) => {
                self.pos += n;
                Ok(slice)
            }
            None => Err(self.error(format!("needs {n} bytes, {} left", self.remaining()))),
        }
    }

    /// The bytes from the position on, without reading them.
    pub fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }

    /// Reads `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let start = self.pos;
        let b = self.bytes(N)?;
        b.try_into()
            .map_err(|_| DecodeError::new(start as u64, format!("needs {N} bytes")))
    }

    /// Reads one byte.
    #[inline]
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        match self.data.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.error("needs 1 bytes, 0 left")),
        }
    }

    /// Reads a little-endian u32.
    pub fn u32_le(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// Reads a little-endian u64.
    pub fn u64_le(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Reads a little-endian i64.
    pub fn i64_le(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// Reads a checksummed block — `u32 LE length | u32 LE CRC-32C | payload` — and returns
    /// the payload once its checksum matches. Errors name the block's offset.
    pub fn crc_block(&mut self, what: &str) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let at = |reason: String| DecodeError::new(start as u64, reason);
        let len = self.u32_le()? as usize;
        let crc = self.u32_le()?;
        let payload = self.bytes(len).map_err(|_| {
            at(format!(
                "{what} of {len} bytes runs past {}",
                self.data.len()
            ))
        })?;
        if crc32c::crc32c(payload) != crc {
            return Err(at(format!("{what} checksum mismatch")));
        }
        Ok(payload)
    }

    /// Reads a LEB128 u64 (at most ten bytes).
    #[inline]
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        // Most varints in the engine's formats are one or two bytes: read those without
        // the loop (rollup buckets and chunk headers are hot paths of long-range queries).
        match self.data.get(self.pos..self.pos.saturating_add(2)) {
            Some(&[b0, _]) if b0 < 0x80 => {
                self.pos += 1;
                return Ok(u64::from(b0));
            }
            Some(&[b0, b1]) if b1 < 0x80 => {
                self.pos += 2;
                return Ok(u64::from(b0 & 0x7f) | u64::from(b1) << 7);
            }
            _ => {}
        }
        self.varint_slow()
    }

    /// [`Self::varint`] byte by byte: longer ones, and those at the very end.
    fn varint_slow(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                self.pos = start;
                return Err(self.error("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        self.pos = start;
        Err(self.error("varint longer than ten bytes"))
    }

    /// Reads a zig-zagged LEB128 i64.
    #[inline]
    pub fn varint_i64(&mut self) -> Result<i64, DecodeError> {
        Ok(super::unzigzag(self.varint()?))
    }

    /// Reads a varint that must fit in a `u32`, naming `what` if not.
    #[inline]
    pub fn varint_u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let start = self.pos;
        let v = self.varint()?;
        u32::try_from(v)
            .map_err(|_| DecodeError::new(start as u64, format!("{what} of {v} exceeds u32")))
    }

    /// Reads a varint that must fit in `usize` and be at most `max`, naming `what` if not.
    pub fn len(&mut self, max: usize, what: &str) -> Result<usize, DecodeError> {
        let start = self.pos;
        let v = self.varint()?;
        match usize::try_from(v) {
            Ok(n) if n <= max => Ok(n),
            _ => {
                self.pos = start;
                Err(self.error(format!("{what} of {v} exceeds the limit of {max}")))
            }
        }
    }

    /// Reads a length-prefixed UTF-8 string of at most `max` bytes.
    pub fn str(&mut self, max: usize, what: &str) -> Result<&'a str, DecodeError> {
        let n = self.len(max.min(self.remaining()), what)?;
        let start = self.pos;
        let b = self.bytes(n)?;
        std::str::from_utf8(b).map_err(|e| {
            DecodeError::new(
                start as u64 + e.valid_up_to() as u64,
                format!("{what} is not UTF-8"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_read_alike_on_the_fast_and_the_slow_path(bytes in prop::collection::vec(any::<u8>(), 0..12), at in 0usize..12) {
            let at = at.min(bytes.len());
            let (mut fast, mut slow) = (ByteReader::new(&bytes), ByteReader::new(&bytes));
            fast.pos = at;
            slow.pos = at;
            prop_assert_eq!(fast.varint(), slow.varint_slow());
            prop_assert_eq!(fast.position(), slow.position());
        }

        #[test]
        fn varints_round_trip(v in any::<u64>(), shift in 0u32..64) {
            let v = v >> shift;
            let mut bytes = vec![0xff];
            crate::codec::varint::put_u64(&mut bytes, v);
            let mut r = ByteReader::new(&bytes);
            prop_assert_eq!(r.u8(), Ok(0xff));
            prop_assert_eq!(r.varint(), Ok(v));
            prop_assert!(r.is_empty());
        }
    }

    #[test]
    fn fixed_width_reads_past_the_end_fail_with_their_offset() {
        let data = [1u8, 0, 0, 0, 9];
        let mut r = ByteReader::new(&data);
        assert_eq!(r.u32_le(), Ok(1));
        assert_eq!(r.u32_le().map_err(|e| e.offset), Err(4));
        assert_eq!(r.u8(), Ok(9));
        assert!(ByteReader::at(&data, 6).is_err());
        assert_eq!(ByteReader::at(&data, 4).and_then(|mut r| r.u8()), Ok(9));
    }

    #[test]
    fn a_checksummed_block_is_checked_and_bounded() {
        let payload = b"block";
        let mut data = Vec::new();
        data.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        data.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
        data.extend_from_slice(payload);
        assert_eq!(ByteReader::new(&data).crc_block("block"), Ok(&payload[..]));
        let cut = data.get(..data.len() - 1).unwrap_or_default();
        assert!(ByteReader::new(cut).crc_block("block").is_err());
        let mut flipped = data.clone();
        if let Some(b) = flipped.last_mut() {
            *b ^= 1;
        }
        let e = ByteReader::new(&flipped).crc_block("block");
        assert_eq!(e.map_err(|e| e.offset), Err(0));
    }
}
