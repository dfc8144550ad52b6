//! Latency of the dashboard queries of WORKLOAD.md, with 1 and 8 concurrent clients.
//! Usage: `query_report SCALE DAYS [REPEATS [compact|cold]]`; prints Markdown. With
//! `compact`, the store is then compacted (timed) and the queries are run again; with `cold`,
//! every series is then sent out of the head (two flushes with nothing written between:
//! their labels and postings are then read from the segments' label indexes) and the
//! queries are run again.

use std::time::{Duration, Instant};

use iocdb_benches::dashboard;
use iocdb_benches::{report, workload};
use iocdb_engine::{Engine, FsyncPolicy, Options};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let scale: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1.0);
    let days: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let repeats: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let keep = std::env::var("IOCDB_QUERY_REPORT_DIR").ok();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = keep.map_or_else(|| tmp.path().to_path_buf(), std::path::PathBuf::from);
    let end = report::day_start() + 86_400_000;
    let start = end - days * 86_400_000;
    let opts = Options {
        fsync: FsyncPolicy::Interval(Duration::from_millis(200)),
        // Compaction's own speed, not its budget (nothing else runs meanwhile).
        compaction_samples_per_sec: 0,
        ..Options::default()
    };
    let engine = Engine::open(&dir, opts).expect("open");
    let t0 = Instant::now();
    let specs = workload::series(scale);
    let written = dashboard::load(&engine, &specs, start, end);
    let stats = engine.stats();
    eprintln!(
        "loaded {written} samples of {} series in {:.1} s",
        specs.len(),
        t0.elapsed().as_secs_f64()
    );
    println!(
        "Store: ×{scale} over {days} d: {written} samples, {} series, {} segments, {:.3} bytes/sample on disk.\n",
        stats.series,
        stats.segments,
        stats.segment_bytes as f64 / stats.segment_samples.max(1) as f64
    );
    run_queries(&engine, end, repeats);
    let then = args.next();
    if then.as_deref() == Some("cold") {
        engine.flush().expect("flush");
        engine.flush().expect("flush");
        let stats = engine.stats();
        println!(
            "\nEvery series out of the head: {} of {} in it.\n",
            stats.head_series, stats.series
        );
        run_queries(&engine, end, repeats);
    }
    if then.as_deref() == Some("compact") {
        let t = Instant::now();
        let r = engine.compact().expect("compact");
        let took = t.elapsed().as_secs_f64();
        let after = engine.stats();
        println!(
            "\nCompacted in {took:.1} s (one thread): {} windows, {} segments ({} bytes) into {} ({} bytes), {} samples, {:.2} M samples/s; {:.3} bytes/sample on disk after.\n",
            r.windows,
            r.segments_in,
            r.bytes_in,
            r.segments_out,
            r.bytes_out,
            r.samples,
            r.samples as f64 / took / 1e6,
            after.segment_bytes as f64 / after.segment_samples.max(1) as f64
        );
        run_queries(&engine, end, repeats);
    }
}

fn run_queries(engine: &Engine, end: i64, repeats: usize) {
    dashboard::print_latency(engine, end, repeats, &|_| true);
}
