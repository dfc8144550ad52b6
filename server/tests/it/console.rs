//! The web console in a real browser (headless Chromium over WebDriver) against the demo
//! server: every page loads without a script error, a PromQL query typed into Explore draws
//! exactly the HTTP API's answer, an overview tile follows a new sample and turns silent
//! when its source stops. Screenshots of each page are written to
//! `target/tmp/console-screenshots/` for a person to look at; the figures BENCHMARKS.md
//! reports (first chart after start, page weight, 24 h of 100 series, write → tile) are
//! printed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use iocdb_proto::v1;
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::harness::{Server, enc, now_ms, series};

fn shots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

/// Asserts the page recorded no script error, the browser logged nothing severe, and the
/// page shows no error where its data should be.
fn no_errors(browser: &Browser, page: &str) {
    let errors = browser.errors();
    assert!(errors.is_empty(), "{page}: {errors:#?}");
    let shown = browser.run(
        "return [...document.querySelectorAll('.error')].map((e) => e.textContent).filter(Boolean);",
        json!([]),
    );
    assert_eq!(shown, json!([]), "{page} shows an error");
}

/// Opens a page and waits until it has drawn its first data.
fn open(browser: &Browser, server: &Server, hash: &str) {
    browser.go(&format!("http://{}/{hash}", server.http));
    browser.wait_for(
        hash,
        Duration::from_secs(30),
        "return document.getElementById('main').dataset.ready === '1';",
    );
}

/// Writes the test source's reading, now.
async fn reading(server: &Server, v: f64) {
    server
        .ingest()
        .await
        .write(v1::WriteRequest {
            namespace: "console_test".into(),
            series: vec![series(
                "tile_reading",
                &[("commune", "Châu Đốc")],
                &[(now_ms(), v)],
            )],
        })
        .await
        .expect("write");
}

