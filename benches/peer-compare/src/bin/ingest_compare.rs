//! Ingest by labels over the wire, side by side: iocdb's remote write (fsync always, its
//! default, and every 100 ms), iocdb's unary gRPC `Write`, and VictoriaMetrics' remote write,
//! each sent the same pre-encoded batches of the province workload (live-shaped: one sample
//! per series entry, full label sets, ≤ 10,000 samples a request, in time order) by 1, 2
//! and 4 senders, each run on an empty directory.
//!
//! Reports, per system and sender count: samples/s, samples per server CPU-second (from
//! `/proc/PID/stat`) and the server's RSS 2 s after the last write (and, per run, the cores
//! the senders themselves used, which the server did not have); rounds alternate the
//! systems so that the machine's drift falls on all of them alike, and each iocdb figure is
//! also given over VictoriaMetrics' in the same round.
//!
//! Usage: `ingest_compare SCALE HOURS ROUNDS` (e.g. `1.0 6 2`), after `cargo build --release
//! -p iocdb-server -p iocdb-peer-compare`; needs `victoria-metrics` on PATH. `SYSTEMS` picks
//! some of `iocdb,iocdb-interval,iocdb-grpc,iocdb-grpc-lean,iocdb-grpc-zstd,iocdb-line,vm`
//! (`-lean`: gRPC `Write` sent by a bare HTTP/2 client that queues a call's frames together,
//! as grpc-go does, instead of tonic's; `-zstd`: the same client, each message
//! zstd-compressed before the clock starts, as the remote-write bodies are
//! snappy-compressed); `IOCDB_BEFORE=PATH` adds an `iocdb` binary of another build
//! (`before`, remote write, `before-grpc`, gRPC `Write`, `before-grpc-zstd`, and
//! `before-line`, line protocol; fsync always) to compare builds in one run. `SENDERS` picks
//! some of the sender counts (e.g. `4`; default `1,2,4`). Each sender keeps one connection
//! alive, as Prometheus' remote-write shards do (a gRPC sender its own channel; runs before
//! 2026-12-02's third session shared one among all gRPC senders); `CONNECTION=per-request`
//! opens one per request instead (how runs before 2026-12-02 sent remote write and line
//! protocol).
//! `WAL_TIMINGS=1` also prints, after each iocdb run, what its WAL's group commits took and
//! how long the writers waited for durability (from the server's `/metrics`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use iocdb_benches::workload;
use iocdb_peer_compare::lean_grpc::{Framed, LeanGrpc};
use iocdb_peer_compare::peers::{self, Peer, cpu_seconds, post_remote_write_with};
use iocdb_proto::codec::IocdbCodec;
use iocdb_proto::ingest_view::WriteRequestBytes;
use iocdb_proto::v1;
use tonic::codegen::http::uri::PathAndQuery;

/// Samples per request.
const BATCH_SAMPLES: usize = 10_000;

#[derive(Clone, Copy, PartialEq, Debug)]
enum System {
    Iocdb,
    IocdbInterval,
    IocdbGrpc,
    IocdbGrpcLean,
    IocdbGrpcZstd,
    IocdbLine,
    Before,
    BeforeGrpc,
    BeforeGrpcZstd,
    BeforeLine,
    Victoria,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Iocdb => "iocdb remote write (fsync always)",
            System::IocdbInterval => "iocdb remote write (fsync every 100 ms)",
            System::IocdbGrpc => "iocdb gRPC Write (fsync always)",
            System::IocdbGrpcLean => "iocdb gRPC Write, lean client (fsync always)",
            System::IocdbGrpcZstd => "iocdb gRPC Write, lean client, zstd (fsync always)",
            System::IocdbLine => "iocdb line protocol (fsync always)",
            System::Before => "iocdb before, remote write (fsync always)",
            System::BeforeGrpc => "iocdb before, gRPC Write (fsync always)",
            System::BeforeGrpcZstd => "iocdb before, gRPC Write, lean client, zstd (fsync always)",
            System::BeforeLine => "iocdb before, line protocol (fsync always)",
            System::Victoria => "VictoriaMetrics remote write",
        }
    }
}

