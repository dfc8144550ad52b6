//! Self-metrics: what the server and its store are doing, in the Prometheus text format at
//! `/metrics` on the HTTP listener, so that the IOC's own monitoring scrapes iocdb like any
//! other service. Requests — count by outcome and latency histogram, per gRPC method and
//! per HTTP route — are recorded by a layer at each front door ([`Layer`] for gRPC, the
//! [`record_http`] middleware for HTTP); the store's figures are read from
//! [`Engine::stats`] when scraped; the process' memory from `/proc`.
//!
//! Label values are bounded: methods and routes are those the server serves (anything else
//! counts as `other`), codes are gRPC or HTTP status codes, namespaces are the store's own.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use iocdb_engine::{Engine, LATENCY_BUCKETS, Latency, LatencySnapshot, Stats};

use crate::service::AppState;

/// Which front door a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Door {
    /// gRPC, by method path.
    Grpc,
    /// HTTP, by route.
    Http,
}

impl Door {
    fn prefix(self) -> &'static str {
        match self {
            Door::Grpc => "iocdb_grpc",
            Door::Http => "iocdb_http",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Door::Grpc => "method",
            Door::Http => "route",
        }
    }
}

/// One method's or route's requests.
#[derive(Debug, Default)]
struct Requests {
    by_code: BTreeMap<String, u64>,
    latency: Latency,
}

/// The server's request figures, shared by both front doors.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(Door, String), Requests>>,
    /// Write requests by namespace and outcome (every front door that writes).
    writes: Mutex<BTreeMap<(String, &'static str), u64>>,
}

/// Most namespaces write requests are counted under by name (beyond: `other`), so that a
/// client inventing namespaces cannot grow the scrape without bound.
const MAX_WRITE_NAMESPACES: usize = 1000;

impl Metrics {
    /// Records one request to `path` (a method or route the server serves, else `other`)
    /// that ended with `code` after `elapsed`.
    pub fn observe(&self, door: Door, path: &str, code: &str, elapsed: Duration) {
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let r = requests.entry((door, path.to_owned())).or_default();
        *r.by_code.entry(code.to_owned()).or_default() += 1;
        r.latency.observe(elapsed);
    }

    /// Records one write request to `namespace` and how it ended: `ok` (every sample
    /// stored), `partial` (some rejected), `rejected` (none stored) or `error` (`None`: the
    /// write failed as a whole).
    pub fn write_request(&self, namespace: &str, outcome: Option<&iocdb_engine::WriteOutcome>) {
        let outcome = match outcome {
            None => "error",
            Some(o) if o.rejected.is_empty() => "ok",
            Some(o) if o.accepted > 0 => "partial",
            Some(_) => "rejected",
        };
        let ns = match iocdb_engine::Namespace::new(namespace) {
            Ok(ns) => ns.to_string(),
            Err(_) => "invalid".to_owned(),
        };
        let mut writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        let known =
            writes.len() < MAX_WRITE_NAMESPACES || writes.contains_key(&(ns.clone(), outcome));
        let ns = if known { ns } else { "other".to_owned() };
        *writes.entry((ns, outcome)).or_default() += 1;
    }

    /// Every family, in the Prometheus text format (version 0.0.4).
    pub fn render(&self, stats: &Stats) -> String {
        let mut out = String::new();
        self.render_requests(&mut out);
        render_store(stats, &mut out);
        render_process(&mut out);
        out
    }

