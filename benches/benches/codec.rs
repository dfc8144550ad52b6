//! Criterion: chunk encode and decode of each workload shape.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use iocdb_benches::workload::{self, Shape};
use iocdb_engine::internal::chunk;

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

criterion_group!(benches, bench);
criterion_main!(benches);
