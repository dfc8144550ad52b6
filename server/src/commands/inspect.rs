//! `iocdb inspect`: what is inside a stopped server's data directory — segments, series per
//! metric, bytes per sample per namespace, label cardinality, WAL and head — as text or JSON.

use iocdb_engine::{Engine, Options};

use crate::cli::VerifyArgs;

/// Labels listed by cardinality.
const TOP_LABELS: usize = 10;

/// Opens the store (the server must be stopped), looks inside and prints it.
pub fn run(args: &VerifyArgs) -> anyhow::Result<()> {
    let dir = &args.data_dir;
    let engine = Engine::open(dir, Options::default()).map_err(|e| {
        anyhow::anyhow!(
            "cannot open {} (is the server stopped?): {e}",
            dir.display()
        )
    })?;
    let i = engine.inspect();
    engine.close()?;
    if args.json {
        let segments: Vec<serde_json::Value> = i
            .segments
            .iter()
            .map(|s| {
                serde_json::json!({"name": s.name, "seq": s.seq, "min_t": s.min_t, "max_t": s.max_t,
                    "series": s.series, "samples": s.samples, "bytes": s.bytes})
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
            })
        );
        return Ok(());
    }
    let bytes: u64 = i.segments.iter().map(|s| s.bytes).sum();
    let samples: u64 = i.segments.iter().map(|s| s.samples).sum();
    println!(
        "{}: {} segments, {samples} samples, {bytes} bytes; head {} samples ({} bytes); WAL {} files ({} bytes)",
        dir.display(),
        i.segments.len(),
        i.head_samples,
        i.head_bytes,
        i.wal_files,
        i.wal_bytes
    );
    println!("\nsegment | from (ms) | to (ms) | series | samples | bytes");
    for s in &i.segments {
        println!(
            "{} | {} | {} | {} | {} | {}",
            s.name, s.min_t, s.max_t, s.series, s.samples, s.bytes
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
