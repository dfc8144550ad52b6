//! Fair shares: a namespace over its ingest rate is slowed and told when to retry (gRPC
//! `RESOURCE_EXHAUSTED` with `retry-after-ms`, HTTP 429 with `Retry-After`), while another
//! namespace's sender, at the same time, is not; both rates are measured. A query over its
//! namespace's sample budget is refused cleanly. Limits are reread on SIGHUP.

use std::time::{Duration, Instant};

use iocdb_proto::v1;

use crate::harness::{Server, now_ms, series};

const LIMIT: f64 = 20_000.0;
const BATCH: usize = 2_000;

fn batch(namespace: &str, k: usize) -> v1::WriteRequest {
    // Within the last hour, whatever k is (a repeated time is a correction).
    let t0 = now_ms() - 3_600_000 + ((k % 1000) * BATCH) as i64;
    v1::WriteRequest {
        namespace: namespace.into(),
        series: vec![series(
            "camera_people",
            &[("camera", "Cầu Cồn Tiên")],
            &(0..BATCH)
                .map(|i| (t0 + i as i64, i as f64))
                .collect::<Vec<_>>(),
        )],
    }
}

/// Sends batches as fast as it can for `for_how_long`; (samples accepted, refusals with a
/// retry hint).
async fn send(server: &Server, namespace: &str, for_how_long: Duration) -> (usize, usize) {
    let mut client = server.ingest().await;
    let (mut accepted, mut refused) = (0, 0);
    let started = Instant::now();
    let mut k = 0;
    while started.elapsed() < for_how_long && k < 100_000 {
        match client.write(batch(namespace, k)).await {
            Ok(_) => accepted += BATCH,
            Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                assert!(
                    s.metadata().get("retry-after-ms").is_some() && s.message().contains(namespace),
                    "{s:?}"
                );
                refused += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(s) => panic!("{s:?}"),
        }
        k += 1;
    }
    (accepted, refused)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_namespace_over_its_rate_is_slowed_and_told_while_another_is_not() {
    let dir = tempfile::tempdir().expect("dir");
    let config = format!(
        "fsync = \"interval\"\n[limits_by_namespace.an_ninh]\ningest_samples_per_sec = {LIMIT}\nquery_max_samples = 1000\n[limits_by_namespace.giao_duc]\nmax_series = 3\n"
    );
    let server = Server::start(&dir.path().join("data"), &config);
    let span = Duration::from_millis(1500);
    let (limited, free) = tokio::join!(
        send(&server, "an_ninh", span),
        send(&server, "du_lich", span)
    );
    let secs = span.as_secs_f64();
    let (limited_rate, free_rate) = (limited.0 as f64 / secs, free.0 as f64 / secs);
    println!(
        "an_ninh (limited to {LIMIT}/s): {limited_rate:.0} samples/s, {} refusals; du_lich: {free_rate:.0} samples/s",
        limited.1
    );
    // One second's burst, then the rate: at most about LIMIT × (1 + span) plus a batch.
    assert!(
        limited.0 as f64 <= LIMIT * (1.0 + secs) + BATCH as f64,
        "{limited_rate} samples/s"
    );
    assert!(
        limited.0 as f64 >= LIMIT * secs * 0.5,
        "{limited_rate} samples/s"
    );
    assert!(limited.1 > 0, "never told to slow down");
    assert_eq!(free.1, 0, "the other namespace was held back");
    assert!(
        free_rate > 3.0 * limited_rate,
        "{free_rate} vs {limited_rate}"
    );

    // Over HTTP: 429 with Retry-After.
    let mut status = 0;
    let mut retry = None;
    for i in 0..50 {
        let line = format!("queue,camera=c{i} people={i} {}\n", now_ms() / 1000);
        let body = line.repeat(500);
        let (s, headers, _) = server.http(
            "POST",
            "/ns/an_ninh/api/v2/write?precision=s",
            &[],
            body.as_bytes(),
        );
        status = s;
        retry = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
            .map(|(_, v)| v.clone());
        if s == 429 {
            break;
        }
    }
    assert_eq!(status, 429);
    assert!(retry.is_some_and(|r| r.parse::<u64>().is_ok_and(|s| s >= 1)));

    // A query reading more than the namespace's share is refused cleanly, naming the limit;
    // the same query in the other namespace is answered.
    let path = format!(
        "/api/v1/query?query={}",
        crate::harness::enc("count_over_time(camera_people[2h])")
    );
    let (status, _, body) = server.http("GET", &format!("/ns/an_ninh{path}"), &[], b"");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("1000"), "{body}");
    let (status, _, _) = server.http("GET", &format!("/ns/du_lich{path}"), &[], b"");
    assert_eq!(status, 200);

    // A namespace's own series limit: three schools, the fourth and fifth refused.
    let schools = v1::WriteRequest {
        namespace: "giao_duc".into(),
        series: (0..5)
            .map(|i| {
                series(
                    "students_present",
                    &[("school", &format!("THPT {i}"))],
                    &[(now_ms() - 1000, 1.0)],
                )
            })
            .collect(),
    };
    let err = server
        .ingest()
        .await
        .write(schools)
        .await
        .expect_err("over the series limit");
    assert!(
        err.message().contains("2 samples rejected, 3 accepted"),
        "{err:?}"
    );

    // A reload lifts the limit.
    std::fs::write(dir.path().join("data.toml"), "fsync = \"interval\"\n").expect("config");
    std::process::Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .expect("kill");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (accepted, refused) = send(&server, "an_ninh", Duration::from_millis(300)).await;
        if refused == 0 && accepted as f64 > LIMIT * 0.3 * 2.0 {
            break;
        }
        assert!(Instant::now() < deadline, "the limit was never lifted");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_namespace_at_its_head_share_waits_for_a_flush_while_others_write() {
    let dir = tempfile::tempdir().expect("dir");
    // 1 MiB of head: every namespace may fill 5 % of it, du_lich half.
    let config = "fsync = \"interval\"\nhead_memory_mb = 1\nflush_interval_s = 3600\n\
                  [limits_by_namespace.\"*\"]\nhead_memory_share = 0.05\n\
                  [limits_by_namespace.du_lich]\nhead_memory_share = 0.5\n";
    let server = Server::start(&dir.path().join("data"), config);
    let mut client = server.ingest().await;
    let mut refusal = None;
    for k in 0..5_000 {
        if let Err(s) = client.write(batch("an_ninh", k)).await {
            refusal = Some(s);
            break;
        }
    }
    let refusal = refusal.expect("never refused");
    assert_eq!(
        refusal.code(),
        tonic::Code::ResourceExhausted,
        "{refusal:?}"
    );
    assert!(
        refusal.message().contains("head_memory_share")
            && refusal.message().contains("namespace an_ninh"),
        "{refusal:?}"
    );
    assert!(refusal.metadata().get("retry-after-ms").is_some());

    let stats = server.admin().await.stats(v1::StatsRequest {}).await;
    let stats = stats.expect("stats").into_inner();
    assert_eq!(stats.head_share_by_namespace.get("an_ninh"), Some(&52_428));
    // Another department writes on, past what an_ninh may hold.
    for k in 0..60 {
        client
            .write(batch("du_lich", k))
            .await
            .expect("du_lich is not held back");
    }
    let stats = server.admin().await.stats(v1::StatsRequest {}).await;
    let stats = stats.expect("stats").into_inner();
    assert_eq!(stats.head_share_by_namespace.get("du_lich"), Some(&524_288));
    let du_lich = stats.head_bytes_by_namespace["du_lich"];
    assert!(du_lich > 52_428, "{du_lich} bytes");

    // The server flushes early for the pressed namespace; then it is admitted again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.write(batch("an_ninh", 4_999)).await.is_err() {
        assert!(Instant::now() < deadline, "an_ninh never got room again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
