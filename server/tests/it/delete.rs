//! Deletion from outside: `POST /api/v1/admin/tsdb/delete_series` answers and deletes like a
//! real Prometheus 2.42 with its admin API on the same data; `Admin.Delete` and `iocdb
//! delete` (on a running server and on a stopped one's directory) delete what they are told,
//! keep what is written afterwards, and survive a restart and a compaction.

use iocdb_proto::v1;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::harness::{Server, enc, eq, http_request, now_ms, select_all, series};
use crate::peers;
use crate::promql_diff::{Answer, INTERVAL_MS, SAMPLES, ask, data, differ, write_both};

/// Every raw sample of every series, as a range-vector instant query at `end`.
fn everything(end: i64) -> String {
    let window_s = (SAMPLES + 10) * INTERVAL_MS / 1000;
    format!(
        "/api/v1/query?query={}&time={}",
        enc(&format!("{{__name__=~\".+\"}}[{window_s}s]")),
        end as f64 / 1000.0
    )
}

fn series_names(addr: &str) -> Vec<String> {
    let (status, _, body) = http_request(
        addr,
        "GET",
        &format!("/api/v1/series?match[]={}", enc("{__name__=~\".+\"}")),
        &[],
        b"",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let mut names: Vec<String> = v["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s.to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn delete_series_answers_and_deletes_like_prometheus() {
    let dir = tempfile::tempdir().expect("dir");
    let prom = peers::prometheus_with(
        &dir.path().join("prom"),
        "global:\n  scrape_interval: 1h\n",
        &["--web.enable-admin-api"],
    );
    let server = Server::start(&dir.path().join("iocdb"), "");
    let end = (now_ms() / INTERVAL_MS) * INTERVAL_MS - 60_000;
    write_both(
        &server,
        &prom.addr,
        data(end, &mut StdRng::seed_from_u64(7)),
    );
    let secs = |ms: i64| format!("{}", ms as f64 / 1000.0);
    let mid = end - 100 * INTERVAL_MS;
    let deletions: Vec<String> = vec![
        // One series over a middle stretch (bounds inclusive).
        format!(
            "match[]={}&start={}&end={}",
            enc("cnt{job=\"a\",instance=\"i1\"}"),
            secs(mid - 20 * INTERVAL_MS),
            secs(mid)
        ),
        // Two selectors in one call, from a time on (RFC 3339 for one bound).
        format!(
            "match[]={}&match[]={}&start={}",
            enc("gauge{instance=~\"i2|i3\"}"),
            enc("gap{job=\"b\"}"),
            secs(end - 30 * INTERVAL_MS)
        ),
        // Whole series, all time.
        format!("match[]={}", enc("{__name__=\"dup_a\"}")),
        // Nothing matches.
        format!("match[]={}&end={}", enc("nothing_here"), secs(end)),
        // Deleting again what is gone already.
        format!("match[]={}", enc("dup_a")),
    ];
    for (i, params) in deletions.iter().enumerate() {
        for (name, addr) in [("iocdb", &server.http), ("prometheus", &prom.addr)] {
            let (status, _, body) = http_request(
                addr,
                "POST",
                "/api/v1/admin/tsdb/delete_series",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                params.as_bytes(),
            );
            assert_eq!(
                status,
                204,
                "{name}, deletion {i}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        let ours = ask(&server.http, &everything(end));
        let theirs = ask(&prom.addr, &everything(end));
        assert!(matches!(theirs, Answer::Matrix(_)), "{theirs:?}");
        if let Some(why) = differ(&ours, &theirs) {
            panic!("after deletion {i} ({params}): {why}");
        }
        // The series listing: Prometheus keeps listing a series whose every sample is
        // deleted until its head is compacted (hours); iocdb lists exactly the series that
        // still have samples, which is what Prometheus answers once compacted.
        let Answer::Matrix(left) = theirs else {
            unreachable!()
        };
        let ours = series_names(&server.http);
        assert_eq!(
            ours,
            left.keys().cloned().collect::<Vec<_>>(),
            "series after deletion {i}"
        );
        let theirs = series_names(&prom.addr);
        assert!(
            ours.iter().all(|s| theirs.contains(s)),
            "{ours:?} ⊄ {theirs:?}"
        );
    }
    // Refusals agree too: no selector, a bad one, a time that is not one.
    for params in [
        String::new(),
        format!("match[]={}", enc("cnt{")),
        "match[]=cnt&start=yesterday".to_owned(),
    ] {
        let (ours, _, body) = server.http(
            "POST",
            &format!("/api/v1/admin/tsdb/delete_series?{params}"),
            &[],
            b"",
        );
        let (theirs, _, _) = http_request(
            &prom.addr,
            "POST",
            &format!("/api/v1/admin/tsdb/delete_series?{params}"),
            &[],
            b"",
        );
        assert_eq!(ours, theirs, "{params}: {}", String::from_utf8_lossy(&body));
        assert_eq!(ours, 400);
    }
    // Where iocdb is stricter: a selector every series matches deletes the whole store in
    // Prometheus 2.42 (it answers 204); iocdb refuses it.
    let (status, _, body) = server.http(
        "POST",
        &format!(
            "/api/v1/admin/tsdb/delete_series?match[]={}",
            enc("{job=~\".*\"}")
        ),
        &[],
        b"",
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    // clean_tombstones applies them for good and changes no answer.
    let before = ask(&server.http, &everything(end));
    let (status, _, _) = server.http("POST", "/api/v1/admin/tsdb/clean_tombstones", &[], b"");
    assert_eq!(status, 204);
    assert!(differ(&ask(&server.http, &everything(end)), &before).is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_delete_and_the_cli_delete_keep_later_writes_and_survive_restarts() {
    let dir = tempfile::tempdir().expect("dir");
    let data_dir = dir.path().join("data");
    let server = Server::start(&data_dir, "");
    let t0 = (now_ms() / 3_600_000 - 3) * 3_600_000;
    let write = |points: Vec<(i64, f64)>, hospital: &'static str| v1::WriteRequest {
        namespace: "y_te".into(),
        series: vec![series(
            "waiting_patients",
            &[("hospital", hospital)],
            &points,
        )],
    };
    let points: Vec<(i64, f64)> = (0..10).map(|i| (t0 + i * 60_000, i as f64)).collect();
    let mut ingest = server.ingest().await;
    for h in ["Bệnh viện Châu Đốc", "Bệnh viện Long Xuyên"] {
        ingest.write(write(points.clone(), h)).await.expect("write");
    }
    let mut admin = server.admin().await;

    // Neither or both of matchers and selector; a selector matching everything.
    for req in [
        v1::DeleteRequest {
            namespace: "y_te".into(),
            ..Default::default()
        },
        v1::DeleteRequest {
            namespace: "y_te".into(),
            matchers: vec![eq("hospital", "x")],
            selector: "waiting_patients".into(),
            ..Default::default()
        },
        v1::DeleteRequest {
            namespace: "y_te".into(),
            selector: "{hospital=~\".*\"}".into(),
            ..Default::default()
        },
    ] {
        let err = admin.delete(req).await.expect_err("refused");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    }

    // Minutes 2..=4 of Châu Đốc by structured matchers.
    let r = admin
        .delete(v1::DeleteRequest {
            namespace: "y_te".into(),
            matchers: vec![eq("hospital", "Bệnh viện Châu Đốc")],
            start_ms: Some(t0 + 2 * 60_000),
            end_ms: Some(t0 + 4 * 60_000),
            ..Default::default()
        })
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(r.series, 1);
    // A correction of minute 3 sent after the deletion stays.
    ingest
        .write(write(vec![(t0 + 3 * 60_000, 33.0)], "Bệnh viện Châu Đốc"))
        .await
        .expect("write");
    let want_chau_doc = [0.0, 1.0, 33.0, 5.0, 6.0, 7.0, 8.0, 9.0];
    let chau_doc = |got: &[v1::Series]| {
        got.iter()
            .find(|s| s.labels.iter().any(|l| l.value == "Bệnh viện Châu Đốc"))
            .map(|s| s.values.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        chau_doc(&select_all(&server, "y_te", vec![]).await),
        want_chau_doc
    );

    // The CLI against the running server: Long Xuyên from minute 5 on, by a selector.
    let bin = env!("CARGO_BIN_EXE_iocdb");
    let run = |args: Vec<String>| {
        let out = std::process::Command::new(bin)
            .args(&args)
            .env("IOCDB_LOG", "warn")
            .output()
            .expect("run iocdb");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = run(vec![
        "delete".into(),
        "--addr".into(),
        server.addr.clone(),
        "-n".into(),
        "y_te".into(),
        "--match".into(),
        "waiting_patients{hospital=\"Bệnh viện Long Xuyên\"}".into(),
        "--start".into(),
        (t0 + 5 * 60_000).to_string(),
        "--json".into(),
    ]);
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(report[0]["series"], 1, "{out}");
    let long_xuyen = |got: &[v1::Series]| {
        got.iter()
            .find(|s| s.labels.iter().any(|l| l.value == "Bệnh viện Long Xuyên"))
            .map(|s| s.values.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        long_xuyen(&select_all(&server, "y_te", vec![]).await),
        [0.0, 1.0, 2.0, 3.0, 4.0]
    );

    // Across a restart, then the CLI on the stopped server's directory, then a compaction.
    assert!(server.terminate().success());
    let out = run(vec![
        "delete".into(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "-n".into(),
        "y_te".into(),
        "--match".into(),
        "waiting_patients".into(),
        "--end".into(),
        t0.to_string(),
    ]);
    assert!(out.contains("2 series"), "{out}");
    let server = Server::start(&data_dir, "");
    let got = select_all(&server, "y_te", vec![]).await;
    assert_eq!(chau_doc(&got), want_chau_doc[1..]);
    assert_eq!(long_xuyen(&got), [1.0, 2.0, 3.0, 4.0]);
    server.flush().await;
    let r = server
        .admin()
        .await
        .compact(v1::CompactRequest { before_ms: 0 })
        .await
        .expect("compact")
        .into_inner();
    assert!(r.segments_out >= 1, "{r:?}");
    assert_eq!(select_all(&server, "y_te", vec![]).await, got);
}
