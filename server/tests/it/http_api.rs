//! The HTTP front door, over real HTTP to the real server: the Prometheus query and
//! metadata API, remote write and read, line protocol, namespaces, and gRPC PromQL.

use iocdb_proto::prompb;
use iocdb_proto::v1;
use prost::Message;
use serde_json::{Value, json};

use crate::harness::{Server, enc, label_field, now_ms};

const STALE: u64 = 0x7ff0_0000_0000_0002;

fn ts(name: &str, labels: &[(&str, &str)], samples: &[(i64, f64)]) -> prompb::TimeSeries {
    let mut l = vec![prompb::Label {
        name: "__name__".into(),
        value: name.into(),
    }];
    l.extend(labels.iter().map(|(k, v)| prompb::Label {
        name: (*k).into(),
        value: (*v).into(),
    }));
    prompb::TimeSeries {
        labels: l,
        samples: samples
            .iter()
            .map(|&(t, v)| prompb::Sample {
                value: v,
                timestamp: t,
            })
            .collect(),
        histograms: vec![],
    }
}

pub fn remote_write(server: &Server, path: &str, req: &prompb::WriteRequest) -> (u16, String) {
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy");
    let (status, _, answer) = server.http(
        "POST",
        path,
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "snappy"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ],
        &body,
    );
    (status, String::from_utf8_lossy(&answer).into_owned())
}

