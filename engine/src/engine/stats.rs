//! What an operator sees of the store: series, samples, bytes, rejections, quarantine.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::Engine;
use crate::model::RejectReason;
use crate::quality::QualityFilter;

/// A file moved aside because it was corrupt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// Where the file was.
    pub file: PathBuf,
    /// Where its copy is now.
    pub moved_to: PathBuf,
    /// What was wrong (with the offset).
    pub reason: String,
}

/// A snapshot of the store's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Series known (head or segments).
    pub series: u64,
    /// Series in the head: those written since the flush before the last (the others left
    /// it and cost a compact entry each; see [`crate::Options::evict_idle_series`]).
    pub head_series: u64,
    /// Series that left the head since open.
    pub series_evicted: u64,
    /// Series that came back into the head since open (written again after leaving it).
    pub series_revived: u64,
    /// Series per namespace.
    pub series_by_namespace: BTreeMap<String, u64>,
    /// Samples in the head (live and not yet flushed).
    pub head_samples: u64,
    /// Bytes the head accounts for: samples, and what the series cost — their structs, the
    /// registry's tables, the label index (the figure the memory budget limits).
    pub head_bytes: u64,
    /// Head bytes per namespace (what its share, if it has one, limits).
    pub head_bytes_by_namespace: BTreeMap<String, u64>,
    /// Namespaces' shares of the head memory, bytes, where set.
    pub head_share_by_namespace: BTreeMap<String, u64>,
    /// Bytes the label index holds (interned label pairs, postings; part of `head_bytes`).
    pub index_label_bytes: u64,
    /// Live segment files.
    pub segments: u64,
    /// Samples in segments (counting the same timestamp again if it was rewritten).
    pub segment_samples: u64,
    /// Segment file bytes in total.
    pub segment_bytes: u64,
    /// Memory the open segments hold: their series tables and the engine's references
    /// for their series (the files themselves are mapped, not counted).
    pub segment_table_bytes: u64,
    /// Chunk bytes on disk per namespace.
    pub disk_bytes_by_namespace: BTreeMap<String, u64>,
    /// Samples accepted since open.
    pub accepted_samples: u64,
    /// Samples rejected since open, by reason kind.
    pub rejected_samples: BTreeMap<&'static str, u64>,
    /// Files moved to quarantine since open.
    pub quarantined: Vec<Quarantined>,
    /// Why writes are stopped, if they are (the engine retries by itself, with back-off).
    pub writes_stopped: Option<String>,
    /// Times writing resumed by itself after a failed fsync or write, since open.
    pub write_recoveries: u64,
    /// Reads of a rollup block that was damaged, since open: each query answered those
    /// buckets from the raw samples instead (`verify` names every damaged block).
    pub damaged_rollup_reads: u64,
    /// The last of them: file, offset and why.
    pub last_damaged_rollup: Option<String>,
    /// WAL files whose end opening cut off: a torn write in the newest file (never
    /// acknowledged), or damage (also quarantined).
    pub wal_files_cut: u64,
    /// Bytes those cuts removed.
    pub wal_bytes_cut: u64,
    /// Samples written per namespace since the engine was opened.
    pub accepted_by_namespace: BTreeMap<String, u64>,
    /// Flushes that wrote segments since the engine was opened.
    pub flushes: u64,
    /// Compactions that wrote segments since the engine was opened.
    pub compactions: u64,
    /// What the WAL's group commits and commit waits took.
    pub wal: crate::wal::writer::WalTimings,
    /// Samples the data-quality rules rejected or flagged, by namespace, metric, rule and
    /// action, since the store was created.
    pub quality: Vec<crate::model::QualityCount>,
    /// Live subscribers now.
    pub watchers: u64,
    /// Gap notices queued for subscribers that fell behind, since opening.
    pub watch_gaps: u64,
    /// Samples queued for subscribers, since opening.
    pub watch_delivered: u64,
    /// What the result cache of range queries did and holds (all zero when it is off).
    pub query_cache: crate::query::cache::CacheStats,
}

impl Engine {
    /// The namespaces that have series, with how many (cheap: from the index, unlike
    /// [`Engine::stats`]).
    pub fn namespaces(&self) -> Vec<(String, u64)> {
        self.inner.head.namespace_counts()
    }

    /// Bytes the head holds now, and the budget past which writes are refused (cheap: no
    /// walk over the series, unlike [`Engine::stats`]).
    pub fn head_memory(&self) -> (u64, u64) {
        let inner = &*self.inner;
        (
            inner.head_memory_bytes(),
            inner.opts.head_memory_budget as u64,
        )
    }

    /// Whether some namespace holds half its share of the head or more: the moment to
    /// flush early, before its writers are refused (cheap, like [`Engine::head_memory`]).
    pub fn head_share_pressed(&self) -> bool {
        self.inner
            .head
            .usages()
            .all()
            .iter()
            .any(|u| u.limit().is_some_and(|limit| u.bytes() >= limit / 2))
    }

    /// Current counters.
    pub fn stats(&self) -> Stats {
        let inner = &*self.inner;
        let version = inner.current_version();
        let mut stats = Stats {
            series: inner.head.known() as u64,
            head_series: inner.head.len() as u64,
            series_by_namespace: inner.head.namespace_counts().into_iter().collect(),
            head_bytes: inner.head_memory_bytes(),
            index_label_bytes: inner.head.label_bytes(),
            segments: version.segments.len() as u64,
            accepted_samples: inner.accepted.load(Ordering::Relaxed),
            quarantined: inner.quarantined.lock().clone(),
            writes_stopped: inner.wal.failure().map(|e| e.to_string()),
            write_recoveries: inner.write_recoveries.load(Ordering::Relaxed),
            damaged_rollup_reads: inner.damaged_rollups.load(Ordering::Relaxed),
            last_damaged_rollup: inner.last_damaged_rollup.lock().clone(),
            wal_files_cut: inner.wal_cuts.files,
            wal_bytes_cut: inner.wal_cuts.bytes,
            flushes: inner.flushes.load(Ordering::Relaxed),
            compactions: inner.compactions.load(Ordering::Relaxed),
            wal: inner.wal.timings(),
            quality: inner.quality.report(&QualityFilter::default()).counts,
            ..Stats::default()
        };
        (stats.watchers, stats.watch_gaps, stats.watch_delivered) = inner.watch.figures();
        (stats.series_evicted, stats.series_revived) = inner.head.churn();
        if let Some(cache) = &inner.cache {
            stats.query_cache = cache.stats();
        }
        for usage in inner.head.usages().all() {
            let ns = usage.namespace().as_str().to_owned();
            if let Some(share) = usage.limit() {
                stats.head_share_by_namespace.insert(ns.clone(), share);
            }
            stats
                .accepted_by_namespace
                .insert(ns.clone(), usage.accepted());
            stats.head_bytes_by_namespace.insert(ns, usage.bytes());
            stats.head_samples += usage.samples();
        }
        for h in &version.segments {
            stats.segment_samples += h.segment.samples;
            stats.segment_bytes += h.segment.file_bytes();
            stats.segment_table_bytes += h.heap_bytes() as u64;
            for (ns, bytes) in h.segment.bytes_by_namespace() {
                *stats.disk_bytes_by_namespace.entry(ns).or_default() += bytes;
            }
        }
        for (kind, count) in RejectReason::KINDS.iter().zip(&inner.rejections) {
            let n = count.load(Ordering::Relaxed);
            if n > 0 {
                stats.rejected_samples.insert(kind, n);
            }
        }
        stats
    }
}
