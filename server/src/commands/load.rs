//! The gRPC load tool behind `iocdb bench`: sends the province workload to a server with N
//! concurrent clients and measures throughput and acknowledgement latency.

use std::time::{Duration, Instant};

use iocdb_engine::WriteRequest;
use iocdb_proto::v1::{self, ingest_client::IngestClient};
use tonic::transport::Channel;

/// An engine request on the wire.
pub fn to_wire(r: WriteRequest) -> v1::WriteRequest {
    v1::WriteRequest {
        namespace: r.namespace,
        series: r
            .series
            .into_iter()
            .map(|s| v1::Series {
                labels: s
                    .labels
                    .into_iter()
                    .map(|l| v1::Label {
                        name: l.name,
                        value: l.value,
                    })
                    .collect(),
                timestamps_ms: s.samples.iter().map(|x| x.t).collect(),
                values: s.samples.iter().map(|x| x.v).collect(),
                stream_id: 0,
            })
            .collect(),
    }
}

/// The samples of every client's requests.
fn samples(lanes: &[Vec<v1::WriteRequest>]) -> usize {
    lanes
        .iter()
        .flatten()
        .flat_map(|r| &r.series)
        .map(|s| s.timestamps_ms.len())
        .sum()
}

/// What one load run measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadFigures {
    /// Samples acknowledged per second, all clients together.
    pub samples_per_s: f64,
    /// Median acknowledgement latency.
    pub p50: Duration,
    /// 99th percentile acknowledgement latency.
    pub p99: Duration,
}

/// Sends each lane of requests to `addr` from its own client, concurrently (a client sends
/// its requests one at a time, waiting for each acknowledgement).
pub async fn run(addr: &str, lanes: Vec<Vec<v1::WriteRequest>>) -> Result<LoadFigures, String> {
    let total = samples(&lanes);
    let conns = connect_all(addr, lanes.len()).await?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (mut client, lane) in conns.into_iter().zip(lanes) {
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(lane.len());
            for r in lane {
                let t0 = Instant::now();
                client
                    .write(r)
                    .await
                    .map_err(|s| format!("{}: {}", s.code(), s.message()))?;
                latencies.push(t0.elapsed());
            }
            Ok::<_, String>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.map_err(|e| e.to_string())??);
    }
    let elapsed = start.elapsed();
    latencies.sort();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Ok(LoadFigures {
        samples_per_s: total as f64 / elapsed.as_secs_f64(),
        p50: pick(0.5),
        p99: pick(0.99),
    })
}

/// Rewrites each client's requests for a write stream: the first time a series appears it
/// carries its labels and a stream id, later only the id (the server then skips label
/// validation and lookup). Done before the clock starts: a real source keeps its id.
pub fn with_stream_ids(requests: Vec<v1::WriteRequest>) -> Vec<v1::WriteRequest> {
    let mut ids: std::collections::HashMap<Vec<(String, String)>, u64> =
        std::collections::HashMap::new();
    requests
        .into_iter()
        .map(|mut r| {
            for s in &mut r.series {
                let key: Vec<(String, String)> = s
                    .labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect();
                match ids.get(&key) {
                    Some(&id) => {
                        s.stream_id = id;
                        s.labels.clear();
                    }
                    None => {
                        let id = ids.len() as u64 + 1;
                        ids.insert(key, id);
                        s.stream_id = id;
                    }
                }
            }
            r
        })
        .collect()
}

/// Sends each lane of requests over one write stream of its own client (with stream ids,
/// see [`with_stream_ids`]); returns samples acknowledged per second.
pub async fn run_streams(addr: &str, lanes: Vec<Vec<v1::WriteRequest>>) -> Result<f64, String> {
    let total = samples(&lanes);
    let lanes: Vec<Vec<v1::WriteRequest>> = lanes.into_iter().map(with_stream_ids).collect();
    let conns = connect_all(addr, lanes.len()).await?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (mut client, lane) in conns.into_iter().zip(lanes) {
        tasks.push(tokio::spawn(async move {
            let n = lane.len() as u64;
            let r = client
                .write_stream(tokio_stream_iter(lane))
                .await
                .map_err(|s| format!("{}: {}", s.code(), s.message()))?;
            if r.get_ref().messages != n {
                return Err(format!("{} of {n} messages stored", r.get_ref().messages));
            }
            Ok::<_, String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

fn tokio_stream_iter(
    v: Vec<v1::WriteRequest>,
) -> impl tonic::codegen::tokio_stream::Stream<Item = v1::WriteRequest> {
    tonic::codegen::tokio_stream::iter(v)
}

async fn connect_all(addr: &str, clients: usize) -> Result<Vec<IngestClient<Channel>>, String> {
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(connect(addr).await?);
    }
    Ok(conns)
}

async fn connect(addr: &str) -> Result<IngestClient<Channel>, String> {
    let ch = Channel::from_shared(addr.to_owned())
        .map_err(|e| e.to_string())?
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(8 << 20))
        .initial_connection_window_size(Some(16 << 20))
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(IngestClient::new(ch).max_encoding_message_size(64 << 20))
}
