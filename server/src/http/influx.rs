//! InfluxDB line protocol (`POST /api/v2/write`, `POST /write`), as Telegraf and IoT
//! gateways send it: `measurement,tag=v field=1.5,other=2i 1700000000000000000`.
//!
//! Each field becomes a series named `measurement_field` (characters a metric name cannot
//! hold become `_`), tags become labels; integers, unsigned integers and floats are stored as
//! numbers, booleans as 1 and 0. String fields cannot be stored and are reported. A line
//! that does not parse is reported with its number and the reason, and the good lines of
//! the same body are stored. The `precision` parameter (`ns`, `us`, `ms`, `s`; `/write` also
//! takes `n`, `u`, `m`, `h`) says the unit of timestamps; a line without one is stamped with
//! the server's time.
//!
//! The series' labels are written as bytes into one buffer per request and handed to the
//! engine as such (`Engine::write_raw`), as remote write's are: a known series costs a
//! lookup by those bytes, not a string per label.

use std::borrow::Cow;
use std::ops::Range;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use iocdb_engine::{RawLabel, RawSeriesWrite, RawWriteRequest, Sample, SeriesBy, echo};

use super::params::Params;
use super::remote::{list_problems, store_raw};
use super::{ApiError, Namespace, json};
use crate::service::{AppState, now_ms};

/// One parsed line; names and tags borrow from the line unless they had escapes.
#[derive(Debug, Clone, PartialEq)]
pub struct Point<'a> {
    /// Measurement.
    pub measurement: Cow<'a, str>,
    /// Tags, in line order.
    pub tags: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Fields, in line order.
    pub fields: Vec<(Cow<'a, str>, FieldValue)>,
    /// Timestamp in the request's precision, if the line has one.
    pub timestamp: Option<i64>,
}

/// A field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// `1.5`, `1`, `-3e2`.
    Float(f64),
    /// `3i`.
    Integer(i64),
    /// `3u`.
    Unsigned(u64),
    /// `"text"`.
    String(String),
    /// `t`, `false`, ….
    Boolean(bool),
}

/// Splits at `sep` where it is not escaped by a backslash (nor inside a double-quoted string
/// when `quotes`).
fn split_unescaped(s: &str, sep: char, quotes: bool) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    let mut in_quotes = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' if quotes => in_quotes = !in_quotes,
            c if c == sep && !in_quotes => {
                parts.push(s.get(start..i).unwrap_or_default());
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(s.get(start..).unwrap_or_default());
    parts
}

/// Removes the backslash before the characters the protocol escapes in names and tags
/// (borrowing `s` when it has no backslash, as almost every name and tag).
fn unescape<'a>(s: &'a str, special: &[char]) -> Cow<'a, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&next) = chars.peek()
            && special.contains(&next)
        {
            out.push(next);
            chars.next();
            continue;
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// Splits a line into its three space-separated sections (the timestamp may be missing).
fn sections(line: &str) -> Result<(&str, &str, Option<&str>), String> {
    let parts = split_unescaped(line, ' ', true);
    let parts: Vec<&str> = parts.into_iter().filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        [head, fields] => Ok((head, fields, None)),
        [head, fields, ts] => Ok((head, fields, Some(ts))),
        [_] => Err("no fields: a line needs at least one field=value".into()),
        _ => Err("more than three space-separated sections (unescaped space?)".into()),
    }
}

fn parse_field_value(raw: &str) -> Result<FieldValue, String> {
    if let Some(inner) = raw.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .ok_or_else(|| format!("unterminated string {}", echo(raw)))?;
        return Ok(FieldValue::String(
            unescape(inner, &['"', '\\']).into_owned(),
        ));
    }
    match raw {
        "t" | "T" | "true" | "True" | "TRUE" => return Ok(FieldValue::Boolean(true)),
        "f" | "F" | "false" | "False" | "FALSE" => return Ok(FieldValue::Boolean(false)),
        _ => {}
    }
    if let Some(i) = raw.strip_suffix('i') {
        return i
            .parse()
            .map(FieldValue::Integer)
            .map_err(|_| format!("bad integer {}", echo(raw)));
    }
    if let Some(u) = raw.strip_suffix('u') {
        return u
            .parse()
            .map(FieldValue::Unsigned)
            .map_err(|_| format!("bad unsigned integer {}", echo(raw)));
    }
    // Floats are decimal: no "inf", "nan" or hex (the protocol has none).
    if !raw.is_empty()
        && raw
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        && let Ok(v) = raw.parse::<f64>()
    {
        return Ok(FieldValue::Float(v));
    }
    Err(format!("bad field value {}", echo(raw)))
}