/// One request, encoded for both wires (the gRPC one sent as its bytes, so that the client
/// encodes nothing while the clock runs, as for remote write).
struct Batch {
    namespace: String,
    remote_write: Vec<u8>,
    grpc: WriteRequestBytes,
    /// The same message in its gRPC frame, for the lean client: as it is, and compressed.
    grpc_framed: Framed,
    grpc_zstd: Framed,
    /// InfluxDB line protocol, millisecond timestamps: the metric as the measurement, the
    /// value as field `value` (stored as `<metric>_value`), the other labels as tags.
    line: Vec<u8>,
    samples: usize,
}

/// Appends `s` with line protocol's special characters escaped.
fn escaped(out: &mut Vec<u8>, s: &str) {
    for c in s.chars() {
        if matches!(c, ',' | ' ' | '=' | '\\') {
            out.push(b'\\');
        }
        let mut utf8 = [0; 4];
        out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
    }
}

fn line_protocol(r: &iocdb_engine::WriteRequest) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::new();
    for s in &r.series {
        let mut key = Vec::new();
        let name = s.labels.iter().find(|l| l.name == "__name__");
        escaped(&mut key, name.map_or("unnamed", |l| l.value.as_str()));
        for l in s.labels.iter().filter(|l| l.name != "__name__") {
            key.push(b',');
            escaped(&mut key, &l.name);
            key.push(b'=');
            escaped(&mut key, &l.value);
        }
        for x in &s.samples {
            out.extend_from_slice(&key);
            let _ = writeln!(out, " value={} {}", x.v, x.t);
        }
    }
    out
}

fn encode(r: &iocdb_engine::WriteRequest) -> Batch {
    use prost::Message;
    let grpc = peers::grpc_write(r).encode_to_vec();
    Batch {
        namespace: r.namespace.clone(),
        remote_write: peers::remote_write_body(r),
        grpc_framed: LeanGrpc::frame(&grpc).expect("a request under 4 GiB"),
        grpc_zstd: LeanGrpc::frame_zstd(&grpc, 3).expect("compressed"),
        grpc: WriteRequestBytes(grpc.into()),
        line: line_protocol(r),
        samples: r.series.iter().map(|s| s.samples.len()).sum(),
    }
}

fn mean_len(batches: &[Batch], len: impl Fn(&Batch) -> usize) -> f64 {
    batches.iter().map(len).sum::<usize>() as f64 / batches.len().max(1) as f64
}

/// A running system: its process and how to reach it.
struct Running {
    peer: Peer,
    grpc: Option<String>,
    /// `/ns/<namespace>` goes after the URL (iocdb) or not (VictoriaMetrics).
    namespaced: bool,
    _dir: tempfile::TempDir,
}

fn start(system: System) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let iocdb = |args: &[&str]| {
        let before = std::env::var_os("IOCDB_BEFORE").filter(|_| {
            matches!(
                system,
                System::Before | System::BeforeGrpc | System::BeforeGrpcZstd | System::BeforeLine
            )
        });
        let i = match before {
            Some(bin) => peers::iocdb_at(std::path::Path::new(&bin), dir.path(), args),
            None => peers::iocdb(dir.path(), args),
        };
        (i.peer, Some(i.grpc), true)
    };
    let (peer, grpc, namespaced) = match system {
        System::Iocdb
        | System::IocdbGrpc
        | System::IocdbGrpcLean
        | System::IocdbGrpcZstd
        | System::IocdbLine
        | System::Before
        | System::BeforeGrpc
        | System::BeforeGrpcZstd
        | System::BeforeLine => iocdb(&[]),
        System::IocdbInterval => iocdb(&["--fsync", "interval"]),
        System::Victoria => (peers::victoria_metrics(dir.path(), &[]), None, false),
    };
    Running {
        peer,
        grpc,
        namespaced,
        _dir: dir,
    }
}

