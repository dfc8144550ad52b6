//! OpenMetrics text and its relatives, one sample per line:
//! `name{label="value",…} value timestamp`.
//!
//! Written as OpenMetrics (timestamps in seconds with millisecond decimals, `# EOF` last, the
//! series of one metric together), which `promtool tsdb create-blocks-from openmetrics`
//! reads. Read in two dialects: [`Dialect::Seconds`] (OpenMetrics) and
//! [`Dialect::Milliseconds`] (`promtool tsdb dump` output, `{__name__="m", l="v"} value
//! ms`, and the Prometheus text format). Label values escape `\\`, `\"` and `\n`.

use std::io::{self, Write};

use iocdb_engine::{Label, Sample, echo};

use super::{format_float, parse_float};

/// The unit of the timestamps of the text read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Seconds,
    Milliseconds,
}

/// Writes one series' samples, one line each.
pub fn write(out: &mut dyn Write, labels: &[Label], samples: &[Sample]) -> io::Result<()> {
    let mut series = String::new();
    let name = labels
        .iter()
        .find(|l| l.name == "__name__")
        .map_or("", |l| l.value.as_str());
    series.push_str(name);
    series.push('{');
    let mut first = true;
    for l in labels.iter().filter(|l| l.name != "__name__") {
        if !first {
            series.push(',');
        }
        first = false;
        series.push_str(&l.name);
        series.push_str("=\"");
        for c in l.value.chars() {
            match c {
                '\\' => series.push_str("\\\\"),
                '"' => series.push_str("\\\""),
                '\n' => series.push_str("\\n"),
                c => series.push(c),
            }
        }
        series.push('"');
    }
    series.push('}');
    let mut text = String::with_capacity(samples.len() * (series.len() + 32));
    for s in samples {
        text.push_str(&series);
        text.push(' ');
        text.push_str(&format_float(s.v));
        text.push(' ');
        let (sign, ms) = if s.t < 0 {
            ("-", s.t.unsigned_abs())
        } else {
            ("", s.t.unsigned_abs())
        };
        text.push_str(&format!("{sign}{}.{:03}", ms / 1000, ms % 1000));
        text.push('\n');
    }
    out.write_all(text.as_bytes())
}

/// Ends an OpenMetrics file.
pub fn finish(out: &mut dyn Write) -> io::Result<()> {
    out.write_all(b"# EOF\n")
}

/// One sample line read: `None` for a comment or an empty line.
pub fn parse(line: &str, dialect: Dialect) -> Result<Option<(Vec<Label>, Sample)>, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut rest = line;
    let name_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(rest.len());
    let mut labels = Vec::new();
    if name_len > 0 {
        labels.push(Label::new("__name__", &rest[..name_len]));
    }
    rest = &rest[name_len..];
    if let Some(body) = rest.strip_prefix('{') {
        rest = parse_labels(body, &mut labels)?;
    }
    if labels.is_empty() {
        return Err(format!("no metric name or labels in {}", echo(line)));
    }
    let mut fields = rest.split_ascii_whitespace();
    let value = fields
        .next()
        .ok_or_else(|| format!("no value in {}", echo(line)))?;
    let value =
        parse_float(value).ok_or_else(|| format!("value {} is not a number", echo(value)))?;
    let t = fields.next().ok_or_else(|| {
        format!(
            "no timestamp in {}: an import needs one per sample",
            echo(line)
        )
    })?;
    let t = match dialect {
        Dialect::Milliseconds => t.parse::<i64>().ok(),
        Dialect::Seconds => seconds_to_ms(t),
    }
    .ok_or_else(|| format!("timestamp {} is not a time", echo(t)))?;
    match fields.next() {
        None => {}
        // An exemplar follows `#`; iocdb keeps none.
        Some(f) if f.starts_with('#') => {}
        Some(f) => return Err(format!("unexpected {} after the timestamp", echo(f))),
    }
    Ok(Some((labels, Sample::new(t, value))))
}

