//! Opening a store: lock the directory, read the manifest, open segments (quarantining the
//! corrupt ones), sweep the segment files no manifest lists, and replay the WAL.
//!
//! Nothing is deleted that is not provably garbage. A missing manifest with segment files
//! beside it refuses to open (starting empty would hide them, and the next flush would
//! bury them): restore it, or rebuild it with [`crate::Engine::repair`]. A segment file no
//! manifest lists is deleted only when it is the leftover of an interrupted flush — a
//! temporary file, or a sequence number the manifest never reached, whose data is still in
//! the WAL; any other is moved to `quarantine/` and reported.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64};

use parking_lot::{Mutex, RwLock};

use super::delete::Deletion;
use super::version::{SegmentHandle, SegmentLabels, Version};
use super::{FlushState, Inner, Quarantined};
use crate::error::IoContext;
use crate::fs::{Vfs, layout};
use crate::head::{Head, Registrar, Series};
use crate::manifest::Manifest;
use crate::metadata::MetadataStore;
use crate::model::{Labels, Sample};
use crate::options::{MetadataCorruption, Options, WalCorruption};
use crate::quality::{Arrivals, Quality};
use crate::segment::Segment;
use crate::wal::Wal;
use crate::wal::frame::End;
use crate::wal::record::SeriesDef;
use crate::wal::replay::{ReplaySink, replay_file};
use crate::{DecodeError, Error, Result};

pub(super) fn open(dir: &Path, opts: Options) -> Result<Inner> {
    check_tiers(&opts)?;
    check_windows(&opts)?;
    let vfs = opts.vfs.clone();
    for sub in [
        "",
        layout::WAL_DIR,
        layout::SEGMENT_DIR,
        layout::QUARANTINE_DIR,
    ] {
        let path = dir.join(sub);
        vfs.create_dir_all(&path).at(&path)?;
    }
    let lock = lock_dir(dir)?;
    let mut manifest = match Manifest::load(&*vfs, dir)? {
        Some(manifest) => manifest,
        None => {
            refuse_segments_without_manifest(&*vfs, dir)?;
            // A new store gets its manifest before any flush, so that a missing manifest
            // always means a lost one, and a first flush that fails leaves segments the
            // manifest provably never published.
            let manifest = Manifest {
                next_seq: 1,
                ..Manifest::default()
            };
            manifest.store(&*vfs, dir)?;
            manifest
        }
    };
    let published_below = manifest.next_seq;
    let head = Head::default();
    let mut quarantined = Vec::new();

    let mut segments = Vec::new();
    let mut live_names = Vec::new();
    let mut registrar = Registrar::default();
    for name in &manifest.segments {
        let path = layout::segment_path(dir, name);
        let opened = vfs
            .open_immutable(&path)
            .at(&path)
            .and_then(|bytes| Segment::open_with_labels(&path, bytes));
        match opened {
            Ok((segment, labels)) => {
                manifest.next_seq = manifest.next_seq.max(segment.seq + 1);
                let handle = register_segment(
                    &head,
                    &mut registrar,
                    &segments,
                    name.clone(),
                    segment,
                    labels,
                );
                segments.push(Arc::new(handle));
                live_names.push(name.clone());
            }
            Err(e) => quarantined.push(quarantine(&*vfs, dir, &path, &e, true)),
        }
    }
    head.registered(registrar);
    if live_names.len() != manifest.segments.len() {
        manifest.segments = live_names;
        manifest.store(&*vfs, dir)?;
    }
    segments.sort_by(|a, b| (a.segment.seq, &a.name).cmp(&(b.segment.seq, &b.name)));
    remove_retired(&*vfs, dir, &mut manifest)?;
    sweep_unlisted(&*vfs, dir, &manifest, published_below, &mut quarantined)?;

    let head_bytes = AtomicI64::new(0);
    let (last_wal, wal_cuts) = replay_wal(
        &*vfs,
        dir,
        &opts,
        &manifest,
        (&head, &segments),
        &head_bytes,
        &mut quarantined,
    )?;
    // After the replay, so that every series a tombstone can reach is registered.
    let deletions = manifest
        .tombstones
        .iter()
        .map(|t| Deletion::resolve(&head, &segments, t.clone()).map(Arc::new))
        .collect::<Result<Vec<_>>>()?;
    // Confirming the series found in several segments, in the WAL or by a tombstone read
    // segments' label indexes again: their pages go back too.
    for h in &segments {
        h.segment.release_tables();
    }
    let first_file = last_wal.max(manifest.wal_flushed_below) + 1;
    let metadata = load_metadata(&*vfs, dir, &opts, &mut quarantined)?;
    let sync_quality = opts.fsync == crate::options::FsyncPolicy::Always;
    let arrivals = load_arrivals(&*vfs, dir, &mut quarantined)?;
    let quality = Quality::open(
        vfs.clone(),
        dir,
        sync_quality,
        opts.record_arrivals,
        arrivals,
        &metadata,
    )?;
    let wal = Wal::new(
        dir.to_path_buf(),
        vfs.clone(),
        opts.fsync,
        opts.wal_file_bytes,
        first_file,
    );

    Ok(Inner {
        dir: dir.to_path_buf(),
        head,
        wal,
        gate: RwLock::new(()),
        write_buffers: crate::scratch::Pool::new(super::write::WriteBuffers::worth_keeping),
        version: RwLock::new(Arc::new(Version {
            segments,
            frozen: Vec::new(),
            deletions,
        })),
        flush: Mutex::new(FlushState { manifest }),
        head_bytes,
        accepted: AtomicU64::new(0),
        write_recoveries: AtomicU64::new(0),
        damaged_rollups: AtomicU64::new(0),
        last_damaged_rollup: Mutex::new(None),
        flushes: AtomicU64::new(0),
        compactions: AtomicU64::new(0),
        wal_cuts,
        rejections: Default::default(),
        quarantined: Mutex::new(quarantined),
        metadata: Mutex::new(metadata),
        quality,
        watch: Default::default(),
        closed: AtomicBool::new(false),
        series_limits: RwLock::new(crate::model::PerNamespace::default()),
        has_series_limits: AtomicBool::new(false),
        lock: Mutex::new(Some(lock)),
        query_pool: query_pool(opts.query_threads)?,
        changes: Default::default(),
        cache: (opts.query_cache_bytes > 0)
            .then(|| crate::query::cache::ResultCache::new(opts.query_cache_bytes)),
        opts,
    })
}

