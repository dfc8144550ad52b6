//! The Prometheus HTTP API v1 query, metadata and status endpoints, with Prometheus'
//! parameters, JSON shapes, error types and status codes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use iocdb_engine::{Labels, PromqlQuery, SeriesFilter, echo, query::parse::series_selector};

use super::params::Params;
use super::{ApiError, Namespace, blocking, json, json_response};
use crate::service::{AppState, now_ms};

/// The Prometheus version whose API and PromQL iocdb answers like (Grafana reads it from
/// `buildinfo` to decide what to ask).
pub const PROMETHEUS_COMPATIBLE_VERSION: &str = "2.42.0";

pub(super) fn ok(data: &str) -> Response {
    json_response(StatusCode::OK, json::success(data))
}

fn deadline(p: &Params) -> Result<Option<Instant>, ApiError> {
    Ok(p.duration("timeout")?
        .filter(|ms| *ms > 0)
        .and_then(|ms| Instant::now().checked_add(Duration::from_millis(ms as u64))))
}

/// `GET|POST /api/v1/query`.
pub async fn query(
    State(state): State<AppState>,
    Namespace(ns): Namespace,
    p: Params,
) -> Result<Response, ApiError> {
    let expr = p.required("query")?.to_owned();
    let time = p.time("time")?.unwrap_or_else(now_ms);
    let q = PromqlQuery {
        deadline: deadline(&p)?,
        max_samples: state.limits.query_max_samples(&ns),
        ..PromqlQuery::instant(ns, expr, time)
    };
    answer(&state, q, &p).await
}

