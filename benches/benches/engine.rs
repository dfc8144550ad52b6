//! Criterion: one write batch (durable, fsync always) and a select from segments.
#![allow(clippy::indexing_slicing)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use iocdb_benches::{report, workload};
use iocdb_engine::{Engine, MatchOp, Matcher, Options};

fn bench(c: &mut Criterion) {
    let specs = workload::series(0.1);
    let start = report::day_start();
    let dir = tempfile::tempdir().expect("dir");
    let engine = Engine::open(dir.path(), Options::default()).expect("open");
    let batches = workload::batches(&specs, start, start + 600_000, 1000);
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(
        batches.first().map_or(0, |b| b.series.len()) as u64,
    ));
    let mut i = 0;
    g.bench_function("write/live_batch_fsync_always", |b| {
        b.iter_batched(
            || {
                i = (i + 1) % batches.len();
                batches[i].clone()
            },
            |req| engine.write(req).expect("write"),
            BatchSize::SmallInput,
        )
    });
    engine.flush().expect("flush");
    let all = Matcher::new("__name__", MatchOp::Regex, "camera_people_count").expect("m");
    let n: usize = engine
        .select(
            "security",
            std::slice::from_ref(&all),
            start,
            start + 600_000,
        )
        .expect("s")
        .iter()
        .map(|s| s.samples.len())
        .sum();
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("select/cameras_10min_from_segments", |b| {
        b.iter(|| {
            engine
                .select(
                    "security",
                    std::slice::from_ref(&all),
                    start,
                    start + 600_000,
                )
                .expect("select")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
