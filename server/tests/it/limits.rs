//! Every kind of bad input and every limit, each with its status code and a message that
//! names the problem, while the good samples of the batch are stored.

use iocdb_proto::v1;
use prost::Message;
use tonic::Code;

use crate::harness::{Server, eq, now_ms, select_all, series};

const SMALL_LIMITS: &str = r#"
max_samples_per_request = 1000
max_series_per_request = 50
max_labels_per_series = 5
max_label_value_bytes = 32
max_series_per_namespace = 60
max_concurrent_write_streams = 1
max_ingest_message_bytes = 200000
query_max_series = 20
query_max_samples = 5000
"#;

fn details(status: &tonic::Status) -> v1::WriteResponse {
    v1::WriteResponse::decode(status.details()).expect("the status details carry the WriteResponse")
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_samples_are_rejected_one_by_one_and_the_good_ones_stored() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), SMALL_LIMITS);
    let t = now_ms();
    let req = v1::WriteRequest {
        namespace: "health".into(),
        series: vec![
            series(
                "hospital_beds_occupied",
                &[("facility", "BV Châu Đốc")],
                &[(t, 1.0), (t + 3_600_000, 2.0)],
            ),
            series("hospital_beds_occupied", &[("bad-label", "x")], &[(t, 1.0)]),
            series("", &[("facility", "x")], &[(t, 1.0)]),
            series(
                "hospital_beds_occupied",
                &[("facility", &"ư".repeat(20))],
                &[(t, 1.0)],
            ),
            series(
                "hospital_beds_occupied",
                &[("a", "1"), ("b", "1"), ("c", "1"), ("d", "1"), ("e", "1")],
                &[(t, 1.0)],
            ),
            series(
                "hospital_beds_occupied",
                &[("facility", "BV Long Xuyên")],
                &[(t, 3.0)],
            ),
        ],
    };
    let status = server
        .ingest()
        .await
        .write(req)
        .await
        .expect_err("rejections make an error");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("5 samples rejected, 2 accepted"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("too far in the future"),
        "{}",
        status.message()
    );
    let d = details(&status);
    let kinds: Vec<(u32, Option<u32>, &str)> = d
        .rejections
        .iter()
        .map(|r| (r.series_index, r.sample_index, r.reason.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (0, Some(1), "too_far_in_future"),
            (1, None, "invalid_label_name"),
            (2, None, "missing_metric_name"),
            (3, None, "label_value_too_long"),
            (4, None, "too_many_labels"),
        ]
    );
    assert!(d.rejections[1].message.contains("bad-label"));
    let stored = select_all(&server, "health", vec![]).await;
    assert_eq!(
        stored.len(),
        2,
        "the good samples beside the bad ones are stored"
    );

    let mismatched = v1::WriteRequest {
        namespace: "health".into(),
        series: vec![v1::Series {
            labels: vec![v1::Label {
                name: "__name__".into(),
                value: "m".into(),
            }],
            timestamps_ms: vec![1, 2],
            values: vec![1.0],
            stream_id: 0,
        }],
    };
    let status = server
        .ingest()
        .await
        .write(mismatched)
        .await
        .expect_err("malformed");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("2 timestamps but 1 values"),
        "{}",
        status.message()
    );

    let bad_ns = v1::WriteRequest {
        namespace: "Sở Y tế".into(),
        series: vec![series("m", &[], &[(t, 1.0)])],
    };
    let status = server
        .ingest()
        .await
        .write(bad_ns)
        .await
        .expect_err("bad namespace");
    assert_eq!(details(&status).rejections[0].reason, "invalid_namespace");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_limit_answers_resource_exhausted_and_names_itself() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), SMALL_LIMITS);
    let t = now_ms() - 100_000;
    let many = |n: usize, per: usize, tag: &str| v1::WriteRequest {
        namespace: "cams".into(),
        series: (0..n)
            .map(|i| {
                series(
                    "c",
                    &[("camera", &format!("{tag}{i}"))],
                    &(0..per).map(|k| (t + k as i64, 1.0)).collect::<Vec<_>>(),
                )
            })
            .collect(),
    };
    let code_and_message = |s: tonic::Status| (s.code(), s.message().to_owned());

    let (code, msg) = code_and_message(
        server
            .ingest()
            .await
            .write(many(2, 600, "a"))
            .await
            .expect_err("samples"),
    );
    assert_eq!(code, Code::ResourceExhausted);
    assert!(msg.contains("max_samples_per_request"), "{msg}");
    let (code, msg) = code_and_message(
        server
            .ingest()
            .await
            .write(many(51, 1, "a"))
            .await
            .expect_err("series"),
    );
    assert_eq!(code, Code::ResourceExhausted);
    assert!(msg.contains("max_series_per_request"), "{msg}");

    // The namespace series limit: 50 fit, then 10 more, then the 61st and later are refused.
    server
        .ingest()
        .await
        .write(many(50, 1, "a"))
        .await
        .expect("50 series");
    let status = server
        .ingest()
        .await
        .write(many(20, 1, "b"))
        .await
        .expect_err("series limit");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(details(&status).accepted, 10);
    assert!(
        status.message().contains("limit of 60 series"),
        "{}",
        status.message()
    );

    // A message over the ingest size limit.
    let huge = v1::WriteRequest {
        namespace: "cams".into(),
        series: vec![series(
            "c",
            &[("camera", &"x".repeat(300_000))],
            &[(t, 1.0)],
        )],
    };
    let (code, msg) = code_and_message(
        server
            .ingest()
            .await
            .write(huge)
            .await
            .expect_err("too large"),
    );
    assert!(
        matches!(code, Code::ResourceExhausted | Code::OutOfRange),
        "{code:?} {msg}"
    );
    assert!(
        msg.contains("message length too large") || msg.contains("too large"),
        "{msg}"
    );

    // Query limits.
    let q = |matchers: Vec<v1::Matcher>| v1::RangeQueryRequest {
        namespace: "cams".into(),
        matchers,
        start_ms: t,
        end_ms: t + 1000,
        step_ms: 1,
        function: None,
        aggregation: None,
        lookback_ms: None,
    };
    let status = server
        .query()
        .await
        .query_range(q(vec![eq("__name__", "c")]))
        .await
        .expect_err("query series");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("query_max_series"),
        "{}",
        status.message()
    );
    let bad_regex = v1::Matcher {
        name: "camera".into(),
        op: v1::matcher::Op::Regex as i32,
        value: "(".into(),
    };
    let status = server
        .query()
        .await
        .query_range(q(vec![bad_regex]))
        .await
        .expect_err("bad regex");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("bad regex"),
        "{}",
        status.message()
    );
    let mut steps = q(vec![eq("camera", "a1")]);
    steps.end_ms = t + 100_000;
    let status = server
        .query()
        .await
        .query_range(steps)
        .await
        .expect_err("points");
    assert!(
        status.message().contains("query_max_points_per_series"),
        "{}",
        status.message()
    );

    // Concurrent write streams: one open stream holds the only permit.
    let (tx, rx) = tokio::sync::mpsc::channel::<v1::WriteRequest>(1);
    let mut first_client = server.ingest().await;
    let first = tokio::spawn(async move {
        first_client
            .write_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    tx.send(many(1, 1, "a")).await.expect("send");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let status = server
        .ingest()
        .await
        .write_stream(tokio_stream::iter([many(1, 1, "t")]))
        .await
        .expect_err("second stream");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("max_concurrent_write_streams"),
        "{}",
        status.message()
    );
    drop(tx);
    assert_eq!(
        first
            .await
            .expect("task")
            .expect("first stream")
            .into_inner()
            .messages,
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_deadline_is_honoured() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), "");
    let mut req = tonic::Request::new(v1::RangeQueryRequest {
        namespace: "x".into(),
        matchers: vec![],
        start_ms: 0,
        end_ms: 1000,
        step_ms: 1,
        function: None,
        aggregation: None,
        lookback_ms: None,
    });
    req.set_timeout(std::time::Duration::from_nanos(1));
    let status = server
        .query()
        .await
        .query_range(req)
        .await
        .expect_err("deadline");
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
}