/// Parses one line.
pub fn parse_line(line: &str) -> Result<Point<'_>, String> {
    let (head, fields, ts) = sections(line)?;
    let mut head_parts = split_unescaped(head, ',', false).into_iter();
    let measurement = unescape(head_parts.next().unwrap_or_default(), &[',', ' ']);
    if measurement.is_empty() {
        return Err("empty measurement".into());
    }
    let mut tags = Vec::new();
    for t in head_parts {
        let kv = split_unescaped(t, '=', false);
        let [k, v] = kv.as_slice() else {
            return Err(format!("bad tag {} (want key=value)", echo(t)));
        };
        if k.is_empty() || v.is_empty() {
            return Err(format!("bad tag {} (empty key or value)", echo(t)));
        }
        tags.push((unescape(k, &[',', '=', ' ']), unescape(v, &[',', '=', ' '])));
    }
    let mut parsed = Vec::new();
    for f in split_unescaped(fields, ',', true) {
        let (k, v) =
            split_field(f).ok_or_else(|| format!("bad field {} (want key=value)", echo(f)))?;
        if k.is_empty() {
            return Err(format!("bad field {} (empty key)", echo(f)));
        }
        parsed.push((unescape(k, &[',', '=', ' ']), parse_field_value(v)?));
    }
    let timestamp = ts
        .map(|t| {
            t.parse::<i64>()
                .map_err(|_| format!("bad timestamp {}", echo(t)))
        })
        .transpose()?;
    Ok(Point {
        measurement,
        tags,
        fields: parsed,
        timestamp,
    })
}

/// `key=value` at the first unescaped `=`.
fn split_field(f: &str) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in f.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' => return Some((f.get(..i)?, f.get(i + 1..)?)),
            _ => {}
        }
    }
    None
}

/// A name with every character a Prometheus metric or label name cannot hold made `_`.
#[cfg(test)]
fn sanitize(name: &str, colons: bool) -> String {
    let mut out = Vec::new();
    sanitize_into(&mut out, name, colons);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `name` to `out` as [`sanitize`] shapes it (only ASCII is written).
fn sanitize_into(out: &mut Vec<u8>, name: &str, colons: bool) {
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        out.push(b'_');
    }
    out.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':') {
            c as u8
        } else {
            b'_'
        }
    }));
}

/// A request's labels as bytes in one buffer: each label a name span and a value span.
#[derive(Debug, Default)]
struct LabelBytes {
    text: Vec<u8>,
    labels: Vec<(Range<usize>, Range<usize>)>,
}

impl LabelBytes {
    /// Appends what `write` writes; returns its span.
    fn put(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> Range<usize> {
        let start = self.text.len();
        write(&mut self.text);
        start..self.text.len()
    }

    /// The labels as the engine takes them.
    fn raw(&self) -> Vec<RawLabel<'_>> {
        let span = |r: &Range<usize>| self.text.get(r.clone()).unwrap_or_default();
        self.labels
            .iter()
            .map(|(name, value)| RawLabel::new(span(name), span(value)))
            .collect()
    }
}

/// Milliseconds per timestamp unit of a `precision` value, as a (multiplier, divisor).
fn precision(p: Option<&str>) -> Result<(i64, i64), ApiError> {
    Ok(match p.unwrap_or("ns") {
        "ns" | "n" => (1, 1_000_000),
        "us" | "u" => (1, 1000),
        "ms" => (1, 1),
        "s" => (1000, 1),
        "m" => (60_000, 1),
        "h" => (3_600_000, 1),
        other => {
            return Err(ApiError::bad_data(format!(
                "unknown precision {}: use ns, us, ms or s",
                echo(other)
            )));
        }
    })
}

