//! Live subscriptions measured from outside: the release `iocdb` beside this binary, a
//! writer sending one sample at a time by unary `Write` (waiting for each acknowledgement),
//! and 1 or 100 `Query.Watch` subscribers, each on its own connection: the time from the
//! writer receiving its acknowledgement to each subscriber receiving the sample (negative
//! when the sample reached the subscriber first). Then ingest throughput (4 clients ×
//! 10,000-sample unary writes) with no subscriber and with one that never reads, alternated.
//!
//! Usage: `watch_latency [SAMPLES] [ROUNDS]`. Prints Markdown.

#![allow(clippy::indexing_slicing)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iocdb_peer_compare::peers;
use iocdb_proto::v1::{self, ingest_client::IngestClient, query_client::QueryClient};
use tonic::transport::Channel;

fn series(site: &str, t: i64, v: f64) -> v1::Series {
    v1::Series {
        labels: vec![
            v1::Label {
                name: "__name__".into(),
                value: "camera_people_count".into(),
            },
            v1::Label {
                name: "site".into(),
                value: site.into(),
            },
        ],
        timestamps_ms: vec![t],
        values: vec![v],
        stream_id: 0,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn channel(url: &str) -> Channel {
    Channel::from_shared(url.to_owned())
        .expect("url")
        .connect()
        .await
        .expect("connect")
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 * q).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(f64::NAN)
}

/// Ack-to-delivery latencies (ms) with `subscribers` subscribers and `samples` samples.
async fn latency(url: &str, subscribers: usize, samples: usize) -> Vec<f64> {
    let start = Instant::now();
    let received: Arc<Mutex<Vec<Vec<Option<f64>>>>> =
        Arc::new(Mutex::new(vec![vec![None; samples]; subscribers]));
    let mut tasks = Vec::new();
    for i in 0..subscribers {
        let mut stream = QueryClient::new(channel(url).await)
            .watch(v1::WatchRequest {
                namespace: "bench".into(),
                ..Default::default()
            })
            .await
            .expect("watch")
            .into_inner();
        let received = received.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = 0;
            while seen < samples {
                let Ok(Ok(Some(m))) =
                    tokio::time::timeout(Duration::from_secs(30), stream.message()).await
                else {
                    break;
                };
                let at = start.elapsed().as_secs_f64() * 1000.0;
                let mut r = received.lock().expect("lock");
                for s in m.series {
                    for v in s.values {
                        if let Some(slot) = r[i].get_mut(v as usize) {
                            *slot = Some(at);
                            seen += 1;
                        }
                    }
                }
            }
        }));
    }
    let mut ingest = IngestClient::new(channel(url).await);
    let t0 = now_ms() - 60_000;
    let mut acked = Vec::with_capacity(samples);
    for k in 0..samples {
        ingest
            .write(v1::WriteRequest {
                namespace: "bench".into(),
                series: vec![series("cam", t0 + k as i64, k as f64)],
            })
            .await
            .expect("write");
        acked.push(start.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for t in tasks {
        let _ = t.await;
    }
    let r = received.lock().expect("lock");
    let mut out = Vec::new();
    for sub in r.iter() {
        for (k, at) in sub.iter().enumerate() {
            let at = at.expect("every sample delivered");
            out.push(at - acked[k]);
        }
    }
    out
}

/// Samples/s of 4 clients writing 10,000-sample batches.
async fn ingest_rate(url: &str, round: usize) -> f64 {
    let (clients, batches, per) = (4, 40, 10_000usize);
    let t0 = now_ms() - 3_600_000 + round as i64 * 100_000;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut client = IngestClient::new(channel(url).await);
        tasks.push(tokio::spawn(async move {
            for b in 0..batches {
                let req = v1::WriteRequest {
                    namespace: "bench".into(),
                    series: (0..per / 10)
                        .map(|i| {
                            let mut s = series(&format!("c{c}-{i}"), 0, 0.0);
                            s.timestamps_ms = (0..10).map(|j| t0 + b * 10 + j).collect();
                            s.values = (0..10).map(|j| j as f64).collect();
                            s
                        })
                        .collect(),
                };
                client.write(req).await.expect("write");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    (clients * batches as usize * per) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let samples: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    println!("| subscribers | ack → delivery p50 | p99 | max |\n|---|---|---|---|");
    for subscribers in [1, 100] {
        let dir = tempfile::tempdir().expect("dir");
        let server = peers::iocdb(dir.path(), &[]);
        let mut l = latency(&server.grpc, subscribers, samples).await;
        let max = l.iter().copied().fold(f64::MIN, f64::max);
        println!(
            "| {subscribers} | {:.2} ms | {:.2} ms | {max:.2} ms |",
            percentile(&mut l, 0.5),
            percentile(&mut l, 0.99)
        );
    }
    let dir = tempfile::tempdir().expect("dir");
    let server = peers::iocdb(dir.path(), &["--fsync", "interval"]);
    let mut without = Vec::new();
    let mut with = Vec::new();
    let mut stalled = None;
    for round in 0..rounds * 2 {
        if round % 2 == 1 && stalled.is_none() {
            // Subscribes to everything, with a small queue, and never reads.
            let s = QueryClient::new(channel(&server.grpc).await)
                .watch(v1::WatchRequest {
                    namespace: "bench".into(),
                    buffer: 100,
                    ..Default::default()
                })
                .await
                .expect("watch")
                .into_inner();
            stalled = Some(s);
        }
        let rate = ingest_rate(&server.grpc, round).await;
        if round % 2 == 0 {
            without.push(rate);
        } else {
            with.push(rate);
        }
        if round % 2 == 1 {
            stalled = None;
        }
    }
    let (a, b) = (percentile(&mut without, 0.5), percentile(&mut with, 0.5));
    println!(
        "\ningest, 4 clients × 10,000-sample unary writes, {rounds} rounds alternated: without a subscriber {:.2} M samples/s, with one that never reads {:.2} M samples/s ({:.3}×)",
        a / 1e6,
        b / 1e6,
        b / a
    );
    println!(
        "rounds (M samples/s): without {:?}, with {:?}",
        without
            .iter()
            .map(|r| (r / 1e4).round() / 100.0)
            .collect::<Vec<_>>(),
        with.iter()
            .map(|r| (r / 1e4).round() / 100.0)
            .collect::<Vec<_>>()
    );
    let _ = stalled;
}
