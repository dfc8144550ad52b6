//! What a series costs: the head's own accounting of new series against the memory the
//! real server grows by as they arrive — the figure the head budget acts on must be the
//! truth, within 20 %. Bounded in the suite; the full-size run (2 M series) is ignored.

use std::time::Duration;

use iocdb_proto::v1;

use crate::harness::{Server, now_ms, rss_bytes, series};

/// Series per write.
const BATCH: usize = 2_000;

/// Writes camera-like series `from..to` (four labels, two samples each).
async fn write_series(server: &Server, from: usize, to: usize) {
    let mut ingest = server.ingest().await;
    let t = now_ms() - 60_000;
    for first in (from..to).step_by(BATCH) {
        let series = (first..(first + BATCH).min(to))
            .map(|i| {
                let camera = format!("cam-{i:07}");
                let commune = ["Châu Đốc", "Long Xuyên", "Tân Châu", "Núi Sam"][i % 4];
                series(
                    "camera_people",
                    &[
                        ("camera", camera.as_str()),
                        ("commune", commune),
                        ("district", ["An Phú", "Tri Tôn", "Chợ Mới"][i % 3]),
                    ],
                    &[(t, 1.0), (t + 1_000, 2.0)],
                )
            })
            .collect();
        let reply = ingest
            .write(v1::WriteRequest {
                namespace: "security".into(),
                series,
            })
            .await
            .expect("write")
            .into_inner();
        assert_eq!(reply.rejected, 0, "{:?}", reply.rejections.first());
    }
}

/// RSS once it has stopped moving.
fn settled_rss(pid: u32) -> u64 {
    let mut last = rss_bytes(pid);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(250));
        let now = rss_bytes(pid);
        if now.abs_diff(last) < 128 << 10 {
            return now;
        }
        last = now;
    }
    last
}

/// Writes `warm` series (paying the server's fixed costs: buffers, thread caches), then
/// `n` more; returns the head's accounted growth and the RSS growth over those `n`.
async fn accounted_and_real(warm: usize, n: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(
        &dir.path().join("data"),
        "max_series_per_namespace = 10000000\nhead_memory_mb = 16384\n",
    );
    let pid = server.child.id();
    let admin = server.admin().await;
    let head_bytes = || {
        let mut admin = admin.clone();
        async move {
            let stats = admin.stats(v1::StatsRequest {}).await.expect("stats");
            stats.into_inner().head_bytes as f64
        }
    };
    write_series(&server, 0, warm).await;
    let rss_before = settled_rss(pid);
    let accounted_before = head_bytes().await;
    write_series(&server, warm, warm + n).await;
    let rss_after = settled_rss(pid);
    let accounted_after = head_bytes().await;
    (
        accounted_after - accounted_before,
        rss_after as f64 - rss_before as f64,
    )
}

fn check(accounted: f64, real: f64, n: usize) {
    let ratio = accounted / real;
    eprintln!(
        "{n} series: accounted {:.0} B, RSS {:.0} B per series, ratio {ratio:.2}",
        accounted / n as f64,
        real / n as f64
    );
    assert!(
        (0.8..=1.2).contains(&ratio),
        "the head accounts {:.0} B per new series, the process grew by {:.0} B",
        accounted / n as f64,
        real / n as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_head_accounts_what_new_series_really_cost() {
    // A million series: the process's own transient memory (blocking-pool threads coming
    // and going, freed request buffers) moves RSS by tens of MiB, a few per cent of this.
    let (accounted, real) = accounted_and_real(200_000, 1_000_000).await;
    check(accounted, real, 1_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "2 M series: about a minute and 2 GiB"]
async fn the_head_accounts_what_two_million_series_really_cost() {
    let (accounted, real) = accounted_and_real(100_000, 2_000_000).await;
    check(accounted, real, 2_000_000);
}
