//! `iocdb audit`: the audit trail (see `audit.rs`), oldest first, as a table or as the JSON
//! lines it is stored as.

// JSON values index to `Null` when a key is missing; they cannot panic.
#![allow(clippy::indexing_slicing)]

use std::io::BufRead;

use crate::cli::AuditArgs;

/// Prints the trail.
pub fn run(a: &AuditArgs) -> anyhow::Result<()> {
    let path = a
        .file
        .clone()
        .unwrap_or_else(|| a.data_dir.join("audit.log"));
    if !path.exists() {
        anyhow::bail!(
            "no audit trail at {} (nothing audited yet, or see --file)",
            path.display()
        );
    }
    for file in crate::audit::files(&path) {
        let reader = std::io::BufReader::new(
            std::fs::File::open(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?,
        );
        for line in reader.lines() {
            let line = line?;
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                eprintln!(
                    "{}: an unreadable line: {}",
                    file.display(),
                    iocdb_engine::echo(&line)
                );
                continue;
            };
            if a.principal
                .as_deref()
                .is_some_and(|p| event["principal"] != p)
            {
                continue;
            }
            if a.json {
                println!("{line}");
                continue;
            }
            let when = event["time_ms"]
                .as_u64()
                .map(|ms| {
                    humantime::format_rfc3339_millis(
                        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
                    )
                    .to_string()
                })
                .unwrap_or_default();
            let text = |k: &str| event[k].as_str().unwrap_or_default().to_owned();
            println!(
                "{when} {} {} {} {} {}",
                text("principal"),
                text("namespace"),
                text("action"),
                text("outcome"),
                event["arguments"]
            );
        }
    }
    Ok(())
}
