//! Reading over gRPC: range queries with functions and aggregations, latest values,
//! liveness, metadata; health and reflection.

use iocdb_proto::v1;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::harness::{Server, eq, now_ms, series};

#[tokio::test(flavor = "multi_thread")]
async fn range_queries_latest_values_and_metadata_answer_over_grpc() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), "");
    let start = (now_ms() - 3_600_000) / 60_000 * 60_000;
    let counter = |k: f64| -> Vec<(i64, f64)> {
        (0..=60)
            .map(|i| (start + i * 60_000, k * i as f64))
            .collect()
    };
    let req = v1::WriteRequest {
        namespace: "procedures".into(),
        series: vec![
            series(
                "dossiers_resolved_total",
                &[("agency", "Sở Y tế"), ("commune", "Xã Tri Tôn")],
                &counter(6.0),
            ),
            series(
                "dossiers_resolved_total",
                &[("agency", "Sở Y tế"), ("commune", "Phường Châu Đốc")],
                &counter(12.0),
            ),
            series(
                "dossiers_resolved_total",
                &[("agency", "Sở Du lịch"), ("commune", "Xã Tri Tôn")],
                &counter(60.0),
            ),
        ],
    };
    server.ingest().await.write(req).await.expect("write");
    server.flush().await;

    let q = v1::RangeQueryRequest {
        namespace: "procedures".into(),
        matchers: vec![eq("__name__", "dossiers_resolved_total")],
        start_ms: start + 600_000,
        end_ms: start + 1_200_000,
        step_ms: 300_000,
        function: Some(v1::RangeFunction {
            kind: v1::range_function::Kind::Rate as i32,
            window_ms: 600_000,
            quantile: 0.0,
        }),
        aggregation: Some(v1::Aggregation {
            op: v1::aggregation::Op::Sum as i32,
            by: vec!["agency".into()],
            without: vec![],
            param: 0.0,
        }),
        lookback_ms: None,
    };
    let mut stream = server
        .query()
        .await
        .query_range(q)
        .await
        .expect("query")
        .into_inner();
    let mut got = Vec::new();
    let mut samples_read = 0;
    while let Some(m) = stream.message().await.expect("message") {
        got.extend(m.series);
        samples_read += m.samples_read;
    }
    assert!(samples_read > 0);
    let by_agency: Vec<(String, Vec<f64>)> = got
        .iter()
        .map(|s| {
            (
                s.labels[0].value.clone(),
                s.values.iter().map(|v| (v * 1e6).round() / 1e6).collect(),
            )
        })
        .collect();
    assert_eq!(
        by_agency,
        [
            ("Sở Du lịch".to_owned(), vec![1.0; 3]),
            ("Sở Y tế".to_owned(), vec![0.3; 3])
        ]
    );

    let latest = server
        .query()
        .await
        .latest(v1::LatestRequest {
            namespace: "procedures".into(),
            matchers: vec![eq("agency", "Sở Du lịch")],
            at_ms: start + 3_600_000,
            lookback_ms: 0,
        })
        .await
        .expect("latest")
        .into_inner();
    assert_eq!(latest.samples.len(), 1);
    assert_eq!(latest.samples[0].value, 3600.0);

    let filter = v1::MetadataFilter {
        namespace: "procedures".into(),
        matchers: vec![],
        start_ms: 0,
        end_ms: 0,
        limit: 0,
    };
    let values = server
        .query()
        .await
        .label_values(v1::LabelValuesRequest {
            filter: Some(filter.clone()),
            name: "commune".into(),
        })
        .await
        .expect("values")
        .into_inner();
    assert_eq!(values.values, ["Phường Châu Đốc", "Xã Tri Tôn"]);
    let names = server
        .query()
        .await
        .label_names(filter.clone())
        .await
        .expect("names")
        .into_inner();
    assert_eq!(names.names, ["__name__", "agency", "commune"]);
    assert_eq!(
        server
            .query()
            .await
            .series(filter)
            .await
            .expect("series")
            .into_inner()
            .series
            .len(),
        3
    );

    let meta = v1::MetricMetadata {
        namespace: "procedures".into(),
        metric: "dossiers_resolved_total".into(),
        unit: "hồ sơ".into(),
        description: "Hồ sơ đã giải quyết".into(),
        expected_interval_ms: Some(60_000),
        kind: "gauge".into(),
        ..Default::default()
    };
    server
        .admin()
        .await
        .set_metadata(meta.clone())
        .await
        .expect("set");
    let back = server
        .admin()
        .await
        .get_metadata(v1::GetMetadataRequest {
            namespace: "procedures".into(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(back.metrics, [meta]);
    let stale = server
        .query()
        .await
        .stale(v1::StaleRequest {
            namespace: "procedures".into(),
            matchers: vec![],
            at_ms: start + 3_600_000 + 600_000,
            factor: 3.0,
        })
        .await
        .expect("stale")
        .into_inner();
    assert_eq!(stale.series.len(), 3);
    assert_eq!(stale.series[0].silent_ms, 600_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_reports_serving_and_reflection_lists_the_services() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), "");
    let mut health = HealthClient::new(server.channel().await);
    for service in ["", "iocdb.v1.Ingest", "iocdb.v1.Query", "iocdb.v1.Admin"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health")
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service}");
    }

    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .expect("reflection")
        .into_inner();
    let answer = answers
        .message()
        .await
        .expect("message")
        .expect("an answer");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "iocdb.v1.Ingest",
        "iocdb.v1.Query",
        "iocdb.v1.Admin",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }

    // Clients built on the older v1alpha protocol (Python's grpcio-reflection) too.
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest as AlphaRequest,
        server_reflection_client::ServerReflectionClient as AlphaClient,
        server_reflection_request::MessageRequest as AlphaMessage,
        server_reflection_response::MessageResponse as AlphaResponse,
    };
    let mut alpha = AlphaClient::new(server.channel().await);
    let req = AlphaRequest {
        host: String::new(),
        message_request: Some(AlphaMessage::ListServices(String::new())),
    };
    let answer = alpha
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .expect("v1alpha reflection")
        .into_inner()
        .message()
        .await
        .expect("message")
        .expect("an answer");
    let Some(AlphaResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a v1alpha service list")
    };
    assert!(
        list.service.iter().any(|s| s.name == "iocdb.v1.Query"),
        "v1alpha lists {:?}",
        list.service
    );
}
