//! `iocdb`: the server and the operator CLI. See `iocdb --help`.

mod cli;
mod commands;
mod config;
mod convert;
mod oversize;
mod service;
mod status;

use clap::Parser;

// The write path frees many small label strings; mimalloc does that markedly faster than
// the system allocator (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(json: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("IOCDB_LOG").unwrap_or_else(|_| "info".into());
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        cli::Command::Serve(args) => {
            let config = config::Config::load(&args)?;
            init_logging(config.log_format == config::LogFormat::Json);
            runtime.block_on(commands::serve::run(config))
        }
        cli::Command::Repair(args) => {
            init_logging(false);
            commands::repair::run(&args)
        }
        other => {
            init_logging(false);
            runtime.block_on(commands::client::run(other))
        }
    }
}
