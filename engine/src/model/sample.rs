//! One sample: a millisecond timestamp and a float value.

/// A sample: `t` in milliseconds since the Unix epoch, `v` any `f64` (NaN payloads, ±Inf and
/// −0.0 are stored bit for bit; integer counters are exact up to 2^53).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub t: i64,
    /// The value.
    pub v: f64,
}

impl Sample {
    /// A sample at `t` with value `v`.
    pub fn new(t: i64, v: f64) -> Self {
        Sample { t, v }
    }

    /// True when both samples have the same timestamp and the same value bits.
    pub fn bit_eq(&self, other: &Sample) -> bool {
        self.t == other.t && self.v.to_bits() == other.v.to_bits()
    }
}

/// The bit pattern Prometheus writes as a staleness marker (a series ended; not a value).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether a value is a Prometheus staleness marker.
pub fn is_stale_marker(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}
