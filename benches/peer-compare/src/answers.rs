//! Query answers as the peers and iocdb give them over the Prometheus HTTP API, reduced to
//! what must agree (label set → points), and how many points two answers disagree on.

// JSON values index to `Null` when a key is missing; they cannot panic.
#![allow(clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Label set (one text key) → points (ms, value).
pub type Answer = BTreeMap<String, Vec<(i64, f64)>>;

/// One text key per label set, the same whichever system answered.
pub fn series_key(mut labels: Vec<(String, String)>) -> String {
    labels.sort();
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `GET {base}/api/v1/query_range` and its answer, with the time it took (each system's
/// cache off: `nocache=1`, which VictoriaMetrics honours).
pub fn query_range(
    base: &str,
    promql: &str,
    start: i64,
    end: i64,
    step: i64,
) -> (Answer, Duration) {
    ask_range(base, promql, (start, end, step), true)
        .unwrap_or_else(|(e, _)| panic!("{base}: {promql}: {e}"))
}

/// `GET {base}/api/v1/query_range` over `(start, end, step)` (ms), as a dashboard asks it
/// (`nocache`: with `nocache=1`); the answer and the time it took, or the error and the
/// time it took to come.
pub fn ask_range(
    base: &str,
    promql: &str,
    window: (i64, i64, i64),
    nocache: bool,
) -> Result<(Answer, Duration), (String, Duration)> {
    let (body, elapsed) = fetch_range(base, promql, window, nocache)?;
    let json: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| (e.to_string(), elapsed))?;
    let mut out = Answer::new();
    for r in json["data"]["result"].as_array().into_iter().flatten() {
        let labels: Vec<(String, String)> = r["metric"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
            .collect();
        let points = r["values"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    (p[0].as_f64().unwrap_or(0.0) * 1000.0).round() as i64,
                    p[1].as_str().unwrap_or("NaN").parse().unwrap_or(f64::NAN),
                )
            })
            .collect();
        out.insert(series_key(labels), points);
    }
    Ok((out, elapsed))
}

/// [`ask_range`]'s request alone: the body as it came (unparsed, as a client that only
/// times the answer needs it) and the time until its last byte.
pub fn fetch_range(
    base: &str,
    promql: &str,
    (start, end, step): (i64, i64, i64),
    nocache: bool,
) -> Result<(String, Duration), (String, Duration)> {
    let t = Instant::now();
    let mut request = ureq::get(&format!("{base}/api/v1/query_range"))
        .query("query", promql)
        .query("start", &format!("{}", start as f64 / 1000.0))
        .query("end", &format!("{}", end as f64 / 1000.0))
        .query("step", &format!("{}", step as f64 / 1000.0));
    if nocache {
        request = request.query("nocache", "1");
    }
    let body = request
        .call()
        .map_err(|e| e.to_string())
        .and_then(|r| r.into_string().map_err(|e| e.to_string()));
    let elapsed = t.elapsed();
    body.map(|b| (b, elapsed)).map_err(|e| (e, elapsed))
}

/// Points that differ (missing on either side, or values beyond a relative 1e-9).
pub fn differences(a: &Answer, b: &Answer) -> usize {
    let mut diff = 0;
    for key in a.keys().chain(b.keys()).collect::<BTreeSet<_>>() {
        let ma: BTreeMap<i64, f64> = a
            .get(key)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let mb: BTreeMap<i64, f64> = b
            .get(key)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect();
        for t in ma.keys().chain(mb.keys()).collect::<BTreeSet<_>>() {
            match (ma.get(t), mb.get(t)) {
                (Some(x), Some(y))
                    if (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
                        || (x.is_nan() && y.is_nan()) => {}
                _ => diff += 1,
            }
        }
    }
    diff
}
