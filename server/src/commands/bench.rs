//! `iocdb bench`: ingest over gRPC against ingest in-process, side by side in one run, on
//! the province workload. Starts its own server on a loopback port and a temporary data
//! directory for every run, so runs do not disturb each other or a real store.

use std::time::Duration;

use iocdb_benches::{load, report, workload};
use tokio::sync::{oneshot, watch};

use crate::cli::BenchArgs;
use crate::config::Config;

/// Runs the measurement and prints Markdown.
pub async fn run(a: BenchArgs) -> anyhow::Result<()> {
    let parse = |s: &str| -> anyhow::Result<Vec<usize>> {
        s.split(',').map(|x| Ok(x.trim().parse()?)).collect()
    };
    let (clients, batches) = (parse(&a.clients)?, parse(&a.batches)?);
    let specs = workload::series(a.scale);
    let start = report::day_start();
    let end = start + a.minutes * 60_000;
    println!(
        "| batch | clients | gRPC samples/s | p50 ack | p99 ack | in-process samples/s (same writers) | gRPC / in-process |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &batch in &batches {
        for &n in &clients {
            let in_process = {
                let specs = specs.clone();
                tokio::task::spawn_blocking(move || {
                    let dir = tempfile::tempdir()?;
                    let make = || workload::batches(&specs, start, end, batch);
                    Ok::<_, anyhow::Error>(report::ingest(
                        dir.path(),
                        iocdb_engine::Options::default(),
                        make,
                        n,
                    ))
                })
                .await??
            };
            let requests: Vec<_> = workload::batches(&specs, start, end, batch)
                .into_iter()
                .map(load::to_wire)
                .collect();
            let dir = tempfile::tempdir()?;
            let config = Config {
                data_dir: dir.path().to_path_buf(),
                listen: "127.0.0.1:0".into(),
                ..Config::default()
            };
            let (stop_tx, stop_rx) = watch::channel(false);
            let (ready_tx, ready_rx) = oneshot::channel();
            let server = tokio::spawn(super::serve::run_until(
                config,
                stop_rx,
                move |addr| {
                    let _ = ready_tx.send(addr);
                },
                None,
            ));
            let addr = tokio::time::timeout(Duration::from_secs(30), ready_rx).await??;
            let figures = load::run(&format!("http://{addr}"), requests, n)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            let _ = stop_tx.send(true);
            server.await??;
            println!(
                "| {batch} | {n} | {:.2} M | {:.1} ms | {:.1} ms | {:.2} M | {:.0}% |",
                figures.samples_per_s / 1e6,
                figures.p50.as_secs_f64() * 1e3,
                figures.p99.as_secs_f64() * 1e3,
                in_process / 1e6,
                100.0 * figures.samples_per_s / in_process
            );
        }
    }
    Ok(())
}
