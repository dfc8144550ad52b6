//! `iocdb repair`: rebuilding a lost or damaged manifest from the segment files' own
//! footers, run by an operator on a store that is not open.
//!
//! Every segment file that opens cleanly is listed, in flush order; one that does not is
//! moved to quarantine. The WAL flush point is set to 0, so every WAL file still present is
//! replayed at the next open: nothing acknowledged can be lost. (A WAL file a flush had
//! covered but failed to remove would replay values a later segment may have corrected;
//! the report names the WAL files so an operator can judge.)

use std::path::{Path, PathBuf};

use super::open::{lock_dir, quarantine, segment_files};
use super::{Engine, Quarantined};
use crate::error::IoContext;
use crate::fs::layout;
use crate::manifest::Manifest;
use crate::options::Options;
use crate::segment::Segment;
use crate::{Error, Result};

/// What [`Engine::repair`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Whether a manifest was written (false: the existing one was sound).
    pub rebuilt: bool,
    /// Segment files the new manifest lists.
    pub segments: Vec<String>,
    /// Files moved to quarantine (a damaged manifest, segments that do not open).
    pub quarantined: Vec<Quarantined>,
    /// WAL files the next open will replay.
    pub wal_files: Vec<PathBuf>,
}

impl Engine {
    /// Rebuilds the manifest of the store in `dir` from its segment files when it is
    /// missing or damaged; does nothing when it reads cleanly. The store must not be open.
    pub fn repair(dir: impl AsRef<Path>, opts: &Options) -> Result<RepairReport> {
        let dir = dir.as_ref();
        let vfs = &*opts.vfs;
        let _lock = lock_dir(dir)?;
        let quarantine_dir = dir.join(layout::QUARANTINE_DIR);
        vfs.create_dir_all(&quarantine_dir).at(&quarantine_dir)?;
        let mut report = RepairReport::default();
        match Manifest::load(vfs, dir) {
            Ok(Some(_)) => return Ok(report),
            Ok(None) => {}
            Err(e @ Error::Corrupt { .. }) => {
                let path = dir.join(layout::MANIFEST);
                report
                    .quarantined
                    .push(quarantine(vfs, dir, &path, &e, true));
            }
            Err(e) => return Err(e),
        }
        let mut found = Vec::new();
        for path in segment_files(vfs, dir)? {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let opened = vfs
                .open_immutable(&path)
                .at(&path)
                .and_then(|bytes| Segment::open(&path, bytes));
            match opened {
                Ok(segment) => found.push((segment.seq, name)),
                Err(e) => report
                    .quarantined
                    .push(quarantine(vfs, dir, &path, &e, true)),
            }
        }
        found.sort();
        let manifest = Manifest {
            next_seq: found.last().map_or(1, |(seq, _)| seq + 1),
            wal_flushed_below: 0,
            // A segment a compaction replaced may still be here beside its replacement if
            // the crash came between the two: both are listed; they hold the same samples
            // and the replacement's higher sequence wins, so answers do not change.
            segments: found.into_iter().map(|(_, name)| name).collect(),
            retired: Vec::new(),
            // Deletions lived only in the lost manifest: data deleted but not yet compacted
            // away is visible again (the report says so).
            tombstones: Vec::new(),
        };
        manifest.store(vfs, dir)?;
        let wal_dir = dir.join(layout::WAL_DIR);
        if vfs.list_dir(&wal_dir).is_ok() {
            report.wal_files = vfs
                .list_dir(&wal_dir)
                .at(&wal_dir)?
                .into_iter()
                .filter(|p| layout::parse_wal_file(p).is_some())
                .collect();
            report.wal_files.sort();
        }
        report.rebuilt = true;
        report.segments = manifest.segments;
        tracing::warn!(
            segments = report.segments.len(),
            quarantined = report.quarantined.len(),
            "rebuilt the manifest from the segment files"
        );
        Ok(report)
    }
}
