//! InfluxDB's line protocol, read in place: `measurement,tag=v field=1.5,other=2i
//! 1700000000000000000`, as Telegraf and IoT gateways send it. Names and tags borrow from
//! the line unless they hold escapes; what a line means to iocdb (series names, labels,
//! which values are stored) is the server's business.
//!
//! A line that does not parse gives a [`LineError`]: what was wrong and the text at fault,
//! which the server phrases (shortening the user's text). The `line_protocol` fuzz target
//! feeds it arbitrary bytes; its corpus replays as tests (`tests/fuzz_corpus.rs`).

#![warn(clippy::indexing_slicing, clippy::unwrap_used)]

use std::borrow::Cow;

/// Why a line does not parse: `what` was wrong with `text` (when a part of the line is at
/// fault), and `detail` (empty, or starting with a space).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineError<'a> {
    pub what: &'static str,
    pub text: Option<&'a str>,
    pub detail: &'static str,
}

impl<'a> LineError<'a> {
    fn new(what: &'static str, text: Option<&'a str>, detail: &'static str) -> Self {
        LineError { what, text, detail }
    }
}

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
fn sections(line: &str) -> Result<(&str, &str, Option<&str>), LineError<'_>> {
    let parts = split_unescaped(line, ' ', true);
    let parts: Vec<&str> = parts.into_iter().filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        [head, fields] => Ok((head, fields, None)),
        [head, fields, ts] => Ok((head, fields, Some(ts))),
        [_] => Err(LineError::new(
            "no fields: a line needs at least one field=value",
            None,
            "",
        )),
        _ => Err(LineError::new(
            "more than three space-separated sections (unescaped space?)",
            None,
            "",
        )),
    }
}

fn parse_field_value(raw: &str) -> Result<FieldValue, LineError<'_>> {
    if let Some(inner) = raw.strip_prefix('"') {
        let inner =
            inner
                .strip_suffix('"')
                .ok_or(LineError::new("unterminated string", Some(raw), ""))?;
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
            .map_err(|_| LineError::new("bad integer", Some(raw), ""));
    }
    if let Some(u) = raw.strip_suffix('u') {
        return u
            .parse()
            .map(FieldValue::Unsigned)
            .map_err(|_| LineError::new("bad unsigned integer", Some(raw), ""));
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
    Err(LineError::new("bad field value", Some(raw), ""))
}

/// Parses one line.
pub fn parse_line(line: &str) -> Result<Point<'_>, LineError<'_>> {
    let (head, fields, ts) = sections(line)?;
    let mut head_parts = split_unescaped(head, ',', false).into_iter();
    let measurement = unescape(head_parts.next().unwrap_or_default(), &[',', ' ']);
    if measurement.is_empty() {
        return Err(LineError::new("empty measurement", None, ""));
    }
    let mut tags = Vec::new();
    for t in head_parts {
        let kv = split_unescaped(t, '=', false);
        let [k, v] = kv.as_slice() else {
            return Err(LineError::new("bad tag", Some(t), " (want key=value)"));
        };
        if k.is_empty() || v.is_empty() {
            return Err(LineError::new("bad tag", Some(t), " (empty key or value)"));
        }
        tags.push((unescape(k, &[',', '=', ' ']), unescape(v, &[',', '=', ' '])));
    }
    let mut parsed = Vec::new();
    for f in split_unescaped(fields, ',', true) {
        let (k, v) =
            split_field(f).ok_or(LineError::new("bad field", Some(f), " (want key=value)"))?;
        if k.is_empty() {
            return Err(LineError::new("bad field", Some(f), " (empty key)"));
        }
        parsed.push((unescape(k, &[',', '=', ' ']), parse_field_value(v)?));
    }
    let timestamp = ts
        .map(|t| {
            t.parse::<i64>()
                .map_err(|_| LineError::new("bad timestamp", Some(t), ""))
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

/// Parses every line of `body` as the server splits it (trimmed lines; empty ones and `#`
/// comments skipped) and checks what each gives: a point has a measurement, tags with keys
/// and values, and at least one field with a key; what a point or an error borrows lies in
/// its line. Panics on a violation (for the tests and the fuzz target).
#[doc(hidden)]
pub fn check_lines(body: &[u8]) {
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let within = |part: &str| {
            let (start, end) = (line.as_ptr() as usize, line.as_ptr() as usize + line.len());
            let at = part.as_ptr() as usize;
            assert!(
                at >= start && at + part.len() <= end,
                "{part:?} not in {line:?}"
            );
        };
        let borrowed = |part: &Cow<'_, str>| {
            if let Cow::Borrowed(b) = part {
                within(b);
            }
        };
        match parse_line(line) {
            Ok(point) => {
                assert!(!point.measurement.is_empty(), "{line:?}");
                borrowed(&point.measurement);
                for (k, v) in &point.tags {
                    assert!(!k.is_empty() && !v.is_empty(), "{line:?}");
                    borrowed(k);
                    borrowed(v);
                }
                assert!(!point.fields.is_empty(), "{line:?}");
                for (k, _) in &point.fields {
                    assert!(!k.is_empty(), "{line:?}");
                    borrowed(k);
                }
            }
            Err(e) => {
                assert!(!e.what.is_empty());
                if let Some(text) = e.text {
                    within(text);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Point<'_> {
        parse_line(line).unwrap_or_else(|e| panic!("{line}: {e:?}"))
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
    fn bad_lines_say_what_and_where() {
        let e = |line| parse_line(line).expect_err(line);
        assert_eq!(
            e("m,t v=1"),
            LineError::new("bad tag", Some("t"), " (want key=value)")
        );
        assert_eq!(e("m v=12x").text, Some("12x"));
        assert_eq!(e("m v=1 x"), LineError::new("bad timestamp", Some("x"), ""));
        assert_eq!(e("m").text, None);
    }

    proptest::proptest! {
        /// Any body — random text or near-misses of the syntax — parses or says why, line by
        /// line; it never panics, and what it borrows is in its line.
        #[test]
        fn no_body_panics(body in "[a-z=,\\\\\" 0-9.eiuTtFf\\-\n#]{0,80}|\\PC{0,60}") {
            check_lines(body.as_bytes());
        }
    }
}
