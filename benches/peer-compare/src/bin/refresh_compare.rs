//! Dashboards refreshed in real time over the wire: iocdb, VictoriaMetrics and Prometheus,
//! one at a time, each with its defaults — iocdb's result cache; VictoriaMetrics' rollup
//! result cache (which leaves out the last 5 minutes, `-search.cacheTimestampOffset`, and
//! hides the newest 30 s, `-search.latencyOffset`); Prometheus has no cache.
//!
//! Each system is sent by remote write the same spooled day of the province's live feed (late
//! namespace, silent sources and odd camera values included) ending when the run began, then
//! the feed from there up to the wall clock, and then plays REFRESHES refreshes 5 s apart in
//! real time with one client and REFRESHES more with CLIENTS clients: each refresh sends the
//! samples that fell due, then every client asks every range query of WORKLOAD.md through
//! `/api/v1/query_range` with its window ending at now, aligned to its step as Grafana aligns
//! it. Reports each query's first ask (nothing cached) and its refreshes' p50 / p99, and the
//! server's CPU per refresh.
//!
//! The systems run at different wall-clock times, so their answers are not compared here
//! (`http_compare` compares answers on identical data).
//!
//! Usage: `refresh_compare SCALE REFRESHES CLIENTS` (e.g. `1.0 30 8`). Needs the release
//! `iocdb` (`cargo build --release -p iocdb-server`), `victoria-metrics` and `prometheus`
//! on PATH. `SYSTEMS=iocdb,vm,prometheus` picks some.

use std::time::{Duration, Instant};

use iocdb_benches::dashboard::{self, QueryKind};
use iocdb_benches::workload::live::Live;
use iocdb_benches::{report, workload};
use iocdb_engine::WriteRequest;
use iocdb_peer_compare::answers::fetch_range;
use iocdb_peer_compare::peers::{self, Peer, System, cpu_seconds, post_remote_write as post};
use iocdb_peer_compare::spool::{Batch, Spool};

const DAY: i64 = 86_400_000;
/// How often a dashboard refreshes.
const REFRESH: Duration = Duration::from_secs(5);
/// The feed is cut into requests of this much time (≈ 40 k samples at ×1).
const SLICE_MS: i64 = 15_000;

/// Starts `system` on `dir` with its defaults.
fn start(system: System, dir: &std::path::Path) -> Peer {
    match system {
        System::Iocdb => peers::iocdb(dir, &[]).peer,
        System::Victoria => peers::victoria_metrics(dir, &[]),
        System::Prometheus => peers::prometheus(dir),
    }
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The feed's requests from where `live` stands up to `until`, a slice of time at a time.
fn feed(live: &mut Live, from: i64, until: i64) -> impl Iterator<Item = WriteRequest> + '_ {
    let mut t = from;
    std::iter::from_fn(move || {
        (t < until).then(|| {
            t = (t + SLICE_MS).min(until);
            live.due(t)
        })
    })
    .flatten()
}

/// A range query of the dashboard: name, namespace, PromQL, span, step.
struct Panel {
    name: &'static str,
    namespace: String,
    promql: String,
    span: i64,
    step: i64,
}

/// One phase's timings, per panel.
struct Phase {
    /// The first refresh's ask (one client's).
    first: Vec<Option<Duration>>,
    /// Every client's asks of every refresh after the first.
    again: Vec<Vec<Duration>>,
    /// Asks that failed or did not answer "success".
    refused: usize,
    /// Server CPU seconds per refresh.
    cpu_per_refresh: f64,
    /// Refreshes that began late because the one before took over 5 s.
    overran: usize,
}

/// Plays `refreshes` refreshes 5 s apart with `clients` clients.
fn play(
    system: System,
    peer: &Peer,
    live: &mut Live,
    sent_until: &mut i64,
    panels: &[Panel],
    refreshes: usize,
    clients: usize,
) -> Phase {
    let mut phase = Phase {
        first: vec![None; panels.len()],
        again: vec![Vec::new(); panels.len()],
        refused: 0,
        cpu_per_refresh: 0.0,
        overran: 0,
    };
    let cpu0 = cpu_seconds(peer.child.id());
    let mut tick = Instant::now();
    for r in 0..refreshes {
        match tick.checked_duration_since(Instant::now()) {
            Some(wait) => std::thread::sleep(wait),
            None if r > 0 => phase.overran += 1,
            None => {}
        }
        tick += REFRESH;
        let now = wall_ms();
        for req in feed(live, *sent_until, now) {
            let b = Batch::of(&req);
            post(
                &format!("{}/api/v1/write", system.base(peer, &b.namespace)),
                &b.body,
            );
        }
        *sent_until = now;
        let asks: Vec<Vec<Option<Duration>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..clients)
                .map(|_| {
                    s.spawn(|| {
                        panels
                            .iter()
                            .map(|p| {
                                let to = now / p.step * p.step;
                                let base = system.base(peer, &p.namespace);
                                // Timed to the answer's last byte; not parsed, so that
                                // clients do not take CPU from the server they time.
                                fetch_range(&base, &p.promql, (to - p.span, to, p.step), false)
                                    .ok()
                                    .filter(|(body, _)| body.contains("\"success\""))
                                    .map(|(_, t)| t)
                            })
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("client"))
                .collect()
        });
        for client in asks {
            for (i, t) in client.into_iter().enumerate() {
                let Some(t) = t else {
                    phase.refused += 1;
                    continue;
                };
                let (first, again) = (phase.first.get_mut(i), phase.again.get_mut(i));
                match (r, first, again) {
                    (0, Some(first), _) => *first = first.or(Some(t)),
                    (_, _, Some(again)) => again.push(t),
                    _ => {}
                }
            }
        }
    }
    phase.cpu_per_refresh = (cpu_seconds(peer.child.id()) - cpu0) / refreshes.max(1) as f64;
    phase
}

