//! Running the peers (VictoriaMetrics, Prometheus) beside iocdb, and feeding them the
//! province workload in the text exposition format.

use std::io::Write;
use std::process::Child;
use std::time::{Duration, Instant};

use iocdb_engine::WriteRequest;

/// A peer running as a child process, killed on drop.
pub struct Peer {
    /// Its name, for messages.
    pub name: &'static str,
    /// The process.
    pub child: Child,
    /// Its HTTP address.
    pub url: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An `iocdb` server started from the release binary beside the running one.
pub struct Iocdb {
    /// The process (its `url` is the HTTP API).
    pub peer: Peer,
    /// The gRPC address, `http://host:port`.
    pub grpc: String,
}

/// Starts the `iocdb` beside this binary (`cargo build --release -p iocdb-server`) on
/// `dir/data`, loopback ports picked by the system, plus `args`; returns once it listens.
pub fn iocdb(dir: &std::path::Path, args: &[&str]) -> Iocdb {
    let exe = std::env::current_exe()
        .expect("exe")
        .with_file_name("iocdb");
    iocdb_at(&exe, dir, args)
}

/// [`iocdb`] with the binary at `exe` (another build, to compare builds in one run).
pub fn iocdb_at(exe: &std::path::Path, dir: &std::path::Path, args: &[&str]) -> Iocdb {
    use std::io::BufRead;
    let mut child = std::process::Command::new(exe)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(args)
        .env("IOCDB_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start iocdb (cargo build --release -p iocdb-server)");
    let out = child.stdout.take().expect("stdout");
    let (mut http, mut grpc) = (String::new(), String::new());
    for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
        if let Some(a) = line.strip_prefix("http listening on ") {
            http = a.to_owned();
        } else if let Some(a) = line.strip_prefix("listening on ") {
            grpc = a.to_owned();
            break;
        }
    }
    assert!(!grpc.is_empty(), "iocdb did not say where it listens");
    Iocdb {
        peer: Peer {
            name: "iocdb",
            child,
            url: format!("http://{http}"),
        },
        grpc: format!("http://{grpc}"),
    }
}

/// The three systems compared, one at a time, by the tools that run each with its defaults.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum System {
    /// iocdb, its data under `/ns/<namespace>`.
    Iocdb,
    /// VictoriaMetrics.
    Victoria,
    /// Prometheus.
    Prometheus,
}

impl System {
    /// Every system with its short name for `SYSTEMS` (see [`chosen`]).
    pub const ALL: [(System, &'static str); 3] = [
        (System::Iocdb, "iocdb"),
        (System::Victoria, "vm"),
        (System::Prometheus, "prometheus"),
    ];

    /// Its name, for tables.
    pub fn name(self) -> &'static str {
        match self {
            System::Iocdb => "iocdb",
            System::Victoria => "VictoriaMetrics",
            System::Prometheus => "Prometheus",
        }
    }

    /// Where `peer` (this system) takes a namespace's writes and queries.
    pub fn base(self, peer: &Peer, namespace: &str) -> String {
        match self {
            System::Iocdb => format!("{}/ns/{namespace}", peer.url),
            _ => peer.url.clone(),
        }
    }
}

/// The systems of `all` (each with its short name) that the `SYSTEMS` environment
/// variable names, comma-separated (unset or `all`: every one) — to run or profile some.
pub fn chosen<S: Copy>(all: &[(S, &str)]) -> Vec<S> {
    let wanted = std::env::var("SYSTEMS").unwrap_or_else(|_| "all".into());
    all.iter()
        .filter(|(_, n)| wanted == "all" || wanted.split(',').any(|w| w == *n))
        .map(|(s, _)| *s)
        .collect()
}

pub use iocdb_benches::workload::drive::cpu_seconds;

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits (bounded) until `url` answers.
pub fn wait_ready(url: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        if ureq::get(url)
            .timeout(Duration::from_secs(2))
            .call()
            .is_ok()
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what} did not become ready at {url}");
}

/// Starts `command`, a peer's program from its Debian package of the same name; when it is
/// not installed, says so and how to install it (`.ci/run` installs every peer).
pub fn spawn_peer(command: &mut std::process::Command) -> Child {
    let program = command.get_program().to_string_lossy().into_owned();
    command.spawn().unwrap_or_else(|e| match e.kind() {
        std::io::ErrorKind::NotFound => panic!(
            "start {program}: not on PATH; install the Debian package `{program}` (`.ci/run` installs the peers)"
        ),
        _ => panic!("start {program}: {e}"),
    })
}

