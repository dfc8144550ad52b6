//! `iocdb catalog` (list, or load a catalog file into a running server), `iocdb quality`
//! (what the data-quality rules rejected and flagged) and `iocdb completeness` (expected
//! against received, gaps, silent sources, arrival delays): the operator's view of
//! "correct, complete, clean and live".

use iocdb_proto::v1::{self, admin_client::AdminClient};
use serde_json::json;

use super::client::{connect, labels_json, labels_text, matchers, parse_time_ms};
use crate::catalog::CatalogFile;
use crate::cli::{CatalogArgs, CompletenessArgs, QualityArgs};

/// `iocdb catalog`.
pub async fn catalog(a: &CatalogArgs) -> anyhow::Result<()> {
    let mut client = AdminClient::new(connect(&a.client).await?);
    if let Some(path) = &a.load {
        let file = CatalogFile::load(path)?;
        if !file.policies.is_empty() {
            eprintln!(
                "note: namespace policies ([namespaces.*]) take effect only from the server's own catalog file (--catalog); they were not sent"
            );
        }
        for (ns, entry) in file.indicators {
            let metric = entry.metric.clone();
            client
                .set_metadata(crate::convert::catalog_entry_out(&ns, entry))
                .await
                .map_err(|s| anyhow::anyhow!("indicator {metric:?} of {ns:?}: {}", s.message()))?;
        }
        println!("catalog {} loaded", path.display());
        return Ok(());
    }
    let r = client
        .get_metadata(v1::GetMetadataRequest {
            namespace: a.namespace.clone(),
        })
        .await?
        .into_inner();
    if a.json {
        let out: Vec<_> = r.metrics.iter().map(entry_json).collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("metric\tkind\tunit\tdepartment\tinterval\trules\tpolicy\tdescription");
    for m in &r.metrics {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            m.metric,
            m.kind,
            m.unit,
            m.department,
            m.expected_interval_ms
                .map_or_else(|| "-".into(), |i| format!("{}s", i / 1000)),
            rules_text(m),
            if m.quality_policy.is_empty() {
                "(namespace)"
            } else {
                &m.quality_policy
            },
            m.description
        );
    }
    Ok(())
}

fn entry_json(m: &v1::MetricMetadata) -> serde_json::Value {
    json!({
        "namespace": m.namespace, "metric": m.metric, "unit": m.unit,
        "description": m.description, "kind": m.kind, "department": m.department,
        "contact": m.contact, "expected_interval_ms": m.expected_interval_ms,
        "valid_min": m.valid_min, "valid_max": m.valid_max,
        "required_labels": m.required_labels, "revision_window_ms": m.revision_window_ms,
        "max_change_factor": m.max_change_factor, "quality_policy": m.quality_policy,
    })
}

fn rules_text(m: &v1::MetricMetadata) -> String {
    let mut rules = Vec::new();
    if m.valid_min.is_some() || m.valid_max.is_some() {
        let bound = |b: Option<f64>, open: &str| b.map_or(open.to_owned(), |b| b.to_string());
        rules.push(format!(
            "range [{}, {}]",
            bound(m.valid_min, "-inf"),
            bound(m.valid_max, "+inf")
        ));
    }
    if !m.required_labels.is_empty() {
        rules.push(format!("requires {}", m.required_labels.join(",")));
    }
    match m.revision_window_ms {
        Some(0) => rules.push("no revisions".into()),
        Some(w) => rules.push(format!("revisions within {}s", w / 1000)),
        None => {}
    }
    if let Some(f) = m.max_change_factor {
        rules.push(format!("change ≤ ×{f}"));
    }
    if rules.is_empty() {
        "-".into()
    } else {
        rules.join("; ")
    }
}

/// `iocdb quality`.
pub async fn quality(a: &QualityArgs) -> anyhow::Result<()> {
    let since_ms = a
        .since
        .as_deref()
        .map(|s| parse_time_ms(s, crate::service::now_ms()))
        .transpose()?;
    let r = AdminClient::new(connect(&a.client).await?)
        .quality(v1::QualityRequest {
            namespace: a.namespace.clone(),
            metric: a.metric.clone().unwrap_or_default(),
            since_ms,
            limit: a.limit,
        })
        .await?
        .into_inner();
    if a.json {
        let counts: Vec<_> = r
            .counts
            .iter()
            .map(|c| json!({"metric": c.metric, "department": c.department, "rule": c.rule, "action": c.action, "samples": c.samples}))
            .collect();
        let events: Vec<_> = r
            .events
            .iter()
            .map(|e| json!({"arrival_ms": e.arrival_ms, "metric": e.metric, "series": e.series, "rule": e.rule, "action": e.action, "samples": e.samples, "timestamp_ms": e.timestamp_ms, "value": e.value, "detail": e.detail}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"counts": counts, "events": events}))?
        );
        return Ok(());
    }
    println!("samples\taction\trule\tmetric\tdepartment");
    for c in &r.counts {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            c.samples, c.action, c.rule, c.metric, c.department
        );
    }
    if !r.events.is_empty() {
        println!("\narrived (ms)\taction\trule\tseries\tsample (t, value)\tdetail");
    }
    for e in &r.events {
        println!(
            "{}\t{}\t{}\t{}\t({}, {})\t{}",
            e.arrival_ms, e.action, e.rule, e.series, e.timestamp_ms, e.value, e.detail
        );
    }
    Ok(())
}

