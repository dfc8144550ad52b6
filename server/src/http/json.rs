//! Prometheus' JSON shapes, written directly: values as strings in Go's shortest form
//! (`"NaN"`, `"+Inf"`), times as seconds with up to three decimals, labels as objects.

use std::fmt::Write;

use iocdb_engine::{Labels, QueryValue, Sample};

/// A JSON string literal.
pub fn string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A sample value as Prometheus writes it (`"NaN"`, `"+Inf"`, shortest decimal).
pub fn value(v: f64) -> String {
    iocdb_engine::query::format_value(v)
}

/// A time in ms as seconds with the milliseconds as three decimals when there are any,
/// e.g. `1435781451.781`, `1435781451.500`, `1435781451` (as Prometheus writes them).
pub fn time(out: &mut String, t: i64) {
    let (sign, t) = if t < 0 {
        ("-", t.unsigned_abs())
    } else {
        ("", t as u64)
    };
    let (secs, ms) = (t / 1000, t % 1000);
    out.push_str(sign);
    out.push_str(itoa::Buffer::new().format(secs));
    if ms > 0 {
        let digits = [
            b'.',
            b'0' + (ms / 100) as u8,
            b'0' + (ms / 10 % 10) as u8,
            b'0' + (ms % 10) as u8,
        ];
        out.push_str(std::str::from_utf8(&digits).unwrap_or_default());
    }
}

/// Integers this large and smaller are exact in an f64 and written without an exponent by
/// both Go and Rust, so their decimal digits are the answer.
const EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// `[t, "v"]`, written in place (a range answer has tens of thousands of them). Most
/// values are whole numbers (counts, gauges of people and dossiers): written as integers,
/// with the same digits as `f64`'s `Display`, they skip its shortest-digits search (the
/// largest dashboard answer's refresh a third faster over the wire: BENCHMARKS.md).
pub fn point(out: &mut String, s: &Sample) {
    out.push('[');
    time(out, s.t);
    out.push_str(",\"");
    if s.v.fract() == 0.0 && s.v.abs() <= EXACT_INTEGER && (s.v != 0.0 || s.v.is_sign_positive()) {
        out.push_str(itoa::Buffer::new().format(s.v as i64));
    } else if s.v.is_finite() {
        let _ = write!(out, "{}", s.v);
    } else {
        out.push_str(&value(s.v));
    }
    out.push_str("\"]");
}

/// `{"name":"value",…}`.
pub fn labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&string(&l.name));
        out.push(':');
        out.push_str(&string(&l.value));
    }
    out.push('}');
}

/// `{"resultType":…,"result":…}`.
pub fn query_data(v: &QueryValue) -> String {
    let mut out = String::with_capacity(256);
    match v {
        QueryValue::Scalar(s) => {
            out.push_str(r#"{"resultType":"scalar","result":"#);
            point(&mut out, s);
        }
        QueryValue::String(t, s) => {
            out.push_str(r#"{"resultType":"string","result":["#);
            time(&mut out, *t);
            out.push(',');
            out.push_str(&string(s));
            out.push(']');
        }
        QueryValue::Vector(samples) => {
            out.push_str(r#"{"resultType":"vector","result":["#);
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                labels(&mut out, &s.labels);
                out.push_str(r#","value":"#);
                point(&mut out, &s.sample);
                out.push('}');
            }
            out.push(']');
        }
        QueryValue::Matrix(series) => {
            out.push_str(r#"{"resultType":"matrix","result":["#);
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                labels(&mut out, &s.labels);
                out.push_str(r#","values":["#);
                for (j, p) in s.points.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    point(&mut out, p);
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
    out.push('}');
    out
}

/// `{"status":"success","data":…}`.
pub fn success(data: &str) -> String {
    format!(r#"{{"status":"success","data":{data}}}"#)
}

/// A JSON array of strings.
pub fn strings<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::from("[");
    for (i, s) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&string(s));
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_times_are_written_as_prometheus_writes_them() {
        assert_eq!(value(1.0), "1");
        assert_eq!(value(0.1), "0.1");
        assert_eq!(value(1e21), "1000000000000000000000");
        assert_eq!(value(f64::NAN), "NaN");
        assert_eq!(value(f64::NEG_INFINITY), "-Inf");
        let t = |ms| {
            let mut s = String::new();
            time(&mut s, ms);
            s
        };
        assert_eq!(t(1_435_781_451_781), "1435781451.781");
        assert_eq!(t(1_435_781_451_000), "1435781451");
        assert_eq!(t(1_435_781_451_500), "1435781451.500");
        assert_eq!(t(1_435_781_451_050), "1435781451.050");
        assert_eq!(t(-1500), "-1.500");
        assert_eq!(t(-1000), "-1");
        assert_eq!(t(7), "0.007");
    }

    fn written(v: f64) -> String {
        let mut out = String::new();
        point(&mut out, &Sample::new(0, v));
        out.trim_start_matches("[0,\"")
            .trim_end_matches("\"]")
            .to_owned()
    }

    #[test]
    fn whole_numbers_are_written_as_display_writes_them() {
        for v in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            123.0,
            1e15,
            -1e15,
            EXACT_INTEGER,
            -EXACT_INTEGER,
        ] {
            assert_eq!(written(v), value(v), "{v}");
        }
        for v in [
            EXACT_INTEGER * 2.0,
            1e21,
            0.5,
            -2.25,
            f64::NAN,
            f64::INFINITY,
            f64::MIN_POSITIVE,
        ] {
            assert_eq!(written(v), value(v), "{v}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_value_is_written_as_display_writes_it(bits: u64, whole: i64) {
            let v = f64::from_bits(bits);
            proptest::prop_assert_eq!(written(v), value(v));
            let w = whole as f64;
            proptest::prop_assert_eq!(written(w), value(w));
            let small = (whole % 1_000_000) as f64;
            proptest::prop_assert_eq!(written(small), value(small));
        }
    }
}
