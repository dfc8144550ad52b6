//! Completeness-report latency: `completeness_latency SCALE DAYS REPEATS` backfills DAYS of
//! the province (flushing and compacting day windows as the server would), declares each
//! indicator's interval in the catalog, then times the report of each namespace over the
//! whole window (the gaps, the silent sources and the delays), REPEATS times, and prints the
//! median per namespace and for all namespaces one after another.
#![allow(clippy::indexing_slicing)]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use iocdb_benches::{dashboard, workload};
use iocdb_engine::{CompletenessQuery, Engine, FsyncPolicy, MetricMetadata, Options};

fn main() {
    let mut args = std::env::args().skip(1);
    let scale: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0.1);
    let days: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let repeats: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir().expect("dir");
    let day = 86_400_000;
    let end = workload::drive::day_start() + day;
    let start = end - days * day;
    let opts = Options {
        fsync: FsyncPolicy::Interval(Duration::from_millis(200)),
        compaction_samples_per_sec: 0,
        ..Options::default()
    };
    let engine = Engine::open(dir.path(), opts).expect("open");
    let specs = workload::series(scale);
    let t = Instant::now();
    let mut written = 0;
    let mut from = start;
    while from < end {
        let to = (from + 10 * day).min(end);
        written += dashboard::load(&engine, &specs, from, to);
        engine.compact_before(to).expect("compact");
        from = to;
    }
    engine.compact().expect("compact");
    eprintln!(
        "loaded {written} samples in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    let mut namespaces: Vec<&str> = Vec::new();
    for fam in workload::families() {
        let entry = MetricMetadata {
            metric: fam.metric.into(),
            expected_interval_ms: Some(fam.interval_ms),
            department: fam.namespace.into(),
            ..Default::default()
        };
        engine.set_metadata(fam.namespace, entry).expect("declare");
        if !namespaces.contains(&fam.namespace) {
            namespaces.push(fam.namespace);
        }
    }
    let q = CompletenessQuery {
        start,
        end,
        ..Default::default()
    };
    let mut totals = Vec::new();
    let mut per_ns: Vec<Vec<f64>> = vec![Vec::new(); namespaces.len()];
    let mut summary = String::new();
    for r in 0..repeats {
        let all = Instant::now();
        for (i, ns) in namespaces.iter().enumerate() {
            let t = Instant::now();
            let report = engine.completeness(ns, &q, end, 3.0).expect("report");
            per_ns[i].push(t.elapsed().as_secs_f64() * 1000.0);
            if r == 0 {
                let (expected, received): (u64, u64) = report
                    .figures
                    .groups
                    .iter()
                    .fold((0, 0), |(e, x), g| (e + g.expected, x + g.received));
                summary.push_str(&format!(
                    "{ns}: {received}/{expected} samples, {} gaps listed, {} silent\n",
                    report.figures.gaps.len(),
                    report.silent.len()
                ));
            }
        }
        totals.push(all.elapsed().as_secs_f64() * 1000.0);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    print!("{summary}");
    println!(
        "scale {scale}, {days} days, {written} samples; report over the whole window, median of {repeats}:"
    );
    for (ns, v) in namespaces.iter().zip(per_ns.iter_mut()) {
        println!("  {ns}: {:.0} ms", median(v));
    }
    println!("  all namespaces: {:.0} ms", median(&mut totals));
}
