//! `iocdb bench`: ingest over gRPC against ingest in-process, side by side in one run, on
//! the province workload. Starts its own server on a loopback port and a temporary data
//! directory for every run, so runs do not disturb each other or a real store.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use iocdb_workload::{self as workload, drive};
use tokio::sync::{oneshot, watch};

use super::load;
use crate::cli::BenchArgs;
use crate::config::Config;

/// Runs the measurement and prints Markdown.
pub async fn run(a: BenchArgs) -> anyhow::Result<()> {
    let parse = |s: &str| -> anyhow::Result<Vec<usize>> {
        s.split(',').map(|x| Ok(x.trim().parse()?)).collect()
    };
    let (clients, batches) = (parse(&a.clients)?, parse(&a.batches)?);
    let specs = workload::series(a.scale);
    let start = drive::day_start();
    let end = start + a.minutes * 60_000;
    println!(
        "| batch | clients | Write samples/s | p50 ack | p99 ack | WriteStream with stream ids, samples/s | in-process samples/s (same writers) | Write / in-process | WriteStream / in-process |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &batch in &batches {
        for &n in &clients {
            let in_process = {
                let specs = specs.clone();
                tokio::task::spawn_blocking(move || {
                    let dir = ScratchDir::new()?;
                    let make = |lane, lanes| {
                        workload::batches(&workload::share(&specs, lane, lanes), start, end, batch)
                    };
                    Ok::<_, anyhow::Error>(drive::ingest(
                        dir.path(),
                        iocdb_engine::Options::default(),
                        make,
                        n,
                    ))
                })
                .await??
            };
            // Each client writes its own share of the series, as the in-process writers do.
            let wire = || {
                (0..n)
                    .map(|lane| {
                        workload::batches(&workload::share(&specs, lane, n), start, end, batch)
                            .into_iter()
                            .map(load::to_wire)
                            .collect::<Vec<_>>()
                    })
                    .collect::<Vec<_>>()
            };
            let server = Bench::start().await?;
            let figures = load::run(&server.addr, wire())
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            server.stop().await?;
            let server = Bench::start().await?;
            let streamed = load::run_streams(&server.addr, wire())
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            server.stop().await?;
            println!(
                "| {batch} | {n} | {:.2} M | {:.1} ms | {:.1} ms | {:.2} M | {:.2} M | {:.0}% | {:.0}% |",
                figures.samples_per_s / 1e6,
                figures.p50.as_secs_f64() * 1e3,
                figures.p99.as_secs_f64() * 1e3,
                streamed / 1e6,
                in_process / 1e6,
                100.0 * figures.samples_per_s / in_process,
                100.0 * streamed / in_process,
            );
        }
    }
    Ok(())
}

/// A server on a loopback port and a temporary directory, for one run.
struct Bench {
    addr: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: ScratchDir,
}

impl Bench {
    async fn start() -> anyhow::Result<Bench> {
        let dir = ScratchDir::new()?;
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".into(),
            ..Config::default()
        };
        let (stop, stop_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = tokio::spawn(super::serve::run_until(
            config,
            stop_rx,
            move |addr| {
                let _ = ready_tx.send(addr);
            },
            None,
        ));
        let addr = tokio::time::timeout(Duration::from_secs(30), ready_rx).await??;
        Ok(Bench {
            addr: format!("http://{addr}"),
            stop,
            task,
            _dir: dir,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await?
    }
}

/// A fresh directory under the system's temporary folder, removed when dropped: each run
/// of the bench writes its own store and leaves nothing behind.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> anyhow::Result<ScratchDir> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "iocdb-bench-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)?;
        Ok(ScratchDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(dir = %self.0.display(), error = %e, "could not remove a bench directory");
        }
    }
}