/// Seconds with up to millisecond decimals, exactly (no float rounding).
fn seconds_to_ms(s: &str) -> Option<i64> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || frac.trim_end_matches('0').len() > 3 {
        return None;
    }
    let mut ms: i64 = whole.parse::<i64>().ok()?.checked_mul(1000)?;
    let frac3 = format!("{:0<3}", &frac[..frac.len().min(3)]);
    ms = ms.checked_add(frac3.parse::<i64>().ok()?)?;
    Some(if negative { -ms } else { ms })
}

/// Reads `name="value",…}` into `labels`; returns what follows the `}`.
fn parse_labels<'a>(mut rest: &'a str, labels: &mut Vec<Label>) -> Result<&'a str, String> {
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("a label without a value in {}", echo(rest)))?;
        let name = rest[..eq].trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("bad label name {}", echo(name)));
        }
        rest = rest[eq + 1..].trim_start();
        rest = rest
            .strip_prefix('"')
            .ok_or_else(|| format!("the value of label {} is not quoted", echo(name)))?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("the value of label {} never ends", echo(name))),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => {
                        return Err(format!(
                            "bad escape \\{} in label {}",
                            other.map_or(String::new(), |(_, c)| c.to_string()),
                            echo(name)
                        ));
                    }
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.push(Label::new(name, value));
        rest = &rest[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_lines_read_back_exactly() {
        let labels = vec![
            Label::new("__name__", "lodging_guests"),
            Label::new("commune", "Long Xuyên \"A\"\n\\"),
            Label::new("kind", "hotel"),
        ];
        let samples = vec![
            Sample::new(1_700_000_000_123, 0.30000000000000004),
            Sample::new(-1_500, -0.0),
            Sample::new(5, f64::NEG_INFINITY),
            Sample::new(6, 1e300),
        ];
        let mut out = Vec::new();
        write(&mut out, &labels, &samples).expect("write");
        finish(&mut out).expect("finish");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.starts_with(
            "lodging_guests{commune=\"Long Xuyên \\\"A\\\"\\n\\\\\",kind=\"hotel\"} 0.30000000000000004 1700000000.123\n"
        ), "{text}");
        assert!(text.contains("} -0 -1.500\n"), "{text}");
        assert!(text.ends_with("# EOF\n"));
        let read: Vec<(Vec<Label>, Sample)> = text
            .lines()
            .filter_map(|l| parse(l, Dialect::Seconds).expect("parse"))
            .collect();
        assert_eq!(read.len(), samples.len());
        for ((l, s), want) in read.iter().zip(&samples) {
            assert_eq!(l, &labels);
            assert_eq!((s.t, s.v.to_bits()), (want.t, want.v.to_bits()));
        }
    }

    #[test]
    fn promtool_dump_lines_read_and_bad_lines_say_why() {
        let (labels, s) = parse(
            r#"{__name__="up", instance="localhost:9090", job="prometheus"} 1 1700000000000"#,
            Dialect::Milliseconds,
        )
        .expect("parse")
        .expect("a sample");
        assert_eq!(labels.len(), 3);
        assert_eq!((s.t, s.v), (1_700_000_000_000, 1.0));
        assert_eq!(parse("# HELP x y", Dialect::Seconds), Ok(None));
        for (line, why) in [
            ("up 1", "no timestamp"),
            ("up x 1", "not a number"),
            ("up 1 1.0001", "not a time"),
            ("up{a=b} 1 1", "not quoted"),
            ("up{a=\"b} 1 1", "never ends"),
            ("up{a=\"\\t\"} 1 1", "bad escape"),
            ("up{a-b=\"1\"} 1 1", "bad label name"),
            ("{} 1 1", "no metric name"),
            ("up 1 1 2", "unexpected"),
        ] {
            let err = parse(line, Dialect::Seconds).expect_err(line);
            assert!(err.contains(why), "{line}: {err}");
        }
        assert_eq!(seconds_to_ms("1.5"), Some(1500));
        assert_eq!(seconds_to_ms("-0.001"), Some(-1));
        assert_eq!(seconds_to_ms("12"), Some(12_000));
        assert_eq!(seconds_to_ms("1.2500"), Some(1250));
        assert_eq!(seconds_to_ms("1e3"), None);
    }
}
