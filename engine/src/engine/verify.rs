//! `Engine::verify`: every checksum and every invariant of a data directory, read-only.
//!
//! The MANIFEST and METADATA checksums; every listed segment's tables, every chunk's checksum
//! and content (it decodes, its samples are in time order, within the chunk's recorded bounds
//! and as many as recorded); every WAL file's frames (a torn tail is expected only in the
//! newest file); segment files nobody lists. Nothing is changed, moved or locked: run it on a
//! stopped server's directory or a snapshot, since a running server's flushes and compactions
//! change the files under it.

use std::path::{Path, PathBuf};

use super::Engine;
use crate::fs::{Vfs, layout};
use crate::manifest::Manifest;
use crate::metadata::MetadataStore;
use crate::model::Sample;
use crate::segment::Segment;
use crate::wal::frame::End;
use crate::wal::record::SeriesDef;
use crate::wal::replay::{ReplaySink, replay_file};
use crate::{DecodeError, Error, Result};

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
        let problem = |file: &Path, offset: u64, reason: String| Problem {
            file: file.to_path_buf(),
            offset,
            reason,
        };
        let from_error = |e: Error, fallback: &Path| match e {
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
        };
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
        if let Err(e) = MetadataStore::load(vfs, dir) {
            report
                .problems
                .push(from_error(e, &dir.join(layout::METADATA)));
        }
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
            report.segments += 1;
            for series in &segment.series {
                for meta in &series.chunks {
                    report.chunks += 1;
                    samples.clear();
                    if let Err(e) = segment.read_chunk(meta, i64::MIN, i64::MAX, &mut samples) {
                        report.problems.push(from_error(e, &path));
                        continue;
                    }
                    report.samples += samples.len() as u64;
                    let ordered = samples.windows(2).all(|w| matches!(w, [a, b] if a.t < b.t));
                    let bounded = samples.first().is_some_and(|s| s.t >= meta.min_t)
                        && samples.last().is_some_and(|s| s.t <= meta.max_t);
                    if !ordered || !bounded || samples.len() != meta.samples as usize {
                        report.problems.push(problem(
                            &path,
                            meta.offset,
                            format!(
                                "chunk holds {} samples {} between {:?} and {:?}; the table says {} between {} and {}",
                                samples.len(),
                                if ordered { "in order" } else { "out of order" },
                                samples.first().map(|s| s.t),
                                samples.last().map(|s| s.t),
                                meta.samples,
                                meta.min_t,
                                meta.max_t
                            ),
                        ));
                    }
                }
            }
        }
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
        Ok(report)
    }
}
