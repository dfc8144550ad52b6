//! Dashboard refreshes with and without the result cache: `refresh_latency SCALE REFRESHES
//! CLIENTS` loads a day of the province at SCALE, then plays REFRESHES refreshes five
//! seconds apart — each writes the five seconds of live samples that fell due, then every
//! client asks every range query of WORKLOAD.md with its window moved to the new now,
//! aligned to its step as Grafana aligns it — once with the cache off and once on, twice
//! each, alternated, each run on its own copy of the same flushed store. Prints p50 / p99
//! per query and mode over the refreshes after the first (the cold one).
#![allow(clippy::indexing_slicing)]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use iocdb_benches::dashboard::{self, QueryKind};
use iocdb_benches::workload;
use iocdb_engine::{Engine, FsyncPolicy, Options, PromqlQuery};

fn options(cache: bool) -> Options {
    Options {
        fsync: FsyncPolicy::Interval(Duration::from_millis(200)),
        query_cache_bytes: if cache { 64 << 20 } else { 0 },
        ..Options::default()
    }
}

fn copy(from: &std::path::Path, to: &std::path::Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success());
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let scale: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1.0);
    let refreshes: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(60);
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let tmp = tempfile::tempdir().expect("dir");
    let base = tmp.path().join("base");
    let end = workload::drive::day_start() + 86_400_000;
    let specs = workload::series(scale);
    {
        let engine = Engine::open(&base, options(false)).expect("open");
        let t = Instant::now();
        let n = dashboard::load(&engine, &specs, end - 86_400_000, end);
        engine.flush().expect("flush");
        engine.close().expect("close");
        eprintln!("loaded {n} samples in {:.0} s", t.elapsed().as_secs_f64());
    }
    let queries: Vec<(String, String, i64, i64, String)> = dashboard::queries(end)
        .into_iter()
        .filter_map(|q| match q.kind {
            QueryKind::Range(rq) => Some((
                q.name.to_owned(),
                q.promql,
                rq.end - rq.start,
                rq.step,
                rq.namespace,
            )),
            QueryKind::Stale { .. } => None,
        })
        .collect();
    // times[mode][query]: milliseconds of every refresh after the first, every client.
    let mut times = vec![vec![Vec::new(); queries.len()]; 2];
    for (run, cache) in [false, true, false, true].into_iter().enumerate() {
        let dir = tmp.path().join(format!("run{run}"));
        copy(&base, &dir);
        let engine = Engine::open(&dir, options(cache)).expect("open");
        for r in 0..refreshes {
            let now = end + r * 5_000;
            for req in workload::batches(&specs, now - 5_000, now, 100_000) {
                engine.write(req).expect("live write");
            }
            let per_client: Vec<Vec<f64>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..clients)
                    .map(|_| {
                        s.spawn(|| {
                            queries
                                .iter()
                                .map(|(_, promql, span, step, ns)| {
                                    let to = now / step * step;
                                    let q = PromqlQuery::range(
                                        ns.clone(),
                                        promql.clone(),
                                        to - span,
                                        to,
                                        *step,
                                    );
                                    let t = Instant::now();
                                    engine.query(&q).expect("query");
                                    t.elapsed().as_secs_f64() * 1000.0
                                })
                                .collect()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("client"))
                    .collect()
            });
            if r > 0 {
                for client in per_client {
                    for (i, ms) in client.into_iter().enumerate() {
                        times[usize::from(cache)][i].push(ms);
                    }
                }
            }
        }
        let s = engine.stats().query_cache;
        eprintln!(
            "run {run} (cache {}): {} lookups, {} hits, {} steps reused, {} computed, {} invalidations",
            if cache { "on" } else { "off" },
            s.lookups,
            s.hits,
            s.steps_reused,
            s.steps_computed,
            s.invalidations
        );
        engine.close().expect("close");
    }
    println!(
        "×{scale}, {refreshes} refreshes 5 s apart, {clients} client(s); p50 / p99 ms per query\n"
    );
    println!("| query | cache off | cache on | p50 ratio |");
    println!("|---|---|---|---|");
    for (i, (name, ..)) in queries.iter().enumerate() {
        let mut cells = Vec::new();
        let mut p50 = Vec::new();
        for mode in &mut times {
            let t = &mut mode[i];
            t.sort_by(f64::total_cmp);
            p50.push(percentile(t, 0.5));
            cells.push(format!(
                "{:.2} / {:.2}",
                percentile(t, 0.5),
                percentile(t, 0.99)
            ));
        }
        println!(
            "| {name} | {} | {} | {:.3} |",
            cells[0],
            cells[1],
            p50[1] / p50[0]
        );
    }
}