    fn render_requests(&self, out: &mut String) {
        let name = "iocdb_write_requests_total";
        let _ = writeln!(
            out,
            "# HELP {name} Write requests (gRPC, remote write, line protocol) by namespace and outcome.\n# TYPE {name} counter"
        );
        for ((ns, outcome), n) in self.writes.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(
                out,
                "{name}{{namespace=\"{}\",outcome=\"{outcome}\"}} {n}",
                escape(ns)
            );
        }
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        for door in [Door::Grpc, Door::Http] {
            let (prefix, label) = (door.prefix(), door.label());
            let _ = writeln!(
                out,
                "# HELP {prefix}_requests_total Requests answered, by {label} and status code.\n\
                 # TYPE {prefix}_requests_total counter"
            );
            for ((_, path), r) in requests.iter().filter(|((d, _), _)| *d == door) {
                for (code, n) in &r.by_code {
                    let _ = writeln!(
                        out,
                        "{prefix}_requests_total{{{label}=\"{}\",code=\"{code}\"}} {n}",
                        escape(path)
                    );
                }
            }
            let _ = writeln!(
                out,
                "# HELP {prefix}_request_duration_seconds Time to answer, by {label}.\n\
                 # TYPE {prefix}_request_duration_seconds histogram"
            );
            for ((_, path), r) in requests.iter().filter(|((d, _), _)| *d == door) {
                let labels = format!("{label}=\"{}\"", escape(path));
                histogram_lines(
                    out,
                    &format!("{prefix}_request_duration_seconds"),
                    &labels,
                    &r.latency.snapshot(),
                );
            }
        }
    }
}

/// A histogram's bucket, sum and count lines (without HELP and TYPE); `labels` is empty or
/// `name="value",…`.
fn histogram_lines(out: &mut String, name: &str, labels: &str, h: &LatencySnapshot) {
    let sep = if labels.is_empty() { "" } else { "," };
    let mut cumulative = 0;
    for (i, n) in h.buckets.iter().enumerate() {
        cumulative += n;
        let le = LATENCY_BUCKETS
            .get(i)
            .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
        );
    }
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(
        out,
        "{name}_sum{braces} {}\n{name}_count{braces} {}",
        h.sum_ns as f64 / 1e9,
        h.count
    );
}

/// A histogram family without labels.
fn histogram(out: &mut String, name: &str, help: &str, h: &LatencySnapshot) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    histogram_lines(out, name, "", h);
}

/// Escapes a label value for the text format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One family without labels.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// One family with one label.
fn by_label<'a>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (key, value) in values {
        let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {value}", escape(key));
    }
}

/// A per-namespace figure as label values.
fn ns(m: &BTreeMap<String, u64>) -> impl Iterator<Item = (&str, u64)> {
    m.iter().map(|(k, v)| (k.as_str(), *v))
}

