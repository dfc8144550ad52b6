//! The completeness report as ordinary series, so that any dashboard can chart "complete"
//! and "live" with the PromQL it already speaks: every `completeness_export_interval` the
//! server computes each namespace's report over the last `completeness_export_window` and
//! writes into namespace `completeness_export_namespace` (default `iocdb`), per namespace,
//! metric and department:
//!
//! - `iocdb_completeness_ratio` — received over expected samples
//! - `iocdb_samples_expected`, `iocdb_samples_received`, `iocdb_gaps`
//! - `iocdb_silent_series` — series silent now for more than three intervals
//! - `iocdb_arrival_delay_p50_seconds`, `iocdb_arrival_delay_p99_seconds`

use std::sync::Arc;
use std::time::Duration;

use iocdb_engine::{CompletenessQuery, CompletenessReport, Engine, Label, Sample, SeriesWrite};
use tokio::sync::watch;

/// Where and how often the report is exported.
#[derive(Debug, Clone)]
pub struct Export {
    /// Between two exports.
    pub every: Duration,
    /// The window each report covers, ending at the export.
    pub window: Duration,
    /// The namespace the series are written into (its own report is not exported).
    pub namespace: String,
}

/// Exports until `stop` turns true.
pub async fn export_periodically(
    engine: Arc<Engine>,
    export: Export,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(export.every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let (engine, export) = (engine.clone(), export.clone());
        match tokio::task::spawn_blocking(move || {
            export_once(&engine, &export, crate::service::now_ms())
        })
        .await
        {
            Ok(Ok(series)) => tracing::debug!(series, "completeness exported"),
            Ok(Err(e)) => tracing::warn!(error = %e, "completeness not exported this time"),
            Err(e) => tracing::error!(error = %e, "completeness export panicked"),
        }
    }
}

/// Computes and writes one export at `now`; returns the series written.
pub fn export_once(engine: &Engine, export: &Export, now: i64) -> iocdb_engine::Result<usize> {
    let namespaces: Vec<String> = engine
        .namespaces()
        .into_iter()
        .map(|(ns, _)| ns)
        .filter(|ns| *ns != export.namespace)
        .collect();
    let q = CompletenessQuery {
        start: now - export.window.as_millis() as i64,
        end: now + 1,
        ..Default::default()
    };
    let mut series = Vec::new();
    for ns in namespaces {
        let report = engine.completeness(&ns, &q, now, 3.0)?;
        series.extend(report_series(&ns, &report, now));
    }
    let n = series.len();
    if n > 0 {
        let outcome = engine.write(iocdb_engine::WriteRequest {
            namespace: export.namespace.clone(),
            series,
        })?;
        if let Some(r) = outcome.rejected.first() {
            tracing::warn!(reason = %r.reason, "a completeness series was refused");
        }
    }
    Ok(n)
}

/// The series of one namespace's report.
fn report_series(ns: &str, r: &CompletenessReport, now: i64) -> Vec<SeriesWrite> {
    let series = |name: &str, metric: &str, department: Option<&str>, v: f64| {
        let mut labels = vec![
            Label::new("__name__", name),
            Label::new("namespace", ns),
            Label::new("metric", metric),
        ];
        if let Some(d) = department.filter(|d| !d.is_empty()) {
            labels.push(Label::new("department", d));
        }
        SeriesWrite {
            labels,
            samples: vec![Sample::new(now, v)],
        }
    };
    let mut out = Vec::new();
    for g in &r.figures.groups {
        let d = Some(g.department.as_str());
        out.push(series("iocdb_completeness_ratio", &g.metric, d, g.ratio()));
        out.push(series(
            "iocdb_samples_expected",
            &g.metric,
            d,
            g.expected as f64,
        ));
        out.push(series(
            "iocdb_samples_received",
            &g.metric,
            d,
            g.received as f64,
        ));
        out.push(series("iocdb_gaps", &g.metric, d, g.gaps as f64));
        let silent = r.silent_by_metric.get(&g.metric).copied().unwrap_or(0);
        out.push(series("iocdb_silent_series", &g.metric, d, silent as f64));
    }
    for delay in &r.delays {
        let s = |ms: i64| ms as f64 / 1000.0;
        out.push(series(
            "iocdb_arrival_delay_p50_seconds",
            &delay.metric,
            None,
            s(delay.p50_ms),
        ));
        out.push(series(
            "iocdb_arrival_delay_p99_seconds",
            &delay.metric,
            None,
            s(delay.p99_ms),
        ));
    }
    out
}
