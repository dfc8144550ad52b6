//! How soon a late sample shows in a cached dashboard panel: iocdb (result cache on),
//! VictoriaMetrics (its rollup result cache on, its default) and Prometheus (no cache), all
//! running at once with the same data — ten series, six hours at one sample every two
//! minutes. A
//! panel (`sum(panel)`, 6 h at 1 min, aligned) is asked three times so that the caches hold
//! it; then one late sample, half an hour old, is written to each system and the panel is
//! asked every 100 ms (at most 30 s) until its answer at that time shows the sample (the
//! late sample fills a minute the history skipped, so every system takes it as new).
//! Prints the time from the acknowledged write to the panel showing it, per system.
//!
//! Usage: `freshness_compare [ROUNDS]` (default 3). Needs the release `iocdb` beside this
//! binary, `victoria-metrics` and `prometheus` on PATH.

// JSON values index to `Null` when a key is missing.
#![allow(clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use iocdb_engine::{Label, Sample, SeriesWrite, WriteRequest};
use iocdb_peer_compare::peers::{self, post_remote_write};

const SERIES: usize = 10;
const MINUTES: i64 = 360;

fn body(series: Vec<SeriesWrite>) -> Vec<u8> {
    peers::remote_write_body(&WriteRequest {
        namespace: String::new(),
        series,
    })
}

fn panel(i: usize, samples: Vec<Sample>) -> SeriesWrite {
    SeriesWrite {
        labels: vec![
            Label::new("__name__", "panel"),
            Label::new("i", i.to_string()),
        ],
        samples,
    }
}

/// The panel's value at step `at`, or NaN — asked as a dashboard asks, caches allowed.
fn value_at(url: &str, start: i64, end: i64, at: i64) -> f64 {
    let body = ureq::get(&format!("{url}/api/v1/query_range"))
        .query("query", "sum(panel)")
        .query("start", &(start / 1000).to_string())
        .query("end", &(end / 1000).to_string())
        .query("step", "60")
        .call()
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .into_string()
        .expect("body");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["data"]["result"][0]["values"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p[0].as_f64().map(|t| (t * 1000.0).round() as i64) == Some(at))
        .and_then(|p| p[1].as_str()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().expect("dir");
    let iocdb = peers::iocdb(&dir.path().join("iocdb"), &[]);
    let vm = peers::victoria_metrics(&dir.path().join("vm"), &[]);
    let prometheus = peers::prometheus(&dir.path().join("prometheus"));
    let systems = [
        ("iocdb", iocdb.peer.url.clone()),
        ("VictoriaMetrics", vm.url.clone()),
        ("Prometheus", prometheus.url.clone()),
    ];
    let now = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64)
        / 60_000
        * 60_000;
    let history = body(
        (0..SERIES)
            .map(|i| {
                panel(
                    i,
                    // Every other minute, so that a late sample can fill a minute between.
                    (0..=MINUTES)
                        .step_by(2)
                        .map(|m| Sample::new(now - (MINUTES - m) * 60_000, (i + 1) as f64))
                        .collect(),
                )
            })
            .collect(),
    );
    for (name, url) in &systems {
        post_remote_write(&format!("{url}/api/v1/write"), &history);
        if *name == "VictoriaMetrics" {
            ureq::get(&format!("{url}/internal/force_flush"))
                .call()
                .expect("flush");
        }
    }
    let (start, end) = (now - MINUTES * 60_000, now);
    let names: Vec<&str> = systems.iter().map(|(n, _)| *n).collect();
    println!("| round | {} |", names.join(" | "));
    println!("|---|---|---|---|");
    for round in 0..rounds {
        // A step about half an hour back (a different one each round) where the history
        // has no sample, and a late sample there that changes the panel's sum.
        let at = now - (31 + round as i64 * 10) * 60_000;
        let mut cells = Vec::new();
        for (_, url) in &systems {
            // Asked three times, so that a cache holds it.
            let mut before = f64::NAN;
            for _ in 0..3 {
                before = value_at(url, start, end, at);
            }
            let late = body(vec![panel(0, vec![Sample::new(at, 1_000.0)])]);
            post_remote_write(&format!("{url}/api/v1/write"), &late);
            let acked = Instant::now();
            let deadline = acked + Duration::from_secs(30);
            let mut shown = None;
            while Instant::now() < deadline {
                let v = value_at(url, start, end, at);
                if v != before && v.is_finite() {
                    shown = Some(acked.elapsed());
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            cells.push(match shown {
                Some(d) => format!("{:.0} ms", d.as_secs_f64() * 1000.0),
                None => format!("not within 30 s (still {before})"),
            });
        }
        println!("| {round} | {} |", cells.join(" | "));
    }
}
