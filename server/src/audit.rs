//! The audit trail: who changed what, and who was turned away. One JSON line per event —
//! every administrative action (flush, compaction, deletion, snapshot, declared metadata),
//! every export, and every refused call — with the time, the principal, the namespace, the
//! action, its arguments and its outcome, appended to `audit.log` in the data directory (or
//! `audit_file`). The file is rotated when it passes `audit_max_bytes`: `audit.log.1` …
//! `audit.log.5`, the oldest dropped. `iocdb audit` prints it. Tokens are never written:
//! callers are named by principal.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Value, json};

/// Rotated files kept besides the current one.
pub const KEEP: usize = 5;

/// The audit file, appended under a lock (events are rare: administration and refusals).
#[derive(Debug)]
pub struct Audit {
    path: PathBuf,
    max_bytes: u64,
    file: Mutex<Option<std::fs::File>>,
}

impl Audit {
    /// An audit trail in `path`, rotated past `max_bytes`.
    pub fn new(path: PathBuf, max_bytes: u64) -> Audit {
        Audit {
            path,
            max_bytes: max_bytes.max(1024),
            file: Mutex::new(None),
        }
    }

    /// Records one event. A failure to write is logged, never fatal to the call.
    pub fn record(
        &self,
        principal: &str,
        namespace: &str,
        action: &str,
        arguments: Value,
        outcome: &str,
    ) {
        let line = json!({
            "time_ms": crate::service::now_ms(),
            "principal": principal,
            "namespace": if namespace.is_empty() { "*" } else { namespace },
            "action": action,
            "arguments": arguments,
            "outcome": crate::status::bounded(outcome.to_owned()),
        });
        let Ok(mut guard) = self.file.lock() else {
            return;
        };
        if let Err(e) = self.append(&mut guard, &format!("{line}\n")) {
            tracing::error!(file = %self.path.display(), error = %e, "cannot write the audit trail");
        }
    }

    fn append(&self, file: &mut Option<std::fs::File>, line: &str) -> std::io::Result<()> {
        if file.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            *file = Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        let Some(f) = file.as_mut() else {
            return Ok(());
        };
        f.write_all(line.as_bytes())?;
        if f.metadata()?.len() >= self.max_bytes {
            *file = None;
            self.rotate()?;
        }
        Ok(())
    }

    /// `audit.log` → `audit.log.1` → … → `audit.log.KEEP` (dropped).
    fn rotate(&self) -> std::io::Result<()> {
        let numbered = |n: usize| PathBuf::from(format!("{}.{n}", self.path.display()));
        for n in (1..KEEP).rev() {
            if numbered(n).exists() {
                std::fs::rename(numbered(n), numbered(n + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(1))
    }
}

/// The trail's files, oldest first: the rotated ones, then the current one.
pub fn files(path: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = (1..=KEEP)
        .rev()
        .map(|n| PathBuf::from(format!("{}.{n}", path.display())))
        .filter(|p| p.exists())
        .collect();
    out.push(path.to_path_buf());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_json_lines_and_the_file_rotates() {
        let dir = tempfile::tempdir().expect("dir");
        let audit = Audit::new(dir.path().join("audit.log"), 1024);
        for i in 0..40 {
            audit.record(
                "ops",
                "y_te",
                "/iocdb.v1.Admin/Delete",
                json!({"selector": format!("waiting{{hospital=\"Châu Đốc {i}\"}}")}),
                "ok",
            );
        }
        let current = std::fs::read_to_string(dir.path().join("audit.log")).expect("current");
        let first: Value =
            serde_json::from_str(current.lines().next().expect("a line")).expect("json");
        assert_eq!(first["principal"], "ops");
        assert!(dir.path().join("audit.log.1").exists());
        assert!(!dir.path().join(format!("audit.log.{}", KEEP + 1)).exists());
        let all: usize = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| {
                std::fs::read_to_string(e.expect("entry").path())
                    .expect("read")
                    .lines()
                    .count()
            })
            .sum();
        assert!(all <= 40 && all > 20, "{all}");
    }
}
