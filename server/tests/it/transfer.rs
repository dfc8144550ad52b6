//! `iocdb export` and `iocdb import` as an operator runs them: from a running server and
//! from a stopped one's directory, into a fresh store, bit for bit (NaN payloads included);
//! through the real `promtool` (OpenMetrics in, `tsdb dump` out) and a real VictoriaMetrics
//! (JSON lines both ways); and a file with a bad line imports everything else and says
//! where the bad line is.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use iocdb_proto::v1;

use crate::harness::{Server, http_request, now_ms, select_all, series};
use crate::peers;

/// (labels, timestamp) → value bits.
type Dump = BTreeMap<(String, i64), u64>;

async fn dump(server: &Server, namespace: &str) -> Dump {
    let mut out = Dump::new();
    for s in select_all(server, namespace, vec![]).await {
        let labels = s
            .labels
            .iter()
            .map(|l| format!("{}={:?}", l.name, l.value))
            .collect::<Vec<_>>()
            .join(",");
        for (t, v) in s.timestamps_ms.iter().zip(&s.values) {
            out.insert((labels.clone(), *t), v.to_bits());
        }
    }
    out
}

/// Every NaN as the one `NaN` reads as, for formats that cannot carry payloads.
fn plain_nans(d: &Dump) -> Dump {
    d.iter()
        .map(|(k, b)| {
            let v = f64::from_bits(*b);
            (k.clone(), if v.is_nan() { f64::NAN.to_bits() } else { *b })
        })
        .collect()
}

