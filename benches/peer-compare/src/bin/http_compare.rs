//! The fair comparison over the wire: iocdb, VictoriaMetrics and Prometheus, one at a time,
//! each loaded by Prometheus remote write over HTTP with the same pre-encoded batches (a day
//! of the province workload, in time order, as a Prometheus agent or vmagent sends it) and
//! asked the dashboard queries of WORKLOAD.md through the same Prometheus HTTP API.
//!
//! Reports: ingest samples/s with 1 and 4 senders and samples per server CPU-second (from
//! `/proc/PID/stat`); each query's p50 / p99; freshness (a write acknowledged → visible to
//! an instant query); and how many points differ from Prometheus' answers.
//!
//! Usage: `http_compare SCALE DAYS REPEATS` (e.g. `0.1 1 20`). Needs the release `iocdb`
//! (`cargo build --release -p iocdb-server`), `victoria-metrics` and `prometheus` on PATH.

// JSON values index to `Null` when a key is missing; they cannot panic.
#![allow(clippy::indexing_slicing)]

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use iocdb_benches::dashboard::{self, QueryKind};
use iocdb_benches::{report, workload};
use iocdb_engine::WriteRequest;
use iocdb_peer_compare::answers::{Answer, differences, query_range};
use iocdb_peer_compare::peers::{
    self, Peer, cpu_seconds, free_port, post_remote_write as post, wait_ready,
};
use iocdb_proto::prompb;
use prost::Message;

/// Samples per remote-write request.
const BATCH_SAMPLES: usize = 10_000;

/// One pre-encoded remote-write request.
struct Batch {
    namespace: String,
    body: Vec<u8>,
    samples: usize,
}

fn encode(r: &WriteRequest) -> Batch {
    Batch {
        namespace: r.namespace.clone(),
        body: iocdb_peer_compare::peers::remote_write_body(r),
        samples: r.series.iter().map(|s| s.samples.len()).sum(),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum System {
    Iocdb,
    IocdbInterval,
    Victoria,
    Prometheus,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Iocdb => "iocdb (fsync always)",
            System::IocdbInterval => "iocdb (fsync every 100 ms)",
            System::Victoria => "VictoriaMetrics",
            System::Prometheus => "Prometheus",
        }
    }

    fn start(self, dir: &std::path::Path) -> Peer {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let quiet = |c: &mut Command| {
            c.stdout(Stdio::null()).stderr(Stdio::null());
        };
        let (mut cmd, ready) = match self {
            System::Iocdb | System::IocdbInterval => {
                let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../target/release/iocdb");
                let mut c = Command::new(bin);
                c.args(["serve", "--listen", "127.0.0.1:0", "--http-listen"])
                    .arg(format!("127.0.0.1:{port}"))
                    .arg("--data-dir")
                    .arg(dir)
                    .env("IOCDB_LOG", "warn");
                if self == System::IocdbInterval {
                    c.args(["--fsync", "interval"]);
                }
                (c, format!("{url}/-/ready"))
            }
            System::Victoria => {
                return peers::victoria_metrics(
                    dir,
                    &["-search.latencyOffset=0s", "-search.disableCache"],
                );
            }
            System::Prometheus => return peers::prometheus(dir),
        };
        quiet(&mut cmd);
        let peer = Peer {
            name: self.name(),
            child: cmd
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", self.name())),
            url,
        };
        wait_ready(&ready, peer.name);
        peer
    }

    /// Where a namespace's data is written and queried.
    fn base(self, peer: &Peer, namespace: &str) -> String {
        match self {
            System::Iocdb | System::IocdbInterval => format!("{}/ns/{namespace}", peer.url),
            _ => peer.url.clone(),
        }
    }
}

