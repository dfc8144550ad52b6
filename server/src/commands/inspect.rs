//! `iocdb inspect`: what is inside a stopped server's data directory or a running server
//! (`Admin.Inspect`) — segments, series per metric, bytes per sample per namespace, label
//! cardinality, WAL, head and pending deletions — as text or JSON.

use iocdb_engine::{Engine, Inspection, Options, SegmentInfo};
use iocdb_proto::v1;

use crate::cli::VerifyArgs;

/// Labels listed by cardinality.
const TOP_LABELS: usize = 10;

/// Looks inside — the running server at `--addr`, or the stopped one's directory — and
/// prints it.
pub fn run(args: &VerifyArgs) -> anyhow::Result<()> {
    let dir = &args.data_dir;
    let (i, place) = match &args.addr {
        Some(addr) => (ask(addr)?, addr.clone()),
        None => {
            let engine = Engine::open(dir, Options::default()).map_err(|e| {
                anyhow::anyhow!(
                    "cannot open {} (is the server stopped?): {e}",
                    dir.display()
                )
            })?;
            let i = engine.inspect();
            engine.close()?;
            (i, dir.display().to_string())
        }
    };
    if args.json {
        let segments: Vec<serde_json::Value> = i
            .segments
            .iter()
            .map(|s| {
                serde_json::json!({"name": s.name, "seq": s.seq, "min_t": s.min_t, "max_t": s.max_t,
                    "series": s.series, "samples": s.samples, "bytes": s.bytes,
                    "rollup_bytes": s.rollup_bytes})
            })
            .collect();
        let metrics: Vec<serde_json::Value> = i
            .series_by_metric
            .iter()
            .map(|((ns, m), n)| serde_json::json!({"namespace": ns, "metric": m, "series": n}))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "segments": segments,
                "series_by_metric": metrics,
                "bytes_per_sample_by_namespace": i.bytes_per_sample_by_namespace,
                "label_cardinality": i.label_cardinality,
                "wal_files": i.wal_files,
                "wal_bytes": i.wal_bytes,
                "head_samples": i.head_samples,
                "head_bytes": i.head_bytes,
                "tombstones": i.tombstones,
            })
        );
        return Ok(());
    }
    let bytes: u64 = i.segments.iter().map(|s| s.bytes).sum();
    let samples: u64 = i.segments.iter().map(|s| s.samples).sum();
    let rollup_bytes: u64 = i.segments.iter().map(|s| s.rollup_bytes).sum();
    println!(
        "{place}: {} segments, {samples} samples, {bytes} bytes ({rollup_bytes} of them rollups); head {} samples ({} bytes); WAL {} files ({} bytes); {} deletions not yet compacted",
        i.segments.len(),
        i.head_samples,
        i.head_bytes,
        i.wal_files,
        i.wal_bytes,
        i.tombstones
    );
    println!("\nsegment | from (ms) | to (ms) | series | samples | bytes | rollup bytes");
    for s in &i.segments {
        println!(
            "{} | {} | {} | {} | {} | {} | {}",
            s.name, s.min_t, s.max_t, s.series, s.samples, s.bytes, s.rollup_bytes
        );
    }
    println!("\nnamespace | bytes/sample");
    for (ns, b) in &i.bytes_per_sample_by_namespace {
        println!("{ns} | {b:.3}");
    }
    println!("\nnamespace | metric | series");
    for ((ns, m), n) in &i.series_by_metric {
        println!("{ns} | {m} | {n}");
    }
    println!("\nlabel | distinct values (the {TOP_LABELS} highest)");
    for (name, n) in i.label_cardinality.iter().take(TOP_LABELS) {
        println!("{name} | {n}");
    }
    Ok(())
}

/// `Admin.Inspect` of the server at `addr`, as the engine's report.
fn ask(addr: &str) -> anyhow::Result<Inspection> {
    let r = super::client::block_on_admin(addr, |mut admin| async move {
        Ok(admin.inspect(v1::InspectRequest {}).await?.into_inner())
    })?;
    Ok(Inspection {
        segments: r
            .segments
            .into_iter()
            .map(|s| SegmentInfo {
                name: s.name,
                seq: s.seq,
                min_t: s.min_t_ms,
                max_t: s.max_t_ms,
                series: s.series,
                samples: s.samples,
                bytes: s.bytes,
                rollup_bytes: s.rollup_bytes,
            })
            .collect(),
        series_by_metric: r
            .series_by_metric
            .into_iter()
            .map(|m| ((m.namespace, m.metric), m.series))
            .collect(),
        bytes_per_sample_by_namespace: r.bytes_per_sample_by_namespace.into_iter().collect(),
        label_cardinality: r
            .label_cardinality
            .into_iter()
            .map(|l| (l.name, l.values))
            .collect(),
        wal_files: r.wal_files,
        wal_bytes: r.wal_bytes,
        head_samples: r.head_samples,
        head_bytes: r.head_bytes,
        tombstones: r.tombstones,
    })
}
