//! What a series costs, side by side with VictoriaMetrics: `N` new camera-like series (four
//! labels, two samples each) written into a fresh `iocdb serve` (unary gRPC `Write`, 1,000
//! series per request) and a fresh `victoria-metrics` (`/api/v1/import/prometheus`, the same
//! label sets and samples), one system at a time, one sender each. VictoriaMetrics' RSS is
//! the lower of its reading once settled and 15 s after a forced flush. For each: RSS growth per
//! series, new series per second, the time of `label values` over the `N` values and of a
//! regex matcher selecting a tenth of them (HTTP API, median of 5); for iocdb also its own
//! head accounting against its RSS growth, and the time to start again after a SIGKILL (WAL
//! replay of `N` series definitions).
//!
//! Usage: `cardinality_compare N...` (e.g. `100000 1000000 2000000`), after `cargo build
//! --release -p iocdb-server`; needs `victoria-metrics` on PATH. Prints Markdown.
//! `cardinality_compare churn TOTAL ACTIVE`: `TOTAL` series over time, `ACTIVE` new ones a
//! generation, each generation flushed; both systems' RSS after each (the lowest over 35 s
//! after the flush, with iocdb's completeness export every 30 s) and the highest during it.

// A bench reading answers it asked for: an index out of range is a bug to see at once.
#![allow(clippy::indexing_slicing)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use iocdb_benches::workload::COMMUNES;
use iocdb_peer_compare::peers::{self, Peer, free_port, wait_ready};
use iocdb_proto::v1;

/// Series per write request.
const BATCH: usize = 1_000;
const METRIC: &str = "camera_people_count";
const DISTRICTS: [&str; 11] = [
    "Long Xuyên",
    "Châu Đốc",
    "Tân Châu",
    "An Phú",
    "Phú Tân",
    "Châu Phú",
    "Tịnh Biên",
    "Tri Tôn",
    "Châu Thành",
    "Chợ Mới",
    "Thoại Sơn",
];

/// The label pairs of series `i` (besides `__name__`), sorted by name.
fn labels(i: usize) -> [(&'static str, String); 3] {
    [
        ("camera", format!("cam-{i:07}")),
        ("commune", COMMUNES[i % COMMUNES.len()].to_string()),
        ("district", DISTRICTS[i % DISTRICTS.len()].to_string()),
    ]
}

/// The two samples every series gets: five and one minute ago.
fn timestamps() -> [i64; 2] {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    [now - 300_000, now - 60_000]
}

/// `VmRSS` of process `pid`, bytes.
fn rss(pid: u32) -> f64 {
    status_bytes(pid, "VmRSS:")
}

/// A memory field of process `pid`'s `/proc/PID/status` (named with its colon), bytes.
fn status_bytes(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb * 1024.0)
}

/// RSS once it stops moving (the allocator and the runtime settle), bytes.
fn settled_rss(pid: u32) -> f64 {
    std::thread::sleep(Duration::from_secs(2));
    let mut last = rss(pid);
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(500));
        let now = rss(pid);
        if (now - last).abs() < 256.0 * 1024.0 {
            return now;
        }
        last = now;
    }
    last
}

/// Median time of 5 GETs of `url`, and the length of the last answer's `data` array.
fn timed_get(url: &str) -> (Duration, usize) {
    let mut times = Vec::new();
    let mut count = 0;
    for _ in 0..5 {
        let start = Instant::now();
        let body = ureq::get(url)
            .timeout(Duration::from_secs(300))
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .into_reader();
        let body: serde_json::Value =
            serde_json::from_reader(body).unwrap_or_else(|e| panic!("GET {url}: {e}"));
        times.push(start.elapsed());
        count = body["data"].as_array().map_or(0, Vec::len);
    }
    times.sort();
    (times[2], count)
}

/// The regex matcher: cameras whose number ends in 7 (a tenth of them).
fn regex_selector() -> String {
    format!("{METRIC}{{camera=~\"cam-.*7\"}}")
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Figures {
    rss_per_series: f64,
    series_per_s: f64,
    accounted_per_series: Option<f64>,
    label_values: Duration,
    values_found: usize,
    regex: Duration,
    regex_found: usize,
    restart: Option<Duration>,
}

fn iocdb_bin() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/iocdb")
}