/// Sends every batch with `senders` concurrent senders: (wall time, server CPU seconds).
fn ingest(system: System, peer: &Peer, batches: &[Batch], senders: usize) -> (Duration, f64) {
    let next = AtomicUsize::new(0);
    let cpu0 = cpu_seconds(peer.child.id());
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..senders {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(b) = batches.get(i) else { break };
                    post(
                        &format!("{}/api/v1/write", system.base(peer, &b.namespace)),
                        &b.body,
                    );
                }
            });
        }
    });
    (t0.elapsed(), cpu_seconds(peer.child.id()) - cpu0)
}

/// Acknowledged write → visible to an instant query, `n` times.
fn freshness(system: System, peer: &Peer, n: usize) -> Vec<Duration> {
    let base = system.base(peer, "freshness");
    (0..n)
        .map(|i| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let labels = vec![
                prompb::Label {
                    name: "__name__".into(),
                    value: "freshness_probe".into(),
                },
                prompb::Label {
                    name: "i".into(),
                    value: i.to_string(),
                },
            ];
            let body = prompb::WriteRequest {
                timeseries: vec![prompb::TimeSeries {
                    labels,
                    samples: vec![prompb::Sample {
                        value: 1.0,
                        timestamp: now,
                    }],
                    histograms: vec![],
                }],
                metadata: vec![],
            }
            .encode_to_vec();
            post(
                &format!("{base}/api/v1/write"),
                &snap::raw::Encoder::new()
                    .compress_vec(&body)
                    .expect("snappy"),
            );
            let acked = Instant::now();
            let query = format!("freshness_probe{{i=\"{i}\"}}");
            let deadline = acked + Duration::from_secs(30);
            loop {
                let answer = ureq::get(&format!("{base}/api/v1/query"))
                    .query("query", &query)
                    .query("time", &format!("{}", (now + 1) as f64 / 1000.0))
                    .query("nocache", "1")
                    .call()
                    .ok()
                    .and_then(|r| r.into_string().ok())
                    .unwrap_or_default();
                let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
                if v["data"]["result"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())
                {
                    return acked.elapsed();
                }
                if Instant::now() > deadline {
                    return Duration::from_secs(30);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
        .collect()
}

struct Figures {
    rates: Vec<(usize, f64, f64)>,
    fresh: Vec<Duration>,
    queries: Vec<(Vec<Duration>, Answer)>,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let scale: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0.1);
    let days: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let repeats: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let end = workload::drive::day_start() + 86_400_000;
    let start = end - days * 86_400_000;
    let now = end - 3_600_000;
    let specs = workload::series(scale);
    let t0 = Instant::now();
    let batches: Vec<Batch> = workload::batches(&specs, start, end, BATCH_SAMPLES)
        .iter()
        .map(encode)
        .collect();
    let samples: usize = batches.iter().map(|b| b.samples).sum();
    let bytes: usize = batches.iter().map(|b| b.body.len()).sum();
    eprintln!(
        "encoded {samples} samples of {} series in {} requests ({:.1} MB snappy) in {:.1} s",
        specs.len(),
        batches.len(),
        bytes as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );
    let queries: Vec<_> = dashboard::queries(now)
        .into_iter()
        .filter_map(|q| match q.kind {
            QueryKind::Range(rq) => Some((q.name, q.promql, rq)),
            QueryKind::Stale { .. } => None,
        })
        .collect();
    // SYSTEMS=iocdb,vm,prometheus picks some (for profiling one of them).
    let systems = peers::chosen(&[
        (System::Iocdb, "iocdb"),
        (System::IocdbInterval, "iocdb-interval"),
        (System::Victoria, "vm"),
        (System::Prometheus, "prometheus"),
    ]);
    let mut figures: Vec<Figures> = Vec::new();
    for &system in &systems {
        let mut rates = Vec::new();
        let mut kept = None;
        for senders in [1, 4] {
            let dir = tempfile::tempdir().expect("tempdir");
            let peer = system.start(dir.path());
            let (wall, cpu) = ingest(system, &peer, &batches, senders);
            eprintln!(
                "{}: {senders} senders, {:.2} M samples/s, {:.1} CPU-s",
                system.name(),
                samples as f64 / wall.as_secs_f64() / 1e6,
                cpu
            );
            rates.push((
                senders,
                samples as f64 / wall.as_secs_f64(),
                samples as f64 / cpu,
            ));
            kept = Some((dir, peer));
        }
        let Some((_dir, peer)) = kept else { continue };
        // Let background work settle (VictoriaMetrics makes recent rows searchable within
        // a second) before timing queries.
        std::thread::sleep(Duration::from_secs(2));
        let fresh = freshness(system, &peer, 20);
        let mut per_query = Vec::new();
        for (_, promql, rq) in &queries {
            let base = system.base(&peer, &rq.namespace);
            let mut times = Vec::new();
            let mut answer = Answer::new();
            for _ in 0..repeats {
                let (a, t) = query_range(&base, promql, rq.start, rq.end, rq.step);
                answer = a;
                times.push(t);
            }
            per_query.push((times, answer));
        }
        figures.push(Figures {
            rates,
            fresh,
            queries: per_query,
        });
    }

    println!(
        "×{scale} over {days} d: {samples} samples, {} series, {} remote-write requests of ≤{BATCH_SAMPLES} samples ({:.1} MB snappy); one system at a time on this machine.\n",
        specs.len(),
        batches.len(),
        bytes as f64 / 1e6
    );
    println!(
        "| system | 1 sender, M samples/s | 4 senders, M samples/s | M samples per server CPU-s (1 / 4) | freshness p50 / p99 |"
    );
    println!("|---|---|---|---|---|");
    for (system, f) in systems.iter().zip(&figures) {
        let r = |i: usize| f.rates.get(i).copied().unwrap_or((0, f64::NAN, f64::NAN));
        let mut fresh = f.fresh.clone();
        println!(
            "| {} | {:.2} | {:.2} | {:.2} / {:.2} | {:.1} / {:.1} ms |",
            system.name(),
            r(0).1 / 1e6,
            r(1).1 / 1e6,
            r(0).2 / 1e6,
            r(1).2 / 1e6,
            report::percentile_ms(&mut fresh, 0.5),
            report::percentile_ms(&mut fresh, 0.99),
        );
    }
    println!(
        "\nQuery latency over HTTP, p50 / p99 over {repeats} runs (one client), and points differing from Prometheus' answer:\n"
    );
    let header: Vec<&str> = systems.iter().map(|s| s.name()).collect();
    println!(
        "| query | {} | differing from Prometheus |",
        header.join(" | ")
    );
    println!("|---|{}---|", "---|".repeat(systems.len()));
    let prom = systems.iter().position(|s| *s == System::Prometheus);
    let mut failed = false;
    for (qi, (name, _, _)) in queries.iter().enumerate() {
        let cells: Vec<String> = figures
            .iter()
            .map(|f| {
                let mut t = f.queries[qi].0.clone();
                format!(
                    "{:.2} / {:.2} ms",
                    report::percentile_ms(&mut t, 0.5),
                    report::percentile_ms(&mut t, 0.99)
                )
            })
            .collect();
        let diffs: Vec<String> = match prom.and_then(|p| figures.get(p)) {
            Some(p) => figures
                .iter()
                .zip(&systems)
                .filter(|(_, s)| **s != System::Prometheus)
                .map(|(f, s)| {
                    let d = differences(&f.queries[qi].1, &p.queries[qi].1);
                    if matches!(s, System::Iocdb | System::IocdbInterval) && d > 0 {
                        failed = true;
                    }
                    format!("{}: {d}", s.name())
                })
                .collect(),
            None => vec![],
        };
        println!("| {name} | {} | {} |", cells.join(" | "), diffs.join(", "));
    }
    if failed {
        eprintln!("iocdb's answers differ from Prometheus'");
        std::process::exit(1);
    }
}
