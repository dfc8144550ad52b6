//! `iocdb bench`: see `iocdb_benches::load`.

use crate::cli::BenchArgs;

/// Runs the gRPC ingest measurement and prints it as Markdown.
pub async fn run(a: BenchArgs) -> anyhow::Result<()> {
    let parse = |s: &str| -> anyhow::Result<Vec<usize>> {
        s.split(',').map(|x| Ok(x.trim().parse()?)).collect()
    };
    let _ = (parse(&a.clients)?, parse(&a.batches)?, a.scale, a.minutes);
    anyhow::bail!("not built yet")
}
