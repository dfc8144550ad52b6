//! Resident memory around a flush: fill the head with `HOURS` of the province at `SCALE`
//! (live batches by labels), then flush, reporting RSS before, the peak during the flush,
//! and after. `cargo run --release -p iocdb-benches --example flush_memory -- [scale] [hours]`

use std::time::Duration;

use iocdb_benches::report::status_mib;
use iocdb_benches::{report, workload};
use iocdb_engine::{Engine, FsyncPolicy, Options};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let scale: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1.0);
    let hours: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(6);
    let dir = tempfile::tempdir().expect("dir");
    let opts = Options {
        fsync: FsyncPolicy::Interval(Duration::from_millis(200)),
        head_memory_budget: 8 << 30,
        partition_ms: 24 * 3_600_000,
        ..Options::default()
    };
    let engine = Engine::open(dir.path(), opts).expect("open");
    let specs = workload::series(scale);
    let start = report::day_start();
    let mut written = 0usize;
    for window in 0..hours * 6 {
        let from = start + window * 600_000;
        for req in workload::batches(&specs, from, from + 600_000, 10_000) {
            let out = engine.write(req).expect("write");
            written += out.accepted;
        }
    }
    let before = status_mib("VmRSS:");
    // Reset the peak so VmHWM measures the flush alone (Linux: clear_refs 5).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let flushed = engine.flush().expect("flush");
    let peak = status_mib("VmHWM:");
    let after = status_mib("VmRSS:");
    // Freed memory goes back to the OS when the allocator purges it, on its next calls
    // after a short delay: a store keeps serving, so measure again after a moment of work.
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..1000 {
        drop(engine.stats());
    }
    let settled = status_mib("VmRSS:");
    println!(
        "{written} samples of {} series in the head, flushed into {} segments ({} bytes): RSS before {before:.0} MiB, peak during flush {peak:.0} MiB (+{:.0}), after {after:.0} MiB, 0.2 s later {settled:.0} MiB",
        specs.len(),
        flushed.segments,
        flushed.bytes,
        peak - before
    );
}
