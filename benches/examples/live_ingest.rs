//! Profiling aid: live-shaped ingest only. `cargo run --release -p iocdb-benches --example live_ingest -- [threads] [rounds]`
//! Each round ingests twice, with the result cache off and on (on, each write also records
//! the earliest time it touched for the cache's change log), and prints both rates.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let threads = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let specs = iocdb_benches::workload::series(1.0);
    let start = iocdb_benches::report::day_start();
    let make = |lane, lanes| {
        use iocdb_benches::workload::{batches, share};
        batches(
            &share(&specs, lane, lanes),
            start,
            start + 20 * 60_000,
            10_000,
        )
    };
    let rounds: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    for _ in 0..rounds {
        let rate = |cache: usize| {
            let dir = tempfile::tempdir().expect("dir");
            let opts = iocdb_engine::Options {
                query_cache_bytes: cache,
                ..iocdb_engine::Options::default()
            };
            iocdb_benches::report::ingest(dir.path(), opts, make, threads)
        };
        let (off, on) = (rate(0), rate(64 << 20));
        println!(
            "{threads} writers: {:.2} M samples/s without the cache's change log, {:.2} with ({:.3}×)",
            off / 1e6,
            on / 1e6,
            on / off
        );
    }
}
