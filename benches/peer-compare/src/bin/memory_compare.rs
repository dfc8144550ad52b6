//! Server memory side by side with VictoriaMetrics: the same province day loaded into the
//! real `iocdb serve` (over gRPC) and into `victoria-metrics` (over its import API), each
//! then flushed; each process's RSS after ingest, its peak during the flush, and its RSS
//! a few seconds after.
//!
//! Usage: `memory_compare SCALE [iocdb]` (e.g. `1.0`), after `cargo build --release -p
//! iocdb-server`; needs `victoria-metrics` on PATH unless `iocdb` (iocdb alone) is given.
//! `IOCDB_BIN` runs another build (or a wrapper, such as a heap profiler's) instead of
//! `target/release/iocdb`. Prints Markdown.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use iocdb_benches::{report, workload};
use iocdb_peer_compare::peers::{self, exposition, grpc_write};
use iocdb_proto::v1;

/// `VmRSS` or `VmHWM` of process `pid`, MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// What `pid` maps, by resident KiB, largest first: files by path, anonymous mappings
/// (heaps, stacks) one by one, as `[anon] START-END (SIZE KiB)`.
fn mappings(pid: u32) -> Vec<(String, u64)> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut by_name = std::collections::HashMap::<String, u64>::new();
    let mut name = None;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Rss:"), Some(kib)) => {
                if let Some(n) = &name {
                    *by_name.entry(String::clone(n)).or_default() +=
                        kib.parse::<u64>().unwrap_or(0);
                }
            }
            (Some(range), _) if range.contains('-') && !range.ends_with(':') => {
                name = Some(match line.split_whitespace().nth(5) {
                    Some(path) => path.to_string(),
                    None => {
                        let size = range
                            .split_once('-')
                            .and_then(|(a, b)| {
                                Some(
                                    u64::from_str_radix(b, 16).ok()?
                                        - u64::from_str_radix(a, 16).ok()?,
                                )
                            })
                            .unwrap_or(0);
                        format!("[anon] {range} ({} KiB)", size / 1024)
                    }
                });
            }
            _ => {}
        }
    }
    let mut all: Vec<_> = by_name.into_iter().collect();
    all.sort_by_key(|f| std::cmp::Reverse(f.1));
    all
}

/// Resets the peak RSS of `pid` (Linux: clear_refs 5).
fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

struct Figures {
    samples: usize,
    after_ingest: f64,
    peak_flush: f64,
    after_flush: f64,
    /// After 200 `Stats` calls and 12 s more: what a serving, then idle, process keeps
    /// (the allocator purges freed pages on later calls; idle pool threads exit).
    settled: f64,
}

fn iocdb(scale: f64, dir: &std::path::Path) -> Figures {
    let bin = std::env::var_os("IOCDB_BIN").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/iocdb"),
        std::path::PathBuf::from,
    );
    let mut child = Command::new(&bin)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "",
            "--fsync",
            "interval",
            "--data-dir",
        ])
        .arg(dir)
        .env("IOCDB_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "start {}: {e} (build it with cargo build --release -p iocdb-server)",
                bin.display()
            )
        });
    let stdout = child.stdout.take().expect("stdout");
    let addr = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("listening on ").map(str::to_owned))
        .expect("the server says where it listens");
    let pid = child.id();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (samples, channel) = runtime.block_on(async {
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        let mut ingest = v1::ingest_client::IngestClient::new(channel.clone())
            .max_encoding_message_size(64 << 20);
        let end = report::day_start() + 86_400_000;
        let specs = workload::series(scale);
        let mut samples = 0;
        for chunk in specs.chunks(300) {
            for r in workload::backfill(chunk, end - 86_400_000, end, 100_000) {
                let req = grpc_write(&r);
                samples += ingest
                    .write(req)
                    .await
                    .expect("write")
                    .into_inner()
                    .accepted as usize;
            }
        }
        (samples, channel)
    });
    let mut admin = v1::admin_client::AdminClient::new(channel);
    let mut flusher = admin.clone();
    let figures = measure(
        pid,
        samples,
        || {
            runtime
                .block_on(flusher.flush(v1::FlushRequest {}))
                .expect("flush");
        },
        || {
            runtime
                .block_on(admin.stats(v1::StatsRequest {}))
                .expect("stats");
        },
    );
    let _ = child.kill();
    let _ = child.wait();
    figures
}

