//! Memory under series churn: `churn_memory TOTAL ACTIVE` writes `TOTAL` camera-like series
//! over time, `ACTIVE` at a time — each generation replaces every active series with new
//! ones (a camera swapped, a facility renamed), writes a few samples of each and flushes —
//! and reports after every generation the process's RSS (once the allocator has returned
//! what the flush freed), the series the head holds and its accounted bytes. With churn
//! handled, RSS follows `ACTIVE`; without, it follows `TOTAL`. At the end it times the
//! completeness report the server exports every minute, over every series ever written
//! (then all silent), and an export of every series, each with its peak RSS and anonymous
//! memory. `CHURN_METRICS=N` spreads the series over N metric names.
//! `cargo run --release -p iocdb-benches --example churn_memory -- 1000000 100000`
#![allow(clippy::indexing_slicing, unsafe_code)]

use std::time::{Duration, Instant};

use iocdb_benches::report::status_mib;
use iocdb_engine::{
    Engine, FsyncPolicy, Label, Limits, Options, Sample, SeriesWrite, WriteRequest,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

unsafe extern "C" {
    /// mimalloc's `void mi_collect(bool force)`.
    fn mi_collect(force: bool);
}

/// `VmRSS` of this process, MiB.
fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

const COMMUNES: [&str; 6] = [
    "Châu Đốc",
    "Long Xuyên",
    "Tân Châu",
    "Tịnh Biên",
    "Phú Tân",
    "An Phú",
];

/// Series `i`'s labels: four, one of them unique (the camera); its metric one of
/// `CHURN_METRICS` (default one).
fn labels(i: usize) -> Vec<Label> {
    static METRICS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let metrics = *METRICS.get_or_init(|| {
        std::env::var("CHURN_METRICS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1)
    });
    let metric = match metrics {
        0 | 1 => "camera_people_count".to_owned(),
        n => format!("camera_people_count_{}", i % n),
    };
    vec![
        Label::new("__name__", metric),
        Label::new("camera", format!("cam-{i:08}")),
        Label::new("commune", COMMUNES[i % COMMUNES.len()]),
        Label::new("district", COMMUNES[(i / 7) % COMMUNES.len()]),
    ]
}

/// Runs `f` and reports, after its result: its time and its peak RSS above the RSS before
/// it (the peak is reset first through `/proc/self/clear_refs`), and the peak of anonymous
/// memory, sampled meanwhile (the peak RSS also counts the segments' pages read, which the
/// page cache holds).
fn measured<T: Send>(f: impl FnOnce() -> T + Send) -> (T, String) {
    // SAFETY: as in `main`.
    unsafe { mi_collect(true) };
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let (before, anon_before) = (rss_mib(), status_mib("RssAnon:"));
    let done = std::sync::atomic::AtomicBool::new(false);
    let t = Instant::now();
    let (out, anon_peak) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut peak = anon_before;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(status_mib("RssAnon:"));
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        });
        let out = f();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (out, sampler.join().expect("sampler"))
    });
    let took = t.elapsed().as_secs_f64();
    let peak = status_mib("VmHWM:");
    let figures = format!(
        "{took:.2} s; RSS {before:.0} MiB before, peak {peak:.0} MiB (+{:.0} MiB{}); anonymous \
         {anon_before:.0} MiB before, sampled peak +{:.0} MiB",
        peak - before,
        if reset {
            ""
        } else {
            ", peak not reset: since start"
        },
        anon_peak - anon_before
    );
    (out, figures)
}

/// What the server's completeness export computes every minute (`server/src/completeness.rs`:
/// the last hour's report, series silent for three intervals) at `at`, when every series
/// ever written but the last generation's is silent.
fn report_completeness(engine: &Engine, at: i64) {
    let q = iocdb_engine::CompletenessQuery {
        start: at - 3_600_000,
        end: at + 1,
        ..Default::default()
    };
    let (report, figures) = measured(|| {
        engine
            .completeness("security", &q, at, 3.0)
            .expect("report")
    });
    println!(
        "\nCompleteness report (the server's export): {} series silent ({} listed); {figures}.",
        report.silent_by_metric.values().sum::<u64>(),
        report.silent.len(),
    );
}

/// `iocdb export` of the whole namespace (every series ever written, 256 a batch, as the
/// CLI reads them), its output counted and dropped.
fn report_export(engine: &Engine) {
    let ((series, samples), figures) = measured(|| {
        let mut samples = 0;
        let series = engine
            .export("security", &[], (i64::MIN, i64::MAX), 256, &mut |s| {
                samples += s.samples.len();
                Ok(())
            })
            .expect("export");
        (series, samples)
    });
    println!("\nExport of every series: {series} series, {samples} samples; {figures}.");
}

