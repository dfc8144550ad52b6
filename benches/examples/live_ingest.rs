//! Profiling aid: live-shaped ingest only. `cargo run --release -p iocdb-benches --example live_ingest -- [threads]`
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let threads = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let specs = iocdb_benches::workload::series(1.0);
    let start = iocdb_benches::report::day_start();
    let make = || iocdb_benches::workload::batches(&specs, start, start + 20 * 60_000, 10_000);
    let dir = tempfile::tempdir().expect("dir");
    let rate =
        iocdb_benches::report::ingest(dir.path(), iocdb_engine::Options::default(), make, threads);
    println!("{threads} writers: {:.2} M samples/s", rate / 1e6);
}