/// `VmRSS` of `pid`, MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// What the WAL of the iocdb server at `url` did in a run of `wall` with `senders`: its group
/// commits (how many, writes per commit, mean time to write and sync each, the share of the
/// run they took) and the writers' mean wait for durability, also as a share of the senders'
/// time — the part of a request's time spent waiting for its bytes to be written (and, under
/// fsync always, synced).
fn wal_timings(url: &str, wall: Duration, senders: usize) -> Option<String> {
    let body = ureq::get(&format!("{url}/metrics"))
        .call()
        .ok()?
        .into_string()
        .ok()?;
    let value = |name: &str| {
        body.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(' ')?;
            rest.trim().parse::<f64>().ok()
        })
    };
    let commits = value("iocdb_wal_group_commit_duration_seconds_count")?;
    let committing = value("iocdb_wal_group_commit_duration_seconds_sum")?;
    let waits = value("iocdb_wal_commit_wait_duration_seconds_count")?;
    let waiting = value("iocdb_wal_commit_wait_duration_seconds_sum")?;
    let wall = wall.as_secs_f64();
    Some(format!(
        "{commits:.0} group commits ({:.2} writes each), {:.2} ms mean write and sync, {:.0} % of the run; writers waited {:.2} ms mean, {:.0} % of the senders' time",
        waits / commits.max(1.0),
        1e3 * committing / commits.max(1.0),
        100.0 * committing / wall,
        1e3 * waiting / waits.max(1.0),
        100.0 * waiting / (wall * senders as f64),
    ))
}

struct Figures {
    rate: f64,
    per_cpu: f64,
    /// The senders' own CPU over the run, in cores: on this machine they share the server's
    /// cores, so what they take is not the server's.
    senders_cores: f64,
    rss: f64,
}

