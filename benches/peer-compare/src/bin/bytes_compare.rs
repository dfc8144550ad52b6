//! Bytes on disk per sample, iocdb against VictoriaMetrics on the same samples, each after
//! merging what it stores:
//!
//! - `bytes_compare province SCALE DAYS`: the province workload (WORKLOAD.md), backfilled;
//! - `bytes_compare node MINUTES`: a real node exporter scraped every second;
//! - `bytes_compare file PATH`: an exchange file kept from an earlier run
//!   (`IOCDB_KEEP_CAPTURE=PATH` keeps a run's file there), to compare builds on the same data.
//!
//! The samples go to a file in the Prometheus text format with millisecond timestamps; the
//! same file is imported into VictoriaMetrics (`/api/v1/import/prometheus`, then
//! `force_flush` and `force_merge`, waiting until its directory stops changing) and into
//! iocdb by its own CLI (`iocdb import --format promtool`, then `iocdb compact`), both on a
//! stopped or idle store. Reported: each data directory's bytes (every file: data, index,
//! WAL) divided by the samples, before and after merging. Needs `victoria-metrics` and
//! `prometheus-node-exporter` on PATH and the `iocdb` binary beside this one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use iocdb_benches::{report, workload};
use iocdb_peer_compare::peers::{
    Peer, exposition, free_port, spawn_peer, victoria_metrics, wait_ready,
};

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Writes the samples to `file`; returns how many.
fn province(file: &Path, scale: f64, days: i64) -> u64 {
    let end = report::day_start() + 86_400_000;
    let start = end - days * 86_400_000;
    let mut out = std::io::BufWriter::new(std::fs::File::create(file).expect("file"));
    let mut n = 0;
    for chunk in workload::series(scale).chunks(300) {
        for r in workload::backfill(chunk, start, end, 100_000) {
            let mut text = Vec::new();
            exposition(&mut text, &r, false);
            out.write_all(&text).expect("write");
            n += r.series.iter().map(|s| s.samples.len() as u64).sum::<u64>();
        }
    }
    n
}

/// Scrapes a node exporter every second for `minutes`, writing each scrape with its time.
fn node(file: &Path, minutes: u64) -> u64 {
    let port = free_port();
    let _exporter = Peer {
        name: "node exporter",
        child: spawn_peer(
            Command::new("prometheus-node-exporter")
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        ),
        url: format!("http://127.0.0.1:{port}"),
    };
    let url = format!("http://127.0.0.1:{port}/metrics");
    wait_ready(&url, "node exporter");
    let mut out = std::io::BufWriter::new(std::fs::File::create(file).expect("file"));
    let mut n = 0;
    let start = Instant::now();
    for k in 0..minutes * 60 {
        let due = start + Duration::from_secs(k);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let body = ureq::get(&url)
            .call()
            .expect("scrape")
            .into_string()
            .expect("text");
        for line in body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            writeln!(out, "{line} {t}").expect("write");
            n += 1;
        }
    }
    n
}

fn iocdb(args: &[&str]) {
    let bin = std::env::current_exe()
        .expect("exe")
        .with_file_name("iocdb");
    let out = Command::new(&bin)
        .args(args)
        .env("IOCDB_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (build it: cargo build --release)", bin.display()));
    assert!(
        out.status.success(),
        "iocdb {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until `dir` has kept its size for a few seconds (VictoriaMetrics merges in the
/// background), at most five minutes.
fn settled(dir: &Path) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last = (dir_bytes(dir), 0);
    while Instant::now() < deadline && last.1 < 3 {
        std::thread::sleep(Duration::from_secs(2));
        let now = dir_bytes(dir);
        last = if now == last.0 {
            (now, last.1 + 1)
        } else {
            (now, 0)
        };
    }
    last.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "province".into());
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("samples.txt");
    let (samples, label) = match what.as_str() {
        "file" => {
            let path = args.next().expect("bytes_compare file PATH");
            std::fs::copy(&path, &file).unwrap_or_else(|e| panic!("{path}: {e}"));
            let text = std::fs::read_to_string(&file).expect("read");
            let samples = text
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .count() as u64;
            (samples, format!("the samples of {path}"))
        }
        "node" => {
            let minutes: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(12);
            (
                node(&file, minutes),
                format!("node exporter scraped every 1 s for {minutes} min"),
            )
        }
        _ => {
            let scale: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0.1);
            let days: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
            (
                province(&file, scale, days),
                format!("province ×{scale}, {days} d"),
            )
        }
    };
    eprintln!("{samples} samples written to the exchange file");
    if let Some(keep) = std::env::var_os("IOCDB_KEEP_CAPTURE") {
        std::fs::copy(&file, &keep).expect("keep the capture");
    }

    let vm_dir = tmp.path().join("vm");
    let vm = victoria_metrics(&vm_dir, &[]);
    let body = std::fs::read(&file).expect("read");
    // In parts of about 16 MiB, cut at line ends.
    let mut rest: &[u8] = &body;
    while !rest.is_empty() {
        let mut cut = rest.len().min(16 << 20);
        while cut < rest.len() && rest.get(cut - 1) != Some(&b'\n') {
            cut += 1;
        }
        let (part, next) = rest.split_at(cut);
        ureq::post(&format!("{}/api/v1/import/prometheus", vm.url))
            .send_bytes(part)
            .expect("import into VictoriaMetrics");
        rest = next;
    }
    let _ = ureq::get(&format!("{}/internal/force_flush", vm.url)).call();
    let vm_flushed = settled(&vm_dir);
    let _ = ureq::get(&format!("{}/internal/force_merge", vm.url)).call();
    let vm_merged = settled(&vm_dir);
    drop(vm);

    let data: PathBuf = tmp.path().join("iocdb");
    let dir = data.to_str().expect("utf-8");
    iocdb(&[
        "import",
        "--data-dir",
        dir,
        "--format",
        "promtool",
        file.to_str().expect("utf-8"),
    ]);
    let ours_flushed = dir_bytes(&data);
    iocdb(&["compact", "--data-dir", dir]);
    let ours_merged = dir_bytes(&data);

    let per = |b: u64| b as f64 / samples.max(1) as f64;
    println!("{label}: {samples} samples.\n");
    println!("| | iocdb bytes/sample | VictoriaMetrics bytes/sample | iocdb / VictoriaMetrics |");
    println!("|---|---|---|---|");
    println!(
        "| stored (flushed) | {:.3} | {:.3} | {:.2} |",
        per(ours_flushed),
        per(vm_flushed),
        ours_flushed as f64 / vm_flushed.max(1) as f64
    );
    println!(
        "| merged (compacted / force_merge) | {:.3} | {:.3} | {:.2} |",
        per(ours_merged),
        per(vm_merged),
        ours_merged as f64 / vm_merged.max(1) as f64
    );
}
