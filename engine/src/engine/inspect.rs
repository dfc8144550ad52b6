//! `Engine::inspect`: what is inside a store, for operators (the questions `promtool tsdb
//! analyze` answers): each segment with its time span, samples and bytes; series per metric
//! and namespace; bytes per sample per namespace; the labels with the most distinct values;
//! the WAL and the head.

use std::collections::{BTreeMap, BTreeSet};

use super::Engine;
use crate::fs::layout;
use crate::model::METRIC_NAME;

/// One live segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// File name.
    pub name: String,
    /// Flush (or compaction) sequence.
    pub seq: u64,
    /// Oldest and newest sample, ms.
    pub min_t: i64,
    /// Newest sample, ms.
    pub max_t: i64,
    /// Series in it.
    pub series: u64,
    /// Samples in it.
    pub samples: u64,
    /// File bytes.
    pub bytes: u64,
    /// Of those, the rollup blocks' (the tiers' summaries).
    pub rollup_bytes: u64,
}

/// What `inspect` found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inspection {
    /// Live segments, oldest flush first.
    pub segments: Vec<SegmentInfo>,
    /// Series per (namespace, metric).
    pub series_by_metric: BTreeMap<(String, String), u64>,
    /// Bytes on disk per sample, per namespace.
    pub bytes_per_sample_by_namespace: BTreeMap<String, f64>,
    /// Distinct values per label name, most first.
    pub label_cardinality: Vec<(String, u64)>,
    /// WAL files and their bytes.
    pub wal_files: u64,
    /// Bytes of WAL files.
    pub wal_bytes: u64,
    /// Samples and bytes in the head.
    pub head_samples: u64,
    /// Bytes the head accounts for.
    pub head_bytes: u64,
    /// Deletions recorded and not yet applied everywhere by compaction.
    pub tombstones: u64,
}

impl Engine {
    /// Looks inside the store (see the module doc).
    pub fn inspect(&self) -> Inspection {
        let inner = &*self.inner;
        let version = inner.current_version();
        let segments: Vec<SegmentInfo> = version
            .segments
            .iter()
            .map(|h| SegmentInfo {
                name: h.name.clone(),
                seq: h.segment.seq,
                min_t: h.segment.min_t,
                max_t: h.segment.max_t,
                series: h.segment.series_count() as u64,
                samples: h.segment.samples,
                bytes: h.segment.file_bytes(),
                rollup_bytes: h.segment.rollup_bytes,
            })
            .collect();
        let mut samples_by_namespace: BTreeMap<String, u64> = BTreeMap::new();
        for h in &version.segments {
            for s in h.segment.all_series() {
                let n: u64 = s.chunks.iter().map(|c| u64::from(c.samples)).sum();
                *samples_by_namespace
                    .entry(s.namespace.as_str().to_owned())
                    .or_default() += n;
            }
        }
        let mut bytes_by_namespace: BTreeMap<String, u64> = BTreeMap::new();
        for h in &version.segments {
            for (ns, b) in h.segment.bytes_by_namespace() {
                *bytes_by_namespace.entry(ns).or_default() += b;
            }
        }
        let bytes_per_sample_by_namespace = bytes_by_namespace
            .into_iter()
            .map(|(ns, b)| {
                let n = samples_by_namespace.get(&ns).copied().unwrap_or(0).max(1);
                (ns, b as f64 / n as f64)
            })
            .collect();
        let mut series_by_metric: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut values: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut count = |namespace: &crate::model::Namespace, labels: crate::model::Labels| {
            *series_by_metric
                .entry((
                    namespace.as_str().to_owned(),
                    labels.get(METRIC_NAME).unwrap_or_default().to_owned(),
                ))
                .or_default() += 1;
            for l in labels.iter() {
                values
                    .entry(l.name.clone())
                    .or_default()
                    .insert(l.value.clone());
            }
        };
        for s in inner.head.all() {
            count(&s.namespace, inner.head.labels(&s));
        }
        // The series out of the head, each once, from the newest segment that lists it.
        let mut cold = inner.head.cold_refs();
        for h in version.segments.iter().rev() {
            if h.refs.is_disjoint(&cold) {
                continue;
            }
            for id in &h.refs & &cold {
                match h.labels_of(id) {
                    Ok(Some((namespace, labels))) => count(&namespace, labels),
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, "a segment's label index cannot be read"),
                }
                cold.remove(id);
            }
        }
        let mut label_cardinality: Vec<(String, u64)> = values
            .into_iter()
            .map(|(name, v)| (name, v.len() as u64))
            .collect();
        label_cardinality.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let wal_dir = inner.dir.join(layout::WAL_DIR);
        let wal: Vec<u64> = inner
            .opts
            .vfs
            .list_dir(&wal_dir)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| layout::parse_wal_file(p).is_some())
            // Mapped, not read: only the length is looked at.
            .filter_map(|p| {
                inner
                    .opts
                    .vfs
                    .open_immutable(&p)
                    .ok()
                    .map(|b| b.len() as u64)
            })
            .collect();
        let stats = self.stats();
        Inspection {
            segments,
            series_by_metric,
            bytes_per_sample_by_namespace,
            label_cardinality,
            wal_files: wal.len() as u64,
            wal_bytes: wal.iter().sum(),
            head_samples: stats.head_samples,
            head_bytes: stats.head_bytes,
            tombstones: inner.flush.lock().manifest.tombstones.len() as u64,
        }
    }
}
