//! The HTTP API's shape against a real Prometheus 2.42 on the same data: every endpoint
//! asked of both, the answers compared as JSON — status codes, `status`, `errorType`,
//! `resultType`, the keys of every object, label sets and values.

use iocdb_proto::prompb;
use prost::Message;
use serde_json::Value;

use crate::harness::{Server, enc, http_request, now_ms};
use crate::peers;

fn data(t: i64) -> prompb::WriteRequest {
    let series = |name: &str, job: &str, inst: &str, base: f64| prompb::TimeSeries {
        labels: vec![
            prompb::Label {
                name: "__name__".into(),
                value: name.into(),
            },
            prompb::Label {
                name: "instance".into(),
                value: inst.into(),
            },
            prompb::Label {
                name: "job".into(),
                value: job.into(),
            },
        ],
        samples: (0..20)
            .map(|i| prompb::Sample {
                value: base + i as f64 * 1.5,
                timestamp: t - (19 - i) * 15_000,
            })
            .collect(),
        histograms: vec![],
    };
    prompb::WriteRequest {
        timeseries: vec![
            series("m1", "api", "a", 1.0),
            series("m1", "api", "b", 2.0),
            series("m2", "api", "a", 3.0),
            series("m2", "xã Châu Đốc", "b", 4.0),
        ],
        metadata: vec![],
    }
}

/// Two JSON values alike: same types and object keys everywhere; numbers and number
/// strings equal within 1e-9; other strings equal; arrays compared in order.
fn alike(a: &Value, b: &Value, path: &str) -> Result<(), String> {
    let num = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            s => s.parse().ok(),
        },
        _ => None,
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let (kx, ky): (Vec<_>, Vec<_>) = (x.keys().collect(), y.keys().collect());
            if kx != ky {
                return Err(format!("{path}: keys {kx:?} vs {ky:?}"));
            }
            for (k, v) in x {
                alike(v, &y[k], &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Err(format!("{path}: {} elements vs {}", x.len(), y.len()));
            }
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                alike(v, w, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (Value::String(x), Value::String(y)) if x == y => Ok(()),
        _ => match (num(a), num(b)) {
            (Some(x), Some(y))
                if std::mem::discriminant(a) == std::mem::discriminant(b)
                    && ((x.is_nan() && y.is_nan())
                        || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())) =>
            {
                Ok(())
            }
            _ => Err(format!("{path}: {a} vs {b}")),
        },
    }
}

#[test]
fn every_endpoint_answers_like_prometheus() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("iocdb"), "");
    let prom = peers::prometheus(&dir.path().join("prom"), "global:\n  scrape_interval: 1h\n");
    let t = (now_ms() / 1000) * 1000 - 60_000;
    let body = snap::raw::Encoder::new()
        .compress_vec(&data(t).encode_to_vec())
        .expect("snappy");
    let headers = [
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "snappy"),
    ];
    let (s, _, _) = server.http("POST", "/api/v1/write", &headers, &body);
    assert_eq!(s, 204);
    let (s, _, _) = http_request(&prom.addr, "POST", "/api/v1/write", &headers, &body);
    assert_eq!(s / 100, 2);

    let ts = format!("{}", t as f64 / 1000.0);
    let range = format!("start={}&end={ts}&step=15", (t - 120_000) as f64 / 1000.0);
    let paths = vec![
        format!("/api/v1/query?query=m1&time={ts}"),
        format!("/api/v1/query?query={}&time={ts}", enc("sum by (job) (m2)")),
        format!("/api/v1/query?query={}&time={ts}", enc("1 + 1")),
        format!("/api/v1/query?query={}&time={ts}", enc("\"a string\"")),
        format!("/api/v1/query?query={}&time={ts}", enc("m1[1m]")),
        format!("/api/v1/query?query={}&time={ts}", enc("sort_desc(m1)")),
        format!(
            "/api/v1/query?query={}&time={ts}",
            enc("absent(nothing{job=\"x\"})")
        ),
        format!("/api/v1/query_range?query={}&{range}", enc("rate(m1[1m])")),
        format!(
            "/api/v1/query_range?query={}&{range}",
            enc("scalar(sum(m1))")
        ),
        format!(
            "/api/v1/query_range?query={}&{range}",
            enc("m2 / on(instance) group_left m1")
        ),
        format!(
            "/api/v1/series?match[]=m1&match[]={}",
            enc("m2{job=~\"xã.*\"}")
        ),
        "/api/v1/labels".into(),
        "/api/v1/labels?match[]=m2".into(),
        "/api/v1/label/job/values".into(),
        "/api/v1/label/job/values?match[]=m1".into(),
        "/api/v1/label/nothing/values".into(),
        "/api/v1/metadata".into(),
        format!("/api/v1/query_exemplars?query=m1&{range}"),
        // Errors: types and codes.
        "/api/v1/query?query=sum(".into(),
        "/api/v1/query".into(),
        format!(
            "/api/v1/query?query={}&time={ts}",
            enc("ceil({__name__=~\"m1|m2\"})")
        ),
        format!("/api/v1/query?query={}&time={ts}", enc("m1 + on(job) m1")),
        format!("/api/v1/query_range?query=m1&start={ts}&end={ts}&step=0"),
        format!("/api/v1/query_range?query=m1&start={ts}&end=1&step=15"),
        format!("/api/v1/query_range?query={}&{range}", enc("m1[1m]")),
        "/api/v1/query?query=m1&time=notatime".into(),
        "/api/v1/series".into(),
    ];
    let mut failures = Vec::new();
    for path in &paths {
        let (s1, _, b1) = server.http("GET", path, &[], b"");
        let (s2, _, b2) = http_request(&prom.addr, "GET", path, &[], b"");
        let v1: Value = serde_json::from_slice(&b1).unwrap_or(Value::Null);
        let mut v2: Value = serde_json::from_slice(&b2).unwrap_or(Value::Null);
        if v2.is_null() {
            failures.push(format!("{path}: Prometheus gave no JSON ({s2})"));
            continue;
        }
        if s1 != s2 {
            failures.push(format!("{path}: status {s1} vs {s2}: {v1} vs {v2}"));
            continue;
        }
        if v2["status"] == "error" {
            // Messages are the implementations' own; the type and code must agree.
            if v1["errorType"] != v2["errorType"] || v1["status"] != "error" {
                failures.push(format!("{path}: {v1} vs {v2}"));
            }
            continue;
        }
        // Instant vectors come in evaluation order; compare them sorted (but for sort_desc).
        let mut v1 = v1;
        for v in [&mut v1, &mut v2] {
            let vector = v["data"]["resultType"] == "vector" && !path.contains("sort");
            if !vector {
                continue;
            }
            if let Some(r) = v["data"]["result"].as_array_mut() {
                r.sort_by_key(|x| x["metric"].to_string());
            }
        }
        if let Err(e) = alike(&v1, &v2, "") {
            failures.push(format!("{path}: {e}\n  iocdb {v1}\n  prometheus {v2}"));
        }
    }
    // buildinfo: the same fields (iocdb adds its own).
    let (_, _, b1) = server.http("GET", "/api/v1/status/buildinfo", &[], b"");
    let (_, _, b2) = http_request(&prom.addr, "GET", "/api/v1/status/buildinfo", &[], b"");
    let (v1, v2): (Value, Value) = (
        serde_json::from_slice(&b1).expect("json"),
        serde_json::from_slice(&b2).expect("json"),
    );
    for key in v2["data"].as_object().expect("buildinfo").keys() {
        if v1["data"].get(key).is_none() {
            failures.push(format!("buildinfo lacks {key}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
