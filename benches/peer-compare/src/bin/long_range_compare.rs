//! Long-range panels over the wire: iocdb, VictoriaMetrics and Prometheus, one at a time,
//! each with its defaults (iocdb's hourly rollup tier and result cache, VictoriaMetrics'
//! rollup result cache), each loaded by Prometheus remote write with the same pre-encoded
//! batches (spooled to a temporary file) of DAYS of the province workload in time order, then asked the 7-, 30- and
//! 365-day panels through the Prometheus HTTP API: once with nothing cached, then REPEATS
//! times more as a dashboard's refreshes do (p50 / p99), and how many points differ from
//! Prometheus' answer.
//!
//! iocdb is flushed and compacted after loading (`Admin.Flush`, `Admin.Compact`), as its
//! background flush and compaction do with older data; VictoriaMetrics is flushed
//! (`/internal/force_flush`); Prometheus keeps what it has.
//!
//! Usage: `long_range_compare SCALE DAYS REPEATS` (e.g. `0.01 365 10`). Needs the release
//! `iocdb` (`cargo build --release -p iocdb-server`), `victoria-metrics` and `prometheus`
//! on PATH. `SYSTEMS=iocdb,vm,prometheus` picks some; `IOCDB_STORE=DIR` asks iocdb alone on
//! the store `year_report` kept in `DIR/data` (see `main`).

// JSON values index to `Null` when a key is missing; they cannot panic.
#![allow(clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use iocdb_benches::{report, workload};
use iocdb_peer_compare::answers::{Answer, ask_range, differences};
use iocdb_peer_compare::peers::{self, Peer, System};
use iocdb_peer_compare::spool::Spool;
use iocdb_proto::v1;

/// Samples per remote-write request.
const BATCH_SAMPLES: usize = 10_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

/// The panels: name, namespace, PromQL, span, step.
const PANELS: [(&str, &str, &str, i64, i64); 6] = [
    (
        "4 rate by agency, 7 d at 1 h",
        "procedures",
        "sum by (agency) (rate(dossiers_resolved_total[1h]))",
        7 * DAY,
        HOUR,
    ),
    (
        "6 p95 across hospitals, 30 d at 1 h",
        "health",
        "quantile(0.95, hospital_patients_waiting)",
        30 * DAY,
        HOUR,
    ),
    (
        "9 busiest camera hour, 30 d at 1 h",
        "security",
        "max(max_over_time(camera_people_count[1h]))",
        30 * DAY,
        HOUR,
    ),
    (
        "8 p95 across hospitals, 365 d at 1 d",
        "health",
        "quantile(0.95, hospital_patients_waiting)",
        365 * DAY,
        DAY,
    ),
    (
        "10 daily peak of guests by commune, 365 d at 1 d",
        "lodging",
        "sum by (commune) (max_over_time(lodging_guests[1d]))",
        365 * DAY,
        DAY,
    ),
    (
        "11 dossiers resolved per day, 365 d at 1 d",
        "procedures",
        "sum(increase(dossiers_resolved_total[1d]))",
        365 * DAY,
        DAY,
    ),
];

/// A running system: its process and where its gRPC admin listens (iocdb only).
struct Running {
    peer: Peer,
    grpc: Option<String>,
}

fn launch(system: System, dir: &std::path::Path) -> Running {
    match system {
        System::Iocdb => {
            let i = peers::iocdb(dir, &["--fsync", "interval"]);
            Running {
                peer: i.peer,
                grpc: Some(i.grpc),
            }
        }
        System::Victoria => Running {
            peer: peers::victoria_metrics(dir, &["-search.latencyOffset=0s"]),
            grpc: None,
        },
        System::Prometheus => Running {
            peer: peers::prometheus(dir),
            grpc: None,
        },
    }
}

/// What each system does with data once it is loaded, before queries.
fn settle(system: System, r: &Running) {
    match system {
        System::Iocdb => {
            let grpc = r.grpc.clone().expect("grpc");
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            runtime.block_on(async {
                let channel = tonic::transport::Channel::from_shared(grpc)
                    .expect("uri")
                    .connect()
                    .await
                    .expect("connect");
                let mut admin = v1::admin_client::AdminClient::new(channel);
                admin.flush(v1::FlushRequest {}).await.expect("flush");
                admin
                    .compact(v1::CompactRequest { before_ms: 0 })
                    .await
                    .expect("compact");
            });
        }
        System::Victoria => {
            let _ = ureq::get(&format!("{}/internal/force_flush", r.peer.url)).call();
            std::thread::sleep(Duration::from_secs(2));
        }
        System::Prometheus => {}
    }
}

/// `GET query_range` as a dashboard sends it (no `nocache`: each system's cache is on).
fn ask(base: &str, promql: &str, start: i64, end: i64, step: i64) -> (Answer, Duration, bool) {
    match ask_range(base, promql, (start, end, step), false) {
        Ok((answer, t)) => (answer, t, true),
        Err((_, t)) => (Answer::new(), t, false),
    }
}

