//! `Engine::verify`: every checksum and every invariant of a data directory, read-only.
//!
//! The MANIFEST and METADATA checksums; every listed segment's tables, every chunk's checksum
//! and content (it decodes, its samples are in time order, within the chunk's recorded bounds
//! and as many as recorded); every WAL file's frames (a torn tail is expected only in the
//! newest file); segment files nobody lists. Nothing is changed or moved. [`Engine::verify`]
//! reads a stopped server's directory or a snapshot; [`Engine::verify_live`] checks an open
//! store while it serves (`Admin.Verify`).

use std::path::{Path, PathBuf};

use super::Engine;
use crate::codec::rollup;
use crate::codec::rollup::metric::MetricRollup;
use crate::fs::{Vfs, layout};
use crate::manifest::Manifest;
use crate::metadata::MetadataStore;
use crate::model::METRIC_NAME;
use crate::model::Sample;
use crate::segment::{Segment, SegmentSeries};
use crate::wal::frame::End;
use crate::wal::record::SeriesDef;
use crate::wal::replay::{ReplaySink, replay_file};
use crate::{DecodeError, Error, Result};
use std::collections::BTreeMap;

/// One thing wrong, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// Byte offset in it.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

/// What a verification read and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segments read.
    pub segments: u64,
    /// Chunks read.
    pub chunks: u64,
    /// Samples decoded from segments.
    pub samples: u64,
    /// WAL files read.
    pub wal_files: u64,
    /// WAL frames read.
    pub wal_frames: u64,
    /// What is wrong; empty when everything checks.
    pub problems: Vec<Problem>,
}

struct Counter;

impl ReplaySink for Counter {
    fn define(&mut self, _: Vec<SeriesDef>) -> Result<(), DecodeError> {
        Ok(())
    }

    fn samples(
        &mut self,
        _: u32,
        samples: &mut dyn Iterator<Item = Sample>,
    ) -> Result<usize, DecodeError> {
        Ok(samples.count())
    }
}

impl Engine {
    /// Reads and checks everything in `dir` (see the module doc); never writes.
    pub fn verify(dir: impl AsRef<Path>, vfs: &dyn Vfs) -> Result<VerifyReport> {
        let dir = dir.as_ref();
        let mut report = VerifyReport::default();
        let manifest_path = dir.join(layout::MANIFEST);
        let manifest = match Manifest::load(vfs, dir) {
            Ok(Some(m)) => m,
            Ok(None) => {
                report.problems.push(problem(
                    &manifest_path,
                    0,
                    "there is no MANIFEST (iocdb repair rebuilds one from the segments)".into(),
                ));
                Manifest::default()
            }
            Err(e) => {
                report.problems.push(from_error(e, &manifest_path));
                Manifest::default()
            }
        };
        check_text_files(vfs, dir, &mut report);
        let mut samples = Vec::new();
        for name in &manifest.segments {
            let path = layout::segment_path(dir, name);
            let segment = match vfs
                .open_immutable(&path)
                .map_err(|e| Error::io(&path, e))
                .and_then(|bytes| Segment::open(&path, bytes))
            {
                Ok(s) => s,
                Err(e) => {
                    report.problems.push(from_error(e, &path));
                    continue;
                }
            };
            check_segment(&segment, &path, &mut report, &mut samples);
        }
        check_unlisted(vfs, dir, &manifest, &mut report);
        check_wal(vfs, dir, &manifest, &mut report);
        Ok(report)
    }

    /// [`Engine::verify`] on this open store while it serves: the manifest, and the segment
    /// files beside it, as of one moment under the flush lock (no flush or compaction changes
    /// them meanwhile); every live segment file as it is on disk now; the metadata; the WAL
    /// files not yet flushed.
    pub fn verify_live(&self) -> Result<VerifyReport> {
        let inner = &*self.inner;
        inner.check_open()?;
        let (vfs, dir) = (&*inner.opts.vfs, inner.dir.as_path());
        let mut report = VerifyReport::default();
        let manifest_path = dir.join(layout::MANIFEST);
        let (manifest, version) = {
            let state = inner.flush.lock();
            match Manifest::load(vfs, dir) {
                Ok(Some(m)) if m == state.manifest => {}
                Ok(Some(_)) => report.problems.push(problem(
                    &manifest_path,
                    0,
                    "the MANIFEST on disk is not the one the server last published".into(),
                )),
                Ok(None) => report.problems.push(problem(
                    &manifest_path,
                    0,
                    "the MANIFEST is gone from under the running server".into(),
                )),
                Err(e) => report.problems.push(from_error(e, &manifest_path)),
            }
            check_unlisted(vfs, dir, &state.manifest, &mut report);
            (state.manifest.clone(), inner.current_version())
        };
        check_text_files(vfs, dir, &mut report);
        // Each file is mapped afresh, so that its tables and footer are checked as they are on
        // disk now, not as they were read when the server opened it.
        let mut samples = Vec::new();
        for h in &version.segments {
            let path = layout::segment_path(dir, &h.name);
            let opened = vfs
                .open_immutable(&path)
                .map_err(|e| Error::io(&path, e))
                .and_then(|bytes| Segment::open(&path, bytes));
            match opened {
                Ok(segment) => check_segment(&segment, &path, &mut report, &mut samples),
                // Compacted away since the version was taken: nothing to check.
                Err(_)
                    if !inner
                        .current_version()
                        .segments
                        .iter()
                        .any(|s| s.name == h.name) => {}
                Err(e) => report.problems.push(from_error(e, &path)),
            }
        }
        check_wal(vfs, dir, &manifest, &mut report);
        Ok(report)
    }
}