fn main() {
    let mut args = std::env::args().skip(1);
    let scale: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1.0);
    let refreshes: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);
    let specs = workload::series(scale);
    let history_end = wall_ms();
    let history_start = history_end - DAY;
    let origin = history_start - history_start.rem_euclid(DAY);
    let mut live = Live::new(specs.clone(), origin, history_start);
    let spool_dir = tempfile::tempdir().expect("tempdir");
    let (spool, samples) = Spool::encode(
        spool_dir.path().join("requests"),
        feed(&mut live, history_start, history_end),
        specs.len(),
    );
    let panels: Vec<Panel> = dashboard::queries(history_end)
        .into_iter()
        .filter_map(|q| match q.kind {
            QueryKind::Range(rq) => Some(Panel {
                name: q.name,
                namespace: rq.namespace,
                promql: q.promql,
                span: rq.end - rq.start,
                step: rq.step,
            }),
            QueryKind::Stale { .. } => None,
        })
        .collect();
    let systems = peers::chosen(&System::ALL);
    let mut results = Vec::new();
    for &system in &systems {
        let dir = tempfile::tempdir().expect("tempdir");
        let peer = start(system, dir.path());
        let t = Instant::now();
        spool.send(|ns| system.base(&peer, ns));
        let load_s = t.elapsed().as_secs_f64();
        // Each system continues the same feed from the end of the spooled day.
        let mut own = live.clone();
        let mut sent_until = history_end;
        let [one, many] = [1, clients].map(|n| {
            play(
                system,
                &peer,
                &mut own,
                &mut sent_until,
                &panels,
                refreshes,
                n,
            )
        });
        eprintln!(
            "{}: loaded in {load_s:.0} s, refreshes refused {} / {}, overran {} / {}",
            system.name(),
            one.refused,
            many.refused,
            one.overran,
            many.overran
        );
        results.push((system, load_s, one, many));
    }

    println!(
        "×{scale}: a day of the live feed ({samples} samples, {} series, {} remote-write requests), then {refreshes} refreshes 5 s apart in real time with 1 client and {refreshes} with {clients}; one system at a time, each with its defaults.\n",
        specs.len(),
        spool.requests
    );
    println!(
        "Loaded in: {}. Server CPU per refresh (1 / {clients} clients): {}. Refreshes that overran 5 s: {}. Asks refused: {}.\n",
        results
            .iter()
            .map(|(s, l, ..)| format!("{} {l:.0} s", s.name()))
            .collect::<Vec<_>>()
            .join(", "),
        results
            .iter()
            .map(|(s, _, one, many)| format!(
                "{} {:.0} / {:.0} ms",
                s.name(),
                one.cpu_per_refresh * 1e3,
                many.cpu_per_refresh * 1e3
            ))
            .collect::<Vec<_>>()
            .join(", "),
        results
            .iter()
            .map(|(s, _, one, many)| format!("{} {} / {}", s.name(), one.overran, many.overran))
            .collect::<Vec<_>>()
            .join(", "),
        results
            .iter()
            .map(|(s, _, one, many)| format!("{} {} / {}", s.name(), one.refused, many.refused))
            .collect::<Vec<_>>()
            .join(", "),
    );
    println!(
        "| query | {} |",
        results
            .iter()
            .map(|(s, ..)| format!(
                "{}: first / 1 client p50 / p99 / {clients} clients p50 / p99 (ms)",
                s.name()
            ))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---|".repeat(results.len()));
    for (i, p) in panels.iter().enumerate() {
        let cells: Vec<String> = results
            .iter()
            .map(|(_, _, one, many)| {
                let first = one.first.get(i).copied().flatten();
                let mut a = one.again.get(i).cloned().unwrap_or_default();
                let mut b = many.again.get(i).cloned().unwrap_or_default();
                format!(
                    "{:.1} / {:.2} / {:.2} / {:.2} / {:.2}",
                    first.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
                    report::percentile_ms(&mut a, 0.5),
                    report::percentile_ms(&mut a, 0.99),
                    report::percentile_ms(&mut b, 0.5),
                    report::percentile_ms(&mut b, 0.99)
                )
            })
            .collect();
        println!("| {} | {} |", p.name, cells.join(" | "));
    }
}
