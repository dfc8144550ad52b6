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
use iocdb_proto::line_protocol::{FieldValue, LineError, Point};

use super::params::Params;
use super::remote::{list_problems, store_raw};
use super::{ApiError, Namespace, json};
use crate::service::{AppState, now_ms};

/// Parses one line, saying why it does not parse with the user's text shortened.
pub fn parse_line(line: &str) -> Result<Point<'_>, String> {
    iocdb_proto::line_protocol::parse_line(line).map_err(|e| describe(&e))
}

/// A parse error as the server answers it.
fn describe(e: &LineError<'_>) -> String {
    match e.text {
        Some(text) => format!("{} {}{}", e.what, echo(text), e.detail),
        None => format!("{}{}", e.what, e.detail),
    }
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
}