/// Sends every batch with `senders` concurrent senders to a fresh `system`.
fn run(system: System, batches: &[Batch], senders: usize) -> Figures {
    let running = start(system);
    let pid = running.peer.child.id();
    // Each gRPC sender is a client of its own, as each remote-write sender is: its own
    // connection, driven on its own thread (a current-thread runtime, moved to the sender's
    // thread), so that no sender's request hops to another thread on the way out. Connected
    // before the clock starts.
    let grpc = running.grpc.as_ref().filter(|_| {
        matches!(
            system,
            System::IocdbGrpc
                | System::IocdbGrpcLean
                | System::IocdbGrpcZstd
                | System::BeforeGrpc
                | System::BeforeGrpcZstd
        )
    });
    enum Client {
        Tonic(tonic::client::Grpc<tonic::transport::Channel>),
        Lean(LeanGrpc),
    }
    let lean = matches!(
        system,
        System::IocdbGrpcLean | System::IocdbGrpcZstd | System::BeforeGrpcZstd
    );
    let clients: Vec<_> = (0..senders)
        .map(|_| {
            grpc.map(|addr| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                let client = runtime.block_on(async {
                    if lean {
                        return Client::Lean(LeanGrpc::connect(addr).await.expect("connect"));
                    }
                    let channel = tonic::transport::Channel::from_shared(addr.clone())
                        .expect("uri")
                        .connect()
                        .await
                        .expect("connect");
                    Client::Tonic(
                        tonic::client::Grpc::new(channel).max_encoding_message_size(64 << 20),
                    )
                });
                (runtime, client)
            })
        })
        .collect();
    let per_request = std::env::var("CONNECTION").is_ok_and(|c| c == "per-request");
    let next = AtomicUsize::new(0);
    let cpu0 = cpu_seconds(pid);
    let senders_cpu0 = cpu_seconds(std::process::id());
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for mut client in clients {
            let (next, running) = (&next, &running);
            s.spawn(move || {
                let mut agent = ureq::agent();
                loop {
                    if per_request {
                        agent = ureq::agent();
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(b) = batches.get(i) else { break };
                    match client.as_mut() {
                        Some((runtime, Client::Tonic(c))) => {
                            let out = runtime
                                .block_on(async {
                                    c.ready().await.expect("connection");
                                    c.unary(
                                        tonic::Request::new(b.grpc.clone()),
                                        PathAndQuery::from_static("/iocdb.v1.Ingest/Write"),
                                        IocdbCodec::<WriteRequestBytes, v1::WriteResponse>::default(
                                        ),
                                    )
                                    .await
                                })
                                .expect("gRPC write")
                                .into_inner();
                            assert_eq!(out.accepted as usize, b.samples, "all stored");
                        }
                        Some((runtime, Client::Lean(c))) => {
                            let out: Vec<v1::WriteResponse> = runtime
                                .block_on(c.call_framed(
                                    "/iocdb.v1.Ingest/Write",
                                    if matches!(
                                        system,
                                        System::IocdbGrpcZstd | System::BeforeGrpcZstd
                                    ) {
                                        &b.grpc_zstd
                                    } else {
                                        &b.grpc_framed
                                    },
                                ))
                                .expect("gRPC write");
                            let accepted: u64 = out.iter().map(|r| r.accepted).sum();
                            assert_eq!(accepted as usize, b.samples, "all stored");
                        }
                        None if matches!(system, System::IocdbLine | System::BeforeLine) => {
                            let url = format!(
                                "{}/ns/{}/api/v2/write?precision=ms",
                                running.peer.url, b.namespace
                            );
                            agent
                                .post(&url)
                                .send_bytes(&b.line)
                                .unwrap_or_else(|e| panic!("{url}: {e}"));
                        }
                        None => {
                            let url = if running.namespaced {
                                format!("{}/ns/{}/api/v1/write", running.peer.url, b.namespace)
                            } else {
                                format!("{}/api/v1/write", running.peer.url)
                            };
                            post_remote_write_with(&agent, &url, &b.remote_write);
                        }
                    }
                }
            });
        }
    });
    let wall = t0.elapsed();
    let cpu = cpu_seconds(pid) - cpu0;
    let senders_cpu = cpu_seconds(std::process::id()) - senders_cpu0;
    if std::env::var_os("WAL_TIMINGS").is_some() && system != System::Victoria {
        let timings = wal_timings(&running.peer.url, wall, senders);
        eprintln!(
            "  WAL: {}",
            timings.as_deref().unwrap_or("no figures in /metrics")
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    let samples: usize = batches.iter().map(|b| b.samples).sum();
    Figures {
        rate: samples as f64 / wall.as_secs_f64(),
        per_cpu: samples as f64 / cpu,
        senders_cores: senders_cpu / wall.as_secs_f64(),
        rss: rss_mib(pid),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let scale: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1.0);
    let hours: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(6);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let start_ms = workload::drive::day_start() + 86_400_000 - hours * 3_600_000;
    let specs = workload::series(scale);
    let t0 = Instant::now();
    let batches: Vec<Batch> = workload::batches(
        &specs,
        start_ms,
        start_ms + hours * 3_600_000,
        BATCH_SAMPLES,
    )
    .iter()
    .map(encode)
    .collect();
    let samples: usize = batches.iter().map(|b| b.samples).sum();
    eprintln!(
        "encoded {samples} samples of {} series in {} requests in {:.1} s; mean bytes a request: remote write {:.0} (snappy), gRPC {:.0}, gRPC zstd {:.0}",
        specs.len(),
        batches.len(),
        t0.elapsed().as_secs_f64(),
        mean_len(&batches, |b| b.remote_write.len()),
        mean_len(&batches, |b| b.grpc_framed.len()),
        mean_len(&batches, |b| b.grpc_zstd.len()),
    );
    let mut all = vec![
        (System::Iocdb, "iocdb"),
        (System::IocdbInterval, "iocdb-interval"),
        (System::IocdbGrpc, "iocdb-grpc"),
        (System::IocdbGrpcLean, "iocdb-grpc-lean"),
        (System::IocdbGrpcZstd, "iocdb-grpc-zstd"),
        (System::IocdbLine, "iocdb-line"),
        (System::Victoria, "vm"),
    ];
    if std::env::var_os("IOCDB_BEFORE").is_some() {
        all.insert(0, (System::Before, "before"));
        all.insert(1, (System::BeforeGrpc, "before-grpc"));
        all.insert(2, (System::BeforeGrpcZstd, "before-grpc-zstd"));
        all.insert(3, (System::BeforeLine, "before-line"));
    }
    let systems = peers::chosen(&all);
    let sender_counts: Vec<usize> = std::env::var("SENDERS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![1, 2, 4]);
    let mut figures: Vec<(usize, System, usize, Figures)> = Vec::new();
    for round in 0..rounds {
        for &senders in &sender_counts {
            for &system in &systems {
                let f = run(system, &batches, senders);
                eprintln!(
                    "round {round}: {}, {senders} senders: {:.2} M samples/s, {:.2} M per CPU-s, RSS {:.0} MiB; the senders used {:.2} cores",
                    system.name(),
                    f.rate / 1e6,
                    f.per_cpu / 1e6,
                    f.rss,
                    f.senders_cores
                );
                figures.push((round, system, senders, f));
            }
        }
    }
    println!(
        "{samples} samples of {} series, {} requests; {rounds} round(s), figures per round\n",
        specs.len(),
        batches.len()
    );
    println!("| system | senders | M samples/s | M samples per server CPU-s | RSS after ingest |");
    println!("|---|---|---|---|---|");
    for &system in &systems {
        for &senders in &sender_counts {
            let of: Vec<&Figures> = figures
                .iter()
                .filter(|(_, s, n, _)| *s == system && *n == senders)
                .map(|(_, _, _, f)| f)
                .collect();
            let list = |g: &dyn Fn(&Figures) -> f64, digits: usize| {
                joined(of.iter().map(|f| format!("{:.*}", digits, g(f))))
            };
            println!(
                "| {} | {senders} | {} | {} | {} MiB |",
                system.name(),
                list(&|f| f.rate / 1e6, 2),
                list(&|f| f.per_cpu / 1e6, 2),
                list(&|f| f.rss, 0)
            );
        }
    }
    print_ratios_to_victoria(&figures, &systems, &sender_counts);
}

/// Each iocdb system's figures over VictoriaMetrics' in the same round and with the same
/// senders — the ratios the targets are stated in, measured side by side so that the
/// machine's drift between rounds cancels out.
fn print_ratios_to_victoria(
    figures: &[(usize, System, usize, Figures)],
    systems: &[System],
    sender_counts: &[usize],
) {
    if !systems.contains(&System::Victoria) {
        return;
    }
    println!(
        "\nOver VictoriaMetrics' in the same round (samples/s, per server CPU-s, RSS), round by round:\n"
    );
    println!("| system | senders | samples/s | per server CPU-s | RSS after ingest |");
    println!("|---|---|---|---|---|");
    for &system in systems.iter().filter(|&&s| s != System::Victoria) {
        for &senders in sender_counts {
            let pairs: Vec<(&Figures, &Figures)> = figures
                .iter()
                .filter(|(_, s, n, _)| *s == system && *n == senders)
                .filter_map(|(round, _, _, f)| {
                    let vm = figures.iter().find(|(r, s, n, _)| {
                        r == round && *s == System::Victoria && *n == senders
                    })?;
                    Some((f, &vm.3))
                })
                .collect();
            let list = |g: &dyn Fn(&Figures) -> f64| {
                joined(pairs.iter().map(|(f, vm)| format!("{:.2}×", g(f) / g(vm))))
            };
            println!(
                "| {} | {senders} | {} | {} | {} |",
                system.name(),
                list(&|f| f.rate),
                list(&|f| f.per_cpu),
                list(&|f| f.rss)
            );
        }
    }
}

/// Round by round figures as one table cell.
fn joined(figures: impl Iterator<Item = String>) -> String {
    figures.collect::<Vec<_>>().join(", ")
}