/// `iocdb completeness`.
pub async fn completeness(a: &CompletenessArgs) -> anyhow::Result<()> {
    let now = crate::service::now_ms();
    let sel = &a.selection;
    let r = iocdb_proto::v1::query_client::QueryClient::new(connect(&sel.client).await?)
        .completeness(v1::CompletenessRequest {
            namespace: sel.namespace.clone(),
            matchers: matchers(sel)?,
            start_ms: parse_time_ms(&a.start, now)?,
            end_ms: parse_time_ms(&a.end, now)?,
            by: a.by.clone(),
            silent_factor: a.silent_factor,
        })
        .await?
        .into_inner();
    if sel.json {
        let groups: Vec<_> = r.groups.iter().map(|g| json!({"metric": g.metric, "department": g.department, "labels": labels_json(&g.labels), "series": g.series, "expected": g.expected, "received": g.received, "ratio": g.ratio, "gaps": g.gaps})).collect();
        let gaps: Vec<_> = r.gaps.iter().map(|g| json!({"labels": labels_json(&g.labels), "start_ms": g.start_ms, "end_ms": g.end_ms, "missing": g.missing, "open": g.open, "interval_ms": g.interval_ms})).collect();
        let silent: Vec<_> = r.silent.iter().map(|s| json!({"labels": labels_json(&s.labels), "last_timestamp_ms": s.last_timestamp_ms, "silent_ms": s.silent_ms, "expected_interval_ms": s.expected_interval_ms})).collect();
        let delays: Vec<_> = r.delays.iter().map(|d| json!({"metric": d.metric, "samples": d.samples, "p50_ms": d.p50_ms, "p99_ms": d.p99_ms, "max_ms": d.max_ms})).collect();
        let by_metric: std::collections::BTreeMap<_, _> = r.silent_by_metric.iter().collect();
        let out = json!({"groups": groups, "gaps": gaps, "silent": silent, "silent_by_metric": by_metric, "delays": delays, "unjudged_series": r.unjudged_series});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("ratio\treceived/expected\tgaps\tseries\tmetric\tlabels\tdepartment");
    for g in &r.groups {
        println!(
            "{:.3}\t{}/{}\t{}\t{}\t{}\t{}\t{}",
            g.ratio,
            g.received,
            g.expected,
            g.gaps,
            g.series,
            g.metric,
            labels_text(&g.labels),
            g.department
        );
    }
    if !r.gaps.is_empty() {
        println!("\ngap start (ms)\tend (ms)\tmissing\tseries");
    }
    for g in &r.gaps {
        println!(
            "{}\t{}{}\t{}\t{}",
            g.start_ms,
            g.end_ms,
            if g.open { " (open)" } else { "" },
            g.missing,
            labels_text(&g.labels)
        );
    }
    let silent_total: u64 = r.silent_by_metric.values().sum();
    if !r.silent.is_empty() {
        let listed = r.silent.len();
        let more = silent_total.saturating_sub(listed as u64);
        let more = if more > 0 {
            format!(" (the first {listed} of {silent_total} by labels)")
        } else {
            String::new()
        };
        println!("\nsilent since (ms)\tfor (s)\tseries{more}");
    }
    for s in &r.silent {
        println!(
            "{}\t{}\t{}",
            s.last_timestamp_ms
                .map_or_else(|| "-".to_owned(), |t| t.to_string()),
            s.silent_ms / 1000,
            labels_text(&s.labels)
        );
    }
    if !r.delays.is_empty() {
        println!("\narrival delay\tp50 (s)\tp99 (s)\tmax (s)\tsamples");
    }
    for d in &r.delays {
        println!(
            "{}\t{:.1}\t{:.1}\t{:.1}\t{}",
            d.metric,
            d.p50_ms as f64 / 1000.0,
            d.p99_ms as f64 / 1000.0,
            d.max_ms as f64 / 1000.0,
            d.samples
        );
    }
    Ok(())
}
