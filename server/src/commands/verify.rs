//! `iocdb verify`: reads a stopped server's data directory and checks every checksum and
//! invariant; prints each problem with its file and offset and exits 1 when there is one.

use iocdb_engine::Engine;
use iocdb_engine::fs::OsFs;

use crate::cli::VerifyArgs;

/// Runs the verification; `Ok(false)` when problems were found.
pub fn run(args: &VerifyArgs) -> anyhow::Result<bool> {
    let r = Engine::verify(&args.data_dir, &OsFs)?;
    if args.json {
        let problems: Vec<serde_json::Value> = r
            .problems
            .iter()
            .map(|p| {
                serde_json::json!({
                    "file": p.file.display().to_string(),
                    "offset": p.offset,
                    "reason": p.reason,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "segments": r.segments,
                "chunks": r.chunks,
                "samples": r.samples,
                "wal_files": r.wal_files,
                "wal_frames": r.wal_frames,
                "problems": problems,
            })
        );
    } else {
        println!(
            "{}: {} segments, {} chunks, {} samples, {} WAL files ({} frames) read",
            args.data_dir.display(),
            r.segments,
            r.chunks,
            r.samples,
            r.wal_files,
            r.wal_frames
        );
        for p in &r.problems {
            println!("{} at offset {}: {}", p.file.display(), p.offset, p.reason);
        }
        if r.problems.is_empty() {
            println!("everything checks");
        }
    }
    Ok(r.problems.is_empty())
}
