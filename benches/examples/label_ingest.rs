//! In-process ingest by labels against ingest by series handle (issue 11's first target):
//! `cargo run --release -p iocdb-benches --example label_ingest -- [minutes] [rounds]`.
//! Each round writes the same live-shaped batches (×1, cut every 10,000 samples into one
//! request per namespace, 1,300–1,700 samples on average; fsync always), each writer its
//! own share of the series,
//! by labels (`Engine::write` with owned `String`s), by label bytes (`Engine::write_raw`,
//! the labels in one buffer per request, as every front door hands them over) and by handle
//! (`SeriesBy::Handle` in `Engine::write_raw`, as `WriteStream` writes a series by its
//! id), with one and with two writers, alternating, and prints each rate and the ratios. Each write builds the engine's call from its pre-built request as
//! the path's front door would (see `iocdb_workload::drive`); the requests are freed after
//! the clock. `ONLY=labels|bytes|handle` and
//! `WRITERS=N` run one configuration alone (to profile it: see `PERF_CTL` in
//! `iocdb_workload::drive`), `FSYNC_INTERVAL=1` with an fsync every 100 ms,
//! `BATCH_SAMPLES=N` cuts every N samples, `SPLIT=queue` gives every writer count the same
//! requests, taken in turn, `CPU_TIMES=1` also prints the CPU the timed writes took (see
//! `iocdb_workload::drive`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use iocdb_benches::report::{day_start, ingest, ingest_raw, ingest_resolved};

fn main() {
    let mut args = std::env::args().skip(1);
    let minutes: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let specs = iocdb_benches::workload::series(1.0);
    let start = day_start();
    // BATCH_SAMPLES=N: cut every N samples instead of 10,000 (smaller writes, each with an
    // fsync of its own under fsync always).
    let cut: usize = std::env::var("BATCH_SAMPLES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let make = |lane, lanes| {
        use iocdb_benches::workload::{batches, share};
        batches(
            &share(&specs, lane, lanes),
            start,
            start + minutes * 60_000,
            cut,
        )
    };
    if let Ok(only) = std::env::var("ONLY") {
        let threads = std::env::var("WRITERS")
            .ok()
            .and_then(|w| w.parse().ok())
            .unwrap_or(1);
        let dir = tempfile::tempdir().expect("dir");
        let mut opts = iocdb_engine::Options::default();
        // FSYNC_INTERVAL=1: fsync every 100 ms instead of before each acknowledgement.
        if std::env::var_os("FSYNC_INTERVAL").is_some() {
            opts.fsync = iocdb_engine::FsyncPolicy::Interval(std::time::Duration::from_millis(100));
        }
        let rate = match only.as_str() {
            "handle" => ingest_resolved(dir.path(), opts, make, threads),
            "bytes" => ingest_raw(dir.path(), opts, make, threads),
            _ => ingest(dir.path(), opts, make, threads),
        };
        println!("{only}, {threads} writer(s): {:.2} M samples/s", rate / 1e6);
        return;
    }
    for round in 0..rounds {
        let mut rates = Vec::new();
        for threads in [1, 2] {
            let dir = tempfile::tempdir().expect("dir");
            let labels = ingest(dir.path(), iocdb_engine::Options::default(), make, threads);
            let dir = tempfile::tempdir().expect("dir");
            let bytes = ingest_raw(dir.path(), iocdb_engine::Options::default(), make, threads);
            let dir = tempfile::tempdir().expect("dir");
            let handle =
                ingest_resolved(dir.path(), iocdb_engine::Options::default(), make, threads);
            println!(
                "round {round}, {threads} writer(s): by labels {:.2} M samples/s, by label bytes {:.2} M/s, by handle {:.2} M/s, labels / handle {:.2}, bytes / handle {:.2}",
                labels / 1e6,
                bytes / 1e6,
                handle / 1e6,
                labels / handle,
                bytes / handle
            );
            rates.push((labels, bytes, handle));
        }
        if let [(l1, b1, h1), (l2, b2, h2)] = rates[..] {
            println!(
                "round {round}: 2 writers / 1: by labels {:.2}×, by label bytes {:.2}×, by handle {:.2}×",
                l2 / l1,
                b2 / b1,
                h2 / h1
            );
        }
    }
}
