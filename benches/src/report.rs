//! The engine measurements behind BENCHMARKS.md, run side by side in one process so that
//! ratios are meaningful on a shared, noisy machine. `cargo run --release -p iocdb-benches
//! --bin engine-report` prints them as Markdown.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use iocdb_engine::internal::chunk;
use iocdb_engine::{Engine, FsyncPolicy, MatchOp, Matcher, Options};

use crate::workload::{self, Shape};
pub use iocdb_workload::drive::{day_start, ingest, ingest_raw, ingest_resolved};

/// The `q` quantile of `v`, in milliseconds (sorts `v`).
pub fn percentile_ms(v: &mut [Duration], q: f64) -> f64 {
    v.sort();
    v.get(((v.len() as f64 - 1.0) * q).round() as usize)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

/// Resident memory of this process, bytes (Linux; 0 elsewhere).
pub fn rss_bytes() -> u64 {
    status_bytes("VmRSS:")
}

/// A memory field of this process's `/proc/self/status` (named with its colon: `VmHWM:`,
/// `RssAnon:`…), bytes (Linux; 0 elsewhere).
pub fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// [`status_bytes`] in MiB.
pub fn status_mib(field: &str) -> f64 {
    status_bytes(field) as f64 / (1u64 << 20) as f64
}

/// Codec speed and size for one shape.
#[derive(Debug, Clone)]
pub struct CodecFigures {
    /// Shape name.
    pub shape: &'static str,
    /// Bytes per sample, both columns.
    pub bytes_per_sample: f64,
    /// Encode speed, samples/s on one core.
    pub encode_per_s: f64,
    /// Decode speed, samples/s on one core.
    pub decode_per_s: f64,
}

/// Encodes and decodes 2,048-sample chunks of each shape for about `budget` each.
pub fn codec(budget: Duration) -> Vec<CodecFigures> {
    let specs = workload::series(0.01);
    let shapes = [
        (Shape::CameraCount, "camera count (10 s, small int)"),
        (Shape::SlowGauge, "slow gauge (1-5 min, int)"),
        (Shape::Counter, "counter (1 min)"),
        (Shape::Ratio, "ratio (1 h, float, daytime)"),
        (Shape::Indicator, "indicator (float, 2 decimals)"),
    ];
    let mut out = Vec::new();
    for (shape, name) in shapes {
        let Some(spec) = specs.iter().find(|s| s.shape == shape) else {
            continue;
        };
        let start = day_start();
        let (mut ts, mut vs) = (Vec::new(), Vec::new());
        let mut k = 0;
        while ts.len() < 2048 {
            let t = start + k * spec.interval_ms;
            if let Some(v) = workload::value(spec, k, t) {
                ts.push(t);
                vs.push(v);
            }
            k += 1;
        }
        let bytes = chunk::encode(&ts, &vs);
        let (mut n, t0) = (0u64, Instant::now());
        while t0.elapsed() < budget {
            std::hint::black_box(chunk::encode(&ts, &vs));
            n += ts.len() as u64;
        }
        let encode_per_s = n as f64 / t0.elapsed().as_secs_f64();
        let (mut dt, mut dv) = (Vec::with_capacity(2048), Vec::with_capacity(2048));
        let (mut n, t0) = (0u64, Instant::now());
        while t0.elapsed() < budget {
            dt.clear();
            dv.clear();
            let _ = chunk::decode(&bytes, &mut dt, &mut dv);
            std::hint::black_box((&dt, &dv));
            n += ts.len() as u64;
        }
        let decode_per_s = n as f64 / t0.elapsed().as_secs_f64();
        out.push(CodecFigures {
            shape: name,
            bytes_per_sample: bytes.len() as f64 / ts.len() as f64,
            encode_per_s,
            decode_per_s,
        });
    }
    out
}

/// Every figure of the engine report.
#[derive(Debug, Clone, Default)]
pub struct EngineReport {
    /// Codec figures per shape.
    pub codec: Vec<CodecFigures>,
    /// (label, samples/s) of each ingest run.
    pub ingest: Vec<(String, f64)>,
    /// Bytes per sample on disk over the whole workload, and per namespace.
    pub bytes_per_sample: f64,
    /// Per namespace: (namespace, bytes per sample).
    pub bytes_by_namespace: Vec<(String, f64)>,
    /// Samples and series of the on-disk measurement.
    pub disk_samples: u64,
    /// Select throughput from segments, samples/s.
    pub select_per_s: f64,
    /// Head bytes per active series (engine accounting) and RSS growth per series.
    pub head_bytes_per_series: f64,
    /// RSS growth per series while the head filled.
    pub rss_per_series: f64,
    /// Series and samples in the head measurement.
    pub head_series: u64,
    /// Samples in the head measurement.
    pub head_samples: u64,
    /// WAL replay speed at open, samples/s.
    pub replay_per_s: f64,
}

/// Runs everything. `scale` sizes the live-ingest workload (1.0 = the province).
pub fn engine(scale: f64, minutes: i64) -> EngineReport {
    let mut report = EngineReport {
        codec: codec(Duration::from_millis(300)),
        ..EngineReport::default()
    };
    let specs = workload::series(scale);
    let start = day_start();
    let end = start + minutes * 60_000;
    let interval = Options {
        fsync: FsyncPolicy::Interval(Duration::from_millis(100)),
        ..Options::default()
    };
    let runs: Vec<(String, Options, usize, usize, bool)> = vec![
        (
            "live batches of 1,000, fsync always, 1 writer".into(),
            Options::default(),
            1000,
            1,
            false,
        ),
        (
            "live batches of 1,000, fsync always, 2 writers".into(),
            Options::default(),
            1000,
            2,
            false,
        ),
        (
            "live batches of 10,000, fsync always, 1 writer".into(),
            Options::default(),
            10_000,
            1,
            false,
        ),
        (
            "live batches of 10,000, fsync always, 2 writers".into(),
            Options::default(),
            10_000,
            2,
            false,
        ),
        (
            "live batches of 10,000, fsync every 100 ms, 1 writer".into(),
            interval.clone(),
            10_000,
            1,
            false,
        ),
        (
            "live batches of 10,000, fsync every 100 ms, 2 writers".into(),
            interval.clone(),
            10_000,
            2,
            false,
        ),
        (
            "backfill batches of 10,000, fsync always, 1 writer".into(),
            Options::default(),
            10_000,
            1,
            true,
        ),
        (
            "backfill batches of 10,000, fsync always, 2 writers".into(),
            Options::default(),
            10_000,
            2,
            true,
        ),
    ];
    for (label, opts, batch, threads, backfill) in runs {
        let make = |lane, lanes| {
            let specs = workload::share(&specs, lane, lanes);
            if backfill {
                workload::backfill(&specs, start, end, batch)
            } else {
                workload::batches(&specs, start, end, batch)
            }
        };
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        report
            .ingest
            .push((label, ingest(dir.path(), opts, make, threads)));
    }
    for threads in [1, 2] {
        let make = |lane, lanes| {
            workload::batches(&workload::share(&specs, lane, lanes), start, end, 10_000)
        };
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let label = format!(
            "live batches of 10,000 by series handle, fsync always, {threads} writer{}",
            if threads > 1 { "s" } else { "" }
        );
        report.ingest.push((
            label,
            ingest_resolved(dir.path(), Options::default(), make, threads),
        ));
    }

    // On-disk size and select speed: a day of the province at ×0.1, flushed into 2 h segments.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let day_specs = workload::series(0.1);
    {
        let engine =
            Engine::open(dir.path(), interval.clone()).unwrap_or_else(|e| panic!("open: {e}"));
        for r in workload::backfill(&day_specs, start, start + 86_400_000, 50_000) {
            let _ = engine.write(r).unwrap_or_else(|e| panic!("write: {e}"));
        }
        let _ = engine.flush().unwrap_or_else(|e| panic!("flush: {e}"));
        let stats = engine.stats();
        report.disk_samples = stats.segment_samples;
        report.bytes_per_sample = stats.segment_bytes as f64 / stats.segment_samples.max(1) as f64;
        let per_ns_samples = |ns: &str| -> u64 {
            engine
                .select(
                    ns,
                    &[Matcher::new("__name__", MatchOp::Regex, ".+")
                        .unwrap_or_else(|e| panic!("{e}"))],
                    i64::MIN,
                    i64::MAX,
                )
                .map(|v| v.iter().map(|s| s.samples.len() as u64).sum())
                .unwrap_or(0)
        };
        for (ns, bytes) in &stats.disk_bytes_by_namespace {
            report
                .bytes_by_namespace
                .push((ns.clone(), *bytes as f64 / per_ns_samples(ns).max(1) as f64));
        }
        let all = Matcher::new("__name__", MatchOp::Regex, ".+").unwrap_or_else(|e| panic!("{e}"));
        let (mut n, t0) = (0u64, Instant::now());
        while t0.elapsed() < Duration::from_secs(2) {
            for ns in ["security", "lodging", "health", "feedback"] {
                let got = engine
                    .select(ns, std::slice::from_ref(&all), start, start + 86_400_000)
                    .unwrap_or_else(|e| panic!("{e}"));
                n += got.iter().map(|s| s.samples.len() as u64).sum::<u64>();
            }
        }
        report.select_per_s = n as f64 / t0.elapsed().as_secs_f64();
    }

    // Head memory per series and WAL replay: 2 h of the province in the head.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let head_specs = workload::series(scale);
    let rss0 = rss_bytes();
    {
        let engine =
            Engine::open(dir.path(), interval.clone()).unwrap_or_else(|e| panic!("open: {e}"));
        // A few hundred series at a time, so the requests themselves barely move the RSS.
        for specs in head_specs.chunks(500) {
            for r in workload::backfill(specs, start, start + 2 * 3_600_000, 50_000) {
                let _ = engine.write(r).unwrap_or_else(|e| panic!("write: {e}"));
            }
        }
        let stats = engine.stats();
        report.head_series = stats.series;
        report.head_samples = stats.head_samples;
        report.head_bytes_per_series = stats.head_bytes as f64 / stats.series.max(1) as f64;
        report.rss_per_series =
            rss_bytes().saturating_sub(rss0) as f64 / stats.series.max(1) as f64;
    }
    let t0 = Instant::now();
    let engine = Engine::open(dir.path(), interval).unwrap_or_else(|e| panic!("reopen: {e}"));
    report.replay_per_s = report.head_samples as f64 / t0.elapsed().as_secs_f64();
    drop(engine);
    report
}

impl EngineReport {
    /// The report as Markdown tables.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let m = |x: f64| format!("{:.2} M", x / 1e6);
        let _ = writeln!(
            s,
            "| codec shape | bytes/sample | encode samples/s | decode samples/s |\n|---|---|---|---|"
        );
        for c in &self.codec {
            let _ = writeln!(
                s,
                "| {} | {:.3} | {} | {} |",
                c.shape,
                c.bytes_per_sample,
                m(c.encode_per_s),
                m(c.decode_per_s)
            );
        }
        let _ = writeln!(s, "\n| ingest run (in-process) | samples/s |\n|---|---|");
        for (label, rate) in &self.ingest {
            let _ = writeln!(s, "| {label} | {} |", m(*rate));
        }
        let find = |needle: &str| {
            self.ingest
                .iter()
                .find(|(l, _)| l == needle)
                .map_or(f64::NAN, |(_, r)| *r)
        };
        let pairs = [
            (
                "live batches of 10,000, fsync always, 2 writers",
                "live batches of 10,000, fsync always, 1 writer",
                "2 writers / 1 writer (10,000, fsync always)",
            ),
            (
                "live batches of 1,000, fsync always, 2 writers",
                "live batches of 1,000, fsync always, 1 writer",
                "2 writers / 1 writer (1,000, fsync always)",
            ),
            (
                "backfill batches of 10,000, fsync always, 2 writers",
                "backfill batches of 10,000, fsync always, 1 writer",
                "2 writers / 1 writer (backfill)",
            ),
            (
                "live batches of 10,000, fsync every 100 ms, 1 writer",
                "live batches of 10,000, fsync always, 1 writer",
                "fsync every 100 ms / fsync always (1 writer)",
            ),
            (
                "live batches of 10,000, fsync every 100 ms, 2 writers",
                "live batches of 10,000, fsync always, 2 writers",
                "fsync every 100 ms / fsync always (2 writers)",
            ),
            (
                "live batches of 10,000 by series handle, fsync always, 2 writers",
                "live batches of 10,000 by series handle, fsync always, 1 writer",
                "2 writers / 1 writer (by series handle)",
            ),
            (
                "live batches of 10,000 by series handle, fsync always, 1 writer",
                "live batches of 10,000, fsync always, 1 writer",
                "by series handle / by labels (1 writer)",
            ),
        ];
        let _ = writeln!(s, "\n| ratio | value |\n|---|---|");
        for (a, b, label) in pairs {
            let _ = writeln!(s, "| {label} | {:.2}× |", find(a) / find(b));
        }
        let _ = writeln!(s, "\n| storage and memory | value |\n|---|---|");
        let _ = writeln!(
            s,
            "| bytes/sample on disk, whole workload (×0.1, 24 h, {} samples, 2 h segments) | {:.3} |",
            self.disk_samples, self.bytes_per_sample
        );
        for (ns, b) in &self.bytes_by_namespace {
            let _ = writeln!(s, "| — chunk bytes/sample, namespace `{ns}` | {b:.3} |");
        }
        let _ = writeln!(
            s,
            "| select from segments (24 h, whole namespaces) | {} samples/s |",
            m(self.select_per_s)
        );
        let _ = writeln!(
            s,
            "| head bytes per active series ({} series, {} samples, engine accounting) | {:.0} |",
            self.head_series, self.head_samples, self.head_bytes_per_series
        );
        let _ = writeln!(
            s,
            "| RSS growth per series while filling that head (index included) | {:.0} |",
            self.rss_per_series
        );
        let _ = writeln!(
            s,
            "| WAL replay at open | {} samples/s |",
            m(self.replay_per_s)
        );
        s
    }
}
