//! `/metrics`: iocdb scraped like any other service — every family moves when its event
//! happens, `promtool` finds nothing to lint, and a real Prometheus scrapes it.

use std::time::{Duration, Instant};

use iocdb_proto::v1;
use serde_json::Value;

use crate::harness::{Server, enc, now_ms, series};
use crate::peers;

/// The scrape, as `(series with its labels, value)` pairs.
fn scrape(server: &Server) -> Vec<(String, f64)> {
    let (status, headers, body) = server.http("GET", "/metrics", &[], b"");
    assert_eq!(status, 200);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v.starts_with("text/plain")),
        "{headers:?}"
    );
    String::from_utf8(body)
        .expect("UTF-8")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("name value");
            (name.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

fn value(scrape: &[(String, f64)], series: &str) -> f64 {
    scrape
        .iter()
        .find(|(s, _)| s == series)
        .map_or(0.0, |(_, v)| *v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_family_moves_when_its_event_happens() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(dir.path(), "");
    let before = scrape(&server);
    let t = now_ms() - 10_000;
    let mut ingest = server.ingest().await;
    ingest
        .write(v1::WriteRequest {
            namespace: "health".into(),
            series: vec![
                series(
                    "beds_free",
                    &[("hospital", "Châu Đốc")],
                    &[(t, 3.0), (t + 1, 4.0)],
                ),
                series("beds_free", &[("1bad", "x")], &[(t, 1.0)]),
            ],
        })
        .await
        .expect_err("one series is refused: the call says so, the good one is stored");
    let (status, _) = server.get_json(&format!(
        "/ns/health/api/v1/query?query={}",
        enc("beds_free")
    ));
    assert_eq!(status, 200);
    let (status, _) = server.get_json("/api/v1/query?query=%28");
    assert_eq!(status, 400);
    server.flush().await;
    server
        .admin()
        .await
        .compact(v1::CompactRequest { before_ms: 0 })
        .await
        .expect("compact");
    let after = scrape(&server);

    let moved = |series: &str, by: f64| {
        let (a, b) = (value(&before, series), value(&after, series));
        assert!(b - a >= by, "{series}: {a} -> {b}");
    };
    moved("iocdb_samples_accepted_total", 2.0);
    moved(
        "iocdb_samples_rejected_total{reason=\"invalid_label_name\"}",
        1.0,
    );
    moved(
        "iocdb_samples_accepted_by_namespace_total{namespace=\"health\"}",
        2.0,
    );
    moved(
        "iocdb_write_requests_total{namespace=\"health\",outcome=\"partial\"}",
        1.0,
    );
    moved("iocdb_flushes_total", 1.0);
    moved("iocdb_compactions_total", 1.0);
    moved("iocdb_wal_group_commit_duration_seconds_count", 1.0);
    moved(
        "iocdb_wal_group_commit_duration_seconds_bucket{le=\"+Inf\"}",
        1.0,
    );
    moved("iocdb_wal_commit_wait_duration_seconds_count", 1.0);
    moved("iocdb_series", 1.0);
    moved("iocdb_head_series", 1.0);
    moved("iocdb_series_by_namespace{namespace=\"health\"}", 1.0);
    moved("iocdb_segments", 1.0);
    moved("iocdb_segment_samples", 2.0);
    moved("iocdb_segment_bytes", 1.0);
    moved("iocdb_disk_bytes_by_namespace{namespace=\"health\"}", 1.0);
    moved("iocdb_index_label_bytes", 1.0);
    moved(
        "iocdb_grpc_requests_total{method=\"/iocdb.v1.Ingest/Write\",code=\"3\"}",
        1.0,
    );
    moved(
        "iocdb_grpc_requests_total{method=\"/iocdb.v1.Admin/Flush\",code=\"0\"}",
        1.0,
    );
    moved(
        "iocdb_grpc_request_duration_seconds_count{method=\"/iocdb.v1.Ingest/Write\"}",
        1.0,
    );
    moved(
        "iocdb_http_requests_total{route=\"/api/v1/query\",code=\"200\"}",
        1.0,
    );
    moved(
        "iocdb_http_requests_total{route=\"/api/v1/query\",code=\"400\"}",
        1.0,
    );
    moved(
        "iocdb_http_request_duration_seconds_bucket{route=\"/api/v1/query\",le=\"+Inf\"}",
        2.0,
    );
    moved(
        "iocdb_http_requests_total{route=\"/metrics\",code=\"200\"}",
        1.0,
    );
    assert!(value(&after, "process_resident_memory_bytes") > 1e6);
    assert!(value(&after, "process_threads") >= 1.0);
    // The head's samples left with the flush.
    assert_eq!(value(&after, "iocdb_head_samples"), 0.0);
    assert_eq!(value(&after, "iocdb_writes_stopped"), 0.0);
}

#[test]
fn promtool_finds_nothing_to_lint_and_a_real_prometheus_scrapes_it() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("iocdb"), "");
    let (_, _, body) = server.http("GET", "/metrics", &[], b"");
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; .ci/run installs it)");
    {
        use std::io::Write;
        promtool
            .stdin
            .take()
            .expect("stdin")
            .write_all(&body)
            .expect("feed promtool");
    }
    let out = promtool.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let config = format!(
        "global:\n  scrape_interval: 1s\n\
         scrape_configs:\n  - job_name: iocdb\n    static_configs:\n      - targets: ['{}']\n",
        server.http
    );
    let prom = peers::prometheus(&dir.path().join("prom"), &config);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, body) = crate::harness::http_request(
            &prom.addr,
            "GET",
            &format!(
                "/api/v1/query?query={}",
                enc(
                    "up{job=\"iocdb\"} * on() group_left count(iocdb_http_requests_total{route=\"/metrics\"})"
                )
            ),
            &[],
            b"",
        );
        let v: Value = serde_json::from_slice(&body).expect("json");
        if v["data"]["result"][0]["value"][1] == "1" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape iocdb within 30 s: {v}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_queries_and_flushes_are_traced_with_their_namespace_and_duration() {
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("server.log");
    let server = Server::start_logging(&dir.path().join("data"), "", Some(&log));
    let t = now_ms() - 10_000;
    server
        .ingest()
        .await
        .write(v1::WriteRequest {
            namespace: "tourism".into(),
            series: vec![series("visitors", &[("site", "Núi Sam")], &[(t, 7.0)])],
        })
        .await
        .expect("write");
    let (status, _) = server.get_json(&format!(
        "/ns/tourism/api/v1/query?query={}",
        enc("sum(visitors)")
    ));
    assert_eq!(status, 200);
    server.flush().await;
    let text = std::fs::read_to_string(&log).expect("log");
    let closed = |span: &str| {
        text.lines()
            .any(|l| l.contains(span) && l.contains("close") && l.contains("time.busy"))
    };
    assert!(closed("write{namespace=\"tourism\""), "{text}");
    assert!(
        closed("query{namespace=\"tourism\" expr=\"sum(visitors)\""),
        "{text}"
    );
    assert!(closed("flush"), "{text}");
}
