//! `iocdb compact`: merges each day's segments into one, on a stopped server's data
//! directory (`--data-dir`) or through `Admin.Compact` on a running one, and reports it.

use iocdb_engine::{Engine, Options};

use crate::cli::CompactArgs;

/// What a compaction did, from the engine or from the wire.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Figures {
    pub windows: u64,
    pub segments_in: u64,
    pub segments_out: u64,
    pub samples: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub skipped: String,
}

impl From<iocdb_proto::v1::CompactResponse> for Figures {
    fn from(r: iocdb_proto::v1::CompactResponse) -> Self {
        Figures {
            windows: r.windows,
            segments_in: r.segments_in,
            segments_out: r.segments_out,
            samples: r.samples,
            bytes_in: r.bytes_in,
            bytes_out: r.bytes_out,
            skipped: r.skipped,
        }
    }
}

/// Compacts a stopped server's data directory.
pub fn run_offline(args: &CompactArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    // The server is stopped: nothing to leave the machine to, so no throttle.
    let opts = Options {
        compaction_samples_per_sec: 0,
        ..Options::default()
    };
    let engine = Engine::open(dir, opts).map_err(|e| {
        anyhow::anyhow!(
            "cannot open {} (is the server stopped?): {e}",
            dir.display()
        )
    })?;
    let spinner = super::spinner("compacting");
    // What the stopped server left in its WAL is compacted too.
    engine.flush()?;
    let r = engine.compact()?;
    engine.close()?;
    spinner.finish_and_clear();
    print(&crate::convert::compact_response(r).into(), args.json);
    Ok(())
}

/// Prints a report as a line or as JSON.
pub fn print(f: &Figures, json: bool) {
    if json {
        println!("{}", serde_json::to_string(f).unwrap_or_default());
    } else if !f.skipped.is_empty() {
        println!("nothing compacted: {}", f.skipped);
    } else {
        println!(
            "compacted {} windows: {} segments ({} bytes) into {} ({} bytes), {} samples",
            f.windows, f.segments_in, f.bytes_in, f.segments_out, f.bytes_out, f.samples
        );
    }
}