/// Reads `METADATA`; a damaged one is quarantined (starting with none) unless the options
/// say to refuse: it holds units and descriptions, and no sample depends on it.
fn load_metadata(
    vfs: &dyn Vfs,
    dir: &Path,
    opts: &Options,
    quarantined: &mut Vec<Quarantined>,
) -> Result<MetadataStore> {
    match MetadataStore::load(vfs, dir) {
        Err(e @ Error::Corrupt { .. })
            if opts.metadata_corruption == MetadataCorruption::Quarantine =>
        {
            let path = dir.join(layout::METADATA);
            quarantined.push(quarantine(vfs, dir, &path, &e, true));
            tracing::error!(error = %e, "starting without indicator metadata: METADATA is damaged (quarantined); declare the metadata again or restore the file");
            Ok(MetadataStore::default())
        }
        other => other,
    }
}

/// Reads `ARRIVALS`; a damaged one is quarantined and the store starts without the delays
/// it held (a report: no sample depends on it).
fn load_arrivals(
    vfs: &dyn Vfs,
    dir: &Path,
    quarantined: &mut Vec<Quarantined>,
) -> Result<Arrivals> {
    match Arrivals::load(vfs, dir) {
        Err(e @ Error::Corrupt { .. }) => {
            let path = dir.join(layout::ARRIVALS);
            quarantined.push(quarantine(vfs, dir, &path, &e, true));
            tracing::error!(error = %e, "starting without the arrival delays recorded so far: ARRIVALS is damaged (quarantined)");
            Ok(Arrivals::default())
        }
        other => other,
    }
}