fn result(v: &Value) -> &Vec<Value> {
    v["data"]["result"].as_array().expect("a result array")
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_write_then_promql_over_http_and_grpc() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), "");
    let t0 = (now_ms() / 60_000 - 30) * 60_000;
    let mut series = Vec::new();
    for (commune, received, on_time) in [("Châu Đốc", 40.0, 30.0), ("Long Xuyên", 50.0, 45.0)]
    {
        let pts = |base: f64| {
            (0..10)
                .map(|i| (t0 + i * 60_000, base + i as f64))
                .collect::<Vec<_>>()
        };
        series.push(ts(
            "procedures_received",
            &[("commune", commune)],
            &pts(received),
        ));
        series.push(ts(
            "procedures_on_time",
            &[("commune", commune)],
            &pts(on_time),
        ));
    }
    // A series that goes stale: its last sample is Prometheus' staleness marker.
    series.push(ts(
        "camera_up",
        &[("camera", "c1")],
        &[(t0, 1.0), (t0 + 60_000, f64::from_bits(STALE))],
    ));
    let req = prompb::WriteRequest {
        timeseries: series,
        metadata: vec![prompb::MetricMetadata {
            r#type: 1,
            metric_family_name: "procedures_received".into(),
            help: "Hồ sơ tiếp nhận".into(),
            unit: "".into(),
        }],
    };
    let (status, body) = remote_write(&server, "/api/v1/write", &req);
    assert_eq!(status, 204, "{body}");

    // A ratio by district, as a dashboard panel asks it.
    let at = t0 + 9 * 60_000;
    let q = "sum by (commune) (procedures_on_time) / sum by (commune) (procedures_received)";
    let (status, v) = server.get_json(&format!(
        "/api/v1/query?query={}&time={}",
        enc(q),
        at as f64 / 1000.0
    ));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "vector");
    let mut got: Vec<(String, f64)> = result(&v)
        .iter()
        .map(|r| {
            (
                r["metric"]["commune"].as_str().expect("commune").to_owned(),
                r["value"][1]
                    .as_str()
                    .expect("value")
                    .parse()
                    .expect("number"),
            )
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("Châu Đốc".into(), 39.0 / 49.0),
            ("Long Xuyên".into(), 54.0 / 59.0)
        ]
    );

    // The staleness marker ends the camera's series at once, not five minutes later.
    let (_, v) = server.get_json(&format!(
        "/api/v1/query?query=camera_up&time={}",
        (t0 + 90_000) as f64 / 1000.0
    ));
    assert_eq!(result(&v).len(), 0, "a stale series has no value: {v}");

    // A range query with Grafana's step, over POST form.
    let form = format!(
        "query={}&start={}&end={}&step=60",
        enc("rate(procedures_received[5m])"),
        t0 / 1000,
        at / 1000
    );
    let (status, _, body) = server.http(
        "POST",
        "/api/v1/query_range",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    );
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "matrix");
    assert_eq!(result(&v).len(), 2);
    for r in result(&v) {
        assert!(r["metric"].get("__name__").is_none(), "rate drops the name");
        let last = r["values"]
            .as_array()
            .expect("values")
            .last()
            .expect("a point");
        let rate: f64 = last[1].as_str().expect("v").parse().expect("f");
        assert!((rate - 1.0 / 60.0).abs() < 1e-9, "{rate}");
    }

    // Metadata: series, labels, values, and what remote write said about the metric.
    let (_, v) = server.get_json(&format!(
        "/api/v1/series?match[]={}",
        enc("procedures_received")
    ));
    assert_eq!(v["data"].as_array().map(Vec::len), Some(2), "{v}");
    let (_, v) = server.get_json("/api/v1/labels");
    assert_eq!(v["data"], json!(["__name__", "camera", "commune"]));
    let (_, v) = server.get_json(&format!(
        "/api/v1/label/commune/values?match[]={}",
        enc("procedures_on_time")
    ));
    assert_eq!(v["data"], json!(["Châu Đốc", "Long Xuyên"]));
    let (_, v) = server.get_json("/api/v1/metadata");
    assert_eq!(
        v["data"]["procedures_received"],
        json!([{"type": "counter", "help": "Hồ sơ tiếp nhận", "unit": ""}])
    );
    let (_, v) = server.get_json("/api/v1/status/buildinfo");
    assert_eq!(v["data"]["version"], "2.42.0");
    let (status, _, _) = server.http("GET", "/-/ready", &[], b"");
    assert_eq!(status, 200);

    // The same question over gRPC, typed.
    let mut client = server.query().await;
    let mut stream = client
        .instant(v1::InstantQueryRequest {
            namespace: String::new(),
            query: "topk(1, procedures_received)".into(),
            time_ms: at,
            lookback_ms: None,
        })
        .await
        .expect("instant")
        .into_inner();
    let msg = stream.message().await.expect("message").expect("one");
    assert_eq!(
        msg.result_type,
        v1::promql_response::ResultType::Vector as i32
    );
    assert_eq!(msg.series.len(), 1);
    assert_eq!(msg.series[0].values, [59.0]);
    let scalar = client
        .instant(v1::InstantQueryRequest {
            namespace: String::new(),
            query: "scalar(sum(procedures_received)) * 2".into(),
            time_ms: at,
            lookback_ms: None,
        })
        .await
        .expect("instant")
        .into_inner()
        .message()
        .await
        .expect("message")
        .expect("one");
    assert_eq!(
        scalar.result_type,
        v1::promql_response::ResultType::Scalar as i32
    );
    assert_eq!(scalar.scalar, 2.0 * (49.0 + 59.0));
    // A range query asked twice: the second answer comes from the result cache, says so on
    // its last message, and is the same.
    let range = || {
        let mut client = client.clone();
        async move {
            let mut stream = client
                .range(v1::PromqlRangeRequest {
                    namespace: String::new(),
                    query: "sum(procedures_received)".into(),
                    start_ms: t0,
                    end_ms: at,
                    step_ms: 60_000,
                    lookback_ms: None,
                })
                .await
                .expect("range")
                .into_inner();
            let mut all = Vec::new();
            while let Some(m) = stream.message().await.expect("message") {
                all.push(m);
            }
            all
        }
    };
    let first = range().await;
    let second = range().await;
    let cached = |all: &[v1::PromqlResponse]| all.last().map(|m| m.steps_from_cache);
    assert_eq!(cached(&first), Some(0));
    assert!(cached(&second) > Some(0), "{second:?}");
    let points = |all: &[v1::PromqlResponse]| {
        all.iter()
            .flat_map(|m| {
                m.series
                    .iter()
                    .map(|s| (s.timestamps_ms.clone(), s.values.clone()))
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(points(&first), points(&second));
    let err = client
        .range(v1::PromqlRangeRequest {
            namespace: String::new(),
            query: "sum(".into(),
            start_ms: t0,
            end_ms: at,
            step_ms: 60_000,
            lookback_ms: None,
        })
        .await
        .expect_err("a parse error");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_have_prometheus_types_and_codes() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), "");
    let t = now_ms();
    let req = prompb::WriteRequest {
        timeseries: vec![
            ts("m1", &[("a", "x")], &[(t, 1.0)]),
            ts("m2", &[("a", "x")], &[(t, 2.0)]),
        ],
        metadata: vec![],
    };
    assert_eq!(remote_write(&server, "/api/v1/write", &req).0, 204);
    let cases: Vec<(String, u16, &str)> = vec![
        ("/api/v1/query?query=sum(".into(), 400, "bad_data"),
        ("/api/v1/query".into(), 400, "bad_data"),
        (
            "/api/v1/query?query=up&time=yesterday".into(),
            400,
            "bad_data",
        ),
        (
            format!("/api/v1/query?query={}", enc("ceil({__name__=~\"m1|m2\"})")),
            422,
            "execution",
        ),
        (
            format!(
                "/api/v1/query?query={}",
                enc("m1 + on() group_left m2 + on() {__name__=~\"m.\"}")
            ),
            422,
            "execution",
        ),
        (
            "/api/v1/query_range?query=m1&start=10&end=5&step=1".into(),
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=m1&start=0&end=5&step=0".into(),
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=m1&start=0&end=100000000&step=1".into(),
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=m1[5m]&start=0&end=5&step=1".into(),
            400,
            "bad_data",
        ),
        ("/api/v1/series".into(), 400, "bad_data"),
        (
            format!("/api/v1/series?match[]={}", enc("rate(m1[5m])")),
            400,
            "bad_data",
        ),
        ("/api/v1/label/bad-name/values".into(), 400, "bad_data"),
    ];
    for (path, code, kind) in cases {
        let (status, v) = server.get_json(&path);
        assert_eq!(
            (status, v["status"].as_str()),
            (code, Some("error")),
            "{path}: {v}"
        );
        assert_eq!(v["errorType"], kind, "{path}: {v}");
        assert!(
            !v["error"].as_str().unwrap_or_default().is_empty(),
            "{path}: {v}"
        );
    }

    // Remote write: a body that is not snappy, or not a WriteRequest, is a final 400.
    let (status, _, body) = server.http("POST", "/api/v1/write", &[], b"not snappy");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let garbage = snap::raw::Encoder::new()
        .compress_vec(&[0xff; 64])
        .expect("snappy");
    let (status, _, _) = server.http("POST", "/api/v1/write", &[], &garbage);
    assert_eq!(status, 400);

    // Bad samples beside good ones: the good ones are stored, the answer names the bad.
    let req = prompb::WriteRequest {
        timeseries: vec![
            ts("good", &[("xa", "Tri Tôn")], &[(t, 7.0)]),
            ts("bad", &[("bad-label", "v")], &[(t, 1.0)]),
        ],
        metadata: vec![],
    };
    let (status, body) = remote_write(&server, "/api/v1/write", &req);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("bad-label") && body.contains("stored 1"),
        "{body}"
    );
    let (_, v) = server.get_json(&format!(
        "/api/v1/query?query=good&time={}",
        t as f64 / 1000.0
    ));
    assert_eq!(result(&v)[0]["metric"]["xa"], "Tri Tôn", "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn namespaces_by_path_or_header_are_separate() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), "");
    let t = now_ms();
    let req = prompb::WriteRequest {
        timeseries: vec![ts("beds_free", &[], &[(t, 3.0)])],
        metadata: vec![],
    };
    assert_eq!(
        remote_write(&server, "/ns/health/api/v1/write", &req).0,
        204
    );
    let q = format!("query=beds_free&time={}", t as f64 / 1000.0);
    let (_, v) = server.get_json(&format!("/ns/health/api/v1/query?{q}"));
    assert_eq!(result(&v).len(), 1, "{v}");
    let (_, v) = server.get_json(&format!("/api/v1/query?{q}"));
    assert_eq!(result(&v).len(), 0, "the default namespace is another: {v}");
    let (_, _, body) = server.http(
        "GET",
        &format!("/api/v1/query?{q}"),
        &[("X-Scope-OrgID", "health")],
        b"",
    );
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(result(&v).len(), 1, "the header names the namespace: {v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_read_returns_the_samples() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), "");
    let t = now_ms();
    let req = prompb::WriteRequest {
        timeseries: vec![
            ts(
                "visitors",
                &[("site", "Núi Sam")],
                &[(t - 1000, 1.0), (t, 2.0)],
            ),
            ts("visitors", &[("site", "Tri Tôn")], &[(t, 5.0)]),
        ],
        metadata: vec![],
    };
    assert_eq!(remote_write(&server, "/api/v1/write", &req).0, 204);
    let read = prompb::ReadRequest {
        queries: vec![prompb::Query {
            start_timestamp_ms: t - 60_000,
            end_timestamp_ms: t,
            matchers: vec![
                prompb::LabelMatcher {
                    r#type: 0,
                    name: "__name__".into(),
                    value: "visitors".into(),
                },
                prompb::LabelMatcher {
                    r#type: 2,
                    name: "site".into(),
                    value: "Núi.*".into(),
                },
            ],
        }],
        accepted_response_types: vec![0],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&read.encode_to_vec())
        .expect("snappy");
    let (status, headers, answer) = server.http("POST", "/api/v1/read", &[], &body);
    assert_eq!(status, 200);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-encoding" && v == "snappy")
    );
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&answer)
        .expect("snappy");
    let resp = prompb::ReadResponse::decode(raw.as_slice()).expect("ReadResponse");
    let series = &resp.results[0].timeseries;
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].samples.len(), 2);
    assert!(series[0].labels.iter().any(|l| l.value == "Núi Sam"));
}