/// Writes series `range`, four samples each from `hour`, 1,000 a request; returns the time.
fn write_range(engine: &Engine, range: std::ops::Range<usize>, hour: i64) -> Duration {
    let t = Instant::now();
    for batch in range.collect::<Vec<_>>().chunks(1_000) {
        let req = WriteRequest {
            namespace: "security".into(),
            series: batch
                .iter()
                .map(|&i| SeriesWrite {
                    labels: labels(i),
                    samples: (0..4)
                        .map(|k| Sample::new(hour + k * 900_000, (i % 97) as f64))
                        .collect(),
                })
                .collect(),
        };
        let out = engine.write(req).expect("write");
        assert_eq!(out.rejected.len(), 0, "{:?}", out.rejected.first());
    }
    t.elapsed()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let total: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let active: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("dir");
    let opts = Options {
        fsync: FsyncPolicy::Interval(Duration::from_millis(200)),
        head_memory_budget: 16 << 30,
        limits: Limits {
            max_series_per_namespace: total + 1,
            ..Limits::default()
        },
        ..Options::default()
    };
    let engine = Engine::open(dir.path(), opts.clone()).expect("open");
    let start = 1_796_000_000_000_i64;
    let mut created = Duration::ZERO;
    println!(
        "| generation | series written | head series | head accounted | RSS | RSS per series written | took |"
    );
    println!("|---|---|---|---|---|---|---|");
    for generation in 0..total.div_ceil(active.max(1)) {
        let t = Instant::now();
        let first = generation * active;
        let last = (first + active).min(total);
        // Each generation's own hour: four samples a series, a quarter-hour apart.
        let hour = start + generation as i64 * 3_600_000;
        let wrote = write_range(&engine, first..last, hour);
        if generation == 0 {
            created = wrote;
        }
        engine.flush().expect("flush");
        // As the server does after a flush (`server/src/allocator.rs`): hand what the flush
        // freed back to the OS now, so that RSS shows what is held, not what the allocator
        // has yet to purge.
        // SAFETY: `mi_collect` takes no pointer and only touches mimalloc's own state; it
        // may be called from any thread at any time, and mimalloc is this process's
        // allocator (above).
        unsafe { mi_collect(true) };
        for _ in 0..100 {
            drop(engine.stats());
        }
        let stats = engine.stats();
        let rss = rss_mib();
        println!(
            "| {generation} | {last} | {} | {:.0} MiB | {rss:.0} MiB | {:.0} B | {:.1} s |",
            stats.head_series,
            stats.head_bytes as f64 / (1 << 20) as f64,
            rss * (1 << 20) as f64 / last as f64,
            t.elapsed().as_secs_f64()
        );
    }
    // The first generation again, every series out of the head (each found by its hash,
    // confirmed by a segment's labels, its newest sample read back), then the same again,
    // every series in the head.
    let later = start + total.div_ceil(active.max(1)) as i64 * 3_600_000;
    let revived = write_range(&engine, 0..active.min(total), later);
    let known = write_range(&engine, 0..active.min(total), later + 3_600_000);
    println!(
        "\nWriting {} series: new {:.2} s, out of the head {:.2} s, in the head {:.2} s.",
        active.min(total),
        created.as_secs_f64(),
        revived.as_secs_f64(),
        known.as_secs_f64()
    );
    engine.flush().expect("flush");
    report_completeness(&engine, later + 3 * 3_600_000);
    report_export(&engine);
    // Reopened: every series is in segments only, registered out of the head.
    engine.close().expect("close");
    drop(engine);
    // SAFETY: as above.
    unsafe { mi_collect(true) };
    let closed = rss_mib();
    let t = Instant::now();
    let engine = Engine::open(dir.path(), opts).expect("reopen");
    let took = t.elapsed().as_secs_f64();
    // SAFETY: as above.
    unsafe { mi_collect(true) };
    let stats = engine.stats();
    println!(
        "\nReopened in {took:.1} s: {} series known, {} in the head, {} segments; RSS {:.0} MiB \
         after open against {closed:.0} MiB closed (+{:.0} B per series known); head \
         accounted {:.0} MiB, segment tables {:.0} MiB.",
        stats.series,
        stats.head_series,
        stats.segments,
        rss_mib(),
        (rss_mib() - closed) * (1 << 20) as f64 / stats.series.max(1) as f64,
        stats.head_bytes as f64 / (1 << 20) as f64,
        stats.segment_table_bytes as f64 / (1 << 20) as f64
    );
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for l in status.lines().filter(|l| l.starts_with("Rss")) {
        println!("{l}");
    }
    if std::env::var_os("CHURN_SMAPS").is_some() {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
        let mut name = String::new();
        for l in smaps.lines() {
            if l.contains('/') && l.contains(".seg") {
                name = l.rsplit('/').next().unwrap_or_default().to_owned();
            } else if l.starts_with("Rss:") && !name.is_empty() {
                println!("{name} {l}");
                name.clear();
            }
        }
    }
}
