//! A simulated year: `year_report SCALE DAYS REPEATS [WINDOW_DAYS]` backfills DAYS of the
//! province month by month, flushing and compacting the finished windows after each month as
//! the server's background compaction would, then reports the files on disk, bytes per
//! sample, the compaction time, and the latency of the 30-day and 365-day dashboard queries.
//! WINDOW_DAYS sets the compaction window (default 1: a segment per day, merged again into
//! 8- and 32-day segments once those windows are over, the engine's defaults, unless
//! `IOCDB_YEAR_REPORT_DAYS_ONLY` is set; another value: that window alone). With RETENTION_DAYS
//! the store is then reopened with that retention and compacted: the disk it reclaims and
//! how long that takes. Then the long-range panels that rollup tiers answer, each run with
//! the tiers and without (alternated, the result cache off), checking the answers agree
//! bit for bit. Prints Markdown. `IOCDB_YEAR_REPORT_DIR` keeps the store; with
//! `IOCDB_YEAR_REPORT_REUSE` set, a kept store is only asked the panels again
//! (`IOCDB_YEAR_REPORT_PANELS=8,10`: only those; `IOCDB_YEAR_REPORT_TIERED_ONLY`: only with
//! the tiers, for a profile of them alone; `IOCDB_YEAR_REPORT_MAX_SAMPLES=N`: a query may
//! read N samples, so that the raw runs of the largest panels are not refused;
//! `IOCDB_YEAR_REPORT_LIVE_MINUTES=M`: M minutes more written into the head first, as a
//! live server holds what came since its last flush).

