//! The indicator catalog and data-quality rules from outside: a catalog file loaded at start
//! and on SIGHUP, rejections with their reasons in the write response, `iocdb quality` and
//! `iocdb catalog`, `/metrics`, and remote write's metadata leaving a declared entry alone.

use iocdb_proto::{prompb, v1};

use crate::cli::iocdb;
use crate::harness::{Server, now_ms, series};
use crate::http_api::remote_write;

const CATALOG: &str = r#"
[namespaces.y_te]
quality_policy = "reject"

[[indicator]]
namespace = "y_te"
metric = "hospital_waiting_patients"
unit = "người"
description = "Số người đang chờ khám"
kind = "gauge"
department = "Sở Y tế"
contact = "Phòng Nghiệp vụ Y"
expected_interval = "5m"
valid_min = 0
valid_max = 5000
required_labels = ["facility"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_file_rejects_bad_samples_lists_them_and_reloads_on_sighup() {
    let dir = tempfile::tempdir().expect("dir");
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(&catalog, CATALOG).expect("catalog");
    let server = Server::start(
        &dir.path().join("data"),
        &format!("catalog_file = {:?}\n", catalog.display().to_string()),
    );
    let t = now_ms() - 60_000;
    let write =
        |values: Vec<(i64, f64)>, labels: Vec<(&'static str, &'static str)>| v1::WriteRequest {
            namespace: "y_te".into(),
            series: vec![series("hospital_waiting_patients", &labels, &values)],
        };
    let facility = vec![("facility", "Bệnh viện Đa khoa Châu Đốc")];
    let mut ingest = server.ingest().await;
    let status = ingest
        .write(write(
            vec![(t, 12.0), (t + 1, -5.0), (t + 2, 1e9)],
            facility.clone(),
        ))
        .await
        .expect_err("two samples are refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let details = String::from_utf8_lossy(status.details()).into_owned();
    assert!(
        status.message().contains("out_of_range") || details.contains("out_of_range"),
        "{status:?}"
    );
    // The good sample beside them is stored.
    let (code, v) = server.get_json("/ns/y_te/api/v1/query?query=hospital_waiting_patients");
    assert_eq!(code, 200);
    assert_eq!(v["data"]["result"][0]["value"][1], "12", "{v}");

    // A series without its required label is refused whole.
    ingest
        .write(write(vec![(t + 3, 1.0)], vec![("commune", "Long Xuyên")]))
        .await
        .expect_err("no facility");

    let addr = server.addr.clone();
    let (ok, out, err) = iocdb(&["quality", "--addr", &addr, "-n", "y_te", "--json"], None);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    let counts: Vec<(String, String, u64, String)> = report["counts"]
        .as_array()
        .expect("counts")
        .iter()
        .map(|c| {
            (
                c["rule"].as_str().unwrap_or("").to_owned(),
                c["action"].as_str().unwrap_or("").to_owned(),
                c["samples"].as_u64().unwrap_or(0),
                c["department"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        vec![
            (
                "out_of_range".into(),
                "rejected".into(),
                2,
                "Sở Y tế".into()
            ),
            (
                "missing_required_label".into(),
                "rejected".into(),
                1,
                "Sở Y tế".into()
            ),
        ]
    );
    let events = report["events"].as_array().expect("events");
    assert_eq!(events.len(), 3);
    let (code, v) = server.get_json("/ns/y_te/api/v1/quality?limit=2");
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["events"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(v["data"]["counts"][0]["rule"], "out_of_range", "{v}");
    assert_eq!(events[0]["value"], -5.0);
    assert!(
        events[0]["series"]
            .as_str()
            .is_some_and(|s| s.contains("Bệnh viện Đa khoa Châu Đốc")),
        "{events:?}"
    );

    let (ok, out, err) = iocdb(&["catalog", "--addr", &addr, "-n", "y_te", "--json"], None);
    assert!(ok, "{err}");
    let entries: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(entries[0]["department"], "Sở Y tế");
    assert_eq!(entries[0]["description"], "Số người đang chờ khám");
    assert_eq!(entries[0]["valid_max"], 5000.0);
    assert_eq!(entries[0]["expected_interval_ms"], 300_000);

    let (_, _, metrics) = server.http("GET", "/metrics", &[], b"");
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("iocdb_quality_samples_total{namespace=\"y_te\",metric=\"hospital_waiting_patients\",rule=\"out_of_range\",action=\"rejected\"} 2"),
        "{metrics}"
    );

    // Remote write's metadata does not overwrite what the catalog declared.
    let req = prompb::WriteRequest {
        timeseries: vec![],
        metadata: vec![prompb::MetricMetadata {
            r#type: 2,
            metric_family_name: "hospital_waiting_patients".into(),
            help: "waiting patients".into(),
            unit: "".into(),
        }],
    };
    let (code, body) = remote_write(&server, "/ns/y_te/api/v1/write", &req);
    assert_eq!(code, 204, "{body}");
    let (_, v) = server.get_json("/ns/y_te/api/v1/metadata");
    assert_eq!(
        v["data"]["hospital_waiting_patients"][0]["help"], "Số người đang chờ khám",
        "{v}"
    );

    // The namespace's policy becomes "flag" on SIGHUP: the same bad value is stored, flagged.
    std::fs::write(
        &catalog,
        CATALOG.replace("quality_policy = \"reject\"", "quality_policy = \"flag\""),
    )
    .expect("catalog");
    std::process::Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .expect("kill");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut n = 10;
    loop {
        n += 1;
        let r = ingest
            .write(write(vec![(t + n, -1.0)], facility.clone()))
            .await;
        if r.is_ok() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never reloaded");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (ok, out, err) = iocdb(
        &["quality", "--addr", &addr, "-n", "y_te", "--limit", "1"],
        None,
    );
    assert!(ok, "{err}");
    assert!(out.contains("flagged\tout_of_range"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completeness_over_grpc_the_cli_and_as_exported_series() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(
        &dir.path().join("data"),
        "completeness_export_interval = \"1s\"\ncompleteness_export_window = \"1h\"\n",
    );
    let minute = 60_000;
    let now = now_ms();
    let start = now - now.rem_euclid(minute) - 30 * minute;
    // Three communes every minute for 30 minutes; Tri Tôn misses minutes 10–14, Tịnh Biên
    // falls silent after minute 9.
    let mut series_out = Vec::new();
    for (commune, skip) in [
        ("Châu Đốc", 0..0),
        ("Tri Tôn", 10..15),
        ("Tịnh Biên", 10..30),
    ] {
        let points: Vec<(i64, f64)> = (0..30)
            .filter(|k| !skip.contains(k))
            .map(|k| (start + k * minute, 1.0))
            .collect();
        series_out.push(series("lodging_guests", &[("commune", commune)], &points));
    }
    server
        .ingest()
        .await
        .write(v1::WriteRequest {
            namespace: "luu_tru".into(),
            series: series_out,
        })
        .await
        .expect("write");
    server
        .admin()
        .await
        .set_metadata(v1::MetricMetadata {
            namespace: "luu_tru".into(),
            metric: "lodging_guests".into(),
            department: "Sở Văn hóa, Thể thao và Du lịch".into(),
            expected_interval_ms: Some(minute),
            ..Default::default()
        })
        .await
        .expect("catalog");
    // History uploaded as such (what `iocdb import` sends) is stored without delays.
    let mut history = tonic::Request::new(v1::WriteRequest {
        namespace: "luu_tru".into(),
        series: vec![series(
            "lodging_rooms",
            &[("commune", "An Phú")],
            &[(start + 3 * minute, 7.0)],
        )],
    });
    history.metadata_mut().insert(
        "x-iocdb-backfill",
        tonic::metadata::MetadataValue::from_static("1"),
    );
    server
        .ingest()
        .await
        .write(history)
        .await
        .expect("backfill");
    let end = start + 30 * minute;
    let r = server
        .query()
        .await
        .completeness(v1::CompletenessRequest {
            namespace: "luu_tru".into(),
            start_ms: start,
            end_ms: end,
            by: vec!["commune".into()],
            ..Default::default()
        })
        .await
        .expect("completeness")
        .into_inner();
    let groups: Vec<(String, u64, u64)> = r
        .groups
        .iter()
        .map(|g| (g.labels[0].value.clone(), g.expected, g.received))
        .collect();
    assert_eq!(
        groups,
        vec![
            ("Châu Đốc".into(), 30, 30),
            ("Tri Tôn".into(), 30, 25),
            ("Tịnh Biên".into(), 30, 10),
            ("An Phú".into(), 1, 1)
        ]
    );
    assert_eq!(r.groups[0].department, "Sở Văn hóa, Thể thao và Du lịch");
    let gaps: Vec<(i64, i64, u64)> = r
        .gaps
        .iter()
        .map(|g| {
            (
                (g.start_ms - start) / minute,
                (g.end_ms - start) / minute,
                g.missing,
            )
        })
        .collect();
    assert_eq!(gaps, vec![(9, 15, 5), (9, 30, 20)]);
    assert_eq!(r.delays.len(), 1);
    assert_eq!(r.delays[0].samples, 65);
    // Silent: Tịnh Biên, for 21 intervals (An Phú's one sample cannot be judged).
    let silent: Vec<&str> = r
        .silent
        .iter()
        .flat_map(|s| s.labels.iter().filter(|l| l.name == "commune"))
        .map(|l| l.value.as_str())
        .collect();
    assert_eq!(silent, vec!["Tịnh Biên"]);
    assert_eq!(
        r.silent_by_metric,
        std::collections::HashMap::from([("lodging_guests".to_owned(), 1)])
    );

    let addr = server.addr.clone();
    let (ok, out, err) = iocdb(
        &[
            "completeness",
            "--addr",
            &addr,
            "-n",
            "luu_tru",
            "--start",
            &start.to_string(),
            "--end",
            &end.to_string(),
            "--by",
            "commune",
            "--json",
        ],
        None,
    );
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report["gaps"][0]["missing"], 5);
    assert_eq!(report["groups"][1]["labels"]["commune"], "Tri Tôn");

    // The same report over HTTP, times in seconds.
    let (code, v) = server.get_json(&format!(
        "/ns/luu_tru/api/v1/completeness?start={}&end={}&by=commune",
        start / 1000,
        end / 1000
    ));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["groups"][1]["received"], 25, "{v}");
    assert_eq!(v["data"]["gaps"][0]["missing"], 5, "{v}");
    assert_eq!(
        v["data"]["gaps"][0]["start"],
        ((start + 9 * minute) / 1000) as f64,
        "{v}"
    );
    assert_eq!(v["data"]["delays"][0]["samples"], 65, "{v}");
    assert_eq!(v["data"]["silent_by_metric"]["lodging_guests"], 1, "{v}");

    // The exporter writes the report as series any dashboard can chart.
    let query = "/ns/iocdb/api/v1/query?query=iocdb_completeness_ratio";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let v = loop {
        let (code, v) = server.get_json(query);
        assert_eq!(code, 200, "{v}");
        if v["data"]["result"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "never exported: {v}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let row = &v["data"]["result"][0];
    assert_eq!(row["metric"]["namespace"], "luu_tru");
    assert_eq!(row["metric"]["metric"], "lodging_guests");
    assert_eq!(
        row["metric"]["department"],
        "Sở Văn hóa, Thể thao và Du lịch"
    );
    let ratio: f64 = row["value"][1]
        .as_str()
        .unwrap_or("0")
        .parse()
        .expect("ratio");
    assert!(ratio > 0.5 && ratio < 1.0, "{ratio}");
    let (code, v) = server.get_json(
        "/ns/iocdb/api/v1/query?query=iocdb_silent_series%7Bmetric%3D%22lodging_guests%22%7D",
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["result"][0]["value"][1], "1", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_over_grpc_and_server_sent_events_delivers_what_is_acknowledged() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), "");
    let mut stream = server
        .query()
        .await
        .watch(v1::WatchRequest {
            namespace: "an_ninh".into(),
            matchers: vec![crate::harness::eq("commune", "Châu Đốc")],
            ..Default::default()
        })
        .await
        .expect("watch")
        .into_inner();
    // The SSE client, on its own connection, ends after two seconds.
    let http = server.http.clone();
    let sse = std::thread::spawn(move || {
        crate::harness::http_request(
            &http,
            "GET",
            "/ns/an_ninh/api/v1/watch?match[]=camera_people_count&timeout=2",
            &[],
            b"",
        )
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let t = now_ms() - 1000;
    let mut ingest = server.ingest().await;
    for k in 0..3 {
        ingest
            .write(v1::WriteRequest {
                namespace: "an_ninh".into(),
                series: vec![
                    series(
                        "camera_people_count",
                        &[("commune", "Châu Đốc")],
                        &[(t + k, k as f64)],
                    ),
                    series(
                        "camera_people_count",
                        &[("commune", "Tri Tôn")],
                        &[(t + k, 9.0)],
                    ),
                ],
            })
            .await
            .expect("write");
    }
    let mut got = Vec::new();
    while got.len() < 3 {
        let message = tokio::time::timeout(std::time::Duration::from_secs(10), stream.message())
            .await
            .expect("delivered in time")
            .expect("stream")
            .expect("a message");
        assert!(message.gap.is_none());
        for s in message.series {
            assert!(s.labels.iter().any(|l| l.value == "Châu Đốc"), "{s:?}");
            got.extend(s.timestamps_ms);
        }
    }
    assert_eq!(got, vec![t, t + 1, t + 2]);
    let (status, _, body) = sse.join().expect("sse thread");
    assert_eq!(status, 200);
    let body = String::from_utf8_lossy(&body);
    assert_eq!(body.matches("event: samples").count(), 6, "{body}");
    assert!(body.contains("\"commune\":\"Tri Tôn\""), "{body}");
    drop(stream);
    // Cancelling frees the subscription (the SSE one ended with its timeout).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, _, metrics) = server.http("GET", "/metrics", &[], b"");
        let metrics = String::from_utf8_lossy(&metrics).into_owned();
        assert!(metrics.contains("iocdb_watch_samples_total 9"), "{metrics}");
        if metrics.contains("iocdb_watch_subscribers 0") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{metrics}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_with_promql_sends_the_point_of_each_touched_step_recomputed_as_samples_come() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), "");
    let mut stream = server
        .query()
        .await
        .watch(v1::WatchRequest {
            namespace: "an_ninh".into(),
            promql: "sum by (commune) (camera_people_count)".into(),
            step_ms: 60_000,
            ..Default::default()
        })
        .await
        .expect("watch")
        .into_inner();
    let minute = 60_000;
    let step = (now_ms() - 10 * minute) / minute * minute;
    let mut ingest = server.ingest().await;
    let mut next = async |cam: &str, t: i64, v: f64| {
        ingest
            .write(v1::WriteRequest {
                namespace: "an_ninh".into(),
                series: vec![series(
                    "camera_people_count",
                    &[("commune", "Châu Đốc"), ("camera", cam)],
                    &[(t, v)],
                )],
            })
            .await
            .expect("write");
        let m = tokio::time::timeout(std::time::Duration::from_secs(10), stream.message())
            .await
            .expect("in time")
            .expect("stream")
            .expect("a message");
        let p = &m.points[0];
        (p.timestamps_ms[0], p.values[0])
    };
    // Two cameras within one step: the step's sum is recomputed after each.
    assert_eq!(next("a", step - 30_000, 3.0).await, (step, 3.0));
    assert_eq!(next("b", step - 20_000, 4.0).await, (step, 7.0));
    assert_eq!(next("a", step + 10_000, 5.0).await, (step + minute, 9.0));
    let refused = server
        .query()
        .await
        .watch(v1::WatchRequest {
            namespace: "an_ninh".into(),
            promql: "sum(".into(),
            ..Default::default()
        })
        .await
        .expect_err("a syntax error");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
}

/// One server-sent-event stream follows several namespaces (`watch[]=<namespace>:<selector>`),
/// each event saying which namespace it is from.
#[test]
fn one_watch_follows_several_namespaces() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), "");
    let http = server.http.clone();
    let sse = std::thread::spawn(move || {
        crate::harness::http_request(
            &http,
            "GET",
            &format!(
                "/api/v1/watch?watch[]={}&watch[]={}&timeout=2",
                crate::harness::enc("an_ninh:camera_people_count_value"),
                crate::harness::enc("y_te:")
            ),
            &[],
            b"",
        )
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let t = now_ms();
    for (ns, metric) in [
        ("an_ninh", "camera_people_count"),
        ("an_ninh", "camera_vehicle_count"),
        ("y_te", "hospital_beds_occupied"),
        ("du_lich", "tourism_visitors_current"),
    ] {
        let line = format!("{metric},commune=Long\\ Xuyên value=7 {t}\n");
        let (status, _, body) = server.http(
            "POST",
            &format!("/ns/{ns}/write?precision=ms"),
            &[],
            line.as_bytes(),
        );
        assert_eq!(status, 204, "{}", String::from_utf8_lossy(&body));
    }
    let (status, _, body) = sse.join().expect("sse thread");
    assert_eq!(status, 200);
    let body = String::from_utf8_lossy(&body);
    assert_eq!(body.matches("event: samples").count(), 2, "{body}");
    assert!(
        body.contains(
            "\"namespace\":\"an_ninh\",\"metric\":{\"__name__\":\"camera_people_count_value\""
        ),
        "{body}"
    );
    assert!(body.contains("\"namespace\":\"y_te\""), "{body}");
    assert!(body.contains("Long Xuyên"), "{body}");
    // A bad entry is refused whole, saying which.
    let (code, v) = server.get_json("/api/v1/watch?watch[]=no-colon");
    assert_eq!(code, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap_or_default().contains("no-colon"),
        "{v}"
    );
}