/// Rollup tiers must divide a day (compaction keeps whole days of samples so that no bucket
/// loses part of its samples), be distinct, and be the only ones given a retention.
fn check_tiers(opts: &Options) -> Result<()> {
    let tiers = &opts.rollup_tiers_ms;
    for (i, &t) in tiers.iter().enumerate() {
        if t <= 0 || 86_400_000 % t != 0 || tiers.get(..i).is_some_and(|seen| seen.contains(&t)) {
            return Err(Error::InvalidArgument(format!(
                "rollup tier {t} ms: each tier must be a distinct interval dividing a day"
            )));
        }
    }
    let retained = opts.rollup_retention.keys().chain(
        opts.rollup_retention_by_namespace
            .values()
            .flat_map(|t| t.keys()),
    );
    for t in retained {
        if !tiers.contains(t) {
            return Err(Error::InvalidArgument(format!(
                "a rollup retention for {t} ms, which is not a rollup tier ({tiers:?})"
            )));
        }
    }
    Ok(())
}

/// Each aged compaction window must be a whole number (two or more) of the one before it,
/// so that windows nest: a finished smaller window lies whole in one larger window.
fn check_windows(opts: &Options) -> Result<()> {
    let mut before = opts.compaction_window_ms;
    for &w in &opts.compaction_aged_windows_ms {
        if before <= 0 || w <= before || w % before != 0 {
            return Err(Error::InvalidArgument(format!(
                "aged compaction window {w} ms: each must be a whole number, two or more, of the window before it ({before} ms)"
            )));
        }
        before = w;
    }
    Ok(())
}

pub(super) fn lock_dir(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join(layout::LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .at(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked { path }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

/// The pool every query of the engine shares: `threads` workers, or one per core.
fn query_pool(threads: usize) -> Result<rayon::ThreadPool> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("iocdb-query-{i}"))
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the query pool: {e}")))
}

/// Registers a segment's series (whose `labels` it gives by local id) with the head, which
/// confirms a series it knows by the segments registered `before` (in `registrar`).
fn register_segment(
    head: &Head,
    registrar: &mut Registrar,
    before: &[Arc<SegmentHandle>],
    name: String,
    segment: Segment,
    labels: Vec<Labels>,
) -> SegmentHandle {
    let mut locals = Vec::with_capacity(segment.series_count());
    let before = SegmentLabels(before);
    for (local, (s, labels)) in segment.all_series().zip(labels).enumerate() {
        // Out of the head: a segment's series take head memory only once written again.
        let id = head.register(s.namespace, &labels, &before, registrar);
        locals.push((id, local as u32));
    }
    SegmentHandle::new(name, segment, locals)
}

/// Moves a corrupt file aside (a copy for WAL files, which stay in use cut to their good
/// prefix; a rename for segments) and reports it.
pub(super) fn quarantine(
    vfs: &dyn Vfs,
    dir: &Path,
    path: &Path,
    error: &Error,
    rename: bool,
) -> Quarantined {
    let moved_to = layout::quarantine_path(dir, path);
    let moved = if rename {
        vfs.rename(path, &moved_to)
    } else {
        vfs.read(path).and_then(|data| {
            let f = vfs.create(&moved_to)?;
            f.write_all(&data)?;
            f.sync()
        })
    };
    if let Err(e) = moved {
        tracing::error!(file = %path.display(), error = %e, "could not move a corrupt file to quarantine");
    }
    tracing::error!(file = %path.display(), to = %moved_to.display(), error = %error, "corrupt file quarantined");
    Quarantined {
        file: path.to_path_buf(),
        moved_to,
        reason: error.to_string(),
    }
}

/// The segment files of `dir` (final names, not temporary ones).
pub(super) fn segment_files(vfs: &dyn Vfs, dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let seg_dir = dir.join(layout::SEGMENT_DIR);
    let mut files: Vec<_> = vfs
        .list_dir(&seg_dir)
        .at(&seg_dir)?
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(&format!(".{}", layout::SEGMENT_EXT)))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Fails when `dir` has segment files but no manifest.
fn refuse_segments_without_manifest(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    let segments = segment_files(vfs, dir)?;
    let Some(first) = segments.first() else {
        return Ok(());
    };
    Err(Error::Corrupt {
        file: dir.join(layout::MANIFEST),
        offset: 0,
        reason: format!(
            "the manifest is missing, but {} holds {} segment files (the first is {}): \
             refusing to open, since starting without the manifest would hide them; restore \
             MANIFEST from a backup, or rebuild it from the segments with `iocdb repair`",
            dir.join(layout::SEGMENT_DIR).display(),
            segments.len(),
            first.display()
        ),
    })
}

/// Deals with the files of `segments/` that the manifest does not list: leftovers of an
/// interrupted flush are deleted (a temporary file, or a sequence number at or past
/// `published_below`, the manifest's next sequence number when it was read — its data is
/// still in the WAL, which is truncated only after a manifest lists the segment); any other
/// is moved to quarantine and reported, never deleted.
/// Deletes the segments a compaction replaced (the manifest lists them as retired: no
/// longer live, so proven garbage) that a crash left behind, and forgets them.
fn remove_retired(vfs: &dyn Vfs, dir: &Path, manifest: &mut Manifest) -> Result<()> {
    if manifest.retired.is_empty() {
        return Ok(());
    }
    for name in std::mem::take(&mut manifest.retired) {
        let path = layout::segment_path(dir, &name);
        match vfs.remove(&path) {
            Ok(()) => {
                tracing::info!(file = %path.display(), "removed a segment a compaction replaced")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&path, e)),
        }
    }
    manifest.store(vfs, dir)
}