#![allow(clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use iocdb_benches::{dashboard, report, workload};
use iocdb_engine::{Engine, FsyncPolicy, Options};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let scale: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0.1);
    let days: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(365);
    let repeats: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let window_days: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let retention_days: Option<u64> = args.next().and_then(|a| a.parse().ok());
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = std::env::var("IOCDB_YEAR_REPORT_DIR")
        .map_or_else(|_| tmp.path().to_path_buf(), std::path::PathBuf::from);
    let day = 86_400_000;
    let end = report::day_start() + day;
    let start = end - days * day;
    let opts = Options {
        fsync: FsyncPolicy::Interval(Duration::from_millis(200)),
        compaction_window_ms: window_days * day,
        compaction_aged_windows_ms: if window_days == 1
            && std::env::var_os("IOCDB_YEAR_REPORT_DAYS_ONLY").is_none()
        {
            Options::default().compaction_aged_windows_ms
        } else {
            Vec::new()
        },
        compaction_samples_per_sec: 0,
        query_cache_bytes: 0,
        query_limits: iocdb_engine::QueryLimits {
            max_samples: std::env::var("IOCDB_YEAR_REPORT_MAX_SAMPLES")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(Options::default().query_limits.max_samples),
            ..Options::default().query_limits
        },
        ..Options::default()
    };
    let engine = Engine::open(&dir, opts.clone()).expect("open");
    // A store kept by an earlier run (IOCDB_YEAR_REPORT_DIR) is only asked again.
    if std::env::var_os("IOCDB_YEAR_REPORT_REUSE").is_some() {
        // IOCDB_YEAR_REPORT_LIVE_MINUTES=M: the M minutes after the store's end written
        // into the head first, as a live server holds what came since its last flush, and
        // the panels asked up to the next whole hour (the store then changes when the
        // engine closes and flushes them: ask a copy).
        let live: i64 = std::env::var("IOCDB_YEAR_REPORT_LIVE_MINUTES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let mut end = end;
        if live > 0 {
            let specs = workload::series(scale);
            let mut written = 0;
            for r in workload::backfill(&specs, end, end + live * 60_000, 100_000) {
                written += engine.write(r).expect("write").accepted;
            }
            eprintln!("{written} samples of {live} minutes written into the head");
            end += (live * 60_000 + 3_599_999) / 3_600_000 * 3_600_000;
        }
        rollup_panels(&engine, &opts.rollup_tiers_ms, end, repeats);
        return;
    }
    let specs = workload::series(scale);
    let (mut written, mut loading, mut compacting) = (0u64, 0.0, 0.0);
    let mut merged = 0u64;
    let mut from = start;
    while from < end {
        let to = (from + 30 * day).min(end);
        let t = Instant::now();
        written += dashboard::load(&engine, &specs, from, to);
        loading += t.elapsed().as_secs_f64();
        let t = Instant::now();
        merged += engine.compact_before(to).expect("compact").samples;
        compacting += t.elapsed().as_secs_f64();
        eprintln!(
            "{} of {days} days: {written} samples, {} segments",
            (to - start) / day,
            engine.stats().segments
        );
        from = to;
    }
    // (No `compact()` of everything: the store is left as the background compaction leaves
    // it, windows not over still in smaller segments.)
    let stats = engine.stats();
    let files = std::fs::read_dir(dir.join("segments"))
        .map(|d| d.count())
        .unwrap_or(0);
    println!(
        "Simulated {days} days at ×{scale}, compaction windows {:?} d: {written} samples of {} series loaded in {loading:.0} s; compaction {compacting:.1} s for {merged} merged samples ({:.1} M/s, one thread); {files} segment files, {} bytes, {:.3} bytes/sample on disk.\n",
        std::iter::once(&opts.compaction_window_ms)
            .chain(&opts.compaction_aged_windows_ms)
            .map(|w| w / day)
            .collect::<Vec<_>>(),
        stats.series,
        merged as f64 / compacting.max(1e-9) / 1e6,
        stats.segment_bytes,
        stats.segment_bytes as f64 / stats.segment_samples.max(1) as f64
    );
    dashboard::print_latency(&engine, end, repeats, &|name| {
        name.starts_with('4') || name.starts_with('6') || name.starts_with('8')
    });
    rollup_panels(&engine, &opts.rollup_tiers_ms, end, repeats);
    let Some(keep) = retention_days else {
        return;
    };
    engine.close().expect("close");
    drop(engine);
    let engine = Engine::open(
        &dir,
        Options {
            retention: Some(Duration::from_secs(keep * 86_400)),
            ..opts
        },
    )
    .expect("reopen");
    let before = engine.stats().segment_bytes;
    let t = Instant::now();
    let r = engine.compact().expect("compact");
    let took = t.elapsed().as_secs_f64();
    let after = engine.stats().segment_bytes;
    println!(
        "\nRetention {keep} d on the same store, applied by one compaction in {took:.2} s: {} segments dropped whole ({} bytes), {} windows rewritten; segment bytes {before} → {after} ({:.1} % reclaimed).",
        r.expired,
        r.bytes_expired,
        r.windows,
        100.0 * before.saturating_sub(after) as f64 / before.max(1) as f64
    );
}

