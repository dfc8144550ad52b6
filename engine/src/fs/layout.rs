//! The names of every file and folder in a data directory, in one place.
//!
//! ```text
//! DATA_DIR/
//!   LOCK                      held (flock) by the process that has the store open
//!   MANIFEST                  the live segments and the WAL position they cover
//!   MANIFEST.tmp              a manifest being written (renamed over MANIFEST)
//!   METADATA                  the indicator catalog: units, intervals, owners, quality rules
//!   QUALITY                   the data-quality journal: samples rejected or flagged
//!   ARRIVALS                  arrival delay histograms per namespace, metric and hour
//!   wal/0000000000000007.wal  write-ahead log files, replayed in number order
//!   segments/<seq>-<partition>.seg   immutable columnar segment files
//!   quarantine/               corrupt files moved aside for an operator; never deleted
//! ```

use std::path::{Path, PathBuf};

/// The lock file.
pub const LOCK: &str = "LOCK";
/// The manifest.
pub const MANIFEST: &str = "MANIFEST";
/// A manifest being written.
pub const MANIFEST_TMP: &str = "MANIFEST.tmp";
/// Indicator metadata (units, descriptions, expected intervals).
pub const METADATA: &str = "METADATA";
/// Metadata being written.
pub const METADATA_TMP: &str = "METADATA.tmp";
/// The data-quality journal.
pub const QUALITY: &str = "QUALITY";
/// A data-quality journal being rewritten.
pub const QUALITY_TMP: &str = "QUALITY.tmp";
/// Arrival delay histograms.
pub const ARRIVALS: &str = "ARRIVALS";
/// Arrival delays being written.
pub const ARRIVALS_TMP: &str = "ARRIVALS.tmp";
/// WAL folder.
pub const WAL_DIR: &str = "wal";
/// WAL file extension.
pub const WAL_EXT: &str = "wal";
/// Segment folder.
pub const SEGMENT_DIR: &str = "segments";
/// Segment file extension.
pub const SEGMENT_EXT: &str = "seg";
/// Extension of a segment being written.
pub const SEGMENT_TMP_EXT: &str = "seg.tmp";
/// Quarantine folder.
pub const QUARANTINE_DIR: &str = "quarantine";

/// Path of WAL file number `n`.
pub fn wal_file(dir: &Path, n: u64) -> PathBuf {
    dir.join(WAL_DIR).join(format!("{n:016}.{WAL_EXT}"))
}

/// Parses a WAL file name back into its number.
pub fn parse_wal_file(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(&format!(".{WAL_EXT}"))?.parse().ok()
}

/// File name of the segment of flush `seq` covering the partition starting at `partition`.
pub fn segment_name(seq: u64, partition: i64) -> String {
    format!("{seq:016}_{partition}.{SEGMENT_EXT}")
}

/// Parses a segment file name back into its flush sequence and partition.
pub fn parse_segment_name(name: &str) -> Option<(u64, i64)> {
    let (seq, partition) = name
        .strip_suffix(&format!(".{SEGMENT_EXT}"))?
        .split_once('_')?;
    Some((seq.parse().ok()?, partition.parse().ok()?))
}

/// Path of a segment file name.
pub fn segment_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(SEGMENT_DIR).join(name)
}

/// Path of a quarantined copy of `file`, stamped with the time it was moved aside.
pub fn quarantine_path(dir: &Path, file: &Path) -> PathBuf {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("unknown");
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    dir.join(QUARANTINE_DIR).join(format!("{name}.{stamp}"))
}
