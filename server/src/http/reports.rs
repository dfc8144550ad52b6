//! iocdb's own reports over HTTP, for the console and any dashboard that reads JSON:
//! `GET /api/v1/completeness` (expected against received samples, gaps, silent sources,
//! arrival delays; the same report as `Query.Completeness`) and `GET /api/v1/quality` (what
//! the data-quality rules rejected and flagged; as `Admin.Quality`). Times are seconds, as
//! everywhere in the Prometheus API.

use axum::extract::State;
use axum::response::Response;
use iocdb_engine::{CompletenessQuery, Labels, QualityFilter, query::parse::series_selector};
use serde_json::{Value, json};

use super::api::ok;
use super::params::Params;
use super::{ApiError, Namespace, blocking};
use crate::service::AppState;

fn labels(l: &Labels) -> Value {
    l.iter()
        .map(|x| (x.name.clone(), Value::from(x.value.clone())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// `GET /api/v1/completeness?start=…&end=…[&match[]=…][&by=commune,…][&silent_factor=3]`.
pub async fn completeness(
    State(state): State<AppState>,
    Namespace(ns): Namespace,
    p: Params,
) -> Result<Response, ApiError> {
    let now = crate::service::now_ms();
    let end = p.time("end")?.unwrap_or(now);
    let start = p.time("start")?.unwrap_or(end - 3_600_000);
    let matchers = match p.all("match[]").as_slice() {
        [] => Vec::new(),
        [one] => series_selector(one)?,
        _ => return Err(ApiError::bad_data("at most one match[] selector")),
    };
    let by = p
        .get("by")
        .map(|b| {
            b.split(',')
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let factor = match p.get("silent_factor") {
        None => 3.0,
        Some(f) => f
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && *f > 0.0)
            .ok_or_else(|| ApiError::bad_data("silent_factor must be a positive number"))?,
    };
    let q = CompletenessQuery {
        matchers,
        start,
        end,
        by,
    };
    let at = end.min(now);
    let r = blocking(&state, move |e| e.completeness(&ns, &q, at, factor)).await?;
    let by = &r.figures.by;
    let groups: Vec<Value> = r
        .figures
        .groups
        .iter()
        .map(|g| {
            let values: serde_json::Map<_, _> = by
                .iter()
                .zip(&g.labels)
                .map(|(n, v)| (n.clone(), Value::from(v.clone())))
                .collect();
            json!({"metric": g.metric, "department": g.department, "labels": values,
                "series": g.series, "expected": g.expected, "received": g.received,
                "ratio": g.ratio(), "gaps": g.gaps})
        })
        .collect();
    let gaps: Vec<Value> = r
        .figures
        .gaps
        .iter()
        .map(|g| {
            json!({"labels": labels(&g.labels), "start": seconds(g.start),
            "end": seconds(g.end), "missing": g.missing, "open": g.open,
            "interval": seconds(g.interval_ms)})
        })
        .collect();
    let silent: Vec<Value> = r
        .silent
        .iter()
        .map(|s| {
            json!({"labels": labels(&s.labels), "last": s.last.map(|x| seconds(x.t)),
            "silent_for": seconds(s.silent_ms), "interval": seconds(s.expected_interval_ms)})
        })
        .collect();
    let delays: Vec<Value> = r
        .delays
        .iter()
        .map(|d| {
            json!({"metric": d.metric, "samples": d.samples, "p50": seconds(d.p50_ms),
            "p99": seconds(d.p99_ms), "max": seconds(d.max_ms)})
        })
        .collect();
    let data = json!({"groups": groups, "gaps": gaps, "silent": silent,
        "silent_by_metric": r.silent_by_metric, "delays": delays,
        "unjudged_series": r.figures.unjudged_series});
    Ok(ok(&data.to_string()))
}

/// `GET /api/v1/quality[?metric=…][&since=…][&limit=100]`.
pub async fn quality(
    State(state): State<AppState>,
    Namespace(ns): Namespace,
    p: Params,
) -> Result<Response, ApiError> {
    let limit = match p.get("limit") {
        None => 100,
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::bad_data("limit must be a whole number"))?
            .min(iocdb_engine::MAX_QUALITY_EVENTS),
    };
    let filter = QualityFilter {
        namespace: Some(ns),
        metric: p.get("metric").map(str::to_owned),
        since_ms: p.time("since")?,
        limit,
    };
    let report = blocking(&state, move |e| Ok(e.quality(&filter))).await?;
    let counts: Vec<Value> = report
        .counts
        .iter()
        .map(|c| {
            json!({"metric": c.metric, "rule": c.rule.kind(), "action": c.action.name(),
            "samples": c.samples})
        })
        .collect();
    let events: Vec<Value> = report
        .events
        .iter()
        .map(|e| {
            json!({"arrival": seconds(e.arrival_ms), "metric": e.metric,
            "series": e.series, "rule": e.rule.kind(), "action": e.action.name(),
            "samples": e.samples, "timestamp": seconds(e.timestamp), "value": e.value,
            "detail": e.detail})
        })
        .collect();
    Ok(ok(&json!({"counts": counts, "events": events}).to_string()))
}