/// `POST /api/v2/write` and `POST /write`.
pub async fn write(
    State(state): State<AppState>,
    Namespace(ns): Namespace,
    uri: Uri,
    body: Bytes,
) -> Response {
    let v2 = uri.path().ends_with("/api/v2/write");
    let params: Params = match uri.query() {
        Some(q) => Params::from_pairs(serde_urlencoded::from_str(q).unwrap_or_default()),
        None => Params::default(),
    };
    let (mul, div) = match precision(params.get("precision")) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return influx_error(v2, StatusCode::BAD_REQUEST, "the body is not UTF-8".into());
    };
    let now = now_ms();
    let mut errors: Vec<String> = Vec::new();
    let mut bytes = LabelBytes::default();
    let metric_name = bytes.put(|t| t.extend_from_slice(b"__name__"));
    // Per series, its labels (a range of `bytes.labels`) and its one sample.
    let mut series: Vec<(Range<usize>, Sample)> = Vec::new();
    // Where each series came from (line number, field), to name it if it is rejected.
    let mut origin: Vec<(usize, Cow<'_, str>)> = Vec::new();
    let mut tags: Vec<(Range<usize>, Range<usize>)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let point = match parse_line(line) {
            Ok(p) => p,
            Err(e) => {
                errors.push(format!("line {}: {e}: {}", n + 1, echo(line)));
                continue;
            }
        };
        let t = match point.timestamp {
            Some(ts) => ts.saturating_mul(mul).div_euclid(div),
            None => now,
        };
        tags.clear();
        for (k, v) in &point.tags {
            let name = bytes.put(|b| sanitize_into(b, k, false));
            let value = bytes.put(|b| b.extend_from_slice(v.as_bytes()));
            tags.push((name, value));
        }
        let measurement = bytes.put(|b| sanitize_into(b, &point.measurement, true));
        for (field, value) in point.fields {
            let v = match value {
                FieldValue::Float(v) => v,
                FieldValue::Integer(i) => i as f64,
                FieldValue::Unsigned(u) => u as f64,
                FieldValue::Boolean(b) => f64::from(u8::from(b)),
                FieldValue::String(_) => {
                    errors.push(format!(
                        "line {}: field {} is a string; iocdb stores numbers (the line's other fields are stored)",
                        n + 1,
                        echo(&field)
                    ));
                    continue;
                }
            };
            let name = bytes.put(|b| {
                b.extend_from_within(measurement.clone());
                b.push(b'_');
                sanitize_into(b, &field, false);
            });
            let first = bytes.labels.len();
            bytes.labels.extend(tags.iter().cloned());
            bytes.labels.push((metric_name.clone(), name));
            series.push((first..bytes.labels.len(), Sample::new(t, v)));
            origin.push((n + 1, field));
        }
    }
    let labels = bytes.raw();
    let series: Vec<RawSeriesWrite<'_>> = series
        .iter()
        .map(|(of, sample)| RawSeriesWrite {
            by: SeriesBy::Labels(labels.get(of.clone()).unwrap_or_default()),
            samples: Cow::Borrowed(std::slice::from_ref(sample)),
        })
        .collect();
    let outcome = match store_raw(
        &state,
        RawWriteRequest {
            namespace: &ns,
            series: &series,
        },
    ) {
        Ok(o) => o,
        Err(resp) => return *resp,
    };
    for r in &outcome.rejected {
        let (line, field) = origin.get(r.series_index).cloned().unwrap_or_default();
        errors.push(format!(
            "line {line}: field {}: {} ({})",
            echo(&field),
            r.reason,
            r.reason.kind()
        ));
    }
    if errors.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let header = format!(
        "partial write: stored {} samples; {} problems:",
        outcome.accepted,
        errors.len()
    );
    let total = errors.len();
    let msg = list_problems(header, errors.into_iter(), total);
    influx_error(v2, StatusCode::BAD_REQUEST, msg)
}

