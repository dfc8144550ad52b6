//! `iocdb verify`: reads a stopped server's data directory (or asks a running server,
//! `Admin.Verify`) and checks every checksum and invariant; prints each problem with its
//! file and offset and exits 1 when there is one.

use iocdb_engine::fs::OsFs;
use iocdb_engine::{Engine, Problem, VerifyReport};
use iocdb_proto::v1;

use crate::cli::VerifyArgs;

/// Runs the verification; `Ok(false)` when problems were found.
pub fn run(args: &VerifyArgs) -> anyhow::Result<bool> {
    let spinner = super::spinner("verifying");
    let (r, place) = match &args.addr {
        Some(addr) => (ask(addr)?, addr.clone()),
        None => (
            Engine::verify(&args.data_dir, &OsFs)?,
            args.data_dir.display().to_string(),
        ),
    };
    spinner.finish_and_clear();
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
            "{place}: {} segments, {} chunks, {} samples, {} WAL files ({} frames) read",
            r.segments, r.chunks, r.samples, r.wal_files, r.wal_frames
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

/// `Admin.Verify` of the server at `addr`, as the engine's report.
fn ask(addr: &str) -> anyhow::Result<VerifyReport> {
    let r = super::client::block_on_admin(addr, |mut admin| async move {
        Ok(admin.verify(v1::VerifyRequest {}).await?.into_inner())
    })?;
    Ok(VerifyReport {
        segments: r.segments,
        chunks: r.chunks,
        samples: r.samples,
        wal_files: r.wal_files,
        wal_frames: r.wal_frames,
        problems: r
            .problems
            .into_iter()
            .map(|p| Problem {
                file: p.file.into(),
                offset: p.offset,
                reason: p.reason,
            })
            .collect(),
    })
}