fn sweep_unlisted(
    vfs: &dyn Vfs,
    dir: &Path,
    manifest: &Manifest,
    published_below: u64,
    quarantined: &mut Vec<Quarantined>,
) -> Result<()> {
    let seg_dir = dir.join(layout::SEGMENT_DIR);
    let entries = vfs.list_dir(&seg_dir).at(&seg_dir)?;
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if manifest.segments.iter().any(|s| s == name) {
            continue;
        }
        let unpublished = name.ends_with(&format!(".{}", layout::SEGMENT_TMP_EXT))
            || layout::parse_segment_name(name).is_some_and(|(seq, _)| seq >= published_below);
        if unpublished {
            tracing::info!(file = %path.display(), "removing the leftover of an interrupted flush (its data is in the WAL)");
            vfs.remove(&path).at(&path)?;
        } else {
            let why = Error::Corrupt {
                file: path.clone(),
                offset: 0,
                reason: "no manifest lists this file, and it is not the leftover of an \
                         interrupted flush"
                    .into(),
            };
            quarantined.push(quarantine(vfs, dir, &path, &why, true));
        }
    }
    Ok(())
}

struct Applier<'a> {
    head: &'a Head,
    /// The store's segments: where series out of the head are confirmed.
    segments: &'a [Arc<SegmentHandle>],
    refs: HashMap<u32, Arc<Series>>,
    head_bytes: &'a AtomicI64,
    buf: Vec<Sample>,
}

impl ReplaySink for Applier<'_> {
    fn define(&mut self, defs: Vec<SeriesDef>) -> Result<(), DecodeError> {
        for def in defs {
            let series = self
                .head
                .get_or_create(
                    &def.namespace,
                    &def.labels,
                    None,
                    &SegmentLabels(self.segments),
                )
                .map_err(|r| DecodeError::new(0, r.to_string()))?;
            self.refs.insert(def.wal_ref, series);
        }
        Ok(())
    }

    fn samples(
        &mut self,
        wal_ref: u32,
        samples: &mut dyn Iterator<Item = Sample>,
    ) -> Result<usize, DecodeError> {
        let series = self.refs.get(&wal_ref).ok_or_else(|| {
            DecodeError::new(
                0,
                format!("samples for series {wal_ref}, never defined in this file"),
            )
        })?;
        self.buf.clear();
        self.buf.extend(samples);
        let delta = series
            .head
            .append(self.buf.iter().copied(), self.head.sealer(series));
        series.usage.add(delta as i64);
        series.usage.add_samples(self.buf.len() as i64);
        self.head_bytes
            .fetch_add(delta as i64, std::sync::atomic::Ordering::Relaxed);
        Ok(self.buf.len())
    }
}

