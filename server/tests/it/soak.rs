//! Memory under connection load: the server's RSS with many idle connections and many
//! concurrent writers must level off, and stay within 2× of what one connection costs at
//! the same write rate. Bounded in time and count; the long version is `#[ignore]`d.

use std::time::{Duration, Instant};

use iocdb_proto::v1;

use crate::harness::{Server, now_ms, rss_bytes, series};

/// Resident memory of a process, MiB (Linux).
fn rss_mib(pid: u32) -> f64 {
    rss_bytes(pid) as f64 / (1024.0 * 1024.0)
}

/// Sources: each owns `SERIES` cameras and sends one sample of each per write.
const SOURCES: usize = 50;

/// One write of source `source`: its cameras, one sample each.
fn batch(source: usize, round: usize) -> v1::WriteRequest {
    const SERIES: usize = 200;
    let t = now_ms() - 1000;
    v1::WriteRequest {
        namespace: "security".into(),
        series: (0..SERIES)
            .map(|i| {
                let camera = format!("Camera {source}-{i} Châu Đốc");
                series(
                    "camera_people",
                    &[("camera", camera.as_str())],
                    &[(t, (round % 50) as f64)],
                )
            })
            .collect(),
    }
}

/// Holds `idle` connections open and sends the writes of all [`SOURCES`] over `writers`
/// connections (each writer sends for its share of the sources, in turn), `rate` writes per
/// second in all, plus a `Latest` probe every 100 ms, for `duration`. The same series at
/// the same rate whatever `writers` is. Returns the server's RSS, MiB, every 500 ms.
async fn load(
    server: &Server,
    idle: usize,
    writers: usize,
    rate: f64,
    duration: Duration,
) -> Vec<f64> {
    let mut idle_channels = Vec::with_capacity(idle);
    for _ in 0..idle {
        idle_channels.push(server.channel().await);
    }
    let until = Instant::now() + duration;
    let per_writer = Duration::from_secs_f64(writers as f64 / rate);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let mut client = server.ingest().await;
        tasks.push(tokio::spawn(async move {
            let mut round = 0;
            // Bounded in time and in count.
            while Instant::now() < until && round < 100_000 {
                let started = Instant::now();
                let source = w + (round * writers) % SOURCES;
                client
                    .write(batch(source % SOURCES, round))
                    .await
                    .expect("write");
                round += 1;
                tokio::time::sleep(per_writer.saturating_sub(started.elapsed())).await;
            }
        }));
    }
    let mut query = server.query().await;
    let pid = server.child.id();
    let mut samples = Vec::new();
    let mut ticks = 0;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let probe = v1::LatestRequest {
            namespace: "security".into(),
            matchers: vec![],
            at_ms: 0,
            lookback_ms: 0,
        };
        query.latest(probe).await.expect("latest");
        ticks += 1;
        if ticks % 5 == 0 {
            samples.push(rss_mib(pid));
        }
    }
    for t in tasks {
        t.await.expect("writer");
    }
    drop(idle_channels);
    samples
}

/// One connection, then 200 idle and 50 writing, at the same write rate. RSS under the load
/// must level off (its last third no higher than 1.5× its first) and stay within
/// `max_ratio` of one connection's.
async fn connection_load(seconds: u64, max_ratio: f64) {
    let dir = tempfile::tempdir().expect("dir");
    let one = Server::start(&dir.path().join("one"), "");
    let rate = 100.0;
    let steady = load(&one, 0, 1, rate, Duration::from_secs(seconds)).await;
    drop(one);
    let many = Server::start(&dir.path().join("many"), "");
    let loaded = load(&many, 200, 50, rate, Duration::from_secs(seconds)).await;
    eprintln!("RSS MiB, one connection: {steady:.0?}");
    eprintln!("RSS MiB, 200 idle + 50 writers: {loaded:.0?}");
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let third = loaded.len() / 3;
    let (first, last) = (
        mean(loaded.get(..third.max(1)).unwrap_or_default()),
        mean(
            loaded
                .get(loaded.len() - third.max(1)..)
                .unwrap_or_default(),
        ),
    );
    assert!(
        last <= 1.5 * first,
        "RSS under connection load keeps growing: {first:.0} MiB, then {last:.0} MiB"
    );
    // The mean of the second half: the level reached, not one noisy sample.
    let level = |v: &[f64]| mean(v.get(v.len() / 2..).unwrap_or_default());
    assert!(
        level(&loaded) <= max_ratio * level(&steady),
        "RSS under connection load levels at {:.0} MiB, more than {max_ratio}× one connection's {:.0} MiB",
        level(&loaded),
        level(&steady)
    );
}

/// Short, in every run: a margin over the 2× target for a shared CI machine's noise (the
/// unbounded pool measured 2.96×, so this still fails it).
#[tokio::test(flavor = "multi_thread")]
async fn memory_under_connection_load_levels_off_near_one_connections() {
    connection_load(6, 2.5).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "soak: a minute of connection load"]
async fn memory_under_a_minute_of_connection_load_stays_within_twice_one_connection() {
    connection_load(60, 2.0).await;
}

/// The table behind BENCHMARKS.md: RSS at the same write rate over 1, 50 and 200 writer
/// connections, and what 200 idle connections add to one.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "measurement: prints RSS by connection count"]
async fn rss_by_connection_count() {
    let dir = tempfile::tempdir().expect("dir");
    let level = |v: &[f64]| {
        let half = v.get(v.len() / 2..).unwrap_or_default();
        half.iter().sum::<f64>() / half.len().max(1) as f64
    };
    for (idle, writers) in [(0, 1), (0, 50), (0, 200), (200, 1)] {
        let server = Server::start(&dir.path().join(format!("{idle}-{writers}")), "");
        let rss = load(&server, idle, writers, 100.0, Duration::from_secs(10)).await;
        println!(
            "| {idle} idle + {writers} writer connections | {:.0} MiB |",
            level(&rss)
        );
    }
}