/// `iocdb serve` on `dir`, with `extra` lines of configuration.
fn start_iocdb(dir: &std::path::Path, grpc: u16, http: u16, extra: &str) -> Peer {
    // Room for the largest run: no series cap, a head budget above what it holds.
    let config = dir.join("cardinality.toml");
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(
        &config,
        format!(
            "max_series_per_namespace = 100000000\nhead_memory_mb = 65536\n\
             query_max_series = 100000000\n{extra}"
        ),
    )
    .expect("config");
    let peer = Peer {
        name: "iocdb",
        child: Command::new(iocdb_bin())
            .args(["serve", "--listen"])
            .arg(format!("127.0.0.1:{grpc}"))
            .arg("--http-listen")
            .arg(format!("127.0.0.1:{http}"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--config")
            .arg(&config)
            .args(["--fsync", "interval"])
            .env("IOCDB_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start iocdb: {e} (cargo build --release -p iocdb-server)")),
        url: format!("http://127.0.0.1:{http}"),
    };
    wait_ready(&format!("{}/-/ready", peer.url), peer.name);
    peer
}

type Ingest = v1::ingest_client::IngestClient<tonic::transport::Channel>;
type Admin = v1::admin_client::AdminClient<tonic::transport::Channel>;

/// iocdb's ingest and admin clients on gRPC port `grpc`.
fn clients(runtime: &tokio::runtime::Runtime, grpc: u16) -> (Ingest, Admin) {
    let channel = runtime.block_on(async {
        tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{grpc}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect")
    });
    (
        Ingest::new(channel.clone()).max_encoding_message_size(64 << 20),
        Admin::new(channel),
    )
}

fn iocdb(n: usize, dir: &std::path::Path) -> Figures {
    let (grpc, http) = (free_port(), free_port());
    let mut peer = start_iocdb(dir, grpc, http, "");
    let pid = peer.child.id();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (mut ingest, mut admin) = clients(&runtime, grpc);
    let stats = |admin: &mut Admin| {
        runtime
            .block_on(admin.stats(v1::StatsRequest {}))
            .expect("stats")
            .into_inner()
    };
    let before = settled_rss(pid);
    let head_before = stats(&mut admin).head_bytes as f64;
    let elapsed = write_iocdb(&runtime, &mut ingest, 0..n);
    let after = settled_rss(pid);
    let head_after = stats(&mut admin).head_bytes as f64;
    let (label_values, values_found) =
        timed_get(&format!("{}/api/v1/label/camera/values", peer.url));
    let (regex, regex_found) = timed_get(&format!(
        "{}/api/v1/series?match[]={}",
        peer.url,
        encode(&regex_selector())
    ));
    let _ = peer.child.kill();
    let _ = peer.child.wait();
    drop(peer);
    let start = Instant::now();
    let peer = start_iocdb(dir, grpc, http, "");
    let restart = start.elapsed();
    drop(peer);
    Figures {
        rss_per_series: (after - before) / n as f64,
        series_per_s: n as f64 / elapsed.as_secs_f64(),
        accounted_per_series: Some((head_after - head_before) / n as f64),
        label_values,
        values_found,
        regex,
        regex_found,
        restart: Some(restart),
    }
}

fn victoria_metrics(n: usize, dir: &std::path::Path) -> Figures {
    let vm = peers::victoria_metrics(
        dir,
        &[
            "-search.maxUniqueTimeseries=100000000",
            "-search.maxSeries=100000000",
            "-search.maxTagValues=100000000",
            "-search.latencyOffset=0s",
        ],
    );
    let pid = vm.child.id();
    let before = settled_rss(pid);
    let ts = timestamps();
    let elapsed = import_vm(&vm.url, 0..n);
    // Imports are acknowledged before they are searchable: wait until every series is.
    let deadline = Instant::now() + Duration::from_secs(120);
    let count_url = format!(
        "{}/api/v1/query?query=count({METRIC})&time={}",
        vm.url,
        ts[1] / 1000 + 1
    );
    while Instant::now() < deadline {
        let body: serde_json::Value = ureq::get(&count_url)
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or_default();
        let count = body["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|c| c.parse::<usize>().ok());
        if count == Some(n) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // Its in-memory parts flushed and given time to drop what it buffered: the least RSS
    // it shows for these series.
    let settled = settled_rss(pid);
    ureq::get(&format!("{}/internal/force_flush", vm.url))
        .call()
        .expect("force flush");
    std::thread::sleep(Duration::from_secs(15));
    let after = settled.min(settled_rss(pid));
    let (label_values, values_found) = timed_get(&format!("{}/api/v1/label/camera/values", vm.url));
    let (regex, regex_found) = timed_get(&format!(
        "{}/api/v1/series?match[]={}&start={}",
        vm.url,
        encode(&regex_selector()),
        ts[0] / 1000 - 3600
    ));
    Figures {
        rss_per_series: (after - before) / n as f64,
        series_per_s: n as f64 / elapsed.as_secs_f64(),
        accounted_per_series: None,
        label_values,
        values_found,
        regex,
        regex_found,
        restart: None,
    }
}

/// Writes series `range` (two samples each) to iocdb by gRPC `Write`, `BATCH` a request;
/// returns the time spent in the calls.
fn write_iocdb(
    runtime: &tokio::runtime::Runtime,
    ingest: &mut Ingest,
    range: std::ops::Range<usize>,
) -> Duration {
    let ts = timestamps();
    let mut elapsed = Duration::ZERO;
    for first in range.clone().step_by(BATCH) {
        let series = (first..(first + BATCH).min(range.end))
            .map(|i| v1::Series {
                labels: std::iter::once(v1::Label {
                    name: "__name__".into(),
                    value: METRIC.into(),
                })
                .chain(labels(i).into_iter().map(|(name, value)| v1::Label {
                    name: name.into(),
                    value,
                }))
                .collect(),
                timestamps_ms: ts.to_vec(),
                values: vec![1.0, 2.0],
                stream_id: 0,
            })
            .collect();
        let request = v1::WriteRequest {
            namespace: String::new(),
            series,
        };
        let start = Instant::now();
        runtime.block_on(ingest.write(request)).expect("write");
        elapsed += start.elapsed();
    }
    elapsed
}

/// Imports series `range` (the same label sets and samples) into VictoriaMetrics at `url`;
/// returns the time spent in the calls.
fn import_vm(url: &str, range: std::ops::Range<usize>) -> Duration {
    let ts = timestamps();
    let mut elapsed = Duration::ZERO;
    for first in range.clone().step_by(BATCH) {
        let mut body = String::new();
        for i in first..(first + BATCH).min(range.end) {
            let pairs: Vec<String> = labels(i)
                .iter()
                .map(|(name, value)| format!("{name}=\"{value}\""))
                .collect();
            for (t, v) in ts.iter().zip([1.0, 2.0]) {
                body.push_str(&format!("{METRIC}{{{}}} {v} {t}\n", pairs.join(",")));
            }
        }
        let start = Instant::now();
        ureq::post(&format!("{url}/api/v1/import/prometheus"))
            .send_string(&body)
            .expect("import");
        elapsed += start.elapsed();
    }
    elapsed
}

/// The highest RSS of a process since the last [`Peak::take`], sampled every 20 ms by a
/// thread of its own until dropped.
struct Peak {
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Peak {
    fn of(pid: u32) -> Peak {
        use std::sync::atomic::Ordering::Relaxed;
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Relaxed) {
                p.fetch_max(rss(pid) as u64, Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Peak { peak, stop }
    }

    fn take(&self) -> f64 {
        self.peak.swap(0, std::sync::atomic::Ordering::Relaxed) as f64
    }
}

impl Drop for Peak {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// After each generation: the lowest RSS over [`BETWEEN`] after its flush (sampled every
/// 50 ms: what the process holds between two completeness exports) with its anonymous and
/// file-backed parts at that moment, and the highest RSS during the generation.
type Generations = Vec<(f64, f64, f64, f64)>;

/// How long each generation watches the process after its flush: longer than iocdb's
/// completeness export interval in this mode (30 s), so that it sees one run and the
/// time between two.
const BETWEEN: Duration = Duration::from_secs(35);

/// A generation's figures of `pid` (see [`Generations`]), the peak taken from `peak`.
fn generation(pid: u32, peak: &Peak) -> (f64, f64, f64, f64) {
    let until = Instant::now() + BETWEEN;
    let mut lowest = (f64::INFINITY, 0.0, 0.0);
    while Instant::now() < until {
        let (anon, file) = (status_bytes(pid, "RssAnon:"), status_bytes(pid, "RssFile:"));
        if anon + file < lowest.0 {
            lowest = (anon + file, anon, file);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (lowest.0, peak.take(), lowest.1, lowest.2)
}

/// Churn: `total` series over time, `active` at a time, each generation new series, then a
/// flush (iocdb's `Admin.Flush`, VictoriaMetrics' `/internal/force_flush`); each
/// generation's figures ([`Generations`]), iocdb's then VictoriaMetrics'. iocdb runs its
/// completeness export every 30 s (the default is 60 s), so that each generation's watch
/// ([`BETWEEN`]) spans one.
fn churn(total: usize, active: usize, dir: &std::path::Path) -> (Generations, Generations) {
    let (grpc, http) = (free_port(), free_port());
    let peer = start_iocdb(
        &dir.join("iocdb"),
        grpc,
        http,
        "completeness_export_interval = \"30s\"\n",
    );
    let pid = peer.child.id();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (mut ingest, mut admin) = clients(&runtime, grpc);
    let peak = Peak::of(pid);
    let mut ours = vec![generation(pid, &peak)];
    for first in (0..total).step_by(active.max(1)) {
        write_iocdb(&runtime, &mut ingest, first..(first + active).min(total));
        runtime
            .block_on(admin.flush(v1::FlushRequest {}))
            .expect("flush");
        ours.push(generation(pid, &peak));
    }
    drop((peak, peer));
    let vm = peers::victoria_metrics(&dir.join("vm"), &[]);
    let pid = vm.child.id();
    let peak = Peak::of(pid);
    let mut theirs = vec![generation(pid, &peak)];
    for first in (0..total).step_by(active.max(1)) {
        import_vm(&vm.url, first..(first + active).min(total));
        ureq::get(&format!("{}/internal/force_flush", vm.url))
            .call()
            .expect("force flush");
        theirs.push(generation(pid, &peak));
    }
    (ours, theirs)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, total, active] = &args[..]
        && mode == "churn"
    {
        let (total, active): (usize, usize) = (
            total.parse().expect("total series"),
            active.parse().expect("active series"),
        );
        let tmp = tempfile::tempdir().expect("tmp");
        let (ours, theirs) = churn(total, active, tmp.path());
        println!(
            "| series written | iocdb RSS: lowest after the flush (highest during the \
             generation; anonymous + file) | VictoriaMetrics RSS | iocdb / VictoriaMetrics |"
        );
        println!("|---|---|---|---|");
        let mib = |b: &f64| b / 1048576.0;
        let row = |(rss, peak, anon, file): &(f64, f64, f64, f64)| {
            format!(
                "{:.0} MiB ({:.0}; {:.0} + {:.0})",
                mib(rss),
                mib(peak),
                mib(anon),
                mib(file)
            )
        };
        for (g, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            println!(
                "| {} | {} | {} | {:.2}× |",
                (g * active).min(total),
                row(a),
                row(b),
                a.0 / b.0
            );
        }
        return;
    }
    let sizes: Vec<usize> = args
        .iter()
        .map(|a| a.parse().expect("series counts"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100_000]
    } else {
        sizes
    };
    println!(
        "| series | system | RSS per series | new series/s | head accounting per series | accounting / RSS | label values (found) | regex matcher (found) | restart (WAL replay) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for n in sizes {
        let tmp = tempfile::tempdir().expect("tmp");
        let ours = iocdb(n, &tmp.path().join("iocdb"));
        let vm = victoria_metrics(n, &tmp.path().join("vm"));
        for (name, f) in [("iocdb", &ours), ("VictoriaMetrics", &vm)] {
            println!(
                "| {n} | {name} | {:.0} B | {:.0} k | {} | {} | {} ({}) | {} ({}) | {} |",
                f.rss_per_series,
                f.series_per_s / 1e3,
                f.accounted_per_series
                    .map_or("—".into(), |a| format!("{a:.0} B")),
                f.accounted_per_series
                    .map_or("—".into(), |a| format!("{:.2}", a / f.rss_per_series)),
                ms(f.label_values),
                f.values_found,
                ms(f.regex),
                f.regex_found,
                f.restart.map_or("—".into(), ms),
            );
        }
        println!(
            "| {n} | iocdb / VictoriaMetrics | {:.2}× | {:.2}× | | | {:.2}× | {:.2}× | |",
            ours.rss_per_series / vm.rss_per_series,
            ours.series_per_s / vm.series_per_s,
            ours.label_values.as_secs_f64() / vm.label_values.as_secs_f64(),
            ours.regex.as_secs_f64() / vm.regex.as_secs_f64(),
        );
    }
}
