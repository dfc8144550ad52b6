//! Writing over gRPC: batches, a million-sample stream, eight concurrent writers,
//! compression.

use iocdb_proto::v1;
use tonic::codec::CompressionEncoding;

use crate::harness::{Server, eq, now_ms, select_all, series};

#[tokio::test(flavor = "multi_thread")]
async fn written_samples_read_back_with_vietnamese_labels_exactly() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), "");
    let t = now_ms() - 60_000;
    let communes = ["Phường Long Xuyên", "Phường Châu Đốc", "Đặc khu Phú Quốc"];
    let req = v1::WriteRequest {
        namespace: "lodging".into(),
        series: communes
            .iter()
            .enumerate()
            .map(|(i, c)| {
                series(
                    "lodging_guests",
                    &[("commune", c)],
                    &[(t, i as f64), (t + 1000, 0.5)],
                )
            })
            .collect(),
    };
    let r = server
        .ingest()
        .await
        .write(req)
        .await
        .expect("write")
        .into_inner();
    assert_eq!((r.accepted, r.rejected), (6, 0));
    for c in communes {
        let got = select_all(&server, "lodging", vec![eq("commune", c)]).await;
        assert_eq!(got.len(), 1, "{c}");
        let commune = got[0]
            .labels
            .iter()
            .find(|l| l.name == "commune")
            .map(|l| l.value.clone());
        assert_eq!(commune.as_deref(), Some(c));
        assert_eq!(got[0].timestamps_ms, [t, t + 1000]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn compressed_unary_writes_are_stored_exactly_and_plain_ones_still_are() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), "");
    let t = now_ms() - 60_000;
    let request = |commune: &str, v: f64| v1::WriteRequest {
        namespace: "lodging".into(),
        series: (0..2_000)
            .map(|i| {
                series(
                    "lodging_guests",
                    &[("commune", commune), ("hotel", &format!("khách sạn {i}"))],
                    &[(t, v), (t + 1000, v + 0.5)],
                )
            })
            .collect(),
    };
    // Each encoding twice: the second request reuses the pooled buffer and context.
    let mut written = Vec::new();
    for (k, encoding) in [
        Some(CompressionEncoding::Zstd),
        Some(CompressionEncoding::Gzip),
        None,
        Some(CompressionEncoding::Zstd),
        Some(CompressionEncoding::Gzip),
    ]
    .into_iter()
    .enumerate()
    {
        let commune = format!("Phường Châu Đốc {k}");
        let mut client = server.ingest().await;
        if let Some(encoding) = encoding {
            client = client.send_compressed(encoding);
        }
        let r = client
            .write(request(&commune, k as f64))
            .await
            .unwrap_or_else(|e| panic!("{encoding:?}: {e}"))
            .into_inner();
        assert_eq!((r.accepted, r.rejected), (4_000, 0), "{encoding:?}");
        written.push((commune, k as f64));
    }
    for (commune, v) in written {
        let got = select_all(&server, "lodging", vec![eq("commune", &commune)]).await;
        assert_eq!(got.len(), 2_000, "{commune}");
        for s in &got {
            assert_eq!(s.timestamps_ms, [t, t + 1000], "{commune}");
            assert_eq!(s.values, [v, v + 0.5], "{commune}");
            assert!(s.labels.iter().any(|l| l.value.starts_with("khách sạn ")));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_of_a_million_samples_is_stored_whole() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), "");
    let t0 = now_ms() - 3_600_000;
    let messages: Vec<v1::WriteRequest> = (0..100)
        .map(|m| v1::WriteRequest {
            namespace: "cams".into(),
            series: (0..100)
                .map(|s| {
                    let samples: Vec<(i64, f64)> = (0..100)
                        .map(|k| (t0 + (m * 100 + k) * 10, ((s + k) % 17) as f64))
                        .collect();
                    series(
                        "camera_people_count",
                        &[("camera", &format!("cam-{s:03}"))],
                        &samples,
                    )
                })
                .collect(),
        })
        .collect();
    let mut client = server
        .ingest()
        .await
        .send_compressed(CompressionEncoding::Zstd);
    let r = client
        .write_stream(tokio_stream::iter(messages))
        .await
        .expect("stream")
        .into_inner();
    assert_eq!(
        (r.accepted, r.rejected, r.messages, r.stopped_early),
        (1_000_000, 0, 100, false)
    );
    let got = select_all(&server, "cams", vec![]).await;
    assert_eq!(got.len(), 100);
    assert_eq!(
        got.iter().map(|s| s.timestamps_ms.len()).sum::<usize>(),
        1_000_000
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn eight_concurrent_writers_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let server = std::sync::Arc::new(Server::start(&dir.path().join("data"), ""));
    let t0 = now_ms() - 3_600_000;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = server
                .ingest()
                .await
                .send_compressed(CompressionEncoding::Gzip);
            for b in 0..25i64 {
                let series = (0..10)
                    .map(|s| {
                        let samples: Vec<(i64, f64)> = (0..100)
                            .map(|k| (t0 + b * 1000 + k, (w * 1_000_000 + b * 1000 + k) as f64))
                            .collect();
                        series(
                            "m",
                            &[("writer", &w.to_string()), ("s", &s.to_string())],
                            &samples,
                        )
                    })
                    .collect();
                let r = client
                    .write(v1::WriteRequest {
                        namespace: "w".into(),
                        series,
                    })
                    .await
                    .expect("write")
                    .into_inner();
                assert_eq!(r.accepted, 1000);
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let got = select_all(&server, "w", vec![]).await;
    assert_eq!(got.len(), 80);
    for s in &got {
        assert_eq!(s.timestamps_ms.len(), 2500, "every sample once");
        let w: i64 = s
            .labels
            .iter()
            .find(|l| l.name == "writer")
            .and_then(|l| l.value.parse().ok())
            .expect("writer");
        for (t, v) in s.timestamps_ms.iter().zip(&s.values) {
            let (b, k) = ((t - t0) / 1000, (t - t0) % 1000);
            assert_eq!(*v, (w * 1_000_000 + b * 1000 + k) as f64);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_may_name_its_series_once_and_then_by_id() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), "");
    let t = now_ms() - 60_000;
    let by_id = |id: u64, samples: &[(i64, f64)]| v1::Series {
        stream_id: id,
        ..series("x", &[], samples)
    };
    let first = v1::WriteRequest {
        namespace: "cams".into(),
        series: vec![
            v1::Series {
                stream_id: 7,
                ..series(
                    "camera_people_count",
                    &[("camera", "Núi Sam 1")],
                    &[(t, 1.0)],
                )
            },
            v1::Series {
                stream_id: 8,
                ..series(
                    "camera_people_count",
                    &[("camera", "Núi Sam 2")],
                    &[(t, 2.0)],
                )
            },
        ],
    };
    let mut later = v1::WriteRequest {
        namespace: "cams".into(),
        series: vec![
            by_id(7, &[(t + 10_000, 3.0)]),
            by_id(8, &[(t + 10_000, 4.0)]),
        ],
    };
    for s in &mut later.series {
        s.labels.clear();
    }
    let mut unknown = v1::WriteRequest {
        namespace: "cams".into(),
        series: vec![
            by_id(9, &[(t + 20_000, 5.0)]),
            by_id(7, &[(t + 20_000, 6.0)]),
        ],
    };
    unknown.series[0].labels.clear();
    unknown.series[1].labels.clear();
    // One message of another namespace naming its series every way at once: by labels, by
    // an id of the first message (whose series stays in its own namespace), by bad labels
    // with an id (refused, the id not remembered), by that id (unknown).
    let mut mixed = v1::WriteRequest {
        namespace: "lodging".into(),
        series: vec![
            series("lodging_guests", &[("commune", "Long Xuyên")], &[(t, 7.0)]),
            by_id(8, &[(t + 30_000, 8.0)]),
            v1::Series {
                stream_id: 10,
                ..series("lodging_guests", &[("bad name", "x")], &[(t, 9.0)])
            },
            by_id(10, &[(t + 30_000, 10.0)]),
        ],
    };
    mixed.series[1].labels.clear();
    mixed.series[3].labels.clear();
    let status = server
        .ingest()
        .await
        .write_stream(tokio_stream::iter([first, later, unknown, mixed]))
        .await
        .expect_err("an unknown id is rejected");
    let answer = <v1::WriteResponse as prost::Message>::decode(status.details()).expect("details");
    assert_eq!(
        (answer.accepted, answer.rejected, answer.messages),
        (7, 3, 4)
    );
    let rejections: Vec<(u32, u32, &str)> = answer
        .rejections
        .iter()
        .map(|r| (r.message_index, r.series_index, r.reason.as_str()))
        .collect();
    assert_eq!(
        rejections,
        [
            (2, 0, "unknown_stream_id"),
            (3, 2, "invalid_label_name"),
            (3, 3, "unknown_stream_id")
        ]
    );
    let got = select_all(&server, "cams", vec![eq("camera", "Núi Sam 1")]).await;
    assert_eq!(got[0].values, [1.0, 3.0, 6.0]);
    let got = select_all(&server, "cams", vec![eq("camera", "Núi Sam 2")]).await;
    assert_eq!(got[0].values, [2.0, 4.0, 8.0]);
    let got = select_all(&server, "lodging", vec![]).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].values, [7.0]);
}