fn victoria_metrics(scale: f64, dir: &std::path::Path) -> Figures {
    let vm = peers::victoria_metrics(dir, &[]);
    let pid = vm.child.id();
    let end = report::day_start() + 86_400_000;
    let specs = workload::series(scale);
    let mut samples = 0;
    for chunk in specs.chunks(300) {
        let mut body = Vec::new();
        for r in workload::backfill(chunk, end - 86_400_000, end, 100_000) {
            samples += r.series.iter().map(|s| s.samples.len()).sum::<usize>();
            exposition(&mut body, &r, false);
        }
        ureq::post(&format!("{}/api/v1/import/prometheus", vm.url))
            .send_bytes(&body)
            .expect("import");
    }
    measure(
        pid,
        samples,
        || {
            ureq::get(&format!("{}/internal/force_flush", vm.url))
                .call()
                .expect("force flush");
        },
        || {
            let _ = ureq::get(&format!("{}/api/v1/status/tsdb", vm.url)).call();
        },
    )
}

/// RSS of `pid` after ingest, its peak during `flush`, 5 s after, and settled: after 200
/// `touch` calls and 12 s more, what a process that served and then went idle keeps.
fn measure(pid: u32, samples: usize, flush: impl FnOnce(), mut touch: impl FnMut()) -> Figures {
    std::thread::sleep(Duration::from_secs(3));
    let after_ingest = status_mib(pid, "VmRSS:");
    reset_peak(pid);
    flush();
    let peak_flush = status_mib(pid, "VmHWM:");
    std::thread::sleep(Duration::from_secs(5));
    let after_flush = status_mib(pid, "VmRSS:");
    for _ in 0..200 {
        touch();
    }
    std::thread::sleep(Duration::from_secs(12));
    // What the settled RSS is made of: the process' own memory (heap, stacks) and the
    // pages of files it maps (segments, indexes) that it has touched.
    eprintln!(
        "pid {pid} settled: anonymous {:.0} MiB, file-backed {:.0} MiB, threads {}",
        status_mib(pid, "RssAnon:"),
        status_mib(pid, "RssFile:"),
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .unwrap_or("?")
            .trim()
    );
    for (name, kib) in mappings(pid).into_iter().take(10) {
        eprintln!("  {kib:>8} KiB resident of {name}");
    }
    Figures {
        samples,
        after_ingest,
        peak_flush,
        after_flush,
        settled: status_mib(pid, "VmRSS:"),
    }
}

fn main() {
    let scale: f64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1.0);
    let tmp = tempfile::tempdir().expect("tempdir");
    let ours = iocdb(scale, &tmp.path().join("iocdb"));
    if std::env::args().nth(2).as_deref() == Some("iocdb") {
        println!(
            "iocdb: {} samples, RSS after ingest {:.0} MiB, peak during flush {:.0} MiB, \
             5 s after {:.0} MiB, settled {:.0} MiB",
            ours.samples, ours.after_ingest, ours.peak_flush, ours.after_flush, ours.settled
        );
        return;
    }
    let theirs = victoria_metrics(scale, &tmp.path().join("vm"));
    println!(
        "| system | samples | RSS after ingest | peak during flush | 5 s after flush | settled |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, f) in [("iocdb", &ours), ("VictoriaMetrics", &theirs)] {
        println!(
            "| {name} | {} | {:.0} MiB | {:.0} MiB | {:.0} MiB | {:.0} MiB |",
            f.samples, f.after_ingest, f.peak_flush, f.after_flush, f.settled
        );
    }
    println!(
        "\niocdb / VictoriaMetrics: {:.2}× 5 s after the flush, {:.2}× settled",
        ours.after_flush / theirs.after_flush,
        ours.settled / theirs.settled
    );
}