fn iocdb(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_iocdb"))
        .args(args)
        .env("IOCDB_LOG", "warn")
        .output()
        .expect("run iocdb");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Awkward values and labels, two days old and newer.
async fn fill(server: &Server) {
    let t0 = (now_ms() / 1000 - 2 * 86_400) * 1000;
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    let go_nan = f64::from_bits(0x7ff8_0000_0000_0001);
    let awkward = [
        0.30000000000000004,
        -0.0,
        f64::NAN,
        stale,
        go_nan,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e300,
        5e-324,
        -123456.789,
    ];
    let points: Vec<(i64, f64)> = awkward
        .iter()
        .enumerate()
        .map(|(i, v)| (t0 + i as i64 * 60_000 + 7, *v))
        .collect();
    let mut list = vec![
        series(
            "waiting_patients",
            &[
                ("hospital", "Bệnh viện Châu Đốc"),
                ("note", "a \"quoted\"\nline\\"),
            ],
            &points,
        ),
        series(
            "waiting_patients",
            &[("hospital", "Long Xuyên")],
            &points[..3],
        ),
    ];
    for i in 0..30 {
        let pts: Vec<(i64, f64)> = (0..100)
            .map(|k| (t0 + k * 900_000, (i * 1000 + k) as f64 / 100.0))
            .collect();
        list.push(series(
            "lodging_guests",
            &[("commune", &format!("Xã {i}"))],
            &pts,
        ));
    }
    server
        .ingest()
        .await
        .write(v1::WriteRequest {
            namespace: "du_lich".into(),
            series: list,
        })
        .await
        .expect("write");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_imports_into_a_fresh_store_bit_for_bit_online_and_offline() {
    let dir = tempfile::tempdir().expect("dir");
    let source_dir = dir.path().join("source");
    let source = Server::start(&source_dir, "");
    fill(&source).await;
    let original = dump(&source, "du_lich").await;
    assert_eq!(original.len(), 10 + 3 + 30 * 100);

    // Online: JSON lines out of one server, into another.
    let file = dir.path().join("export.jsonl");
    let (ok, out, err) = iocdb(&[
        "export",
        "--addr",
        &source.addr,
        "-n",
        "du_lich",
        "-o",
        path(&file),
        "--json",
    ]);
    assert!(ok, "{err}");
    let summary: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(summary, serde_json::json!({"series": 32, "samples": 3013}));
    let target = Server::start(&dir.path().join("target"), "");
    let (ok, _, err) = iocdb(&[
        "import",
        "--addr",
        &target.addr,
        "-n",
        "du_lich",
        path(&file),
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("imported 3013 samples"), "{err}");
    assert_eq!(dump(&target, "du_lich").await, original);

    // A selector and a range export part; OpenMetrics carries everything but NaN payloads.
    let om = dir.path().join("export.om");
    let (ok, _, err) = iocdb(&[
        "export",
        "--addr",
        &source.addr,
        "-n",
        "du_lich",
        "--match",
        "waiting_patients",
        "--format",
        "openmetrics",
        "-o",
        path(&om),
    ]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&om).expect("read");
    assert!(
        text.ends_with("# EOF\n") && text.lines().count() == 14,
        "{text}"
    );
    let other = Server::start(&dir.path().join("other"), "");
    let (ok, _, err) = iocdb(&[
        "import",
        "--addr",
        &other.addr,
        "-n",
        "du_lich",
        "--format",
        "openmetrics",
        path(&om),
    ]);
    assert!(ok, "{err}");
    let waiting: Dump = original
        .iter()
        .filter(|((l, _), _)| l.contains("waiting_patients"))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(
        plain_nans(&dump(&other, "du_lich").await),
        plain_nans(&waiting)
    );

    // Offline: from a stopped server's directory into another stopped one's.
    assert!(source.terminate().success());
    let offline = dir.path().join("offline.jsonl");
    let (ok, _, err) = iocdb(&[
        "export",
        "--data-dir",
        path(&source_dir),
        "-n",
        "du_lich",
        "-o",
        path(&offline),
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read(&offline).expect("offline"),
        std::fs::read(&file).expect("online"),
        "the same store exports the same bytes whichever way it is read"
    );
    let fresh_dir = dir.path().join("fresh");
    let (ok, _, err) = iocdb(&[
        "import",
        "--data-dir",
        path(&fresh_dir),
        "-n",
        "du_lich",
        path(&offline),
    ]);
    assert!(ok, "{err}");
    let fresh = Server::start(&fresh_dir, "");
    assert_eq!(dump(&fresh, "du_lich").await, original);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_line_is_named_and_everything_beside_it_is_imported() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), "");
    let t = now_ms() - 60_000;
    let file = dir.path().join("mixed.jsonl");
    let good = |v: f64| {
        format!(
            "{{\"metric\":{{\"__name__\":\"m\",\"x\":\"Châu Đốc\"}},\"values\":[{v}],\"timestamps\":[{t}]}}\n"
        )
    };
    let far_future = now_ms() + 86_400_000;
    let body = format!(
        "{}{{\"metric\":{{\"__name__\":\"m\"}},\"values\":[1,2],\"timestamps\":[{t}]}}\n{}\
         {{\"metric\":{{\"__name__\":\"late\"}},\"values\":[1],\"timestamps\":[{far_future}]}}\n",
        good(1.0),
        good(2.0).replace("Châu Đốc", "Long Xuyên")
    );
    std::fs::write(&file, body).expect("write");
    let (ok, _, err) = iocdb(&["import", "--addr", &server.addr, path(&file)]);
    assert!(!ok, "a bad line must fail the command: {err}");
    assert!(
        err.contains("mixed.jsonl:2: 2 values but 1 timestamps"),
        "{err}"
    );
    assert!(
        err.contains("rejected 1 samples of {__name__=\"late\"}"),
        "{err}"
    );
    assert!(err.contains("imported 2 samples"), "{err}");
    assert_eq!(dump(&server, "default").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn openmetrics_goes_through_the_real_promtool_and_its_dump_comes_back() {
    let dir = tempfile::tempdir().expect("dir");
    let source = Server::start(&dir.path().join("source"), "");
    fill(&source).await;
    let original = dump(&source, "du_lich").await;
    let om = dir.path().join("export.om");
    let (ok, _, err) = iocdb(&[
        "export",
        "--addr",
        &source.addr,
        "-n",
        "du_lich",
        "--format",
        "openmetrics",
        "-o",
        path(&om),
    ]);
    assert!(ok, "{err}");
    // promtool builds Prometheus blocks from it, then dumps them in its own format.
    let blocks = dir.path().join("blocks");
    let out = Command::new("promtool")
        .args([
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            path(&om),
            path(&blocks),
        ])
        .output()
        .expect("promtool is installed by .ci/run (Debian package prometheus)");
    assert!(
        out.status.success(),
        "promtool refused the export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `tsdb dump` opens the directory as a Prometheus data directory, WAL and all.
    std::fs::create_dir_all(blocks.join("wal")).expect("wal dir");
    let out = Command::new("promtool")
        .args(["tsdb", "dump", path(&blocks)])
        .output()
        .expect("promtool tsdb dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dumped = dir.path().join("dump.txt");
    std::fs::write(&dumped, &out.stdout).expect("write");
    let target = Server::start(&dir.path().join("target"), "");
    let (ok, _, err) = iocdb(&[
        "import",
        "--addr",
        &target.addr,
        "-n",
        "du_lich",
        "--format",
        "promtool",
        path(&dumped),
    ]);
    assert!(ok, "{err}");
    // Prometheus keeps a staleness marker's bits, and its dump prints every NaN as NaN.
    assert_eq!(
        plain_nans(&dump(&target, "du_lich").await),
        plain_nans(&original)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_lines_go_through_a_real_victoriametrics_both_ways() {
    let dir = tempfile::tempdir().expect("dir");
    let vm = peers::victoria_metrics(&dir.path().join("vm"));
    let source = Server::start(&dir.path().join("source"), "");
    fill(&source).await;
    let original = dump(&source, "du_lich").await;
    let file = dir.path().join("export.jsonl");
    let (ok, _, err) = iocdb(&[
        "export",
        "--addr",
        &source.addr,
        "-n",
        "du_lich",
        "-o",
        path(&file),
    ]);
    assert!(ok, "{err}");
    let body = std::fs::read(&file).expect("read");
    let (status, _, answer) = http_request(&vm.addr, "POST", "/api/v1/import", &[], &body);
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&answer));
    let (status, _, _) = http_request(&vm.addr, "GET", "/internal/force_flush", &[], b"");
    assert_eq!(status, 200);
    let (status, _, exported) = http_request(
        &vm.addr,
        "POST",
        "/api/v1/export",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"match[]=%7B__name__%3D~%22.%2B%22%7D",
    );
    assert_eq!(status, 200);
    let vm_file = dir.path().join("vm.jsonl");
    std::fs::write(&vm_file, &exported).expect("write");
    let target = Server::start(&dir.path().join("target"), "");
    let (ok, _, err) = iocdb(&[
        "import",
        "--addr",
        &target.addr,
        "-n",
        "du_lich",
        path(&vm_file),
    ]);
    assert!(ok, "{err}");
    // VictoriaMetrics drops NaN samples and stores decimals with about 12 significant
    // digits (0.30000000000000004 comes back 0.3; beside 1e300 in one block, as 0): every
    // timestamp it keeps must come back, and ordinary values to its precision.
    let back = dump(&target, "du_lich").await;
    let kept: Dump = original
        .iter()
        .filter(|(_, b)| !f64::from_bits(**b).is_nan())
        .map(|(k, b)| (k.clone(), *b))
        .collect();
    assert_eq!(
        back.keys().collect::<Vec<_>>(),
        kept.keys().collect::<Vec<_>>()
    );
    for (k, b) in kept
        .iter()
        .filter(|((l, _), _)| l.contains("lodging_guests"))
    {
        let (want, got) = (f64::from_bits(*b), f64::from_bits(back[k]));
        let close = want == got || (want - got).abs() <= 1e-11 * want.abs().max(got.abs());
        assert!(close, "{k:?}: {want} came back {got}");
    }
}