fn render_store(s: &Stats, out: &mut String) {
    single(
        out,
        "iocdb_series",
        "gauge",
        "Series known, in the head or only in segments.",
        s.series,
    );
    single(
        out,
        "iocdb_head_series",
        "gauge",
        "Series in the head (written since the flush before the last).",
        s.head_series,
    );
    single(
        out,
        "iocdb_series_evicted_total",
        "counter",
        "Series that left the head after writing nothing for a flush interval.",
        s.series_evicted,
    );
    single(
        out,
        "iocdb_series_revived_total",
        "counter",
        "Series that came back into the head, written again after leaving it.",
        s.series_revived,
    );
    by_label(
        out,
        "iocdb_series_by_namespace",
        "gauge",
        "Series known, by namespace.",
        "namespace",
        ns(&s.series_by_namespace),
    );
    single(
        out,
        "iocdb_head_samples",
        "gauge",
        "Samples in the head, not yet flushed.",
        s.head_samples,
    );
    single(
        out,
        "iocdb_head_bytes",
        "gauge",
        "Bytes the head accounts for (series and samples); what the head budget limits.",
        s.head_bytes,
    );
    by_label(
        out,
        "iocdb_head_bytes_by_namespace",
        "gauge",
        "Head bytes by namespace.",
        "namespace",
        ns(&s.head_bytes_by_namespace),
    );
    single(
        out,
        "iocdb_index_label_bytes",
        "gauge",
        "Bytes of the label index (interned label pairs and postings).",
        s.index_label_bytes,
    );
    single(
        out,
        "iocdb_segment_table_bytes",
        "gauge",
        "Memory the open segments hold (series tables, references).",
        s.segment_table_bytes,
    );
    single(
        out,
        "iocdb_segments",
        "gauge",
        "Live segment files.",
        s.segments,
    );
    single(
        out,
        "iocdb_segment_samples",
        "gauge",
        "Samples in segment files.",
        s.segment_samples,
    );
    single(
        out,
        "iocdb_segment_bytes",
        "gauge",
        "Bytes of segment files.",
        s.segment_bytes,
    );
    by_label(
        out,
        "iocdb_disk_bytes_by_namespace",
        "gauge",
        "Bytes on disk by namespace.",
        "namespace",
        ns(&s.disk_bytes_by_namespace),
    );
    single(
        out,
        "iocdb_samples_accepted_total",
        "counter",
        "Samples stored since the server started.",
        s.accepted_samples,
    );
    by_label(
        out,
        "iocdb_samples_accepted_by_namespace_total",
        "counter",
        "Samples stored since the server started, by namespace.",
        "namespace",
        ns(&s.accepted_by_namespace),
    );
    single(
        out,
        "iocdb_flushes_total",
        "counter",
        "Flushes that wrote segments since the server started.",
        s.flushes,
    );
    single(
        out,
        "iocdb_compactions_total",
        "counter",
        "Compactions that wrote segments since the server started.",
        s.compactions,
    );
    histogram(
        out,
        "iocdb_wal_group_commit_duration_seconds",
        "What a group commit's leader took to write (and sync, under fsync always) its batch.",
        &s.wal.group_commits,
    );
    histogram(
        out,
        "iocdb_wal_commit_wait_duration_seconds",
        "What a write waited for its samples to be durable in the WAL.",
        &s.wal.commit_waits,
    );
    by_label(
        out,
        "iocdb_samples_rejected_total",
        "counter",
        "Samples refused since the server started, by reason.",
        "reason",
        s.rejected_samples.iter().map(|(k, v)| (*k, *v)),
    );
    let name = "iocdb_quality_samples_total";
    let _ = writeln!(
        out,
        "# HELP {name} Samples the indicator catalog's data-quality rules rejected or flagged since the store was created.\n# TYPE {name} counter"
    );
    for c in &s.quality {
        let _ = writeln!(
            out,
            "{name}{{namespace=\"{}\",metric=\"{}\",rule=\"{}\",action=\"{}\"}} {}",
            escape(&c.namespace),
            escape(&c.metric),
            c.rule.kind(),
            c.action.name(),
            c.samples
        );
    }
    single(
        out,
        "iocdb_watch_subscribers",
        "gauge",
        "Live subscriptions (Query.Watch, /api/v1/watch) open now.",
        s.watchers,
    );
    single(
        out,
        "iocdb_watch_samples_total",
        "counter",
        "Samples queued for live subscribers since the server started.",
        s.watch_delivered,
    );
    single(
        out,
        "iocdb_watch_gaps_total",
        "counter",
        "Gap notices for subscribers that fell behind since the server started.",
        s.watch_gaps,
    );
    let c = &s.query_cache;
    for (name, kind, help, value) in [
        (
            "iocdb_query_cache_lookups_total",
            "counter",
            "Range queries that looked in the result cache.",
            c.lookups,
        ),
        (
            "iocdb_query_cache_hits_total",
            "counter",
            "Range queries that reused cached steps.",
            c.hits,
        ),
        (
            "iocdb_query_cache_steps_reused_total",
            "counter",
            "Steps answered from the result cache.",
            c.steps_reused,
        ),
        (
            "iocdb_query_cache_steps_computed_total",
            "counter",
            "Steps computed by range queries that could use the cache.",
            c.steps_computed,
        ),
        (
            "iocdb_query_cache_invalidations_total",
            "counter",
            "Lookups where writes or deletions since made cached steps inexact.",
            c.invalidations,
        ),
        (
            "iocdb_query_cache_evictions_total",
            "counter",
            "Entries evicted to keep the cache within its bytes.",
            c.evictions,
        ),
        (
            "iocdb_query_cache_coalesced_total",
            "counter",
            "Range queries that waited for an identical one in flight instead of computing it again.",
            c.coalesced,
        ),
        (
            "iocdb_query_cache_entries",
            "gauge",
            "Entries in the result cache.",
            c.entries,
        ),
        (
            "iocdb_query_cache_bytes",
            "gauge",
            "Bytes the result cache holds (points and labels).",
            c.bytes,
        ),
        (
            "iocdb_query_cache_limit_bytes",
            "gauge",
            "The result cache's bound (query_cache_mb).",
            c.limit_bytes,
        ),
    ] {
        single(out, name, kind, help, value);
    }
    single(
        out,
        "iocdb_quarantined_files",
        "gauge",
        "Damaged files moved aside since the store was opened.",
        s.quarantined.len() as u64,
    );
    single(
        out,
        "iocdb_writes_stopped",
        "gauge",
        "1 while writes are refused after a storage failure.",
        u64::from(s.writes_stopped.is_some()),
    );
    single(
        out,
        "iocdb_write_recoveries_total",
        "counter",
        "Times writing resumed after a storage failure.",
        s.write_recoveries,
    );
    single(
        out,
        "iocdb_damaged_rollup_reads_total",
        "counter",
        "Reads of a damaged rollup block (answered from raw samples instead).",
        s.damaged_rollup_reads,
    );
    single(
        out,
        "iocdb_wal_files_cut_total",
        "counter",
        "WAL files whose end opening cut off (torn or damaged).",
        s.wal_files_cut,
    );
}