struct Figures {
    load_s: f64,
    /// Per panel: the first ask, the refreshes, the answer, whether every ask succeeded.
    panels: Vec<(Duration, Vec<Duration>, Answer, bool)>,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let scale: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0.01);
    let days: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(365);
    let repeats: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let end = workload::drive::day_start() + DAY;
    let start = end - days * DAY;
    let specs = workload::series(scale);
    // IOCDB_STORE=DIR: iocdb alone, serving the store `year_report` kept in DIR/data
    // (`IOCDB_YEAR_REPORT_DIR=DIR/data year_report SCALE DAYS …`, the same generated data):
    // a size whose loading over the wire would not fit a session, asked over the wire.
    let kept = std::env::var_os("IOCDB_STORE").map(std::path::PathBuf::from);
    let spool_dir = tempfile::tempdir().expect("tempdir");
    // Hour by hour, so that every system receives the data in time order; each hour's
    // requests are encoded and spooled before the next hour is generated (a day of the
    // province at ×1, generated at once, is 60 M label sets: more than this machine's memory).
    let spooled = kept.is_none().then(|| {
        let hours_from = (0..days * 24).map(|h| start + h * HOUR);
        let batches =
            hours_from.flat_map(|hour| workload::batches(&specs, hour, hour + HOUR, BATCH_SAMPLES));
        Spool::encode(spool_dir.path().join("requests"), batches, specs.len())
    });
    let samples = spooled.as_ref().map_or(0, |(_, n)| *n);
    let spool = spooled.map(|(spool, _)| spool);
    let systems = match kept {
        Some(_) => vec![System::Iocdb],
        None => peers::chosen(&System::ALL),
    };
    let mut figures = Vec::new();
    for &system in &systems {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = Instant::now();
        let running = launch(system, kept.as_deref().unwrap_or(dir.path()));
        if let Some(spool) = &spool {
            spool.send(|ns| system.base(&running.peer, ns));
            settle(system, &running);
        }
        let load_s = t.elapsed().as_secs_f64();
        eprintln!("{}: loaded and settled in {load_s:.0} s", system.name());
        let mut panels = Vec::new();
        for (_, ns, promql, span, step) in PANELS {
            let b = system.base(&running.peer, ns);
            let (answer, first, ok) = ask(&b, promql, end - span, end, step);
            let mut all_ok = ok;
            let mut again = Vec::new();
            for _ in 0..repeats {
                let (_, t, ok) = ask(&b, promql, end - span, end, step);
                all_ok &= ok;
                again.push(t);
            }
            // Each system's figures as it finishes: a long run's first systems are not lost
            // if a later one does not finish.
            let mut sorted = again.clone();
            eprintln!(
                "{}: {} first {:.1} ms, refresh p50 {:.2} / p99 {:.2} ms",
                system.name(),
                promql,
                first.as_secs_f64() * 1000.0,
                report::percentile_ms(&mut sorted, 0.5),
                report::percentile_ms(&mut sorted, 0.99)
            );
            panels.push((first, again, answer, all_ok));
        }
        figures.push(Figures { load_s, panels });
    }

    match &spool {
        Some(spool) => println!(
            "×{scale} over {days} d: {samples} samples, {} series, {} remote-write requests; one system at a time, each with its defaults (caches on).\n",
            specs.len(),
            spool.requests
        ),
        None => println!(
            "×{scale} over {days} d, {} series: iocdb alone on a store year_report wrote, with its defaults (cache on).\n",
            specs.len()
        ),
    }
    let names: Vec<&str> = systems.iter().map(|s| s.name()).collect();
    println!(
        "{}: {}\n",
        if spool.is_some() {
            "Loaded (and for iocdb flushed and compacted, for VictoriaMetrics flushed) in"
        } else {
            "Started on the kept store in"
        },
        systems
            .iter()
            .zip(&figures)
            .map(|(s, f)| format!("{} {:.0} s", s.name(), f.load_s))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| panel | {} | points differing from Prometheus |",
        names
            .iter()
            .map(|n| format!("{n}: first / refresh p50 / p99"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}---|", "---|".repeat(systems.len()));
    let prom = systems.iter().position(|s| *s == System::Prometheus);
    for (pi, (name, ..)) in PANELS.iter().enumerate() {
        let cells: Vec<String> = figures
            .iter()
            .map(|f| {
                let (first, again, _, ok) = &f.panels[pi];
                let mut again = again.clone();
                format!(
                    "{:.1} / {:.2} / {:.2} ms{}",
                    first.as_secs_f64() * 1000.0,
                    report::percentile_ms(&mut again, 0.5),
                    report::percentile_ms(&mut again, 0.99),
                    if *ok { "" } else { " (refused)" }
                )
            })
            .collect();
        let diffs: Vec<String> = match prom.and_then(|p| figures.get(p)) {
            Some(p) => figures
                .iter()
                .zip(&systems)
                .filter(|(_, s)| **s != System::Prometheus)
                .map(|(f, s)| {
                    format!(
                        "{}: {}",
                        s.name(),
                        differences(&f.panels[pi].2, &p.panels[pi].2)
                    )
                })
                .collect(),
            // Without Prometheus, what each answered, so that an empty answer shows.
            None => figures
                .iter()
                .zip(&systems)
                .map(|(f, s)| {
                    let answer = &f.panels[pi].2;
                    format!(
                        "no Prometheus; {}: {} series, {} points",
                        s.name(),
                        answer.len(),
                        answer.values().map(Vec::len).sum::<usize>()
                    )
                })
                .collect(),
        };
        println!("| {name} | {} | {} |", cells.join(" | "), diffs.join(", "));
    }
}