/// `GET|POST /api/v1/query_range`.
pub async fn query_range(
    State(state): State<AppState>,
    Namespace(ns): Namespace,
    p: Params,
) -> Result<Response, ApiError> {
    let expr = p.required("query")?.to_owned();
    let start = p
        .time("start")?
        .ok_or_else(|| ApiError::bad_data("missing parameter \"start\""))?;
    let end = p
        .time("end")?
        .ok_or_else(|| ApiError::bad_data("missing parameter \"end\""))?;
    if end < start {
        return Err(ApiError::bad_data(
            "end timestamp must not be before start time",
        ));
    }
    let step = p
        .duration("step")?
        .ok_or_else(|| ApiError::bad_data("missing parameter \"step\""))?;
    if step <= 0 {
        return Err(ApiError::bad_data(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    let max = state.config.query_max_points_per_series as i128;
    if (i128::from(end) - i128::from(start)) / i128::from(step) > max {
        return Err(ApiError::bad_data(format!(
            "exceeded maximum resolution of {max} points per timeseries. Try decreasing the query resolution (?step=XX)"
        )));
    }
    let q = PromqlQuery {
        deadline: deadline(&p)?,
        max_samples: state.limits.query_max_samples(&ns),
        ..PromqlQuery::range(ns, expr, start, end, step)
    };
    answer(&state, q, &p).await
}

/// Runs a PromQL query and writes its answer; with `stats` (any value, as Prometheus'
/// `stats=all`) also what it read and took — Prometheus' `timings` and `samples`, and
/// iocdb's own figures under `iocdb`: series and samples read, `stepsFromCache` (steps the
/// result cache answered), `rollupBuckets` and `rollupTier` (summaries read instead of raw
/// samples, and the coarsest tier that gave them, `""` for none) and `servedBy`: `"raw"`,
/// `"cache"`, `"rollup"` or `"cache+rollup"` — what answered besides raw samples.
async fn answer(state: &AppState, q: PromqlQuery, p: &Params) -> Result<Response, ApiError> {
    let started = Instant::now();
    let answer = super::answered(state.query(&q))?;
    let mut data = json::query_data(&answer.value);
    if p.get("stats").is_some() {
        let seconds = started.elapsed().as_secs_f64();
        data.pop();
        let served_by = match (answer.steps_from_cache > 0, answer.rollup_buckets > 0) {
            (false, false) => "raw",
            (true, false) => "cache",
            (false, true) => "rollup",
            (true, true) => "cache+rollup",
        };
        let tier = match answer.rollup_tier_ms {
            0 => String::new(),
            ms => humantime::format_duration(std::time::Duration::from_millis(ms.unsigned_abs()))
                .to_string(),
        };
        data.push_str(&format!(
            r#","stats":{{"timings":{{"evalTotalTime":{seconds},"execTotalTime":{seconds}}},"samples":{{"totalQueryableSamples":{}}},"iocdb":{{"seriesRead":{},"samplesRead":{},"stepsFromCache":{},"rollupBuckets":{},"rollupTier":"{tier}","servedBy":"{served_by}"}}}}}}"#,
            answer.samples_read,
            answer.series_read,
            answer.samples_read,
            answer.steps_from_cache,
            answer.rollup_buckets,
        ));
    }
    Ok(ok(&data))
}

/// The series filters of `match[]` (at least one when `required`; none means every series).
fn filters(
    p: &Params,
    ns: &str,
    required: bool,
    limit: usize,
) -> Result<Vec<SeriesFilter>, ApiError> {
    let start = p.time("start")?.unwrap_or(i64::MIN);
    let end = p.time("end")?.unwrap_or(i64::MAX);
    let selectors = p.all("match[]");
    if selectors.is_empty() {
        if required {
            return Err(ApiError::bad_data("no match[] parameter provided"));
        }
        return Ok(vec![SeriesFilter {
            namespace: ns.to_owned(),
            matchers: Vec::new(),
            start,
            end,
            limit,
        }]);
    }
    selectors
        .into_iter()
        .map(|s| {
            Ok(SeriesFilter {
                namespace: ns.to_owned(),
                matchers: series_selector(s)?,
                start,
                end,
                limit,
            })
        })
        .collect()
}

/// `GET|POST /api/v1/series`.
pub async fn series(
    State(state): State<AppState>,
    Namespace(ns): Namespace,
    p: Params,
) -> Result<Response, ApiError> {
    let filters = filters(&p, &ns, true, state.config.query_max_series)?;
    let found: BTreeSet<Labels> = blocking(&state, move |e| {
        let mut all = BTreeSet::new();
        for f in &filters {
            all.extend(e.series(f)?);
        }
        Ok(all)
    })
    .await?;
    let mut out = String::from("[");
    for (i, labels) in found.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::labels(&mut out, labels);
    }
    out.push(']');
    Ok(ok(&out))
}

/// `GET|POST /api/v1/labels`.
pub async fn labels(
    State(state): State<AppState>,
    Namespace(ns): Namespace,
    p: Params,
) -> Result<Response, ApiError> {
    let filters = filters(&p, &ns, false, usize::MAX)?;
    let names: BTreeSet<String> = blocking(&state, move |e| {
        let mut all = BTreeSet::new();
        for f in &filters {
            all.extend(e.label_names(f)?);
        }
        Ok(all)
    })
    .await?;
    Ok(ok(&json::strings(names.iter().map(String::as_str))))
}

/// `GET /api/v1/label/<name>/values`.
pub async fn label_values(
    State(state): State<AppState>,
    Namespace(ns): Namespace,
    Path(path): Path<BTreeMap<String, String>>,
    p: Params,
) -> Result<Response, ApiError> {
    let name = path.get("name").cloned().unwrap_or_default();
    if !iocdb_engine::is_valid_label_name(&name) {
        return Err(ApiError::bad_data(format!(
            "invalid label name: {}",
            echo(&name)
        )));
    }
    let filters = filters(&p, &ns, false, usize::MAX)?;
    let values: BTreeSet<String> = blocking(&state, move |e| {
        let mut all = BTreeSet::new();
        for f in &filters {
            all.extend(e.label_values(f, &name)?);
        }
        Ok(all)
    })
    .await?;
    Ok(ok(&json::strings(values.iter().map(String::as_str))))
}

/// `GET /api/v1/metadata`: what remote write and the Admin API declared, per metric.
pub async fn metadata(
    State(state): State<AppState>,
    Namespace(ns): Namespace,
    p: Params,
) -> Result<Response, ApiError> {
    let limit = match p.get("limit") {
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_data(format!("invalid limit {}", echo(l))))?,
        None => -1,
    };
    let metric = p.get("metric").map(str::to_owned);
    let all = blocking(&state, move |e| e.metadata(&ns)).await?;
    let mut out = String::from("{");
    let wanted = all
        .iter()
        .filter(|m| metric.as_deref().is_none_or(|x| x == m.metric))
        .take(usize::try_from(limit).unwrap_or(usize::MAX));
    for (n, m) in wanted.enumerate() {
        if n > 0 {
            out.push(',');
        }
        // Prometheus' types; the catalog's own kinds (ratio, monthly, …) are gauges there.
        let kind = match m.kind.as_str() {
            "" => "unknown",
            k @ ("counter" | "gauge" | "histogram" | "gaugehistogram" | "summary" | "info"
            | "stateset" | "unknown") => k,
            _ => "gauge",
        };
        out.push_str(&format!(
            r#"{}:[{{"type":{},"help":{},"unit":{}"#,
            json::string(&m.metric),
            json::string(kind),
            json::string(&m.description),
            json::string(&m.unit)
        ));
        if !m.department.is_empty() || !m.contact.is_empty() || m.rules.any() || kind != m.kind {
            // The rest of the catalog entry, under a key of its own that Prometheus clients
            // (Grafana) pass over.
            let r = &m.rules;
            let entry = serde_json::json!({
                "kind": m.kind, "department": m.department, "contact": m.contact,
                "expected_interval_ms": m.expected_interval_ms, "valid_min": r.valid_min,
                "valid_max": r.valid_max, "required_labels": r.required_labels,
                "revision_window_ms": r.revision_window_ms,
                "max_change_factor": r.max_change_factor,
                "quality_policy": r.policy.map(|p| p.name()),
            });
            out.push_str(&format!(r#","iocdb":{entry}"#));
        }
        out.push_str("}]");
    }
    out.push('}');
    Ok(ok(&out))
}

/// `GET|POST /api/v1/query_exemplars`: iocdb keeps no exemplars.
pub async fn exemplars() -> Response {
    ok("[]")
}

/// `GET /api/v1/status/buildinfo`.
pub async fn buildinfo() -> Response {
    ok(&format!(
        r#"{{"version":"{PROMETHEUS_COMPATIBLE_VERSION}","revision":"","branch":"","buildUser":"","buildDate":"","goVersion":"","application":"iocdb","iocdbVersion":"{}"}}"#,
        env!("CARGO_PKG_VERSION")
    ))
}

/// `GET /api/v1/status/iocdb` (an iocdb extension, for the console and operators): the
/// namespaces with their series and retention, the head's memory and budget, and the
/// compaction window. Cheap: nothing here walks the series.
pub async fn status(State(state): State<AppState>) -> Response {
    let c = &state.config;
    let seconds = |d: std::time::Duration| serde_json::Value::from(d.as_secs_f64());
    let retention_of = |ns: &str| {
        c.retention_by_namespace
            .get(ns)
            .copied()
            .or(c.retention)
            .map(seconds)
            .unwrap_or(serde_json::Value::Null)
    };
    let namespaces: Vec<serde_json::Value> = state
        .engine
        .namespaces()
        .into_iter()
        .map(|(name, series)| {
            serde_json::json!({"name": name, "series": series, "retention": retention_of(&name)})
        })
        .collect();
    let (head_bytes, head_budget) = state.engine.head_memory();
    let data = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "namespaces": namespaces,
        "retention": retention_of(""),
        "compactionWindow": seconds(c.compaction_window),
        "compactionAgedWindows": c.aged_windows().into_iter().map(seconds).collect::<Vec<_>>(),
        "headBytes": head_bytes,
        "headBudgetBytes": head_budget,
        "demo": c.demo_scale.is_some(),
    });
    ok(&data.to_string())
}

/// The most namespaces one watch follows.
const MAX_WATCHED: usize = 64;

/// `GET /-/healthy`.
pub async fn healthy() -> Response {
    (StatusCode::OK, "iocdb is Healthy.\n").into_response()
}

/// `GET /-/ready`: 503 once shutting down.
pub async fn ready(State(state): State<AppState>) -> Response {
    if *state.shutdown.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "iocdb is shutting down.\n").into_response();
    }
    (StatusCode::OK, "iocdb is Ready.\n").into_response()
}

