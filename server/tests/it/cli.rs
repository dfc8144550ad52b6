//! The operator CLI against a running server: `iocdb write` from CSV, `iocdb query --json`,
//! `iocdb latest`, `iocdb stats`.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::harness::{Server, now_ms};

pub fn iocdb(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_iocdb"))
        .args(args)
        .env("IOCDB_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn iocdb");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(input);
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn csv_written_with_the_cli_reads_back_as_json() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), "");
    let t = now_ms() / 60_000 * 60_000 - 120_000;
    let csv = format!(
        "metric,commune,timestamp,value\nlodging_guests,Phường Châu Đốc,{t},42\nlodging_guests,Phường Châu Đốc,{},43\nlodging_guests,Xã Tri Tôn,{t},17\n",
        t + 60_000
    );
    let (ok, out, err) = iocdb(
        &["write", "--addr", &server.addr, "-n", "lodging", "-"],
        Some(&csv),
    );
    assert!(ok, "{err}");
    assert!(out.contains("accepted 3 samples"), "{out}");

    let (ok, out, err) = iocdb(
        &[
            "query",
            "--addr",
            &server.addr,
            "-n",
            "lodging",
            "-m",
            "commune=~\"Phường.*\"",
            "--start",
            &t.to_string(),
            "--end",
            &(t + 60_000).to_string(),
            "--step",
            "1m",
            "--json",
        ],
        None,
    );
    assert!(ok, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(json[0]["labels"]["commune"], "Phường Châu Đốc");
    assert_eq!(
        json[0]["points"],
        serde_json::json!([[t, 42.0], [t + 60_000, 43.0]])
    );

    let (ok, out, _) = iocdb(
        &[
            "latest",
            "--addr",
            &server.addr,
            "-n",
            "lodging",
            "-m",
            "__name__=lodging_guests",
            "--lookback",
            "10m",
        ],
        None,
    );
    assert!(ok);
    assert!(out.contains("Xã Tri Tôn") && out.contains("43"), "{out}");

    let (ok, out, _) = iocdb(&["stats", "--addr", &server.addr], None);
    assert!(ok);
    assert!(out.contains("accepted samples  3"), "{out}");
    assert!(out.contains("query cache       "), "{out}");

    let (ok, _, err) = iocdb(
        &["write", "--addr", &server.addr, "-n", "lodging", "-"],
        Some("metric,timestamp,value\nbad name,1,2\n"),
    );
    assert!(!ok, "a rejected sample makes the command fail");
    assert!(
        err.contains("invalid_argument") || err.contains("does not match"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_without_its_manifest_refuses_to_start_and_repair_brings_the_data_back() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let server = Server::start(&data, "");
    let t = now_ms() - 600_000;
    let req = iocdb_proto::v1::WriteRequest {
        namespace: "health".into(),
        series: vec![crate::harness::series(
            "hospital_beds_free",
            &[("hospital", "Bệnh viện Châu Đốc")],
            &[(t, 12.0), (t + 60_000, 11.0)],
        )],
    };
    server.ingest().await.write(req).await.expect("write");
    server.flush().await;
    assert!(server.terminate().success());
    std::fs::remove_file(data.join("MANIFEST")).expect("remove the manifest");

    let data_dir = data.to_str().expect("utf-8 path");
    let (ok, _, err) = iocdb(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir,
        ],
        None,
    );
    assert!(!ok, "a server must not start without its manifest");
    assert!(
        err.contains("MANIFEST") && err.contains("iocdb repair"),
        "{err}"
    );

    let (ok, out, err) = iocdb(&["repair", "--data-dir", data_dir], None);
    assert!(ok, "{err}");
    assert!(out.contains("rebuilt the manifest"), "{out}");
    let server = Server::start(&data, "");
    let got = crate::harness::select_all(&server, "health", vec![]).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].values, [12.0, 11.0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_by_rpc_and_by_the_cli_merges_a_days_segments_and_changes_no_answer() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let server = Server::start(&data, "");
    // Yesterday's figures, uploaded in three rounds into three 2-hour partitions, one flush
    // each; the last round corrects a value of the first.
    let day = (now_ms() / 86_400_000 - 1) * 86_400_000;
    for (hour, value) in [(1, 10.0), (5, 20.0), (9, 30.0)] {
        let t = day + hour * 3_600_000;
        let mut points = vec![(t, value), (t + 60_000, value + 1.0)];
        if hour == 9 {
            points.push((day + 3_600_000, -1.0));
        }
        let req = iocdb_proto::v1::WriteRequest {
            namespace: "health".into(),
            series: vec![crate::harness::series(
                "hospital_beds_free",
                &[("hospital", "Bệnh viện Châu Đốc")],
                &points,
            )],
        };
        server.ingest().await.write(req).await.expect("write");
        server.flush().await;
    }
    let stats = |s: iocdb_proto::v1::StatsResponse| s.segments;
    let mut admin = server.admin().await;
    let before = stats(
        admin
            .stats(iocdb_proto::v1::StatsRequest {})
            .await
            .expect("stats")
            .into_inner(),
    );
    // The third round wrote into two partitions (its own and the corrected one's).
    assert_eq!(before, 4);
    let answer = crate::harness::select_all(&server, "health", vec![]).await;
    assert_eq!(answer[0].values, [-1.0, 11.0, 20.0, 21.0, 30.0, 31.0]);
    let r = admin
        .compact(iocdb_proto::v1::CompactRequest { before_ms: 0 })
        .await
        .expect("compact")
        .into_inner();
    assert_eq!((r.windows, r.segments_in, r.segments_out), (1, 4, 1));
    let after = stats(
        admin
            .stats(iocdb_proto::v1::StatsRequest {})
            .await
            .expect("stats")
            .into_inner(),
    );
    assert_eq!(after, 1);
    assert_eq!(
        crate::harness::select_all(&server, "health", vec![]).await,
        answer
    );

    // A late upload into the same day, then the CLI on the stopped server's directory.
    let req = iocdb_proto::v1::WriteRequest {
        namespace: "health".into(),
        series: vec![crate::harness::series(
            "hospital_beds_free",
            &[("hospital", "Bệnh viện Châu Đốc")],
            &[(day + 20 * 3_600_000, 7.0)],
        )],
    };
    server.ingest().await.write(req).await.expect("write");
    server.flush().await;
    assert!(server.terminate().success());
    let data_dir = data.to_str().expect("utf-8 path");
    let (ok, out, err) = iocdb(&["compact", "--data-dir", data_dir, "--json"], None);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("json report");
    assert_eq!(report["segments_in"], 2, "{out}");
    assert_eq!(report["segments_out"], 1, "{out}");
    let server = Server::start(&data, "");
    let got = crate::harness::select_all(&server, "health", vec![]).await;
    assert_eq!(got[0].values, [-1.0, 11.0, 20.0, 21.0, 30.0, 31.0, 7.0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_checks_a_stopped_servers_directory_and_names_a_damaged_file() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let server = Server::start(&data, "");
    let t = crate::harness::start_of_a_partition();
    let req = iocdb_proto::v1::WriteRequest {
        namespace: "edu".into(),
        series: vec![crate::harness::series(
            "students_present",
            &[("school", "THPT Thoại Ngọc Hầu")],
            &(0..200)
                .map(|i| (t + i * 1000, i as f64))
                .collect::<Vec<_>>(),
        )],
    };
    server.ingest().await.write(req).await.expect("write");
    server.flush().await;
    let (ok, out, err) = iocdb(&["verify", "--addr", &server.addr], None);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("1 segments") && out.contains("everything checks"),
        "{out}"
    );

    // A bit flipped in place under the running server (as the disk would): the server's own
    // verification finds it through its mapping.
    let segment = std::fs::read_dir(data.join("segments"))
        .expect("segments")
        .next()
        .expect("a segment")
        .expect("entry")
        .path();
    let flip = |path: &std::path::Path| {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("open");
        let at = file.metadata().expect("len").len() / 2;
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, at).expect("read");
        byte[0] ^= 0x01;
        file.write_all_at(&byte, at).expect("write");
    };
    flip(&segment);
    let name = segment.file_name().and_then(|n| n.to_str()).expect("name");
    let (ok, out, _) = iocdb(&["verify", "--addr", &server.addr], None);
    assert!(
        !ok && out.contains(name),
        "the running server must find it: {out}"
    );
    flip(&segment);
    let (ok, out, _) = iocdb(&["verify", "--addr", &server.addr], None);
    assert!(ok, "{out}");
    assert!(server.terminate().success());
    let data_dir = data.to_str().expect("utf-8 path");
    let (ok, out, err) = iocdb(&["verify", "--data-dir", data_dir], None);
    assert!(ok, "{out}{err}");
    assert!(out.contains("everything checks"), "{out}");

    flip(&segment);
    let (ok, out, _) = iocdb(&["verify", "--data-dir", data_dir, "--json"], None);
    assert!(!ok, "a damaged segment must fail verify: {out}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert!(
        report["problems"].as_array().is_some_and(|p| p
            .iter()
            .any(|x| x["file"].as_str().is_some_and(|f| f.ends_with(name)))),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn inspect_agrees_with_the_servers_stats() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let server = Server::start(&data, "");
    let t = now_ms() - 600_000;
    for (ns, metric, n) in [("lodging", "guests", 3), ("health", "beds_free", 2)] {
        let req = iocdb_proto::v1::WriteRequest {
            namespace: ns.into(),
            series: (0..n)
                .map(|i| {
                    crate::harness::series(
                        metric,
                        &[("commune", ["Châu Đốc", "Tri Tôn", "Long Xuyên"][i])],
                        &[(t, 1.0), (t + 60_000, 2.0)],
                    )
                })
                .collect(),
        };
        server.ingest().await.write(req).await.expect("write");
    }
    server.flush().await;
    let stats = server
        .admin()
        .await
        .stats(iocdb_proto::v1::StatsRequest {})
        .await
        .expect("stats")
        .into_inner();
    let (ok, online, err) = iocdb(&["inspect", "--addr", &server.addr, "--json"], None);
    assert!(ok, "{err}");
    let online: serde_json::Value = serde_json::from_str(online.trim()).expect("json");
    assert!(server.terminate().success());
    let data_dir = data.to_str().expect("utf-8 path");
    let (ok, out, err) = iocdb(&["inspect", "--data-dir", data_dir, "--json"], None);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    // The running server and its directory afterwards say the same.
    for key in [
        "segments",
        "series_by_metric",
        "bytes_per_sample_by_namespace",
        "label_cardinality",
        "tombstones",
    ] {
        assert_eq!(online[key], v[key], "{key}");
    }
    let segments = v["segments"].as_array().expect("segments");
    assert_eq!(segments.len() as u64, stats.segments, "{out}");
    let samples: u64 = segments
        .iter()
        .map(|s| s["samples"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(samples, stats.segment_samples);
    // The default tiers: every segment with samples has rollups, and says so.
    assert!(
        segments.iter().all(|s| s["rollup_bytes"].as_u64() > Some(0)
            && s["rollup_bytes"].as_u64() < s["bytes"].as_u64()),
        "{out}"
    );
    let series: u64 = v["series_by_metric"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|m| m["series"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(series, stats.series);
    assert_eq!(
        v["label_cardinality"][0],
        serde_json::json!(["commune", 3]),
        "{out}"
    );
    let (ok, out, _) = iocdb(&["inspect", "--data-dir", data_dir], None);
    assert!(
        ok && out.contains("health | beds_free | 2") && out.contains("commune | 3"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_and_a_backup_of_a_running_server_restore_as_data_directories() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let server = Server::start(&data, "");
    let t = now_ms() - 600_000;
    let write = |i: i64| iocdb_proto::v1::WriteRequest {
        namespace: "tourism".into(),
        series: vec![crate::harness::series(
            "visitors",
            &[("site", "Miếu Bà Chúa Xứ")],
            &[(t + i * 60_000, i as f64)],
        )],
    };
    server.ingest().await.write(write(0)).await.expect("write");
    server.flush().await;
    server.ingest().await.write(write(1)).await.expect("write");
    let snap = dir.path().join("snap");
    let backup = dir.path().join("backup");
    let to = |p: &std::path::Path| p.to_str().expect("utf-8").to_owned();
    let (ok, out, err) = iocdb(
        &["snapshot", "--addr", &server.addr, "--to", &to(&snap)],
        None,
    );
    assert!(ok && out.contains("snapshot in"), "{out}{err}");
    let (ok, out, err) = iocdb(
        &["backup", "--addr", &server.addr, "--to", &to(&backup)],
        None,
    );
    assert!(ok && out.contains("backed up to"), "{out}{err}");
    server.ingest().await.write(write(2)).await.expect("write");
    let (ok, out, err) = iocdb(
        &["backup", "--addr", &server.addr, "--to", &to(&backup)],
        None,
    );
    assert!(ok && out.contains("kept"), "{out}{err}");
    let live = crate::harness::select_all(&server, "tourism", vec![]).await;
    assert_eq!(live[0].values, [0.0, 1.0, 2.0]);
    drop(server);

    let from_snapshot = Server::start(&snap, "");
    let got = crate::harness::select_all(&from_snapshot, "tourism", vec![]).await;
    assert_eq!(
        got[0].values,
        [0.0, 1.0],
        "the snapshot holds what was acknowledged before it"
    );
    drop(from_snapshot);
    let from_backup = Server::start(&backup, "");
    let got = crate::harness::select_all(&from_backup, "tourism", vec![]).await;
    assert_eq!(got, live, "the backup answers like the store");
}