#[tokio::test(flavor = "multi_thread")]
async fn line_protocol_stores_good_lines_and_names_bad_ones() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), "");
    let t_s = now_ms() / 1000;
    let body = format!(
        "lodging,commune=Châu\\ Đốc rooms_free=12i,occupancy=0.8 {t_s}\n\
         lodging,commune=Long\\ Xuyên rooms_free=30i,open=true {t_s}\n\
         this line is bad\n\
         lodging,commune=Tri\\ Tôn note=\"closed\",rooms_free=0i {t_s}\n"
    );
    let (status, _, answer) = server.http(
        "POST",
        "/api/v2/write?org=x&bucket=y&precision=s",
        &[],
        body.as_bytes(),
    );
    let v: Value = serde_json::from_slice(&answer).expect("json");
    assert_eq!(status, 400, "{v}");
    let msg = v["message"].as_str().expect("message");
    assert!(msg.contains("line 3") && msg.contains("stored 5"), "{msg}");
    assert!(msg.contains("note") && msg.contains("string"), "{msg}");
    let (_, v) = server.get_json(&format!(
        "/api/v1/query?query={}&time={t_s}",
        enc("sum(lodging_rooms_free)")
    ));
    assert_eq!(result(&v)[0]["value"][1], "42", "{v}");
    let (_, v) = server.get_json(&format!("/api/v1/query?query=lodging_open&time={t_s}"));
    assert_eq!(result(&v)[0]["value"][1], "1", "{v}");
    // Escaped spaces and Vietnamese values come back exactly, on every field's series.
    let (_, v) = server.get_json(&format!(
        "/api/v1/query?query={}&time={t_s}",
        enc("lodging_rooms_free{commune=\"Châu Đốc\"}")
    ));
    assert_eq!(result(&v)[0]["value"][1], "12", "{v}");
    assert_eq!(result(&v)[0]["metric"]["commune"], "Châu Đốc", "{v}");
    // A series the engine refuses is named by its line and field; the rest of the line and
    // the body are stored.
    let long = "x".repeat(3000);
    let (status, _, answer) = server.http(
        "POST",
        "/api/v2/write?precision=s",
        &[],
        format!(
            "lodging,commune=Tịnh\\ Biên rooms_free=7i {t_s}\n\
             lodging,commune={long} rooms_free=1i {t_s}\n"
        )
        .as_bytes(),
    );
    let v: Value = serde_json::from_slice(&answer).expect("json");
    assert_eq!(status, 400, "{v}");
    let msg = v["message"].as_str().expect("message");
    assert!(
        msg.contains("stored 1")
            && msg.contains("line 2: field \"rooms_free\"")
            && msg.contains("label_value_too_long"),
        "{msg}"
    );
    assert!(
        msg.len() < 2_000,
        "the long value is echoed truncated: {msg}"
    );
    let (_, v) = server.get_json(&format!(
        "/api/v1/query?query={}&time={t_s}",
        enc("lodging_rooms_free{commune=\"Tịnh Biên\"}")
    ));
    assert_eq!(result(&v)[0]["value"][1], "7", "{v}");
    // InfluxDB 1.x `/write` with its own precision letters.
    let (status, _, _) = server.http(
        "POST",
        "/write?db=x&precision=ms",
        &[],
        format!("lodging,commune=A rooms_free=1 {}\n", t_s * 1000).as_bytes(),
    );
    assert_eq!(status, 204);
}

