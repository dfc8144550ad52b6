//! What a running compaction costs the writers and the dashboards: write acknowledgement
//! (fsync always) and a 30-day query timed with no compaction running, then again while
//! `Engine::compact` merges every day of the store in another thread, in one run.
//!
//! Usage: `compaction_interference SCALE DAYS` (e.g. `0.1 30`); prints Markdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use iocdb_benches::dashboard::{self, QueryKind};
use iocdb_benches::{report, workload};
use iocdb_engine::{Engine, Label, Options, Sample, SeriesWrite, WriteRequest};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One small live batch: ten series, one sample each, at `t`.
fn batch(t: i64) -> WriteRequest {
    WriteRequest {
        namespace: "live".into(),
        series: (0..10)
            .map(|i| SeriesWrite {
                labels: vec![
                    Label::new("__name__", "probe"),
                    Label::new("i", i.to_string()),
                ],
                samples: vec![Sample::new(t, 1.0)],
            })
            .collect(),
    }
}

/// Times writes and queries (alternating) until `until` says stop or `max` rounds.
fn measure(
    engine: &Engine,
    q: &dashboard::DashboardQuery,
    until: &AtomicBool,
    max: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    let (mut writes, mut queries) = (Vec::new(), Vec::new());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    for i in 0..max {
        if until.load(Ordering::Relaxed) {
            break;
        }
        let t = Instant::now();
        engine.write(batch(now + i as i64)).expect("write");
        writes.push(t.elapsed());
        let t = Instant::now();
        dashboard::run(engine, q);
        queries.push(t.elapsed());
    }
    (writes, queries)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let scale: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0.1);
    let days: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let tmp = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(tmp.path(), Options::default()).expect("open");
    let end = report::day_start() + 86_400_000;
    let written = dashboard::load(
        &engine,
        &workload::series(scale),
        end - days * 86_400_000,
        end,
    );
    let segments = engine.stats().segments;
    let q = dashboard::queries(end - 60_000)
        .into_iter()
        .find(|q| matches!(q.kind, QueryKind::Range(_)) && q.name.starts_with('6'))
        .expect("the 30-day query");

    let never = AtomicBool::new(false);
    let (mut w0, mut q0) = measure(&engine, &q, &never, 300);
    let done = AtomicBool::new(false);
    let (report, took, (mut w1, mut q1)) = std::thread::scope(|s| {
        let compaction = s.spawn(|| {
            let t = Instant::now();
            let r = engine.compact().expect("compact");
            done.store(true, Ordering::Relaxed);
            (r, t.elapsed())
        });
        let during = measure(&engine, &q, &done, 100_000);
        let (r, took) = compaction.join().expect("compaction");
        (r, took, during)
    });
    println!(
        "×{scale} over {days} d: {written} samples in {segments} segments; compaction merged {} into {} in {:.1} s while {} writes and {} queries ran.\n",
        report.segments_in,
        report.segments_out,
        took.as_secs_f64(),
        w1.len(),
        q1.len()
    );
    println!("| | no compaction p50 / p99 | during compaction p50 / p99 | p99 ratio |");
    println!("|---|---|---|---|");
    let row = |name: &str, a: &mut Vec<Duration>, b: &mut Vec<Duration>| {
        let (a50, a99) = (
            report::percentile_ms(a, 0.5),
            report::percentile_ms(a, 0.99),
        );
        let (b50, b99) = (
            report::percentile_ms(b, 0.5),
            report::percentile_ms(b, 0.99),
        );
        println!(
            "| {name} | {a50:.2} / {a99:.2} ms | {b50:.2} / {b99:.2} ms | {:.2}× |",
            b99 / a99
        );
    };
    row("write acknowledged (10 samples, fsync)", &mut w0, &mut w1);
    row(&format!("query {}", q.name), &mut q0, &mut q1);
}