/// `GET /api/v1/watch` (an iocdb extension): server-sent events of every newly acknowledged
/// sample of the series the one optional `match[]` selects — `event: samples` with
/// `{"namespace":…,"metric":{…},"values":[[t,"v"],…]}` as `/api/v1/query_range` writes a
/// series, and `event: gap` with `{"namespace":…,"lost":n,"from":t,"to":t}` when this client
/// fell behind (read that span back with `query_range` to resynchronise). `timeout=<seconds>`
/// ends the stream.
///
/// A page of panels watches several namespaces on one connection (a browser opens at most six
/// to a server): repeat `watch[]=<namespace>:<selector>` (the selector may be empty, the
/// namespace too, for the default one) instead of `match[]`; the caller needs `read` on each.
pub async fn watch(
    State(state): State<AppState>,
    Namespace(ns): Namespace,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    p: Params,
) -> Result<Response, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let selectors = p.all("match[]");
    let several = p.all("watch[]");
    let mut wanted = Vec::new();
    if several.is_empty() {
        let matchers = match selectors.as_slice() {
            [] => Vec::new(),
            [one] => series_selector(one)?,
            _ => return Err(ApiError::bad_data("at most one match[] selector per watch")),
        };
        wanted.push((ns, matchers));
    } else {
        if !selectors.is_empty() {
            return Err(ApiError::bad_data(
                "give either match[] or watch[], not both",
            ));
        }
        if several.len() > MAX_WATCHED {
            return Err(ApiError::bad_data(format!(
                "{} watch[] entries: at most {MAX_WATCHED} per watch",
                several.len()
            )));
        }
        for w in several {
            let Some((ns, selector)) = w.split_once(':') else {
                return Err(ApiError::bad_data(format!(
                    "watch[] {} is not <namespace>:<selector>",
                    echo(w)
                )));
            };
            if let Some(axum::Extension(caller)) = &caller
                && let Err(denied) = caller.check(ns, crate::auth::Role::Read)
            {
                return Ok(super::refusal(denied));
            }
            let matchers = if selector.trim().is_empty() {
                Vec::new()
            } else {
                series_selector(selector)?
            };
            wanted.push((ns.to_owned(), matchers));
        }
    }
    let timeout = match p.get("timeout") {
        None => None,
        Some(t) => Some(
            t.parse::<f64>()
                .ok()
                .filter(|t| t.is_finite() && *t >= 0.0)
                .map(std::time::Duration::from_secs_f64)
                .ok_or_else(|| {
                    ApiError::bad_data(format!("timeout {} is not a number of seconds", echo(t)))
                })?,
        ),
    };
    let notify = std::sync::Arc::new(tokio::sync::Notify::new());
    let wake = notify.clone();
    let subs = blocking(&state, move |e| {
        wanted
            .into_iter()
            .map(|(ns, matchers)| {
                let wake = wake.clone();
                let sub = e.watch(
                    &ns,
                    matchers,
                    10_000,
                    std::sync::Arc::new(move || wake.notify_one()),
                )?;
                Ok((json::string(&ns), sub))
            })
            .collect::<iocdb_engine::Result<Vec<_>>>()
    })
    .await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, std::convert::Infallible>>(64);
    let mut stop = state.shutdown.clone();
    tokio::spawn(async move {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            for (namespace, sub) in &subs {
                while let Some(event) = sub.try_recv() {
                    let mut data = format!("{{\"namespace\":{namespace},");
                    let e = match event {
                        iocdb_engine::WatchEvent::Samples { labels, samples } => {
                            data.push_str("\"metric\":");
                            json::labels(&mut data, &labels);
                            data.push_str(",\"values\":[");
                            for (i, s) in samples.iter().enumerate() {
                                if i > 0 {
                                    data.push(',');
                                }
                                json::point(&mut data, s);
                            }
                            data.push_str("]}");
                            Event::default().event("samples").data(data)
                        }
                        iocdb_engine::WatchEvent::Gap { lost, from, to } => {
                            data.push_str(&format!("\"lost\":{lost},\"from\":"));
                            json::time(&mut data, from);
                            data.push_str(",\"to\":");
                            json::time(&mut data, to);
                            data.push('}');
                            Event::default().event("gap").data(data)
                        }
                    };
                    if tx.send(Ok(e)).await.is_err() {
                        return;
                    }
                }
            }
            let until = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = notify.notified() => {}
                _ = tx.closed() => return,
                _ = stop.wait_for(|s| *s) => return,
                _ = until => return,
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