/// The long-range panels, with the rollup tiers and without, alternated; p50 / p99 of
/// `repeats` runs each, what each read, and whether the answers agree bit for bit.
fn rollup_panels(engine: &Engine, tiers: &[i64], end: i64, repeats: usize) {
    use iocdb_engine::{PromqlQuery, QueryValue};
    let (hour, day) = (3_600_000, 86_400_000);
    let panels = [
        (
            "4 rate by agency, 7 d at 1 h",
            "procedures",
            "sum by (agency) (rate(dossiers_resolved_total[1h]))",
            7 * day,
            hour,
        ),
        (
            "6 p95 across hospitals, 30 d at 1 h",
            "health",
            "quantile(0.95, hospital_patients_waiting)",
            30 * day,
            hour,
        ),
        (
            "9 busiest camera hour, 30 d at 1 h",
            "security",
            "max(max_over_time(camera_people_count[1h]))",
            30 * day,
            hour,
        ),
        (
            "8 p95 across hospitals, 365 d at 1 d",
            "health",
            "quantile(0.95, hospital_patients_waiting)",
            365 * day,
            day,
        ),
        (
            "10 daily peak of guests by commune, 365 d at 1 d",
            "lodging",
            "sum by (commune) (max_over_time(lodging_guests[1d]))",
            365 * day,
            day,
        ),
        (
            "11 dossiers resolved per day, 365 d at 1 d",
            "procedures",
            "sum(increase(dossiers_resolved_total[1d]))",
            365 * day,
            day,
        ),
    ];
    let inspection = engine.inspect();
    let bytes: u64 = inspection.segments.iter().map(|s| s.bytes).sum();
    let rollup: u64 = inspection.segments.iter().map(|s| s.rollup_bytes).sum();
    println!(
        "\nRollup tiers {tiers:?} ms: {rollup} of the {bytes} segment bytes ({:.1} %) are rollups.\n",
        100.0 * rollup as f64 / bytes.max(1) as f64
    );
    println!(
        "| panel | without rollups p50 / p99 | with p50 / p99 | p50 ratio | samples read without / with (of them rollup buckets) | same answer |"
    );
    println!("|---|---|---|---|---|---|");
    let bits = |v: &QueryValue| match v {
        QueryValue::Matrix(m) => m
            .iter()
            .map(|s| {
                (
                    format!("{:?}", s.labels),
                    s.points
                        .iter()
                        .map(|p| (p.t, p.v.to_bits()))
                        .collect::<Vec<_>>(),
                )
            })
            .collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    // IOCDB_YEAR_REPORT_PANELS=8,10 asks only those (for profiling one).
    let only = std::env::var("IOCDB_YEAR_REPORT_PANELS").unwrap_or_default();
    let wanted = |name: &str| {
        only.is_empty()
            || only
                .split(',')
                .any(|p| name.split_once(' ').is_some_and(|(n, _)| n == p))
    };
    // IOCDB_YEAR_REPORT_TIERED_ONLY: only the runs with the tiers (a profile of them alone).
    let modes: &[bool] = if std::env::var_os("IOCDB_YEAR_REPORT_TIERED_ONLY").is_some() {
        &[true]
    } else {
        &[false, true]
    };
    for (name, ns, expr, span, step) in panels.into_iter().filter(|p| wanted(p.0)) {
        let mut times = [Vec::new(), Vec::new()];
        let mut read = [(0u64, 0u64); 2];
        let mut answers = [None, None];
        let mut refused = [None, None];
        for _ in 0..repeats {
            for &rollups in modes {
                let i = usize::from(rollups);
                let q = PromqlQuery {
                    use_rollups: rollups,
                    ..PromqlQuery::range(ns, expr, end - span, end, step)
                };
                let t = Instant::now();
                match engine.query(&q) {
                    Ok(r) => {
                        times[i].push(t.elapsed().as_secs_f64() * 1000.0);
                        read[i] = (r.samples_read, r.rollup_buckets);
                        answers[i].get_or_insert_with(|| bits(&r.value));
                    }
                    // A query over the sample limit is refused: say so.
                    Err(e) => refused[i] = Some(e.to_string()),
                }
            }
        }
        let cell = |t: &mut Vec<f64>, refused: &Option<String>| -> (String, f64) {
            if t.is_empty() && refused.is_none() {
                return ("not run".into(), f64::NAN);
            }
            if t.is_empty() {
                return (
                    format!("refused ({})", refused.as_deref().unwrap_or("?")),
                    f64::NAN,
                );
            }
            t.sort_by(f64::total_cmp);
            let at = |p: f64| t[((t.len() as f64 - 1.0) * p).round() as usize];
            (format!("{:.2} / {:.2} ms", at(0.5), at(0.99)), at(0.5))
        };
        let [t_off, t_on] = &mut times;
        let (off, on) = (cell(t_off, &refused[0]), cell(t_on, &refused[1]));
        println!(
            "| {name} | {} | {} | {:.3} | {} / {} ({}) | {} |",
            off.0,
            on.0,
            on.1 / off.1,
            read[0].0,
            read[1].0,
            read[1].1,
            match (&answers[0], &answers[1]) {
                (Some(a), Some(b)) if a == b => "yes",
                (Some(_), Some(_)) => "**no**",
                _ => "—",
            }
        );
    }
}
