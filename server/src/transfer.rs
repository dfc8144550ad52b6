//! Moving data in and out (`iocdb export`, `iocdb import`): the file formats, each a writer
//! and a reader of series with their samples.
//!
//! - [`jsonl`]: VictoriaMetrics' JSON lines (`/api/v1/export`, `/api/v1/import`), one series
//!   per line. Exact to the bit: values are written as the shortest decimal that reads back
//!   to the same double, and a NaN whose bits are not the one `NaN` reads as (Prometheus'
//!   staleness marker, Go's NaN) is named by an extra `nan_bits` field VictoriaMetrics
//!   ignores.
//! - [`text`]: OpenMetrics text (what `promtool tsdb create-blocks-from openmetrics` reads;
//!   timestamps in seconds) and, for reading, the output of `promtool tsdb dump` and the
//!   Prometheus text format with millisecond timestamps. Exact except for NaN payloads,
//!   which the format cannot carry: every NaN is written `NaN`.

pub mod jsonl;
pub mod text;

use iocdb_engine::{Label, Sample};

/// The formats, as `--format` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// VictoriaMetrics JSON lines; exact to the bit.
    Jsonl,
    /// OpenMetrics text, timestamps in seconds.
    Openmetrics,
    /// `promtool tsdb dump` output (and Prometheus text with millisecond timestamps); read
    /// only.
    Promtool,
}

/// One series and some of its samples, as a file holds them.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub labels: Vec<Label>,
    pub samples: Vec<Sample>,
}

/// The bits `NaN` reads back as: a NaN with other bits needs saying so.
pub const CANONICAL_NAN: u64 = 0x7ff8_0000_0000_0000;

/// A double as the formats write it: `NaN`, `+Inf`, `-Inf`, or the shortest decimal that
/// reads back to the same bits (with an exponent for very large and very small magnitudes,
/// so that 1e300 is not three hundred digits).
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v == 0.0 || (1e-5..1e16).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// Reads a double as Go's `strconv.ParseFloat` would (what Prometheus and VictoriaMetrics
/// write): decimal, exponent, `NaN`, `±Inf`.
pub fn parse_float(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" => Some(f64::from_bits(CANONICAL_NAN)),
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ if s
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
        {
            s.parse().ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_round_trip_bit_for_bit_and_stay_short() {
        for v in [
            0.0,
            -0.0,
            0.1,
            0.30000000000000004,
            1e300,
            -1e-300,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            123456789.125,
            1e16,
            9007199254740993.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            let text = format_float(v);
            assert!(text.len() <= 24, "{text}");
            assert_eq!(
                parse_float(&text).map(f64::to_bits),
                Some(v.to_bits()),
                "{text}"
            );
        }
        assert_eq!(format_float(1e300), "1e300");
        assert_eq!(format_float(2.5), "2.5");
        assert_eq!(parse_float("NaN").map(f64::to_bits), Some(CANONICAL_NAN));
        assert_eq!(parse_float("0x1p3"), None);
        assert_eq!(parse_float("infinity"), None);
    }
}
