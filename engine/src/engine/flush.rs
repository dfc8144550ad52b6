//! Flushing: cut the head into a frozen generation, write one segment per time partition,
//! publish them in a new manifest, then drop the WAL files they cover.
//!
//! A failure after the cut leaves the generation frozen (still visible to queries) and its
//! WAL files in place; the next flush writes it again under the same file names, so a retry
//! never orders old data after newer data.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::version::{FrozenGen, SegmentHandle, Version};
use super::{Engine, FlushState, Inner};
use crate::error::IoContext;
use crate::fs::layout;
use crate::head::{Delta, SeriesRef, UsageTally, dedupe_newest_wins};
use crate::model::Sample;
use crate::segment::{SegmentBuilder, write_segment};
use crate::{Error, Result};

/// What a flush wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Segment files written.
    pub segments: usize,
    /// Samples written (after merging rewrites of the same timestamp).
    pub samples: u64,
    /// Bytes written.
    pub bytes: u64,
}

impl Engine {
    /// Moves everything in the head into segments and truncates the WAL.
    pub fn flush(&self) -> Result<FlushReport> {
        let _span = tracing::info_span!("flush").entered();
        let inner = &*self.inner;
        inner.check_open()?;
        let mut state = inner.flush.lock();
        flush_locked(inner, &mut state)
    }
}

/// [`Engine::flush`], under the flush lock its caller holds.
pub(super) fn flush_locked(inner: &Inner, state: &mut FlushState) -> Result<FlushReport> {
    let mut idle = Vec::new();
    cut(inner, &mut state.manifest.next_seq, &mut idle)?;
    let version = inner.current_version();
    if version.frozen.is_empty() {
        evict(inner, &idle);
        return Ok(FlushReport::default());
    }
    let mut report = FlushReport::default();
    let mut handles = Vec::new();
    for generation in &version.frozen {
        handles.extend(write_generation(inner, generation, &mut report)?);
    }
    let seg_dir = inner.dir.join(layout::SEGMENT_DIR);
    inner.opts.vfs.sync_dir(&seg_dir).at(&seg_dir)?;

    let wal_below = version
        .frozen
        .iter()
        .map(|g| g.wal_below)
        .max()
        .unwrap_or(0);
    let mut manifest = state.manifest.clone();
    for h in &handles {
        if !manifest.segments.contains(&h.name) {
            manifest.segments.push(h.name.clone());
        }
    }
    manifest.wal_flushed_below = manifest.wal_flushed_below.max(wal_below);
    manifest.store(&*inner.opts.vfs, &inner.dir)?;
    state.manifest = manifest;

    let flushed: Vec<u64> = version.frozen.iter().map(|g| g.seq).collect();
    {
        let mut v = inner.version.write();
        let mut segments: Vec<Arc<SegmentHandle>> = v
            .segments
            .iter()
            .filter(|s| !handles.iter().any(|h| h.name == s.name))
            .cloned()
            .collect();
        segments.extend(handles.into_iter().map(Arc::new));
        segments.sort_by(|a, b| (a.segment.seq, &a.name).cmp(&(b.segment.seq, &b.name)));
        let frozen = v
            .frozen
            .iter()
            .filter(|g| !flushed.contains(&g.seq))
            .cloned()
            .collect();
        *v = Arc::new(Version {
            segments,
            frozen,
            deletions: v.deletions.clone(),
        });
    }
    if let Err(e) = inner.wal.remove_before(wal_below) {
        tracing::warn!(error = %e, "could not remove flushed WAL files; they will be skipped at open");
    }
    inner
        .flushes
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    inner.store_arrivals();
    evict(inner, &idle);
    Ok(report)
}

/// Sends the series that wrote nothing for a whole flush interval out of the head: their
/// samples are in segments, and what follows the active series is the head's memory.
fn evict(inner: &Inner, idle: &[SeriesRef]) {
    if !inner.opts.evict_idle_series || idle.is_empty() {
        return;
    }
    let version = inner.current_version();
    let evicted = inner.head.evict(idle, &version.refs());
    // The label index pages read since the last flush — by writes of series that had left
    // the head (searched for in every segment since they left), by queries over such
    // series — go back to the page cache: mapped, they would count in the process's memory
    // for as long as the segment is open (about 0.8 MB a segment in `churn_memory`).
    for h in &version.segments {
        h.segment.release_tables();
    }
    if evicted.series > 0 {
        tracing::debug!(
            series = evicted.series,
            bytes = evicted.bytes,
            "idle series left the head"
        );
    }
}

