//! Criterion: chunk encode and decode of each workload shape; a month of one camera's
//! hourly rollup buckets decoded whole and from its last 12 days (a 30-day panel's share of
//! a 32-day segment), with only the maximum wanted, as `max_over_time` reads them.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use iocdb_benches::workload::{self, Shape};
use iocdb_engine::Sample;
use iocdb_engine::internal::{chunk, rollup};

fn columns(shape: Shape) -> (Vec<i64>, Vec<f64>) {
    let specs = workload::series(0.01);
    let spec = specs.iter().find(|s| s.shape == shape).expect("shape");
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    let mut k = 0;
    while ts.len() < 2048 {
        let t = 1_700_000_000_000 + k * spec.interval_ms;
        if let Some(v) = workload::value(spec, k, t) {
            ts.push(t);
            vs.push(v);
        }
        k += 1;
    }
    (ts, vs)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("chunk");
    g.throughput(Throughput::Elements(2048));
    for (shape, name) in [
        (Shape::CameraCount, "camera"),
        (Shape::Counter, "counter"),
        (Shape::Indicator, "indicator"),
    ] {
        let (ts, vs) = columns(shape);
        let bytes = chunk::encode(&ts, &vs);
        g.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| chunk::encode(&ts, &vs))
        });
        g.bench_function(format!("decode/{name}"), |b| {
            let (mut t, mut v) = (Vec::with_capacity(2048), Vec::with_capacity(2048));
            b.iter(|| {
                t.clear();
                v.clear();
                chunk::decode(&bytes, &mut t, &mut v).expect("decode")
            })
        });
    }
    g.finish();
}

fn rollup_decode(c: &mut Criterion) {
    let specs = workload::series(0.01);
    let spec = specs
        .iter()
        .find(|s| s.shape == Shape::CameraCount)
        .expect("shape");
    let (hour, day) = (3_600_000, 86_400_000);
    let start = 1_699_920_000_000 / day * day;
    let mut samples = Vec::new();
    for k in 0.. {
        let t = start + k * spec.interval_ms;
        if t >= start + 32 * day {
            break;
        }
        if let Some(v) = workload::value(spec, k, t) {
            samples.push(Sample::new(t, v));
        }
    }
    let mut buckets = Vec::new();
    rollup::summarize(&samples, hour, &mut buckets);
    let mut bytes = Vec::new();
    rollup::encode(&buckets, hour, &mut bytes);
    let mut g = c.benchmark_group("rollup");
    let last_12_days = start + 20 * day;
    for (name, from) in [("whole", i64::MIN), ("last 12 of 32 days", last_12_days)] {
        let kept = buckets.iter().filter(|b| b.start >= from).count();
        g.throughput(Throughput::Elements(kept as u64));
        g.bench_function(format!("decode max/{name}"), |b| {
            let mut out = Vec::with_capacity(buckets.len());
            b.iter(|| {
                out.clear();
                let mut r = iocdb_engine::internal::ByteReader::new(&bytes);
                rollup::decode(
                    &mut r,
                    hour,
                    buckets.len(),
                    rollup::Wanted::MAX,
                    from,
                    &mut out,
                )
                .expect("decode");
                assert_eq!(out.len(), kept);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench, rollup_decode);
criterion_main!(benches);