/// Replays the WAL files not covered by segments; returns the highest file number seen.
fn replay_wal(
    vfs: &dyn Vfs,
    dir: &Path,
    opts: &Options,
    manifest: &Manifest,
    (head, segments): (&Head, &[Arc<SegmentHandle>]),
    head_bytes: &AtomicI64,
    quarantined: &mut Vec<Quarantined>,
) -> Result<(u64, WalCuts)> {
    let mut cuts = WalCuts::default();
    let wal_dir = dir.join(layout::WAL_DIR);
    let mut files: Vec<(u64, std::path::PathBuf)> = vfs
        .list_dir(&wal_dir)
        .at(&wal_dir)?
        .into_iter()
        .filter_map(|p| layout::parse_wal_file(&p).map(|n| (n, p)))
        .collect();
    files.sort();
    let last = files.last().map_or(0, |(n, _)| *n);
    for (n, path) in files {
        if n < manifest.wal_flushed_below {
            vfs.remove(&path).at(&path)?;
            continue;
        }
        let data = vfs.read(&path).at(&path)?;
        let mut sink = Applier {
            head,
            segments,
            refs: HashMap::new(),
            head_bytes,
            buf: Vec::new(),
        };
        let report = replay_file(&data, &mut sink);
        let end = match report.end {
            // The zeros the writer wrote ahead of its frames (`wal::writer::ZERO_AHEAD`):
            // unused space, not a write cut short.
            End::Torn { offset }
                if n == last && data.get(offset as usize..).is_some_and(all_zero) =>
            {
                tracing::debug!(file = %path.display(), offset, "cutting the unused zeros at the end of the newest WAL file");
                vfs.truncate(&path, offset).at(&path)?;
                End::Clean
            }
            // Only the newest file can end in a write cut short: an older one was complete
            // and synced before the next was created, so a bad frame at its end is damage.
            End::Torn { offset } if n != last => End::Corrupt(DecodeError::new(
                offset,
                "a damaged frame at the end of a WAL file that is not the newest (a completed \
                 file cannot hold a torn write)",
            )),
            end => end,
        };
        let cut_from = match &end {
            End::Clean => None,
            End::Torn { offset } => Some(*offset),
            End::Corrupt(_) => Some(report.good_len),
        };
        if let Some(from) = cut_from {
            cuts.files += 1;
            cuts.bytes += (data.len() as u64).saturating_sub(from);
        }
        match end {
            End::Clean => {}
            End::Torn { offset } => {
                tracing::warn!(file = %path.display(), offset, bytes = data.len() as u64 - offset, "cutting a torn write at the end of the newest WAL file (never acknowledged)");
                vfs.truncate(&path, offset).at(&path)?;
            }
            End::Corrupt(e) => {
                let error = e.in_file(&path, 0);
                if opts.wal_corruption == WalCorruption::Refuse {
                    return Err(error);
                }
                quarantined.push(quarantine(vfs, dir, &path, &error, false));
                tracing::error!(file = %path.display(), offset = report.good_len, bytes = data.len() as u64 - report.good_len, "cutting a damaged WAL file after its last good frame (a copy is in quarantine)");
                vfs.truncate(&path, report.good_len).at(&path)?;
            }
        }
        tracing::debug!(file = %path.display(), frames = report.frames, samples = report.samples, "replayed WAL file");
    }
    Ok((last, cuts))
}

fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// What opening cut off the ends of WAL files (torn writes and damage).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct WalCuts {
    /// Files cut.
    pub(super) files: u64,
    /// Bytes cut off in all.
    pub(super) bytes: u64,
}
