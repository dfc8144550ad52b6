//! Real clients, unchanged: a Prometheus 2.42 scraping a real node exporter every second
//! and forwarding by remote write to iocdb, then asked the same queries as iocdb; and a
//! Prometheus that reads from iocdb by remote read, answering over data only iocdb holds.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Server, enc, http_request, now_ms};
use crate::peers;

/// How long Prometheus scrapes before the answers are compared (the issue asks a minute;
/// `IOCDB_REAL_CLIENTS_S` changes it).
fn scrape_for() -> Duration {
    let s = std::env::var("IOCDB_REAL_CLIENTS_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(s)
}

fn query(addr: &str, q: &str, t_ms: i64) -> Value {
    let path = format!(
        "/api/v1/query?query={}&time={}",
        enc(q),
        t_ms as f64 / 1000.0
    );
    let (status, _, body) = http_request(addr, "GET", &path, &[], b"");
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert_eq!(status, 200, "{addr} {q}: {v}");
    v
}

/// A vector answer as sorted (labels, value) pairs.
fn vector(v: &Value) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = v["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let value = r["value"][1].as_str().unwrap_or("NaN");
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                x => x.parse().unwrap_or(f64::NAN),
            };
            (r["metric"].to_string(), value)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn prometheus_scraping_a_node_exporter_writes_to_iocdb_and_both_answer_alike() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("iocdb"), "");
    let exporter = peers::node_exporter();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['{}']\n\
         remote_write:\n  - url: http://{}/api/v1/write\n    queue_config:\n      batch_send_deadline: 1s\n    metadata_config:\n      send_interval: 5s\n",
        exporter.addr, server.http
    );
    let prom = peers::prometheus(&dir.path().join("prom"), &config);
    std::thread::sleep(scrape_for());

    // Compare at a time both have: a few seconds back, once iocdb has received it.
    let t = now_ms() - 5_000;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = query(&server.http, "max(timestamp(up))", t);
        let latest = vector(&v).first().map_or(0.0, |x| x.1);
        if latest * 1000.0 >= (t - 2_000) as f64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "remote write did not reach iocdb: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let queries = [
        "up",
        "node_load1",
        "count(node_cpu_seconds_total)",
        "sum by (mode) (rate(node_cpu_seconds_total[10s]))",
        "rate(node_network_receive_bytes_total[15s])",
        "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
        "max_over_time(node_load1[30s]) - min_over_time(node_load1[30s])",
        "topk(3, node_filesystem_size_bytes)",
        "count by (__name__) ({job=\"node\", __name__=~\"node_(load|memory).*\"})",
        "scrape_samples_scraped",
    ];
    for q in queries {
        let ours = vector(&query(&server.http, q, t));
        let theirs = vector(&query(&prom.addr, q, t));
        assert!(!theirs.is_empty(), "Prometheus has no answer to {q}");
        assert_eq!(ours.len(), theirs.len(), "{q}: {ours:?} vs {theirs:?}");
        for (a, b) in ours.iter().zip(&theirs) {
            assert_eq!(a.0, b.0, "{q}");
            let same = (a.1.is_nan() && b.1.is_nan())
                || (a.1 - b.1).abs() <= 1e-9 * a.1.abs().max(b.1.abs());
            assert!(same, "{q} {}: iocdb {} vs Prometheus {}", a.0, a.1, b.1);
        }
    }
    // The metric metadata remote write carried.
    let (_, _, body) = server.http("GET", "/api/v1/metadata?metric=node_load1", &[], b"");
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["data"]["node_load1"][0]["type"], "gauge", "{v}");
}

#[test]
fn prometheus_reads_from_iocdb_by_remote_read() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("iocdb"), "");
    let t_s = now_ms() / 1000;
    let (status, _, _) = server.http(
        "POST",
        "/api/v2/write?precision=s",
        &[],
        format!(
            "archive,commune=Châu\\ Đốc visitors=120i {}\narchive,commune=Châu\\ Đốc visitors=150i {t_s}\n",
            t_s - 30
        )
        .as_bytes(),
    );
    assert_eq!(status, 204);
    let config = format!(
        "global:\n  scrape_interval: 1h\nremote_read:\n  - url: http://{}/api/v1/read\n    read_recent: true\n",
        server.http
    );
    let prom = peers::prometheus(&dir.path().join("prom"), &config);
    let v = query(&prom.addr, "archive_visitors", t_s * 1000);
    let got = vector(&v);
    assert_eq!(got.len(), 1, "{v}");
    assert!(got[0].0.contains("Châu Đốc"), "{v}");
    assert_eq!(got[0].1, 150.0);
    let v = query(&prom.addr, "increase(archive_visitors[1m])", t_s * 1000);
    assert!(vector(&v).first().is_some_and(|x| x.1 > 0.0), "{v}");
}
