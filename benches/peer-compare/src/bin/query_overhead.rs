//! The fixed cost of a query, over the wire: iocdb (HTTP and gRPC), VictoriaMetrics and
//! Prometheus (HTTP), all running at once with the same small data — 100 series, a day at
//! one sample a minute, by remote write — and asked the same small queries in interleaved
//! rounds (each round asks every system once, so the machine's noise falls on all alike):
//! a selector that matches nothing (the whole cost is overhead), one series over 24 h at
//! 1 min, and `vector(1)` at an instant. Reports p50 / p99 per system and query.
//!
//! With a `SCALE` after the rounds, each system first also holds a day of the province
//! workload at that scale (`1.0`: 15,000 series, 22.7 M samples), so that what a query's
//! cost owes to the size of the store shows.
//!
//! Usage: `query_overhead ROUNDS [SCALE]` (e.g. `500 1.0`). Needs the release `iocdb` beside this binary
//! (`cargo build --release -p iocdb-server -p iocdb-peer-compare`), `victoria-metrics` and
//! `prometheus` on PATH (`SYSTEMS=iocdb` asks iocdb alone).

// JSON values index to `Null` when a key is missing, and the rounds index their own table.
#![allow(clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use iocdb_benches::workload;
use iocdb_engine::{Label, Sample, SeriesWrite, WriteRequest};
use iocdb_peer_compare::lean_grpc::LeanGrpc;
use iocdb_peer_compare::peers::{self, post_remote_write as post};
use iocdb_proto::v1;

const SERIES: usize = 100;
const PROBE_NAMESPACE: &str = "security";
const MINUTES: i64 = 1440;

fn probes(now: i64) -> Vec<u8> {
    let series = (0..SERIES)
        .map(|i| SeriesWrite {
            labels: vec![
                Label::new("__name__", "probe"),
                Label::new("i", i.to_string()),
            ],
            samples: (0..=MINUTES)
                .map(|m| {
                    Sample::new(
                        now - (MINUTES - m) * 60_000,
                        ((i as i64 * 31 + m) % 101) as f64,
                    )
                })
                .collect(),
        })
        .collect();
    peers::remote_write_body(&WriteRequest {
        namespace: String::new(),
        series,
    })
}

/// A day of the province workload at `scale`, ending at `end`, as remote-write bodies by
/// namespace — made an hour at a time, since a whole day of requests with their labels
/// would take gigabytes before compression.
fn province(scale: f64, end: i64) -> Vec<(String, Vec<u8>)> {
    let specs = workload::series(scale);
    (0..24)
        .flat_map(|h| {
            let from = end - 86_400_000 + h * 3_600_000;
            workload::batches(&specs, from, from + 3_600_000, 10_000)
        })
        .map(|r| (r.namespace.clone(), peers::remote_write_body(&r)))
        .collect()
}

/// One query over HTTP: its time, and how many result series it had.
fn http(agent: &ureq::Agent, base: &str, q: &Query) -> (Duration, usize) {
    let t = Instant::now();
    let req = match q.step {
        Some(step) => agent
            .get(&format!("{base}/api/v1/query_range"))
            .query("start", &(q.start as f64 / 1000.0).to_string())
            .query("end", &(q.end as f64 / 1000.0).to_string())
            .query("step", &(step as f64 / 1000.0).to_string()),
        None => agent
            .get(&format!("{base}/api/v1/query"))
            .query("time", &(q.end as f64 / 1000.0).to_string()),
    };
    let body = req
        .query("query", q.promql)
        .call()
        .unwrap_or_else(|e| panic!("{base}: {}: {e}", q.promql))
        .into_string()
        .expect("body");
    let elapsed = t.elapsed();
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    (
        elapsed,
        v["data"]["result"]
            .as_array()
            .map_or(usize::from(v["data"]["resultType"] == "scalar"), Vec::len),
    )
}

async fn grpc(
    client: &mut v1::query_client::QueryClient<tonic::transport::Channel>,
    q: &Query,
) -> (Duration, usize) {
    let t = Instant::now();
    let mut series = 0;
    let mut stream = match q.request() {
        Ask::Range(r) => client.range(r).await.expect("range").into_inner(),
        Ask::Instant(r) => client.instant(r).await.expect("instant").into_inner(),
    };
    while let Some(m) = stream.message().await.expect("answer") {
        series += answered(&m);
    }
    (t.elapsed(), series)
}

