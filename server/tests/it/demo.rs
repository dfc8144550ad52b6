//! `serve --demo`: within seconds the province is there — a day of history, live samples
//! every second, the catalog declared, and the province's misbehaviour visible.

use crate::harness::{Server, enc, now_ms};

fn scalar(server: &Server, ns: &str, q: &str) -> f64 {
    let (code, v) = server.get_json(&format!("/ns/{ns}/api/v1/query?query={}", enc(q)));
    assert_eq!(code, 200, "{v}");
    v["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|x| x.parse().ok())
        .unwrap_or(f64::NAN)
}

#[test]
fn the_demo_backfills_a_day_then_writes_live_with_the_catalog_declared() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), "demo_scale = 0.01\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while scalar(&server, "security", "count(camera_people_count)").is_nan() {
        assert!(
            std::time::Instant::now() < deadline,
            "no demo data after 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // A day of history.
    let day_ago = scalar(
        &server,
        "security",
        "count(count_over_time(camera_people_count[1h] offset 23h))",
    );
    assert!(day_ago > 0.0, "{day_ago}");
    // Live: the newest sample keeps moving, within a few seconds of now.
    let newest = || scalar(&server, "security", "max(timestamp(camera_people_count))");
    let first = newest();
    assert!((now_ms() as f64 / 1000.0 - first) < 15.0, "{first}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while newest() <= first {
        assert!(std::time::Instant::now() < deadline, "no live samples");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (_, v) = server.get_json("/ns/health/api/v1/metadata");
    let entries = v["data"].as_object().expect("catalog");
    assert!(
        entries
            .values()
            .any(|e| e[0]["iocdb"]["department"] == "Sở Y tế"),
        "{v}"
    );
}