/// An error in the shape InfluxDB answers: v2 `{"code","message"}`, v1 `{"error"}`.
fn influx_error(v2: bool, status: StatusCode, message: String) -> Response {
    let body = if v2 {
        format!(
            r#"{{"code":"invalid","message":{}}}"#,
            json::string(&message)
        )
    } else {
        format!(r#"{{"error":{}}}"#, json::string(&message))
    };
    super::json_response(status, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Point<'_> {
        parse_line(line).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    /// The examples of InfluxDB's line protocol reference.
    #[test]
    fn the_reference_examples_parse_as_specified() {
        let x =
            p("myMeasurement,tag1=value1,tag2=value2 fieldKey=\"fieldValue\" 1556813561098000000");
        assert_eq!(x.measurement, "myMeasurement");
        assert_eq!(
            x.tags,
            [
                ("tag1".into(), "value1".into()),
                ("tag2".into(), "value2".into())
            ]
        );
        assert_eq!(
            x.fields,
            [("fieldKey".into(), FieldValue::String("fieldValue".into()))]
        );
        assert_eq!(x.timestamp, Some(1_556_813_561_098_000_000));

        // Field types.
        let x = p("myMeasurement fieldKey=1.0,i=1i,u=1u,e=-1.234456e+78,b=true,s=\"x\"");
        assert_eq!(
            x.fields,
            [
                ("fieldKey".into(), FieldValue::Float(1.0)),
                ("i".into(), FieldValue::Integer(1)),
                ("u".into(), FieldValue::Unsigned(1)),
                ("e".into(), FieldValue::Float(-1.234456e78)),
                ("b".into(), FieldValue::Boolean(true)),
                ("s".into(), FieldValue::String("x".into())),
            ]
        );
        assert_eq!(x.timestamp, None);
        for (raw, want) in [
            ("t", true),
            ("T", true),
            ("True", true),
            ("TRUE", true),
            ("f", false),
            ("False", false),
            ("FALSE", false),
        ] {
            assert_eq!(
                p(&format!("m v={raw}")).fields[0].1,
                FieldValue::Boolean(want)
            );
        }

        // Escaping: spaces and commas in measurements, commas, equals and spaces in tags
        // and field keys, quotes and backslashes in string fields.
        let x = p(
            r#"my\ Measurement,tag\ Key=tag\,value\=x fieldKey="string \"quoted\" and \\ back" 1"#,
        );
        assert_eq!(x.measurement, "my Measurement");
        assert_eq!(x.tags, [("tag Key".into(), "tag,value=x".into())]);
        assert_eq!(
            x.fields,
            [(
                "fieldKey".into(),
                FieldValue::String(r#"string "quoted" and \ back"#.into())
            )]
        );
        let x = p(r#"my\,Measurement field\ Key\,x\=y="a, b=c" 2"#);
        assert_eq!(x.measurement, "my,Measurement");
        assert_eq!(x.fields[0].0, "field Key,x=y");
        assert_eq!(x.fields[0].1, FieldValue::String("a, b=c".into()));

        // Vietnamese tag values round-trip.
        let x = p("giuong,xa=Châu\\ Đốc trong=12i");
        assert_eq!(x.tags, [("xa".into(), "Châu Đốc".into())]);
    }

    #[test]
    fn names_and_tags_without_escapes_borrow_the_line() {
        let x = p(r"m,a=b,c\ d=e\,f v=1 1");
        assert!(matches!(x.measurement, Cow::Borrowed("m")));
        assert!(matches!(x.tags[0].1, Cow::Borrowed("b")));
        assert!(matches!(&x.tags[1].0, Cow::Owned(k) if k == "c d"));
        assert!(matches!(&x.tags[1].1, Cow::Owned(v) if v == "e,f"));
        assert!(matches!(x.fields[0].0, Cow::Borrowed("v")));
    }

    #[test]
    fn bad_lines_say_why() {
        for (line, why) in [
            ("m", "no fields"),
            ("m v=", "bad field value"),
            ("m v=1 x", "bad timestamp"),
            ("m v=\"open", "unterminated"),
            ("m,t v=1", "bad tag"),
            ("m v=12x", "bad field value"),
            ("m v=1.5i", "bad integer"),
            (",t=1 v=1", "empty measurement"),
        ] {
            let e = parse_line(line).expect_err(line);
            assert!(e.contains(why), "{line}: {e}");
        }
    }

    #[test]
    fn names_become_prometheus_names() {
        assert_eq!(sanitize("cpu-usage.idle", true), "cpu_usage_idle");
        assert_eq!(sanitize("9lives", false), "_9lives");
        assert_eq!(sanitize("a:b", true), "a:b");
        assert_eq!(sanitize("a:b", false), "a_b");
    }

    proptest::proptest! {
        /// Any line — random bytes or near-misses of the syntax — parses or says why; it
        /// never panics.
        #[test]
        fn no_line_panics(line in "[a-z=,\\\\\" 0-9.eiuTtFf\\-]{0,40}|\\PC{0,40}") {
            let _ = parse_line(&line);
        }
    }
}
