//! `iocdb delete`: deletes the samples of the selected series in a time range, through
//! `Admin.Delete` on a running server or directly in a stopped server's data directory
//! (`--data-dir`). What was written until now goes; later writes into the range stay.

use iocdb_engine::query::parse::series_selector;
use iocdb_engine::{Engine, Options};
use iocdb_proto::v1::{self, admin_client::AdminClient};

use super::client::{connect, time_range};
use crate::cli::DeleteArgs;

/// Runs the deletion and prints how many series each selector reached.
pub async fn run(a: DeleteArgs) -> anyhow::Result<()> {
    if a.selectors.is_empty() {
        anyhow::bail!(
            "give at least one --match selector, e.g. --match 'waiting{{commune=\"Châu Đốc\"}}'"
        );
    }
    let (start, end) = time_range(a.start.as_deref(), a.end.as_deref())?;
    let mut reached = Vec::new();
    let spinner = super::spinner("deleting");
    match &a.data_dir {
        Some(dir) => {
            // Parse every selector before deleting anything.
            let selections = a
                .selectors
                .iter()
                .map(|s| series_selector(s))
                .collect::<Result<Vec<_>, _>>()?;
            let engine = Engine::open(dir, Options::default()).map_err(|e| {
                anyhow::anyhow!(
                    "cannot open {} (is the server stopped?): {e}",
                    dir.display()
                )
            })?;
            for matchers in &selections {
                let r = engine.delete(
                    &a.namespace,
                    matchers,
                    start.unwrap_or(i64::MIN),
                    end.unwrap_or(i64::MAX),
                )?;
                reached.push(r.series);
            }
            engine.close()?;
        }
        None => {
            let mut client = AdminClient::new(connect(&a.client).await?);
            for selector in &a.selectors {
                let r = client
                    .delete(v1::DeleteRequest {
                        namespace: a.namespace.clone(),
                        matchers: Vec::new(),
                        selector: selector.clone(),
                        start_ms: start,
                        end_ms: end,
                    })
                    .await?
                    .into_inner();
                reached.push(r.series);
            }
        }
    }
    spinner.finish_and_clear();
    if a.json {
        let rows: Vec<serde_json::Value> = a
            .selectors
            .iter()
            .zip(&reached)
            .map(|(s, n)| serde_json::json!({"selector": s, "series": n}))
            .collect();
        println!("{}", serde_json::Value::from(rows));
    } else {
        for (s, n) in a.selectors.iter().zip(&reached) {
            println!("deleted {s}: {n} series had samples in the range");
        }
    }
    Ok(())
}