/// The same call as [`grpc`], through [`LeanGrpc`]: the request in one packet.
async fn lean(client: &mut LeanGrpc, q: &Query) -> (Duration, usize) {
    let t = Instant::now();
    let answer: Vec<v1::PromqlResponse> = match q.request() {
        Ask::Range(r) => client.call("/iocdb.v1.Query/Range", &r).await,
        Ask::Instant(r) => client.call("/iocdb.v1.Query/Instant", &r).await,
    }
    .expect("answer");
    (t.elapsed(), answer.iter().map(answered).sum())
}

/// The series (or scalar) one response message holds.
fn answered(m: &v1::PromqlResponse) -> usize {
    m.series.len() + usize::from(m.result_type == v1::promql_response::ResultType::Scalar as i32)
}

/// A query as its gRPC request.
enum Ask {
    Range(v1::PromqlRangeRequest),
    Instant(v1::InstantQueryRequest),
}

impl Query {
    fn request(&self) -> Ask {
        match self.step {
            Some(step) => Ask::Range(v1::PromqlRangeRequest {
                namespace: PROBE_NAMESPACE.into(),
                query: self.promql.into(),
                start_ms: self.start,
                end_ms: self.end,
                step_ms: step,
                ..Default::default()
            }),
            None => Ask::Instant(v1::InstantQueryRequest {
                namespace: PROBE_NAMESPACE.into(),
                query: self.promql.into(),
                time_ms: self.end,
                ..Default::default()
            }),
        }
    }
}

