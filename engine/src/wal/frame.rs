//! WAL framing.
//!
//! ```text
//! offset  size  field
//! 0       4     payload length, u32 LE (1 ..= MAX_PAYLOAD)
//! 4       4     CRC-32C of kind byte and payload, u32 LE
//! 8       1     record kind
//! 9       len   payload
//! ```
//! A file is a sequence of frames. A frame that runs past the end of the file, a checksum
//! failure on the file's last frame, or zero bytes up to the end of the file, is a *torn
//! tail*: a write that was cut short and never acknowledged. Anything else that fails is
//! *corruption*.

use crate::DecodeError;
use crate::codec::bytes::ByteReader;

/// Bytes before the payload.
pub const HEADER_LEN: usize = 9;
/// Largest payload accepted.
pub const MAX_PAYLOAD: usize = 256 << 20;

/// Appends one frame whose payload `fill` appends to `out` (so that it is encoded in place,
/// not into a buffer of its own and copied); the header is written once it is known.
pub fn encode_with(out: &mut Vec<u8>, kind: u8, fill: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN - 1]);
    out.push(kind);
    fill(out);
    let (header, kinded) = out.split_at_mut(start + HEADER_LEN - 1);
    let payload_len = (kinded.len() - 1) as u32;
    // The checksum covers the kind byte and the payload, which follow each other.
    let crc = crc32c::crc32c(kinded);
    if let Some(len) = header.get_mut(start..start + 4) {
        len.copy_from_slice(&payload_len.to_le_bytes());
    }
    if let Some(sum) = header.get_mut(start + 4..start + 8) {
        sum.copy_from_slice(&crc.to_le_bytes());
    }
}

/// One frame read back.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Offset of the frame in the file.
    pub offset: u64,
    /// Record kind.
    pub kind: u8,
    /// Payload.
    pub payload: &'a [u8],
}

/// How reading a file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Every byte was a good frame.
    Clean,
    /// A torn write starts at this offset; the file should be cut there.
    Torn {
        /// Where the torn frame starts.
        offset: u64,
    },
    /// A bad frame with good-looking data after it.
    Corrupt(DecodeError),
}

/// Iterates the frames of a file's bytes.
#[derive(Debug)]
pub struct FrameReader<'a> {
    data: &'a [u8],
    pos: usize,
    end: Option<End>,
}

impl<'a> FrameReader<'a> {
    /// A reader over a whole file.
    pub fn new(data: &'a [u8]) -> Self {
        FrameReader {
            data,
            pos: 0,
            end: None,
        }
    }

    /// How the file ended; `None` until the iterator is exhausted.
    pub fn end(&self) -> Option<&End> {
        self.end.as_ref()
    }

    fn stop(&mut self, end: End) -> Option<Frame<'a>> {
        self.end = Some(end);
        None
    }

    fn rest_is_zero(&self) -> bool {
        self.data
            .get(self.pos..)
            .is_some_and(|rest| rest.iter().all(|&b| b == 0))
    }
}

impl<'a> Iterator for FrameReader<'a> {
    type Item = Frame<'a>;

    fn next(&mut self) -> Option<Frame<'a>> {
        if self.end.is_some() {
            return None;
        }
        let offset = self.pos as u64;
        let remaining = self.data.len() - self.pos;
        if remaining == 0 {
            return self.stop(End::Clean);
        }
        let torn = End::Torn { offset };
        let Some(header) = self.data.get(self.pos..self.pos + HEADER_LEN) else {
            return self.stop(torn);
        };
        if self.rest_is_zero() {
            return self.stop(torn);
        }
        let mut r = ByteReader::new(header);
        let (Ok(len), Ok(crc), Ok(kind)) = (r.u32_le(), r.u32_le(), r.u8()) else {
            return self.stop(torn);
        };
        let len = len as usize;
        let end = self.pos + HEADER_LEN + len;
        if len == 0 || len > MAX_PAYLOAD {
            let e = DecodeError::new(offset, format!("frame length {len} is out of range"));
            return self.stop(End::Corrupt(e));
        }
        let Some(payload) = self.data.get(self.pos + HEADER_LEN..end) else {
            return self.stop(torn);
        };
        let actual = crc32c::crc32c_append(crc32c::crc32c(&[kind]), payload);
        if actual != crc {
            if end == self.data.len() {
                return self.stop(torn);
            }
            let e = DecodeError::new(
                offset,
                format!("frame checksum {actual:08x} != stored {crc:08x}"),
            );
            return self.stop(End::Corrupt(e));
        }
        self.pos = end;
        Some(Frame {
            offset,
            kind,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
        encode_with(out, kind, |out| out.extend_from_slice(payload));
    }

    fn two_frames() -> Vec<u8> {
        let mut buf = Vec::new();
        encode(&mut buf, 1, b"first");
        encode(&mut buf, 2, b"second");
        buf
    }

    #[test]
    fn a_frame_is_its_length_checksum_kind_and_payload_after_what_was_there() {
        let payload = "Châu Đốc".as_bytes();
        let mut buf = vec![7];
        encode(&mut buf, 2, payload);
        let mut want = vec![7];
        want.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&[2]), payload);
        want.extend_from_slice(&crc.to_le_bytes());
        want.push(2);
        want.extend_from_slice(payload);
        assert_eq!(buf, want);
    }

    #[test]
    fn frames_read_back_and_a_clean_end_is_reported() {
        let buf = two_frames();
        let mut r = FrameReader::new(&buf);
        let kinds: Vec<u8> = r.by_ref().map(|f| f.kind).collect();
        assert_eq!(kinds, [1, 2]);
        assert_eq!(r.end(), Some(&End::Clean));
    }

    #[test]
    fn every_truncation_is_a_torn_tail_at_the_last_whole_frame() {
        let buf = two_frames();
        let second = (HEADER_LEN + 5) as u64;
        for cut in 1..buf.len() {
            let mut r = FrameReader::new(&buf[..cut]);
            let n = r.by_ref().count();
            let n = n as u64;
            if cut as u64 == second {
                assert_eq!((n, r.end()), (1, Some(&End::Clean)), "cut {cut}");
                continue;
            }
            let want = if (cut as u64) < second { 0 } else { second };
            assert_eq!(r.end(), Some(&End::Torn { offset: want }), "cut {cut}");
            assert_eq!(n, u64::from(want > 0));
        }
    }

    #[test]
    fn a_flipped_bit_in_the_middle_is_corruption_with_its_offset() {
        let mut buf = two_frames();
        buf[HEADER_LEN + 1] ^= 4;
        let mut r = FrameReader::new(&buf);
        assert_eq!(r.by_ref().count(), 0);
        assert!(matches!(r.end(), Some(End::Corrupt(e)) if e.offset == 0));
    }

    #[test]
    fn zeros_after_the_last_frame_are_a_torn_tail() {
        let mut buf = two_frames();
        let len = buf.len() as u64;
        buf.extend([0u8; 100]);
        let mut r = FrameReader::new(&buf);
        assert_eq!(r.by_ref().count(), 2);
        assert_eq!(r.end(), Some(&End::Torn { offset: len }));
    }
}
