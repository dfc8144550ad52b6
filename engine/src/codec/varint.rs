//! LEB128 integers, written; `codec::bytes::ByteReader` reads them back.

/// Appends `v` as LEB128.
#[inline]
pub fn put_u64(out: &mut impl bytes::BufMut, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// Bytes [`put_u64`] writes for `v`.
pub fn len_u64(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::bytes::ByteReader;

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
        for v in [0, 1, 127, 128, 16_383, 16_384, u64::MAX >> 1, u64::MAX] {
            let mut one = Vec::new();
            put_u64(&mut one, v);
            assert_eq!(len_u64(v), one.len(), "{v}");
        }
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