/// Moves all head data into a new frozen generation and rolls the WAL (under the exclusive
/// gate: no write is between its WAL append and its head apply meanwhile); adds to `idle`
/// the series that held nothing (none written since the flush before).
fn cut(inner: &Inner, next_seq: &mut u64, idle: &mut Vec<SeriesRef>) -> Result<()> {
    let _gate = inner.gate.write();
    if let Some(e) = inner.wal.failure() {
        return Err(e);
    }
    let mut series = HashMap::new();
    let mut tally = UsageTally::default();
    for s in inner.head.all() {
        let Some((layer, freed, held)) = s.head.take() else {
            idle.push(s.id);
            continue;
        };
        {
            inner.add_head_bytes(-(freed as isize));
            let delta = Delta {
                bytes: -(freed as i64),
                held: -(held as i64),
                accepted: 0,
            };
            tally.add(&s.usage, delta);
            series.insert(s.id, layer);
        }
    }
    tally.settle();
    inner.head.retire_chunk_blocks();
    if series.is_empty() {
        return Ok(());
    }
    let wal_below = inner.wal.roll()?;
    let generation = Arc::new(FrozenGen {
        seq: *next_seq,
        wal_below,
        series,
    });
    *next_seq += 1;
    let mut v = inner.version.write();
    let mut frozen = v.frozen.clone();
    frozen.push(generation);
    *v = Arc::new(Version {
        segments: v.segments.clone(),
        frozen,
        deletions: v.deletions.clone(),
    });
    Ok(())
}

/// Writes one generation's segments (one per partition) and opens them, one partition at a
/// time: each series' samples of the partition are decoded (chunks outside it are skipped by
/// their bounds) and encoded into the partition's builder at once, so the flush holds one
/// compressed segment and one series' samples, never the generation decoded.
fn write_generation(
    inner: &Inner,
    generation: &FrozenGen,
    report: &mut FlushReport,
) -> Result<Vec<SegmentHandle>> {
    // i128: the partitions at the ends of the i64 range reach past it.
    let width = i128::from(inner.opts.partition_ms.max(1));
    let partition_of =
        |t: i64| (i128::from(t).div_euclid(width) * width).max(i128::from(i64::MIN)) as i64;
    let mut ids: Vec<SeriesRef> = generation.series.keys().copied().collect();
    ids.sort_unstable();
    let mut samples = Vec::new();
    let decode = |id: SeriesRef, start: i64, end: i64, out: &mut Vec<Sample>| -> Result<()> {
        out.clear();
        let Some(layer) = generation.series.get(&id) else {
            return Ok(());
        };
        layer.decode_into(start, end, out).map_err(|e| {
            let labels = inner.identity(id).map(|(_, l)| l.to_string());
            Error::Corrupt {
                file: "head".into(),
                offset: e.offset,
                reason: format!(
                    "in-memory chunk of {}: {}",
                    labels.unwrap_or_default(),
                    e.reason
                ),
            }
        })?;
        dedupe_newest_wins(out, 0);
        Ok(())
    };
    // The partitions that hold samples (from the samples, not from chunk bounds: a sparse
    // series' chunk may span years of empty partitions).
    let mut partitions = BTreeSet::new();
    for &id in &ids {
        decode(id, i64::MIN, i64::MAX, &mut samples)?;
        let mut last = None;
        for s in &samples {
            let p = partition_of(s.t);
            if last != Some(p) {
                partitions.insert(p);
                last = Some(p);
            }
        }
    }
    let mut handles = Vec::new();
    for partition in partitions {
        let end = (i128::from(partition) + width - 1).min(i128::from(i64::MAX)) as i64;
        let mut builder =
            SegmentBuilder::new(generation.seq).with_rollups(&inner.opts.rollup_tiers_ms);
        let mut refs = Vec::new();
        for &id in &ids {
            decode(id, partition, end, &mut samples)?;
            // A frozen series may have left the head since (a failed flush's generation is
            // written again by a later one): its identity stays.
            let Some((namespace, labels)) =
                (!samples.is_empty()).then(|| inner.identity(id)).flatten()
            else {
                continue;
            };
            builder.add(&namespace, &labels, &samples);
            report.samples += samples.len() as u64;
            refs.push(id);
        }
        let name = layout::segment_name(generation.seq, partition);
        let path = layout::segment_path(&inner.dir, &name);
        report.bytes += write_segment(&*inner.opts.vfs, &path, &builder.finish())?;
        report.segments += 1;
        handles.push(SegmentHandle::written(inner, name, refs)?);
    }
    Ok(handles)
}
