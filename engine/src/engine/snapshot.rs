//! Snapshots and backups: a consistent copy of the store, online.
//!
//! A snapshot flushes the head, then — under the flush lock, so no flush or compaction
//! changes the set meanwhile — hard-links every live segment (immutable, so sharing is
//! safe; copied when the target is on another file system), writes the manifest and the
//! metadata, and copies the WAL files written since the flush after syncing them, so writes
//! acknowledged before the snapshot began are in it. Writes that arrive during it are in it
//! or not, whole batch by whole batch (a batch is one WAL record). The snapshot is a data
//! directory: `iocdb serve --data-dir <snapshot>` starts from it as it is.
//!
//! A backup is a snapshot into a directory that may hold an earlier backup: segments it
//! already has (same name, so same bytes: segments are never rewritten in place) are kept,
//! those the store no longer lists are removed from it, and the rest are copied. Nothing the
//! earlier backup needs is removed or overwritten in place before the new manifest is there,
//! so a backup cut short at any step leaves the earlier one whole.

use std::path::Path;

use super::Engine;
use crate::error::IoContext;
use crate::fs::{Vfs, layout};
use crate::{Error, Result};

/// What a snapshot or backup wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotReport {
    /// Segments linked into the target.
    pub segments_linked: usize,
    /// Segments copied into the target.
    pub segments_copied: usize,
    /// Segments the target already had (a backup's earlier run).
    pub segments_kept: usize,
    /// Segments removed from the target because the store no longer has them.
    pub segments_removed: usize,
    /// WAL files copied.
    pub wal_files: usize,
    /// Bytes copied (links cost none).
    pub bytes_copied: u64,
}

fn copy_file(vfs: &dyn Vfs, from: &Path, to: &Path) -> Result<u64> {
    let data = vfs.read(from).at(from)?;
    let f = vfs.create(to).at(to)?;
    f.write_all(&data).at(to)?;
    f.sync().at(to)?;
    Ok(data.len() as u64)
}

impl Engine {
    /// Writes a consistent snapshot of the store into `target`, which must not exist or be
    /// empty (see the module doc).
    pub fn snapshot(&self, target: impl AsRef<Path>) -> Result<SnapshotReport> {
        let target = target.as_ref();
        let vfs = &*self.inner.opts.vfs;
        if vfs
            .list_dir(target)
            .is_ok_and(|entries| !entries.is_empty())
        {
            return Err(Error::InvalidArgument(format!(
                "the snapshot target {} is not empty",
                target.display()
            )));
        }
        self.copy_into(target, true)
    }

    /// Brings the backup in `target` up to date with the store, copying only the segments
    /// it lacks (see the module doc).
    pub fn backup(&self, target: impl AsRef<Path>) -> Result<SnapshotReport> {
        self.copy_into(target.as_ref(), false)
    }

    fn copy_into(&self, target: &Path, link: bool) -> Result<SnapshotReport> {
        let inner = &*self.inner;
        inner.check_open()?;
        if target == inner.dir {
            return Err(Error::InvalidArgument(
                "a snapshot cannot be taken into the store's own directory".into(),
            ));
        }
        self.flush()?;
        let vfs = &*inner.opts.vfs;
        let state = inner.flush.lock();
        let mut report = SnapshotReport::default();
        let seg_target = target.join(layout::SEGMENT_DIR);
        let wal_target = target.join(layout::WAL_DIR);
        vfs.create_dir_all(&seg_target).at(&seg_target)?;
        vfs.create_dir_all(&wal_target).at(&wal_target)?;
        let mut manifest = state.manifest.clone();
        // Segments: what the target lacks is linked or copied; what it has is the same file.
        let present: Vec<String> = vfs
            .list_dir(&seg_target)
            .at(&seg_target)?
            .into_iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        for name in &manifest.segments {
            if present.contains(name) {
                report.segments_kept += 1;
                continue;
            }
            let from = layout::segment_path(&inner.dir, name);
            let to = layout::segment_path(target, name);
            if link && vfs.hard_link(&from, &to).is_ok() {
                report.segments_linked += 1;
            } else {
                report.bytes_copied += copy_file(vfs, &from, &to)?;
                report.segments_copied += 1;
            }
        }
        // The WAL since the last flush: synced first, so every acknowledged write is copied.
        // Each file replaces its namesake atomically (a temporary file renamed over it): a
        // WAL file only grows, so the target's file is either the earlier backup's or this
        // one's, never a torn mix, and an earlier backup's WAL stays whole until the new
        // manifest no longer needs it.
        inner.wal.sync()?;
        let wal_dir = inner.dir.join(layout::WAL_DIR);
        let mut copied = Vec::new();
        for path in vfs.list_dir(&wal_dir).at(&wal_dir)? {
            let Some(n) = layout::parse_wal_file(&path) else {
                continue;
            };
            if n < manifest.wal_flushed_below {
                continue;
            }
            let to = layout::wal_file(target, n);
            let tmp = to.with_extension("copying");
            report.bytes_copied += copy_file(vfs, &path, &tmp)?;
            vfs.rename(&tmp, &to).at(&to)?;
            copied.push(to);
            report.wal_files += 1;
        }
        vfs.sync_dir(&seg_target).at(&seg_target)?;
        vfs.sync_dir(&wal_target).at(&wal_target)?;
        inner.metadata.lock().store(vfs, target)?;
        inner.quality.copy_to(vfs, target)?;
        // The manifest last: until it is there, the target is the earlier backup (or not a
        // store), whole. It names the earlier backup's segments the store no longer lists
        // (compacted away) as retired, so that an open after a crash below removes them.
        manifest.retired = present
            .into_iter()
            .filter(|name| !manifest.segments.contains(name))
            .collect();
        manifest.store(vfs, target)?;
        // Now garbage: those segments, and the WAL files the new manifest does not need.
        for name in std::mem::take(&mut manifest.retired) {
            let path = layout::segment_path(target, &name);
            vfs.remove(&path).at(&path)?;
            report.segments_removed += 1;
        }
        for old in vfs.list_dir(&wal_target).at(&wal_target)? {
            if !copied.contains(&old) {
                vfs.remove(&old).at(&old)?;
            }
        }
        if report.segments_removed > 0 {
            manifest.store(vfs, target)?;
        }
        Ok(report)
    }
}