/// Starts VictoriaMetrics storing under `dir` with `-retentionPeriod=100y`, quiet, plus
/// `flags`, and waits until it answers.
pub fn victoria_metrics(dir: &std::path::Path, flags: &[&str]) -> Peer {
    let port = free_port();
    let peer = Peer {
        name: "VictoriaMetrics",
        child: spawn_peer(
            std::process::Command::new("victoria-metrics")
                .arg(format!("-storageDataPath={}", dir.display()))
                .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                .args(["-retentionPeriod=100y", "-loggerLevel=ERROR"])
                .args(flags)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null()),
        ),
        url: format!("http://127.0.0.1:{port}"),
    };
    wait_ready(&format!("{}/health", peer.url), peer.name);
    peer
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Starts Prometheus storing under `dir`, its remote-write receiver on, accepting
/// out-of-order samples within 30 days (as the others accept late data), quiet, and waits
/// until it answers.
pub fn prometheus(dir: &std::path::Path) -> Peer {
    std::fs::create_dir_all(dir).expect("dir");
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        "global:\n  scrape_interval: 1h\nstorage:\n  tsdb:\n    out_of_order_time_window: 30d\n",
    )
    .expect("config");
    let port = free_port();
    let peer = Peer {
        name: "Prometheus",
        child: spawn_peer(
            std::process::Command::new("prometheus")
                .arg(format!("--config.file={}", cfg.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("tsdb").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .args([
                    "--web.enable-remote-write-receiver",
                    "--storage.tsdb.retention.time=100y",
                    "--log.level=error",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null()),
        ),
        url: format!("http://127.0.0.1:{port}"),
    };
    wait_ready(&format!("{}/-/ready", peer.url), peer.name);
    peer
}

/// POSTs a remote-write body (see [`remote_write_body`]) to `url` on a connection of its
/// own; panics on failure.
pub fn post_remote_write(url: &str, body: &[u8]) {
    post_remote_write_with(&ureq::agent(), url, body);
}

/// POSTs a remote-write body to `url` through `agent`, which keeps its connection alive for
/// the next request as Prometheus' remote-write shards do; panics on failure.
pub fn post_remote_write_with(agent: &ureq::Agent, url: &str, body: &[u8]) {
    agent
        .post(url)
        .set("Content-Type", "application/x-protobuf")
        .set("Content-Encoding", "snappy")
        .set("X-Prometheus-Remote-Write-Version", "0.1.0")
        .send_bytes(body)
        .unwrap_or_else(|e| panic!("{url}: {e}"));
}

/// A request as iocdb's gRPC `Write` takes it.
pub fn grpc_write(r: &WriteRequest) -> iocdb_proto::v1::WriteRequest {
    use iocdb_proto::v1;
    v1::WriteRequest {
        namespace: r.namespace.clone(),
        series: r
            .series
            .iter()
            .map(|s| v1::Series {
                labels: s
                    .labels
                    .iter()
                    .map(|l| v1::Label {
                        name: l.name.clone(),
                        value: l.value.clone(),
                    })
                    .collect(),
                timestamps_ms: s.samples.iter().map(|x| x.t).collect(),
                values: s.samples.iter().map(|x| x.v).collect(),
                stream_id: 0,
            })
            .collect(),
    }
}

/// A request as a Prometheus remote-write body: `prompb.WriteRequest`, snappy-compressed,
/// each series' labels sorted by name as Prometheus sends them.
pub fn remote_write_body(r: &WriteRequest) -> Vec<u8> {
    use iocdb_proto::prompb;
    use prost::Message;
    let timeseries = r
        .series
        .iter()
        .map(|s| prompb::TimeSeries {
            labels: {
                let mut labels: Vec<prompb::Label> = s
                    .labels
                    .iter()
                    .map(|l| prompb::Label {
                        name: l.name.clone(),
                        value: l.value.clone(),
                    })
                    .collect();
                labels.sort_by(|a, b| a.name.cmp(&b.name));
                labels
            },
            samples: s
                .samples
                .iter()
                .map(|x| prompb::Sample {
                    value: x.v,
                    timestamp: x.t,
                })
                .collect(),
            histograms: vec![],
        })
        .collect();
    let raw = prompb::WriteRequest {
        timeseries,
        metadata: vec![],
    }
    .encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy compresses anything")
}

/// Appends a request's samples in the text exposition format; `seconds` writes OpenMetrics
/// timestamps (seconds), else milliseconds.
pub fn exposition(out: &mut Vec<u8>, r: &WriteRequest, seconds: bool) {
    for s in &r.series {
        let name = s
            .labels
            .iter()
            .find(|l| l.name == "__name__")
            .map_or("", |l| l.value.as_str());
        let labels: Vec<String> = s
            .labels
            .iter()
            .filter(|l| l.name != "__name__")
            .map(|l| format!("{}=\"{}\"", l.name, escape(&l.value)))
            .collect();
        let head = format!("{name}{{{}}}", labels.join(","));
        for x in &s.samples {
            let _ = if seconds {
                writeln!(out, "{head} {} {}.{:03}", x.v, x.t / 1000, x.t % 1000)
            } else {
                writeln!(out, "{head} {} {}", x.v, x.t)
            };
        }
    }
}