/// The console's own needs of the API: what a query read (`stats`), the store's namespaces
/// (`/api/v1/status/iocdb`), and its pages, compressed and revalidated by tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_statistics_the_store_status_and_the_console_files() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(
        &dir.path().join("data"),
        "retention_by_namespace = { y_te = \"90d\" }\n",
    );
    let t = now_ms() - 60_000;
    server
        .ingest()
        .await
        .write(v1::WriteRequest {
            namespace: "y_te".into(),
            series: vec![crate::harness::series(
                "hospital_beds_occupied",
                &[("commune", "Châu Đốc")],
                &[(t, 1.0), (t + 15_000, 2.0), (t + 30_000, 3.0)],
            )],
        })
        .await
        .expect("write");
    let range = format!(
        "/ns/y_te/api/v1/query_range?query=hospital_beds_occupied&start={}&end={}&step=15",
        t / 1000,
        t / 1000 + 60
    );
    let (code, v) = server.get_json(&format!("{range}&stats=all"));
    assert_eq!(code, 200, "{v}");
    let stats = &v["data"]["stats"];
    assert_eq!(stats["iocdb"]["seriesRead"], 1, "{stats}");
    assert!(
        stats["samples"]["totalQueryableSamples"].as_u64() >= Some(3),
        "{stats}"
    );
    assert_eq!(stats["iocdb"]["servedBy"], "raw");
    assert!(
        stats["timings"]["evalTotalTime"].as_f64() > Some(0.0),
        "{stats}"
    );
    // The same question again comes from the result cache, and says so; without `stats`
    // the answer carries none.
    let (code, again) = server.get_json(&format!("{range}&stats=all"));
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["data"]["result"], v["data"]["result"]);
    assert_eq!(again["data"]["stats"]["iocdb"]["servedBy"], "cache");
    assert_eq!(again["data"]["stats"]["iocdb"]["stepsFromCache"], 5);
    let (code, plain) = server.get_json(&range);
    assert_eq!(code, 200, "{plain}");
    assert!(plain["data"].get("stats").is_none(), "{plain}");
    assert_eq!(plain["data"]["result"], v["data"]["result"]);
    let (_, _, metrics) = server.http("GET", "/metrics", &[], b"");
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("iocdb_query_cache_hits_total 2"),
        "{metrics}"
    );

    // Hourly windows of flushed data come from the hourly rollup tier, and say so — over
    // HTTP and over gRPC.
    let hour = 3_600_000;
    let h0 = now_ms() / hour * hour - 4 * hour;
    let samples: Vec<(i64, f64)> = (0..12)
        .map(|i| (h0 + i * 900_000, (i % 5) as f64))
        .collect();
    server
        .ingest()
        .await
        .write(v1::WriteRequest {
            namespace: "y_te".into(),
            series: vec![crate::harness::series(
                "beds_free",
                &[("commune", "Long Xuyên")],
                &samples,
            )],
        })
        .await
        .expect("write");
    server.flush().await;
    let hourly = format!(
        "/ns/y_te/api/v1/query_range?query=max_over_time(beds_free[1h])&start={}&end={}&step=3600&stats=all",
        (h0 + hour) / 1000,
        (h0 + 3 * hour) / 1000
    );
    let (code, v) = server.get_json(&hourly);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["stats"]["iocdb"]["servedBy"], "rollup", "{v}");
    assert_eq!(v["data"]["stats"]["iocdb"]["rollupTier"], "1h", "{v}");
    assert_eq!(
        result(&v)[0]["values"],
        json!([
            [(h0 + hour) / 1000, "4"],
            [(h0 + 2 * hour) / 1000, "4"],
            [(h0 + 3 * hour) / 1000, "4"]
        ])
    );
    let mut stream = server
        .query()
        .await
        .range(v1::PromqlRangeRequest {
            namespace: "y_te".into(),
            // Another question: the same one would come from the result cache.
            query: "min_over_time(beds_free[1h])".into(),
            start_ms: h0 + hour,
            end_ms: h0 + 3 * hour,
            step_ms: hour,
            ..Default::default()
        })
        .await
        .expect("range")
        .into_inner();
    let mut last = None;
    while let Some(m) = stream.message().await.expect("message") {
        last = Some(m);
    }
    let last = last.expect("an answer");
    assert_eq!(last.rollup_tier_ms, hour);
    assert!(last.rollup_buckets > 0);

    let (code, v) = server.get_json("/api/v1/status/iocdb");
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v["data"]["namespaces"],
        json!([{"name": "y_te", "series": 2, "retention": 90.0 * 86400.0}])
    );
    assert!(v["data"]["headBudgetBytes"].as_u64() > Some(0), "{v}");

    let (code, headers, body) = server.http("GET", "/", &[("Accept-Encoding", "gzip")], b"");
    assert_eq!(code, 200);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(header("content-encoding"), "gzip");
    assert!(header("content-type").starts_with("text/html"));
    assert!(header("content-security-policy").contains("default-src 'self'"));
    assert_eq!(&body[..2], &[0x1f, 0x8b], "a gzip stream");
    let etag = header("etag");
    let (code, _, body) = server.http("GET", "/", &[("If-None-Match", &etag)], b"");
    assert_eq!((code, body.len()), (304, 0));
    let (code, _, body) = server.http("GET", "/console/app.js", &[], b"");
    assert_eq!(code, 200);
    assert!(String::from_utf8_lossy(&body).contains("import"));
    let (code, _, body) = server.http("GET", "/console/../Cargo.toml", &[], b"");
    assert_eq!(code, 404, "{}", String::from_utf8_lossy(&body));
    let (code, _, _) = server.http("GET", "/console/nothing.js", &[], b"");
    assert_eq!(code, 404);
}

