//! LEB128 integers and [`ByteReader`], a cursor that checks every read against the end.

use crate::DecodeError;

/// Appends `v` as LEB128.
#[inline]
pub fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zig-zagged as LEB128.
pub fn put_i64(out: &mut Vec<u8>, v: i64) {
    put_u64(out, super::zigzag(v));
}

/// Appends a length-prefixed UTF-8 string.
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

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

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.bytes(1)?.first().copied().unwrap_or(0))
    }

    /// Reads a little-endian u32.
    pub fn u32_le(&mut self) -> Result<u32, DecodeError> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes(
            b.try_into().map_err(|_| self.error("short u32"))?,
        ))
    }

    /// Reads a little-endian u64.
    pub fn u64_le(&mut self) -> Result<u64, DecodeError> {
        let b = self.bytes(8)?;
        Ok(u64::from_le_bytes(
            b.try_into().map_err(|_| self.error("short u64"))?,
        ))
    }

    /// Reads a LEB128 u64 (at most ten bytes).
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
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
    pub fn varint_i64(&mut self) -> Result<i64, DecodeError> {
        Ok(super::unzigzag(self.varint()?))
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

    #[test]
    fn varints_round_trip_and_overlong_ones_are_refused() {
        let mut buf = Vec::new();
        for v in [0, 1, 127, 128, u64::MAX] {
            put_u64(&mut buf, v);
        }
        let mut r = ByteReader::new(&buf);
        for v in [0, 1, 127, 128, u64::MAX] {
            assert_eq!(r.varint(), Ok(v));
        }
        assert!(ByteReader::new(&[0xff; 11]).varint().is_err());
        assert!(ByteReader::new(&[0x80]).varint().is_err());
    }

    #[test]
    fn strings_past_the_end_or_not_utf8_are_refused() {
        assert!(ByteReader::new(&[5, b'a']).str(100, "label").is_err());
        assert!(ByteReader::new(&[1, 0xff]).str(100, "label").is_err());
        assert_eq!(
            ByteReader::new(&[2, b'o', b'k']).str(100, "label"),
            Ok("ok")
        );
    }
}