/// Reads every chunk of `segment` and checks it against the segment's table, and every
/// series' rollups against the summaries of its samples.
fn check_segment(
    segment: &Segment,
    path: &Path,
    report: &mut VerifyReport,
    samples: &mut Vec<Sample>,
) {
    report.segments += 1;
    for series in segment.all_series() {
        samples.clear();
        let mut whole = true;
        for meta in series.chunks {
            report.chunks += 1;
            let from = samples.len();
            if let Err(e) = segment.read_chunk(&meta, i64::MIN, i64::MAX, samples) {
                report.problems.push(from_error(e, path));
                whole = false;
                continue;
            }
            let chunk = samples.get(from..).unwrap_or_default();
            report.samples += chunk.len() as u64;
            let ordered = chunk.windows(2).all(|w| matches!(w, [a, b] if a.t < b.t));
            let bounded = chunk.first().is_some_and(|s| s.t >= meta.min_t)
                && chunk.last().is_some_and(|s| s.t <= meta.max_t);
            if !ordered || !bounded || chunk.len() != meta.samples as usize {
                report.problems.push(problem(
                    path,
                    meta.offset,
                    format!(
                        "chunk holds {} samples {} between {:?} and {:?}; the table says {} between {} and {}",
                        chunk.len(),
                        if ordered { "in order" } else { "out of order" },
                        chunk.first().map(|s| s.t),
                        chunk.last().map(|s| s.t),
                        meta.samples,
                        meta.min_t,
                        meta.max_t
                    ),
                ));
            }
        }
        if whole {
            check_rollups(segment, series, samples, path, report);
        }
    }
    check_metric_rollups(segment, path, report);
}

/// Checks that the segment's metric rollups are its series' rollups folded per namespace
/// and metric name (the series' rollups were checked against their samples above).
fn check_metric_rollups(segment: &Segment, path: &Path, report: &mut VerifyReport) {
    let tiers: Vec<i64> = segment
        .tiers
        .iter()
        .copied()
        .filter(|&t| segment.has_metric_rollups(t))
        .collect();
    if tiers.is_empty() {
        return;
    }
    let labels = match segment.labels() {
        Ok(labels) => labels,
        Err(e) => return report.problems.push(from_error(e, path)),
    };
    for tier in tiers {
        let mut folded: BTreeMap<(&str, &str), MetricRollup> = BTreeMap::new();
        let mut buckets = Vec::new();
        for (series, labels) in segment.all_series().zip(&labels) {
            let Some(name) = labels.get(METRIC_NAME) else {
                continue;
            };
            buckets.clear();
            // A damaged block was reported with the series' rollups.
            if segment
                .read_rollup(series, tier, rollup::Wanted::ALL, &mut buckets)
                .is_ok()
            {
                folded
                    .entry((series.namespace.as_str(), name))
                    .or_insert_with(|| MetricRollup::new(tier))
                    .add(&buckets);
            }
        }
        let listed: Vec<(&str, &str, u64)> = segment.metrics_listed().collect();
        for &(namespace, metric, at) in &listed {
            let mut stored = Vec::new();
            if let Err(e) = segment.read_metric_rollup(namespace, metric, tier, &mut stored) {
                report.problems.push(from_error(e, path));
                continue;
            }
            let expected = folded
                .get(&(namespace, metric))
                .map(MetricRollup::buckets)
                .unwrap_or_default();
            let same = stored.len() == expected.len()
                && stored.iter().zip(&expected).all(|(a, b)| a.same_bits(b));
            if !same {
                report.problems.push(problem(
                    path,
                    at,
                    format!(
                        "the {tier} ms metric rollup of {metric} ({namespace}) holds {} \
                         buckets, which differ from the {} its series' rollups give",
                        stored.len(),
                        expected.len()
                    ),
                ));
            }
        }
        // (A metric whose series have no bucket in this tier need not be listed.)
        for ((namespace, metric), rollup) in &folded {
            let unlisted = !listed.iter().any(|l| (l.0, l.1) == (*namespace, *metric));
            if unlisted && !rollup.buckets().is_empty() {
                report.problems.push(problem(
                    path,
                    0,
                    format!("metric {metric} ({namespace}) has no metric rollup"),
                ));
            }
        }
    }
}

