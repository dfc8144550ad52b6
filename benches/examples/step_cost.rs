//! One new step of a dashboard panel, computed alone: `step_cost SCALE ASKS` loads a day of
//! the province at SCALE (flushed, then the last hour written again into the head as live
//! data would be), then asks `max(camera_people_count)` — the cameras' panel — for one step,
//! the result cache off, ASKS times a few seconds behind the newest samples (what a
//! dashboard refresh pays each time its window reaches a new step) and ASKS times at
//! successive minutes of the last hour; prints p50 / p99 ms and the samples read.
#![allow(clippy::indexing_slicing)]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

use iocdb_benches::{dashboard, workload};
use iocdb_engine::{Engine, Options, PromqlQuery};

fn main() {
    let mut args = std::env::args().skip(1);
    let scale: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1.0);
    let asks: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let tmp = tempfile::tempdir().expect("dir");
    let end = workload::drive::day_start() + 86_400_000;
    let specs = workload::series(scale);
    let opts = Options {
        query_cache_bytes: 0,
        ..Options::default()
    };
    let engine = Engine::open(tmp.path(), opts).expect("open");
    let n = dashboard::load(&engine, &specs, end - 86_400_000, end - 3_600_000);
    engine.flush().expect("flush");
    for req in workload::batches(&specs, end - 3_600_000, end, 10_000) {
        engine.write(req).expect("live write");
    }
    eprintln!("loaded {n} samples, then the last hour live");
    if let Ok(ctl) = std::env::var("PERF_CTL") {
        let _ = std::fs::write(ctl, "enable\n");
    }
    let ask = |t: i64| {
        let q = PromqlQuery::range("security", "max(camera_people_count)", t, t, 60_000);
        let started = Instant::now();
        let r = engine.query(&q).expect("query");
        assert_eq!(r.series_read, 3_000);
        (started.elapsed().as_secs_f64() * 1e3, r.samples_read)
    };
    // The step a refresh adds: a few seconds behind the newest samples.
    let newest: Vec<_> = (0..asks)
        .map(|i| ask(end - 1_000 - (i % 5) * 1_000))
        .collect();
    // Steps of the last hour, as a panel computed cold asks them.
    let hour: Vec<_> = (0..asks).map(|i| ask(end - (i % 60) * 60_000)).collect();
    for (what, asked) in [
        ("the newest step", newest),
        ("steps of the last hour", hour),
    ] {
        let mut ms: Vec<f64> = asked.iter().map(|a| a.0).collect();
        ms.sort_by(f64::total_cmp);
        let p = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
        let samples = asked.iter().map(|a| a.1).sum::<u64>() / asked.len().max(1) as u64;
        println!(
            "max over the cameras, {what}: p50 {:.2} ms, p99 {:.2} ms, {samples} samples read",
            p(0.5),
            p(0.99)
        );
    }
}
