//! `iocdb`: the server and the operator CLI. See `iocdb --help`.

mod allocator;
mod audit;
mod auth;
mod catalog;
mod cli;
mod commands;
mod completeness;
mod config;
mod console;
mod convert;
mod decompress;
mod demo;
mod http;
mod limits;
mod metrics;
mod oversize;
mod service;
mod small_queries;
mod status;
mod tls;
mod transfer;

use clap::Parser;

fn init_logging(json: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("IOCDB_LOG").unwrap_or_else(|_| "info".into());
    use std::io::IsTerminal;
    // A span's close is logged with its duration: flushes and compactions at `info`, each
    // write and query at `debug` (`IOCDB_LOG=iocdb_engine=debug`).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// A runtime whose blocking pool (where every engine call runs) has at most `threads`
/// threads: tokio's default of 512 gives each concurrent writer an OS thread with its own
/// stack and allocator heap, which is where memory went under many concurrent writers.
///
/// Threads hand the memory their allocator heap holds free back to the OS when they park
/// (runtime workers, at most once a second) and when they exit (pool threads, after one idle
/// second): the allocator returns freed pages only on their own thread's later calls, which
/// an idle thread does not make (see `allocator`). Tokio's default keeps an idle pool thread
/// ten seconds; every engine call runs on one (`block_in_place` hands the worker's place to
/// another thread), so after a burst of writes the threads that served it held what they had
/// freed for ten seconds — twice the RSS after ingest with four senders (BENCHMARKS.md,
/// "Threads that served a burst"). Under load no thread idles a second, so none exits then.
/// An exiting thread first lets the write doors' pooled request buffers go when no request
/// has taken one for as long (see `iocdb_engine::scratch`).
fn runtime(blocking_threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    const IDLE: std::time::Duration = std::time::Duration::from_secs(1);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(blocking_threads.max(1))
        .thread_keep_alive(IDLE)
        .on_thread_stop(|| {
            http::release_idle_scratch(IDLE);
            service::ingest::SCRATCH.release_idle(IDLE);
            decompress::release_idle(IDLE);
            allocator::release_freed();
        })
        .on_thread_park(allocator::release_freed_when_idle)
        .build()
}

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Serve(args) => {
            let config = config::Config::load(&args)?;
            init_logging(config.log_format == config::LogFormat::Json);
            runtime(config.blocking_threads())?.block_on(commands::serve::run(config))
        }
        cli::Command::Audit(args) => commands::audit::run(&args),
        cli::Command::Repair(args) => {
            init_logging(false);
            commands::repair::run(&args)
        }
        cli::Command::Inspect(args) => {
            init_logging(false);
            commands::inspect::run(&args)
        }
        cli::Command::Verify(args) => {
            init_logging(false);
            if !commands::verify::run(&args)? {
                std::process::exit(1);
            }
            Ok(())
        }
        cli::Command::Compact(args) if args.data_dir.is_some() => {
            init_logging(false);
            let dir = args.data_dir.clone().unwrap_or_default();
            commands::compact::run_offline(&args, &dir)
        }
        other => {
            init_logging(false);
            runtime(64)?.block_on(commands::client::run(other))
        }
    }
}