fn render_process(out: &mut String) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    single(
        out,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        kib("VmRSS:") * 1024,
    );
    single(
        out,
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        kib("VmSize:") * 1024,
    );
    single(
        out,
        "process_threads",
        "gauge",
        "Threads of the process.",
        status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
    );
}

/// `GET /metrics`.
pub async fn handler(State(state): State<AppState>) -> Response {
    let engine: Arc<Engine> = state.engine.clone();
    let metrics = state.metrics.clone();
    // `stats` walks the series: off the async workers.
    let body = tokio::task::spawn_blocking(move || metrics.render(&engine.stats()))
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// HTTP middleware: records each request by its route (the `/ns/{namespace}` prefix
/// folded away) and status code.
pub async fn record_http(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("other", |m| m.as_str())
        .trim_start_matches("/ns/{namespace}")
        .to_owned();
    let start = Instant::now();
    let response = next.run(request).await;
    state.metrics.observe(
        Door::Http,
        &route,
        response.status().as_str(),
        start.elapsed(),
    );
    response
}

/// The gRPC layer: records each call by method and `grpc-status` (a unary call's error
/// comes back in the response headers; without one the call succeeded, code 0).
#[derive(Debug, Clone)]
pub struct Layer(pub Arc<Metrics>);

impl<S> tower::Layer<S> for Layer {
    type Service = Service<S>;

    fn layer(&self, inner: S) -> Service<S> {
        Service {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// See [`Layer`].
#[derive(Debug, Clone)]
pub struct Service<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, RB> tower::Service<http::Request<B>> for Service<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let method = if crate::auth::need_of(crate::auth::GRPC, path).is_some() {
            path.to_owned()
        } else {
            "other".to_owned()
        };
        let metrics = self.metrics.clone();
        let start = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("0")
                .to_owned();
            metrics.observe(Door::Grpc, &method, &code, start.elapsed());
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_end_at_the_count() {
        let m = Metrics::default();
        m.observe(
            Door::Http,
            "/api/v1/query",
            "200",
            Duration::from_micros(300),
        );
        m.observe(
            Door::Http,
            "/api/v1/query",
            "200",
            Duration::from_millis(30),
        );
        m.observe(Door::Http, "/api/v1/query", "400", Duration::from_secs(60));
        let text = m.render(&Stats::default());
        assert!(text.contains(
            "iocdb_http_request_duration_seconds_bucket{route=\"/api/v1/query\",le=\"0.0005\"} 1"
        ));
        assert!(text.contains(
            "iocdb_http_request_duration_seconds_bucket{route=\"/api/v1/query\",le=\"0.05\"} 2"
        ));
        assert!(text.contains(
            "iocdb_http_request_duration_seconds_bucket{route=\"/api/v1/query\",le=\"+Inf\"} 3"
        ));
        assert!(
            text.contains("iocdb_http_request_duration_seconds_count{route=\"/api/v1/query\"} 3")
        );
        assert!(text.contains("iocdb_http_requests_total{route=\"/api/v1/query\",code=\"400\"} 1"));
    }
}
