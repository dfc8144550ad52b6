//! Restarts and signals: acknowledged data survives a restart, and SIGTERM during a write
//! stream loses nothing acknowledged.

use iocdb_proto::v1;

use crate::harness::{Server, now_ms, select_all, series};

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_keeps_every_acknowledged_sample() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let t = now_ms() - 600_000;
    let server = Server::start(&data, "");
    for b in 0..10i64 {
        let req = v1::WriteRequest {
            namespace: "tourism".into(),
            series: vec![series(
                "tourism_visitors_total",
                &[("site", "Núi Sam")],
                &[(t + b * 1000, b as f64)],
            )],
        };
        server.ingest().await.write(req).await.expect("write");
        if b == 5 {
            server.flush().await;
        }
    }
    assert!(server.terminate().success(), "clean exit on SIGTERM");
    let server = Server::start(&data, "");
    let got = select_all(&server, "tourism", vec![]).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].values, (0..10).map(|b| b as f64).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_write_stream_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let server = Server::start(&data, "");
    let t = now_ms() - 3_600_000;
    let message = move |m: i64| v1::WriteRequest {
        namespace: "s".into(),
        series: vec![series(
            "m",
            &[("message", &m.to_string())],
            &(0..500)
                .map(move |k| (t + k, (m * 1000 + k) as f64))
                .collect::<Vec<_>>(),
        )],
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<v1::WriteRequest>(4);
    let mut client = server.ingest().await;
    let call = tokio::spawn(async move {
        client
            .write_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    // Keep sending (bounded: at most 10,000 messages or 20 s) until the server stops reading.
    let sender = tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        for m in 0..10_000 {
            if tokio::time::Instant::now() > deadline || tx.send(message(m)).await.is_err() {
                return m;
            }
        }
        10_000
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let pid = server.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let answer = call
        .await
        .expect("task")
        .expect("the stream is answered, not cut")
        .into_inner();
    let sent = sender.await.expect("sender");
    assert!(answer.stopped_early, "the server says it stopped reading");
    assert!(
        answer.messages > 0 && (answer.messages as i64) <= sent,
        "{} of {sent}",
        answer.messages
    );
    assert_eq!(answer.accepted, answer.messages * 500);
    assert!(
        server.wait_exit().success(),
        "a clean exit after one SIGTERM"
    );

    let server = Server::start(&data, "");
    let got = select_all(&server, "s", vec![]).await;
    assert_eq!(
        got.len() as u64,
        answer.messages,
        "exactly the acknowledged messages are stored"
    );
    for s in &got {
        let m: i64 = s
            .labels
            .iter()
            .find(|l| l.name == "message")
            .and_then(|l| l.value.parse().ok())
            .expect("m");
        assert!((m as u64) < answer.messages);
        assert_eq!(s.values.len(), 500);
        assert_eq!(s.values[0], (m * 1000) as f64);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_head_past_half_its_budget_is_flushed_in_the_background() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(
        &dir.path().join("data"),
        "head_memory_mb = 1\nflush_interval_s = 3600\n",
    );
    let t = now_ms() - 600_000;
    let req = v1::WriteRequest {
        namespace: "cams".into(),
        series: (0..4000)
            .map(|i| {
                series(
                    "camera_people_count",
                    &[("camera", &format!("c{i}"))],
                    &[(t, 1.0), (t + 10_000, 2.0)],
                )
            })
            .collect(),
    };
    server.ingest().await.write(req).await.expect("write");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let stats = server
            .admin()
            .await
            .stats(v1::StatsRequest {})
            .await
            .expect("stats")
            .into_inner();
        if stats.segments > 0 {
            assert_eq!(stats.segment_samples, 8000);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no background flush within 30 s: {stats:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_segment_met_by_a_query_is_data_loss_naming_the_file_and_the_rest_is_served() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let t = crate::harness::start_of_a_partition();
    let server = Server::start(&data, "");
    for (site, flush) in [("damaged", true), ("intact", false)] {
        let samples: Vec<(i64, f64)> = (0..500)
            .map(|k| (t + k * 100, (k % 7) as f64 + 0.25))
            .collect();
        let req = v1::WriteRequest {
            namespace: "t".into(),
            series: vec![series("m", &[("site", site)], &samples)],
        };
        server.ingest().await.write(req).await.expect("write");
        if flush {
            server.flush().await;
        }
    }
    assert!(server.terminate().success());
    let segment = std::fs::read_dir(data.join("segments"))
        .expect("segments")
        .map(|e| e.expect("entry").path())
        .next()
        .expect("a segment");
    let mut bytes = std::fs::read(&segment).expect("read");
    bytes[40] ^= 0xff; // inside the first chunk block, after the 16-byte header and its 8-byte frame
    std::fs::write(&segment, bytes).expect("write");

    let server = Server::start(&data, "");
    let req = |site: &str| v1::SelectRequest {
        namespace: "t".into(),
        matchers: vec![crate::harness::eq("site", site)],
        start_ms: i64::MIN,
        end_ms: i64::MAX,
    };
    let status = server
        .query()
        .await
        .select(req("damaged"))
        .await
        .expect_err("corrupt chunk");
    assert_eq!(status.code(), tonic::Code::DataLoss);
    let name = segment
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .to_owned();
    assert!(
        status.message().contains(&name) && status.message().contains("offset"),
        "{}",
        status.message()
    );
    let intact = server
        .query()
        .await
        .select(req("intact"))
        .await
        .expect("the rest is served")
        .into_inner()
        .message()
        .await
        .expect("msg")
        .expect("batch");
    assert_eq!(intact.series[0].timestamps_ms.len(), 500);
}
