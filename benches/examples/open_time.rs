//! How long opening a store takes: one whose WAL holds about `WAL_MIB` MiB (replayed into
//! the head), and one with `SEGMENTS` segment files.
//! `cargo run --release -p iocdb-benches --example open_time -- [wal_mib] [segments]`

use std::time::{Duration, Instant};

use iocdb_benches::{report, workload};
use iocdb_engine::{Engine, FsyncPolicy, Label, Options, Sample, SeriesWrite, WriteRequest};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let wal_mib: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1024);
    let segments: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let opts = Options {
        fsync: FsyncPolicy::Interval(Duration::from_millis(200)),
        head_memory_budget: 16 << 30,
        ..Options::default()
    };

    // A WAL of about `wal_mib` MiB: live batches of the province at ×1, never flushed.
    let dir = tempfile::tempdir().expect("dir");
    let specs = workload::series(1.0);
    let start = report::day_start();
    let mut samples = 0usize;
    {
        let engine = Engine::open(dir.path(), opts.clone()).expect("open");
        let mut window = 0;
        while dir_bytes(&dir.path().join("wal")) < wal_mib << 20 {
            let from = start + window * 600_000;
            for req in workload::batches(&specs, from, from + 600_000, 10_000) {
                samples += engine.write(req).expect("write").accepted;
            }
            window += 1;
        }
        engine.close().expect("close");
    }
    let wal = dir_bytes(&dir.path().join("wal"));
    let t = Instant::now();
    let engine = Engine::open(dir.path(), opts.clone()).expect("reopen");
    let took = t.elapsed();
    println!(
        "open with {:.0} MiB of WAL ({samples} samples, {} series): {:.2} s ({:.1} M samples/s)",
        wal as f64 / f64::from(1 << 20),
        engine.stats().series,
        took.as_secs_f64(),
        samples as f64 / took.as_secs_f64() / 1e6
    );
    drop(engine);

    // `segments` segment files: one flush each, of 100 series.
    let dir = tempfile::tempdir().expect("dir");
    {
        let engine = Engine::open(dir.path(), opts.clone()).expect("open");
        for s in 0..segments {
            let series = (0..100)
                .map(|i| SeriesWrite {
                    labels: vec![
                        Label::new("__name__", "hospital_beds_free"),
                        Label::new("hospital", format!("Bệnh viện {i}")),
                    ],
                    samples: (0..60)
                        .map(|k| Sample::new(start + s * 60_000 + k * 1000, k as f64))
                        .collect(),
                })
                .collect();
            engine
                .write(WriteRequest {
                    namespace: "health".into(),
                    series,
                })
                .expect("write");
            engine.flush().expect("flush");
        }
    }
    let t = Instant::now();
    let engine = Engine::open(dir.path(), opts).expect("reopen");
    println!(
        "open with {} segment files: {:.3} s",
        engine.stats().segments,
        t.elapsed().as_secs_f64()
    );
}
