//! VictoriaMetrics JSON lines: `{"metric":{"__name__":"m","l":"v"},"values":[…],
//! "timestamps":[…]}`, one series per line, timestamps in milliseconds. Values are JSON
//! numbers, or the bare tokens `NaN`, `+Inf`, `-Inf` as VictoriaMetrics writes and reads
//! them. iocdb adds `"nan_bits":[[index,"7ff0000000000002"],…]` for a NaN whose bits are
//! not the canonical ones, so that an export reads back bit for bit.

use std::collections::BTreeMap;
use std::io::{self, Write};

use iocdb_engine::{Label, Sample, echo};
use serde::Deserialize;

use super::{CANONICAL_NAN, Record, format_float, parse_float};

/// Writes one series as one line.
pub fn write(out: &mut dyn Write, labels: &[Label], samples: &[Sample]) -> io::Result<()> {
    let metric: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone().into()))
        .collect();
    let mut line = String::with_capacity(64 + samples.len() * 24);
    line.push_str("{\"metric\":");
    line.push_str(&serde_json::Value::Object(metric).to_string());
    line.push_str(",\"values\":[");
    let mut odd_nans = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&format_float(s.v));
        if s.v.is_nan() && s.v.to_bits() != CANONICAL_NAN {
            odd_nans.push(format!("[{i},\"{:016x}\"]", s.v.to_bits()));
        }
    }
    line.push_str("],\"timestamps\":[");
    for (i, s) in samples.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&s.t.to_string());
    }
    line.push(']');
    if !odd_nans.is_empty() {
        line.push_str(",\"nan_bits\":[");
        line.push_str(&odd_nans.join(","));
        line.push(']');
    }
    line.push_str("}\n");
    out.write_all(line.as_bytes())
}

#[derive(Deserialize)]
struct Line {
    metric: BTreeMap<String, String>,
    values: Vec<serde_json::Value>,
    timestamps: Vec<i64>,
    #[serde(default)]
    nan_bits: Vec<(usize, String)>,
}

/// Reads one line; the error says what is wrong with it.
pub fn parse(line: &str) -> Result<Record, String> {
    let parsed: Line = serde_json::from_str(&quote_bare_tokens(line))
        .map_err(|e| format!("not a JSON line of the export format: {e}"))?;
    if parsed.values.len() != parsed.timestamps.len() {
        return Err(format!(
            "{} values but {} timestamps",
            parsed.values.len(),
            parsed.timestamps.len()
        ));
    }
    let mut samples = Vec::with_capacity(parsed.values.len());
    for (i, (v, t)) in parsed.values.iter().zip(&parsed.timestamps).enumerate() {
        let value = match v {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => parse_float(s),
            _ => None,
        }
        .ok_or_else(|| format!("value {i} is not a number: {}", echo(&v.to_string())))?;
        samples.push(Sample::new(*t, value));
    }
    for (i, bits) in &parsed.nan_bits {
        let bits = u64::from_str_radix(bits, 16)
            .ok()
            .filter(|b| f64::from_bits(*b).is_nan())
            .ok_or_else(|| format!("nan_bits: {} is not the bits of a NaN", echo(bits)))?;
        let sample = samples
            .get_mut(*i)
            .ok_or_else(|| format!("nan_bits: no value {i}"))?;
        sample.v = f64::from_bits(bits);
    }
    Ok(Record {
        labels: parsed
            .metric
            .into_iter()
            .map(|(name, value)| Label::new(name, value))
            .collect(),
        samples,
    })
}

/// Quotes the bare `NaN`, `Inf`, `+Inf` and `-Inf` tokens outside strings, which JSON does
/// not have and VictoriaMetrics writes.
fn quote_bare_tokens(line: &str) -> std::borrow::Cow<'_, str> {
    if !line.contains("Inf") && !line.contains("NaN") {
        return line.into();
    }
    let mut out = String::with_capacity(line.len() + 16);
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        if let Some(token) = ["NaN", "+Inf", "-Inf", "Inf"]
            .into_iter()
            .find(|t| rest.starts_with(t))
        {
            out.push('"');
            out.push_str(token);
            out.push('"');
            rest = &rest[token.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_round_trips_bit_for_bit_with_vietnamese_labels_and_nan_payloads() {
        let labels = vec![
            Label::new("__name__", "waiting"),
            Label::new("commune", "Châu Đốc \"NaN\" Inf\\"),
        ];
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let go_nan = f64::from_bits(0x7ff8_0000_0000_0001);
        let values = [
            1.5,
            f64::NAN,
            stale,
            go_nan,
            f64::INFINITY,
            -0.0,
            1e-300,
            -f64::MAX,
        ];
        let samples: Vec<Sample> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Sample::new(-1000 + i as i64, *v))
            .collect();
        let mut out = Vec::new();
        write(&mut out, &labels, &samples).expect("write");
        let line = String::from_utf8(out).expect("utf-8");
        assert!(line.ends_with('\n') && line.lines().count() == 1, "{line}");
        assert!(
            line.contains("\"values\":[1.5,NaN,NaN,NaN,+Inf,-0,1e-300,-1.7976931348623157e308]"),
            "{line}"
        );
        assert!(
            line.contains("\"nan_bits\":[[2,\"7ff0000000000002\"],[3,\"7ff8000000000001\"]]"),
            "{line}"
        );
        let back = parse(line.trim_end()).expect("parse");
        let mut sorted = labels.clone();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(back.labels, sorted);
        let bits = |s: &[Sample]| s.iter().map(|x| (x.t, x.v.to_bits())).collect::<Vec<_>>();
        assert_eq!(bits(&back.samples), bits(&samples));
    }

    #[test]
    fn what_victoriametrics_writes_reads_and_bad_lines_say_why() {
        let r = parse(r#"{"metric":{"__name__":"c","x":"Châu Đốc"},"values":[1.5,+Inf,-Inf,0,0.3],"timestamps":[1,2,3,4,5]}"#)
            .expect("VictoriaMetrics' own export");
        assert_eq!(r.samples.len(), 5);
        assert_eq!(r.samples[1].v, f64::INFINITY);
        for (line, why) in [
            ("{", "not a JSON line"),
            (
                r#"{"metric":{},"values":[1],"timestamps":[]}"#,
                "1 values but 0 timestamps",
            ),
            (
                r#"{"metric":{},"values":["x"],"timestamps":[1]}"#,
                "value 0 is not a number",
            ),
            (
                r#"{"metric":{},"values":[1],"timestamps":[1],"nan_bits":[[0,"1"]]}"#,
                "not the bits of a NaN",
            ),
            (
                r#"{"metric":{},"values":[1],"timestamps":[1],"nan_bits":[[5,"7ff0000000000002"]]}"#,
                "no value 5",
            ),
        ] {
            let err = parse(line).expect_err(line);
            assert!(err.contains(why), "{line}: {err}");
        }
    }
}