struct Query {
    name: &'static str,
    promql: &'static str,
    start: i64,
    end: i64,
    step: Option<i64>,
    series: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
    let scale: f64 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0.0);
    let only = std::env::var("SYSTEMS").unwrap_or_default();
    let dir = tempfile::tempdir().expect("dir");
    let now = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64)
        / 60_000
        * 60_000;
    let body = probes(now);
    let iocdb = peers::iocdb(&dir.path().join("iocdb"), &[]);
    // The probes share iocdb's largest namespace (cameras), so that its queries run beside
    // 6,000 other series, as the peers' run beside all of them.
    let mut http_systems: Vec<(&str, String)> =
        vec![("iocdb", format!("{}/ns/{PROBE_NAMESPACE}", iocdb.peer.url))];
    let mut peers = Vec::new();
    if only.is_empty() {
        let vm = peers::victoria_metrics(
            &dir.path().join("vm"),
            &["-search.latencyOffset=0s", "-search.disableCache"],
        );
        for peer in [vm, peers::prometheus(&dir.path().join("prometheus"))] {
            http_systems.push((peer.name, peer.url.clone()));
            peers.push(peer);
        }
    }
    let day = if scale > 0.0 {
        province(scale, now)
    } else {
        Vec::new()
    };
    for (name, url) in &http_systems {
        let t = Instant::now();
        for (ns, body) in &day {
            let base = match url.split_once("/ns/") {
                Some((root, _)) => format!("{root}/ns/{ns}"),
                None => url.clone(),
            };
            post(&format!("{base}/api/v1/write"), body);
        }
        if !day.is_empty() {
            eprintln!(
                "{name}: the province's day in {:.1} s",
                t.elapsed().as_secs_f64()
            );
        }
        post(&format!("{url}/api/v1/write"), &body);
        if *name == "VictoriaMetrics" {
            ureq::get(&format!("{url}/internal/force_flush"))
                .call()
                .expect("flush");
        }
    }
    let queries = [
        Query {
            name: "nothing matches, 1 h at 1 min",
            promql: "nothing_here",
            start: now - 3_600_000,
            end: now,
            step: Some(60_000),
            series: 0,
        },
        Query {
            name: "one series, 24 h at 1 min",
            promql: "probe{i=\"7\"}",
            start: now - 86_400_000,
            end: now,
            step: Some(60_000),
            series: 1,
        },
        Query {
            name: "vector(1), instant",
            promql: "vector(1)",
            start: now,
            end: now,
            step: None,
            series: 1,
        },
    ];
    let agent = ureq::AgentBuilder::new().build();
    let mut client = v1::query_client::QueryClient::connect(iocdb.grpc.clone())
        .await
        .expect("grpc");
    let mut lean_client = LeanGrpc::connect(&iocdb.grpc).await.expect("lean gRPC");
    // Warm every path (connections, caches, the first allocation of everything).
    for q in &queries {
        for (_, url) in &http_systems {
            let (_, n) = http(&agent, url, q);
            assert_eq!(n, q.series, "{url}: {}", q.promql);
        }
        let (_, n) = grpc(&mut client, q).await;
        assert_eq!(n, q.series, "gRPC: {}", q.promql);
        let (_, n) = lean(&mut lean_client, q).await;
        assert_eq!(n, q.series, "lean gRPC: {}", q.promql);
    }
    let idle: Option<u64> = std::env::var("IDLE_US").ok().and_then(|v| v.parse().ok());
    println!("{rounds} rounds; p50 / p99 ms");
    for q in &queries {
        let mut times: Vec<(String, Vec<Duration>)> = http_systems
            .iter()
            .map(|(n, _)| (format!("{n} HTTP"), Vec::new()))
            .collect();
        times.push(("iocdb gRPC".into(), Vec::new()));
        times.push(("iocdb gRPC, one packet".into(), Vec::new()));
        for _ in 0..rounds {
            for (k, (_, url)) in http_systems.iter().enumerate() {
                // GRPC_ONLY=1 leaves HTTP out, to profile the gRPC path alone.
                if std::env::var_os("GRPC_ONLY").is_none() {
                    times[k].1.push(http(&agent, url, q).0);
                }
            }
            // IDLE_US=N sleeps before each gRPC ask, so that iocdb alone wakes from idle
            // for each one as it does when the peers are asked in between.
            if let Some(us) = idle {
                std::thread::sleep(Duration::from_micros(us));
            }
            let last = times.len() - 1;
            times[last - 1].1.push(grpc(&mut client, q).await.0);
            if let Some(us) = idle {
                std::thread::sleep(Duration::from_micros(us));
            }
            times[last].1.push(lean(&mut lean_client, q).await.0);
        }
        print!("| {} |", q.name);
        for (name, mut t) in times {
            t.sort();
            print!(
                " {name} {:.3} / {:.3} |",
                percentile(&t, 0.5),
                percentile(&t, 0.99)
            );
        }
        println!();
    }
    // What an ask costs each server in CPU, which no client's own overhead can blur: each
    // path asked on its own, `CPU_ASKS` times (5,000 unless set), 200 µs apart so that the
    // server idles between asks as it does between a dashboard's, its process's CPU time
    // (user + system, every thread) read before and after.
    let asks: usize = std::env::var("CPU_ASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let mut pids: Vec<u32> = vec![iocdb.peer.child.id()];
    pids.extend(peers.iter().map(|p| p.child.id()));
    println!("server CPU per ask, µs ({asks} asks a path, one path at a time)");
    for q in &queries {
        print!("| {} |", q.name);
        for path in 0..http_systems.len() + 2 {
            // `pids` is in `http_systems`' order, iocdb first; both gRPC paths are iocdb's.
            let pid = pids.get(path).copied().unwrap_or(pids[0]);
            let before = peers::cpu_seconds(pid);
            for _ in 0..asks {
                match path.checked_sub(http_systems.len()) {
                    None => drop(http(&agent, &http_systems[path].1, q)),
                    Some(0) => drop(grpc(&mut client, q).await),
                    Some(_) => drop(lean(&mut lean_client, q).await),
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            let per_ask = (peers::cpu_seconds(pid) - before) / asks as f64 * 1e6;
            let name = match path.checked_sub(http_systems.len()) {
                None => format!("{} HTTP", http_systems[path].0),
                Some(0) => "iocdb gRPC".to_string(),
                Some(_) => "iocdb gRPC, one packet".to_string(),
            };
            print!(" {name} {per_ask:.1} |");
        }
        println!();
    }
    drop(peers);
}