/// Remote write reads its requests in place: a label that is not UTF-8 refuses its series
/// alone, and one label set sent in any order, with or without empty-valued labels, is one
/// series whether the engine finds it by its bytes or validates it afresh.
#[tokio::test(flavor = "multi_thread")]
async fn remote_write_labels_read_in_place() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), "");
    let t = now_ms();
    let good = prompb::WriteRequest {
        timeseries: vec![ts("guests", &[("xa", "Châu Đốc")], &[(t - 2_000, 1.0)])],
        metadata: vec![],
    };
    let mut raw = good.encode_to_vec();
    // A second TimeSeries, appended by hand: prost cannot write a label value that is not
    // UTF-8. Labels __name__="guests", xa="Ch\xffu"; one sample.
    let mut series = label_field(b"__name__", b"guests");
    series.extend(label_field(b"xa", b"Ch\xffu"));
    let mut sample = vec![0x09];
    sample.extend_from_slice(&5.0f64.to_le_bytes());
    sample.push(0x10);
    prost::encoding::encode_varint(t as u64, &mut sample);
    series.extend_from_slice(&[0x12, sample.len() as u8]);
    series.extend_from_slice(&sample);
    raw.extend_from_slice(&[0x0a, series.len() as u8]);
    raw.extend_from_slice(&series);
    let body = snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy");
    let (status, _, answer) = server.http(
        "POST",
        "/api/v1/write",
        &[("Content-Encoding", "snappy")],
        &body,
    );
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.contains("stored 1")
            && answer.contains("timeseries 1")
            && answer.contains("label_not_utf8")
            && answer.contains("xa"),
        "{answer}"
    );

    // The same label set unsorted and with an empty-valued label, then as Prometheus sends
    // it: one series with both samples.
    let mut odd = ts("guests", &[("xa", "Châu Đốc")], &[(t - 1_000, 2.0)]);
    odd.labels.reverse();
    odd.labels.push(prompb::Label {
        name: "empty".into(),
        value: String::new(),
    });
    for req in [
        prompb::WriteRequest {
            timeseries: vec![odd],
            metadata: vec![],
        },
        prompb::WriteRequest {
            timeseries: vec![ts("guests", &[("xa", "Châu Đốc")], &[(t, 3.0)])],
            metadata: vec![],
        },
    ] {
        let (status, body) = remote_write(&server, "/api/v1/write", &req);
        assert_eq!(status, 204, "{body}");
    }
    let (_, v) = server.get_json(&format!(
        "/api/v1/query?query=count_over_time(guests[1m])&time={}",
        t as f64 / 1000.0
    ));
    let result = result(&v);
    assert_eq!(result.len(), 1, "{v}");
    assert_eq!(result[0]["metric"]["xa"], "Châu Đốc", "{v}");
    assert_eq!(result[0]["value"][1], "3", "{v}");
}
