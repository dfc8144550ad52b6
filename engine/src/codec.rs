//! Codecs for sample columns and for the small integers of file formats.
//!
//! - [`timestamp`]: delta-of-delta, bit-packed with prefix buckets (a regular interval costs
//!   one bit per sample).
//! - [`value`]: Gorilla XOR of consecutive floats, and an integer path (delta or
//!   delta-of-delta of exact integers, zig-zag, bucketed) for integer-valued series.
//! - [`decimal`]: floats that are decimals with a few places, as integer mantissas through
//!   the integer path, with the values that are not kept aside whole (ALP's scheme).
//! - [`chimp`]: Chimp's XOR coding, for floats that are not decimals when it beats Gorilla.
//! - [`chunk`]: a chunk of samples = both columns, with the value encoding chosen per chunk
//!   by whichever is smaller; plus the incremental [`chunk::ChunkAppender`] the head uses.
//! - [`varint`]: LEB128 integers; [`bytes`]: the one checked reader ([`bytes::ByteReader`])
//!   of every binary format, with the limits files may claim; [`labels`]: label sets as
//!   files store them; [`rollup`]: per-interval summaries of a series (rollup tiers).
//!
//! Every decoder takes untrusted bytes: it checks every length and returns a
//! [`crate::DecodeError`] rather than panicking.
//!
//! May use: `model`.

pub mod bits;
pub mod bucket;
pub mod bytes;
pub mod chimp;
pub mod chimp128;
pub mod chunk;
pub mod decimal;
pub mod labels;
pub mod rollup;
pub mod timestamp;
pub mod value;
pub mod varint;

/// Zig-zag maps signed integers to unsigned ones so that small magnitudes stay small.
#[inline]
pub fn zigzag(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
pub fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// What the float codecs' tests share.
#[cfg(test)]
pub(crate) mod float_tests {
    use crate::DecodeError;

    /// Values every float codec keeps bit for bit: NaN payloads (the Prometheus stale
    /// marker among them), signed zeros, infinities, the smallest subnormal, the largest.
    pub const SPECIALS: [f64; 8] = [
        f64::NAN,
        f64::from_bits(0x7ff0_0000_0000_0002),
        -0.0,
        0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        5e-324,
        f64::MAX,
    ];

    /// A float codec's decoder: bytes, value count, where the values go.
    type Decode = fn(&[u8], usize, &mut Vec<f64>) -> Result<(), DecodeError>;

    /// Encodes `values`, decodes them, and checks every bit came back; returns the bytes.
    pub fn round_trip(encode: fn(&[f64]) -> Vec<u8>, decode: Decode, values: &[f64]) -> Vec<u8> {
        let bytes = encode(values);
        let mut out = Vec::new();
        decode(&bytes, values.len(), &mut out).expect("decodes");
        let got: Vec<u64> = out.iter().map(|v| v.to_bits()).collect();
        let want: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want);
        bytes
    }
}
