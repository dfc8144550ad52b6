//! Side by side with the peers: loads the same province workload into iocdb (in-process),
//! VictoriaMetrics and Prometheus (Debian packages, run on 127.0.0.1 from temporary
//! directories), runs the dashboard queries of WORKLOAD.md on each, and reports latency and
//! whether iocdb's answers equal Prometheus' within float tolerance.
//!
//! Usage: `peer_compare SCALE DAYS REPEATS` (e.g. `0.1 1 20`). Needs `victoria-metrics`,
//! `prometheus` and `promtool` on PATH. Exits non-zero when an answer differs from
//! Prometheus'. `PEERS=vm` leaves Prometheus out (its block building is slow at ×1).

// JSON values index to `Null` when a key is missing; they cannot panic.
#![allow(clippy::indexing_slicing)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use iocdb_benches::dashboard::{self, QueryKind};
use iocdb_benches::{report, workload};
use iocdb_engine::{Engine, FsyncPolicy, Options, Sample, WriteRequest};
use iocdb_peer_compare::answers::{Answer, differences, query_range as peer_query, series_key};
use iocdb_peer_compare::peers::{
    Peer, exposition, free_port, spawn_peer, victoria_metrics, wait_ready,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn iocdb_answer(engine: &Engine, q: &iocdb_engine::RangeQuery) -> (Answer, Duration) {
    let t = Instant::now();
    let res = engine.query_range(q).expect("query");
    let elapsed = t.elapsed();
    let mut out = Answer::new();
    for s in res.series {
        let labels: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        let key = series_key(labels);
        out.insert(key, s.points.iter().map(|p: &Sample| (p.t, p.v)).collect());
    }
    (out, elapsed)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let scale: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0.1);
    let days: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let repeats: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let tmp = tempfile::tempdir().expect("tempdir");
    let end = report::day_start() + 86_400_000;
    let start = end - days * 86_400_000;
    // Queries are evaluated an hour before the data ends, on an hour boundary, so every
    // step grid is aligned alike in all three systems.
    let now = end - 3_600_000;

    let engine = Engine::open(
        tmp.path().join("iocdb"),
        Options {
            fsync: FsyncPolicy::Interval(Duration::from_millis(200)),
            ..Options::default()
        },
    )
    .expect("open");
    let vm = victoria_metrics(
        &tmp.path().join("vm"),
        &["-search.latencyOffset=0s", "-search.disableCache"],
    );

    let with_prometheus = std::env::var("PEERS").map_or(true, |p| p.contains("prometheus"));
    let om_path = tmp.path().join("data.om");
    let mut om = std::io::BufWriter::new(std::fs::File::create(&om_path).expect("om file"));
    let specs = workload::series(scale);
    let mut samples = 0u64;
    let t0 = Instant::now();
    let mut current_family = String::new();
    for chunk in specs.chunks(300) {
        let mut body = Vec::new();
        for r in workload::backfill(chunk, start, end, 100_000) {
            exposition(&mut body, &r, false);
            let mut text = Vec::new();
            for s in &r.series {
                let name = s
                    .labels
                    .iter()
                    .find(|l| l.name == "__name__")
                    .map_or("", |l| l.value.as_str())
                    .to_owned();
                if name != current_family {
                    let _ = writeln!(text, "# TYPE {name} gauge");
                    current_family = name;
                }
                exposition(
                    &mut text,
                    &WriteRequest {
                        namespace: String::new(),
                        series: vec![s.clone()],
                    },
                    true,
                );
            }
            if with_prometheus {
                let _ = om.write_all(&text);
            }
            samples += engine.write(r).expect("write").accepted as u64;
        }
        ureq::post(&format!("{}/api/v1/import/prometheus", vm.url))
            .send_bytes(&body)
            .expect("import into VictoriaMetrics");
    }
    let _ = writeln!(om, "# EOF");
    drop(om);
    engine.flush().expect("flush");
    let _ = ureq::get(&format!("{}/internal/force_flush", vm.url)).call();
    eprintln!(
        "loaded {samples} samples into iocdb and VictoriaMetrics in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let prom = with_prometheus.then(|| start_prometheus(tmp.path(), &om_path));

    println!(
        "×{scale} over {days} d, {samples} samples; p50 / p99 over {repeats} runs, one client; iocdb in-process, the peers over HTTP (VictoriaMetrics with its result cache off).\n"
    );
    println!(
        "| query | iocdb p50 / p99 | VictoriaMetrics p50 / p99 | Prometheus p50 / p99 | points differing from Prometheus | from VictoriaMetrics |"
    );
    println!("|---|---|---|---|---|---|");
    let mut failed = false;
    for q in dashboard::queries(now) {
        let QueryKind::Range(rq) = &q.kind else {
            continue;
        };
        let mut times: [Vec<Duration>; 3] = Default::default();
        let (mut ours, mut theirs_vm, mut theirs_prom) =
            (Answer::new(), Answer::new(), Answer::new());
        for _ in 0..repeats {
            let (a, t) = iocdb_answer(&engine, rq);
            ours = a;
            times[0].push(t);
            let (a, t) = peer_query(&vm.url, &q.promql, rq.start, rq.end, rq.step);
            theirs_vm = a;
            times[1].push(t);
            if let Some(prom) = &prom {
                let (a, t) = peer_query(&prom.url, &q.promql, rq.start, rq.end, rq.step);
                theirs_prom = a;
                times[2].push(t);
            }
        }
        let d_vm = differences(&ours, &theirs_vm);
        let d_prom = prom.as_ref().map(|_| differences(&ours, &theirs_prom));
        failed |= d_prom.is_some_and(|d| d > 0);
        let [a, b, c] = &mut times;
        let prom_cells = match d_prom {
            Some(d) => format!(
                "{:.2} / {:.2} ms | {d} of {}",
                report::percentile_ms(c, 0.5),
                report::percentile_ms(c, 0.99),
                theirs_prom.values().map(Vec::len).sum::<usize>()
            ),
            None => "— | —".to_owned(),
        };
        println!(
            "| {} | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {prom_cells} | {d_vm} |",
            q.name,
            report::percentile_ms(a, 0.5),
            report::percentile_ms(a, 0.99),
            report::percentile_ms(b, 0.5),
            report::percentile_ms(b, 0.99),
        );
    }
    if failed {
        eprintln!("iocdb's answers differ from Prometheus'");
        std::process::exit(1);
    }
}

/// Builds Prometheus blocks from the OpenMetrics file with promtool and starts Prometheus.
fn start_prometheus(tmp: &std::path::Path, om_path: &std::path::Path) -> Peer {
    let t0 = Instant::now();
    let prom_dir = tmp.join("prometheus");
    let status = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(om_path)
        .arg(&prom_dir)
        .stdout(Stdio::null())
        .status()
        .expect("promtool");
    assert!(status.success(), "promtool failed to create blocks");
    let _ = std::fs::remove_file(om_path);
    let cfg = tmp.join("prometheus.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 1h\n").expect("config");
    let prom_port = free_port();
    let prom = Peer {
        name: "Prometheus",
        child: spawn_peer(
            Command::new("prometheus")
                .arg(format!("--config.file={}", cfg.display()))
                .arg(format!("--storage.tsdb.path={}", prom_dir.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
                .args(["--storage.tsdb.retention.time=100y", "--log.level=error"])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        ),
        url: format!("http://127.0.0.1:{prom_port}"),
    };
    wait_ready(&format!("{}/-/ready", prom.url), prom.name);
    eprintln!(
        "Prometheus blocks built and loaded in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    prom
}