/// The tile's shown value for namespace `ns`.
fn tile_text(browser: &Browser, ns: &str) -> String {
    browser
        .run(
            "const t = document.querySelector(`.tile[data-ns=\"${arguments[0]}\"] .value`); return t ? t.textContent : '';",
            json!([ns]),
        )
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_the_province_in_a_real_browser() {
    let browser = Browser::start();
    let dir = tempfile::tempdir().expect("dir");
    let scale: f64 = std::env::var("IOCDB_CONSOLE_DEMO_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.01);
    let started = Instant::now();
    let server = Server::start(&dir.path().join("data"), &format!("demo_scale = {scale}\n"));

    // Explore, straight from a shared link: the time to the first chart.
    let link = format!(
        "#/explore?ns=security&q={}&range=1h",
        enc("sum(camera_people_count)")
    );
    browser.go(&format!("http://{}/{link}", server.http));
    // The page may ask before the demo's first samples are in: ask again, as a user would.
    let deadline = Instant::now() + Duration::from_secs(60);
    let drawn = "const d = document.querySelector('#chart canvas').iocdbDrawn; return Boolean(d && d.segments > 0);";
    while browser.run(drawn, json!([])) != true {
        assert!(
            Instant::now() < deadline,
            "no chart within 60 s: {:?}",
            browser.run(
                "return document.getElementById('main').innerText;",
                json!([])
            )
        );
        browser.click("#run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "console: first chart drawn {} ms after `serve --demo` started (scale {scale})",
        started.elapsed().as_millis()
    );
    // What the first load weighed (fresh browser profile, so nothing was cached).
    let weight = browser.run(
        "const all = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
         const page = all.filter((e) => !e.name.includes('/api/'));
         return [page.reduce((n, e) => n + e.transferSize, 0), page.reduce((n, e) => n + e.decodedBodySize, 0), page.length];",
        json!([]),
    );
    println!(
        "console: first load {} bytes transferred ({} decoded) in {} files",
        weight[0], weight[1], weight[2]
    );
    assert!(weight[0].as_u64().unwrap_or(0) > 0, "{weight}");
    assert!(
        weight[0].as_u64().unwrap_or(u64::MAX) < 300_000,
        "page weight {weight}"
    );
    no_errors(&browser, "explore (link)");

    // Typing, with completion of metric names and label values.
    browser.clear("#promql");
    browser.type_into("#promql", "camera_peo");
    browser.wait_for(
        "metric name completion",
        Duration::from_secs(10),
        "return [...document.querySelectorAll('.complete li')].some((li) => li.textContent.startsWith('camera_people_count'));",
    );
    browser.clear("#promql");
    browser.type_into("#promql", "camera_people_count{commune=\"");
    let communes = browser.wait_for(
        "label value completion",
        Duration::from_secs(10),
        "return document.querySelectorAll('.complete li').length;",
    );
    assert!(communes.as_u64().unwrap_or(0) > 1, "{communes}");
    browser.clear("#promql");
    // Offset past the live edge, so that samples arriving meanwhile cannot change it.
    let typed = "sum by (commune) (camera_people_count offset 2m)";
    browser.type_into("#promql", typed);
    browser.click("#run");
    let asked = browser.wait_for(
        "the typed query's chart",
        Duration::from_secs(30),
        "const m = document.getElementById('main'); const q = m.dataset.query && JSON.parse(m.dataset.query);
         return q && q.query.includes('offset 2m') ? m.dataset.query : null;",
    );
    let asked: Value = serde_json::from_str(asked.as_str().expect("query")).expect("json");
    let drawn = browser.run(
        "return document.querySelector('#chart canvas').iocdbDrawn.series;",
        json!([]),
    );
    let (code, api) = server.get_json(&format!(
        "/ns/security/api/v1/query_range?query={}&start={}&end={}&step={}",
        enc(typed),
        asked["start"].as_str().expect("start"),
        asked["end"].as_str().expect("end"),
        asked["step"]
    ));
    assert_eq!(code, 200, "{api}");
    let api = api["data"]["result"].as_array().expect("matrix").clone();
    let drawn = drawn.as_array().expect("series").clone();
    assert!(!api.is_empty());
    assert_eq!(drawn.len(), api.len(), "series drawn against the API's");
    for (d, a) in drawn.iter().zip(&api) {
        let commune = a["metric"]["commune"].as_str().expect("commune");
        assert!(
            d["name"].as_str().unwrap_or_default().contains(commune),
            "{d}"
        );
        let want: Vec<(i64, f64)> = a["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|p| {
                (
                    (p[0].as_f64().expect("t") * 1000.0).round() as i64,
                    p[1].as_str().expect("v").parse().expect("number"),
                )
            })
            .collect();
        let got: Vec<(i64, f64)> = d["points"]
            .as_array()
            .expect("points")
            .iter()
            .map(|p| (p[0].as_i64().expect("t"), p[1].as_f64().expect("v")))
            .collect();
        assert_eq!(got, want, "{commune}");
    }
    browser.screenshot(&shots().join("explore.png"));
    no_errors(&browser, "explore");

    // A chart of 24 hours of 100 series, one sample a minute.
    let mut hundred = Vec::new();
    let now = now_ms();
    for i in 0..100 {
        let samples: Vec<(i64, f64)> = (0..1440)
            .map(|m| (now - 86_400_000 + m * 60_000, ((i * 7 + m) % 97) as f64))
            .collect();
        let camera = format!("cam-{i:03}");
        hundred.push(series("chart_load", &[("camera", &camera)], &samples));
    }
    server
        .ingest()
        .await
        .write(v1::WriteRequest {
            namespace: "console_load".into(),
            series: hundred,
        })
        .await
        .expect("100 series");
    let mut draws = Vec::new();
    for _ in 0..3 {
        browser.go("about:blank");
        open(
            &browser,
            &server,
            "#/explore?ns=console_load&q=chart_load&range=24h",
        );
        let figures = browser.run(
            "const m = document.getElementById('main'); const d = document.querySelector('#chart canvas').iocdbDrawn;
             return [Number(m.dataset.totalMs), Number(m.dataset.drawMs), d.series.length, d.series[0].points.length];",
            json!([]),
        );
        assert_eq!(figures[2], 100, "{figures}");
        draws.push(figures);
    }
    println!("console: 24 h of 100 series [total ms, draw ms, series, points each]: {draws:?}");
    no_errors(&browser, "explore (100 series)");

    // The overview: a tile follows a new sample, and turns silent when its source stops.
    let mut admin = server.admin().await;
    admin
        .set_metadata(v1::MetricMetadata {
            namespace: "console_test".into(),
            metric: "tile_reading".into(),
            department: "Phòng thử nghiệm".into(),
            kind: "gauge".into(),
            expected_interval_ms: Some(1000),
            ..Default::default()
        })
        .await
        .expect("catalog");
    reading(&server, 41.0).await;
    open(&browser, &server, "#/overview");
    let deadline = Instant::now() + Duration::from_secs(30);
    while tile_text(&browser, "console_test") != "41" {
        assert!(
            Instant::now() < deadline,
            "the tile shows {:?}, not 41",
            tile_text(&browser, "console_test")
        );
        reading(&server, 41.0).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut delays = Vec::new();
    for v in [42.0, 43.0, 44.0] {
        reading(&server, v).await;
        let acked = Instant::now();
        let want = format!("{v}");
        let deadline = acked + Duration::from_secs(15);
        while tile_text(&browser, "console_test") != want {
            assert!(Instant::now() < deadline, "the tile did not show {want}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        delays.push(acked.elapsed().as_millis());
    }
    println!("console: acknowledged write → tile changed on screen, ms: {delays:?}");
    browser.screenshot(&shots().join("overview.png"));
    // Nothing more is written: within three intervals and a status refresh, silent.
    let status = browser.wait_for(
        "the silent tile",
        Duration::from_secs(30),
        "const b = document.querySelector('.tile[data-ns=\"console_test\"] .status'); return b && b.dataset.status === 'silent' && b.parentElement.parentElement.querySelector('.since').textContent;",
    );
    assert!(
        status
            .as_str()
            .unwrap_or_default()
            .starts_with("Im lặng từ"),
        "{status}"
    );
    // The demo's ten domains are there, with their departments.
    let tiles = browser.run(
        "return [...document.querySelectorAll('.tile')].map((t) => t.dataset.ns);",
        json!([]),
    );
    for ns in ["security", "health", "economy", "documents", "console_test"] {
        assert!(
            tiles.as_array().expect("tiles").contains(&json!(ns)),
            "{tiles}"
        );
    }
    browser.screenshot(&shots().join("overview-silent.png"));
    no_errors(&browser, "overview");

    // Data health: the silent test source, named with its department.
    open(&browser, &server, "#/health");
    browser.wait_for(
        "the silent source in data health",
        Duration::from_secs(30),
        "const h = [...document.querySelectorAll('#health h2')].find((e) => e.textContent.startsWith('Nguồn im lặng'));
         const t = h && h.nextElementSibling;
         return Boolean(t && t.textContent.includes('tile_reading') && t.textContent.includes('Phòng thử nghiệm'));",
    );
    browser.screenshot(&shots().join("health.png"));
    no_errors(&browser, "health");

    // The server page (its rates need a second reading), then in English and large type.
    open(&browser, &server, "#/server");
    browser.wait_for(
        "the server page's rates",
        Duration::from_secs(30),
        "return !document.querySelector('.card[data-key=\"ingest\"] .v').textContent.startsWith('–');",
    );
    let segments = browser.run(
        "return document.querySelector('.card[data-key=\"segments\"] .v').textContent;",
        json!([]),
    );
    assert!(
        segments.as_str().is_some_and(|s| !s.is_empty()),
        "{segments}"
    );
    browser.screenshot(&shots().join("server.png"));
    no_errors(&browser, "server");
    browser.run(
        "const s = document.getElementById('lang'); s.value = 'en'; s.dispatchEvent(new Event('change'));
         document.getElementById('big').click();",
        json!([]),
    );
    open(&browser, &server, "#/overview");
    let english = browser.run(
        "return [document.querySelector('nav a.active').textContent, document.body.classList.contains('big')];",
        json!([]),
    );
    assert_eq!(english, json!(["Overview", true]));
    browser.screenshot(&shots().join("overview-en-large.png"));
    no_errors(&browser, "overview (English, large type)");
}