/// Checks that `series`' rollups in `segment` are the summaries of its `samples`.
fn check_rollups(
    segment: &Segment,
    series: SegmentSeries<'_>,
    samples: &[Sample],
    path: &Path,
    report: &mut VerifyReport,
) {
    let at = match segment.rollup_offset(series) {
        Ok(Some(at)) => at,
        Ok(None) => return,
        Err(e) => {
            report.problems.push(from_error(e, path));
            return;
        }
    };
    let (mut stored, mut expected) = (Vec::new(), Vec::new());
    for &tier in segment.tiers.iter() {
        stored.clear();
        expected.clear();
        if let Err(e) = segment.read_rollup(series, tier, rollup::Wanted::ALL, &mut stored) {
            report.problems.push(from_error(e, path));
            return;
        }
        rollup::summarize(samples, tier, &mut expected);
        // Buckets before the first sample are those of samples retention has dropped
        // (kept when the tier outlives them); the others are the samples' summaries.
        let first = expected.first().map_or(i64::MAX, |b| b.start);
        let carried = stored.partition_point(|b| b.start < first);
        let rest = stored.get(carried..).unwrap_or_default();
        let same =
            rest.len() == expected.len() && rest.iter().zip(&expected).all(|(a, b)| a.same_bits(b));
        if !same {
            report.problems.push(problem(
                path,
                at,
                format!(
                    "the {tier} ms rollup holds {} buckets where the chunks have samples, \
                     which differ from the {} those samples give",
                    rest.len(),
                    expected.len()
                ),
            ));
        }
    }
}

fn problem(file: &Path, offset: u64, reason: String) -> Problem {
    Problem {
        file: file.to_path_buf(),
        offset,
        reason,
    }
}

/// A problem from an error, placed at `fallback` when the error names no file.
fn from_error(e: Error, fallback: &Path) -> Problem {
    match e {
        Error::Corrupt {
            file,
            offset,
            reason,
        } => Problem {
            file,
            offset,
            reason,
        },
        other => Problem {
            file: fallback.to_path_buf(),
            offset: 0,
            reason: other.to_string(),
        },
    }
}

/// Segment files no manifest lists.
fn check_unlisted(vfs: &dyn Vfs, dir: &Path, manifest: &Manifest, report: &mut VerifyReport) {
    let seg_dir = dir.join(layout::SEGMENT_DIR);
    for path in vfs.list_dir(&seg_dir).unwrap_or_default() {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let listed = manifest.segments.iter().any(|s| s == name)
            || manifest.retired.iter().any(|s| s == name);
        if !listed {
            report.problems.push(problem(
                &path,
                0,
                "no manifest lists this segment (the next open removes it if it is the leftover of an interrupted flush, else quarantines it)".into(),
            ));
        }
    }
}

/// The WAL files the manifest does not cover, frame by frame. One that is gone by the time
/// it is read was flushed meanwhile (a running server), not lost.
fn check_wal(vfs: &dyn Vfs, dir: &Path, manifest: &Manifest, report: &mut VerifyReport) {
    let wal_dir = dir.join(layout::WAL_DIR);
    let mut files: Vec<(u64, PathBuf)> = vfs
        .list_dir(&wal_dir)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| layout::parse_wal_file(&p).map(|n| (n, p)))
        .filter(|(n, _)| *n >= manifest.wal_flushed_below)
        .collect();
    files.sort();
    let newest = files.last().map_or(0, |(n, _)| *n);
    for (n, path) in files {
        let data = match vfs.read(&path) {
            Ok(d) => d,
            Err(e) => {
                report.problems.push(problem(&path, 0, e.to_string()));
                continue;
            }
        };
        report.wal_files += 1;
        let replay = replay_file(&data, &mut Counter);
        report.wal_frames += replay.frames;
        match replay.end {
            End::Clean => {}
            End::Torn { .. } if n == newest => {}
            End::Torn { offset } => report.problems.push(problem(
                &path,
                offset,
                "a damaged frame at the end of a WAL file that is not the newest".into(),
            )),
            End::Corrupt(e) => report.problems.push(problem(&path, e.offset, e.reason)),
        }
    }
}

/// The catalog (`METADATA`) and the arrival delays (`ARRIVALS`): their checksums.
fn check_text_files(vfs: &dyn Vfs, dir: &Path, report: &mut VerifyReport) {
    if let Err(e) = MetadataStore::load(vfs, dir) {
        report
            .problems
            .push(from_error(e, &dir.join(layout::METADATA)));
    }
    if let Err(e) = crate::quality::Arrivals::load(vfs, dir) {
        report
            .problems
            .push(from_error(e, &dir.join(layout::ARRIVALS)));
    }
}
