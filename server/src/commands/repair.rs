//! `iocdb repair`: rebuilds a missing or damaged MANIFEST from the segment files of a
//! stopped server's data directory, and says what it did.

use iocdb_engine::{Engine, Options};

use crate::cli::RepairArgs;

/// Runs the repair and prints its report.
pub fn run(args: &RepairArgs) -> anyhow::Result<()> {
    let report = Engine::repair(&args.data_dir, &Options::default())?;
    if !report.rebuilt {
        println!(
            "{}: the manifest reads cleanly; nothing to repair",
            args.data_dir.display()
        );
        return Ok(());
    }
    println!(
        "rebuilt the manifest of {} from {} segment files",
        args.data_dir.display(),
        report.segments.len()
    );
    for q in &report.quarantined {
        println!(
            "quarantined {} → {}: {}",
            q.file.display(),
            q.moved_to.display(),
            q.reason
        );
    }
    println!(
        "the next start replays {} WAL files from the beginning",
        report.wal_files.len()
    );
    println!(
        "deletions the lost manifest recorded are not known: data deleted but not yet \
         compacted away is visible again; repeat those deletions"
    );
    Ok(())
}
