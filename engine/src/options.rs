//! Engine options. Every default is documented with its unit; choices are enums.
//!
//! May use: `fs`, `model`.

use std::sync::Arc;
use std::time::Duration;

use crate::fs::{OsFs, Vfs};
pub use crate::model::Limits;

/// How the write-ahead log is made durable before a write is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync before acknowledging every write; concurrent writers share one fsync (group
    /// commit). Acknowledged means durable. The default.
    Always,
    /// Write to the OS before acknowledging and fsync every `Duration`. A process crash loses
    /// nothing; a power loss or kernel crash can lose up to that much acknowledged data.
    Interval(Duration),
}

/// What opening does when a WAL record in the middle of the log is corrupt (a torn tail at
/// the end of the newest file is always truncated: it was never acknowledged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalCorruption {
    /// Keep the records before the corrupt one, copy the damaged file to `quarantine/`, and
    /// go on with the later files. Reported in the log and in [`crate::Stats`]. The default:
    /// the province keeps its dashboards while an operator looks at the file.
    Salvage,
    /// Refuse to open, naming the file and offset, so that an operator decides.
    Refuse,
}

/// What opening does with a damaged `METADATA` file (units, descriptions and expected
/// intervals: useful, but no sample depends on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataCorruption {
    /// Move the file to `quarantine/`, report it (log and [`crate::Stats`]) and start with
    /// no metadata, so the province keeps its dashboards. The default.
    Quarantine,
    /// Refuse to open, naming the file and offset.
    Refuse,
}

/// Limits on what one query may touch. Defaults follow Prometheus and Mimir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryLimits {
    /// Most series one query may read. Default 500,000.
    pub max_series: usize,
    /// Most samples one query may read. Default 50 million.
    pub max_samples: u64,
    /// Most points (steps) per series in a range query. Default 11,000.
    pub max_points_per_series: usize,
    /// Longest a query may run. Default 30 s.
    pub timeout: Duration,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_series: 500_000,
            max_samples: 50_000_000,
            max_points_per_series: 11_000,
            timeout: Duration::from_secs(30),
        }
    }
}

impl QueryLimits {
    /// These limits without the sample limit, which bounds what a query holds in memory:
    /// for reads that keep counts or a few samples per series, not what they read. The time
    /// limit still bounds them.
    pub(crate) fn without_sample_limit(&self) -> QueryLimits {
        QueryLimits {
            max_samples: u64::MAX,
            ..self.clone()
        }
    }
}

/// Where the write path reads the time (what is too far in the future or too old, when a
/// sample arrived): the system clock, or one a test moves.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<dyn Fn() -> i64 + Send + Sync>>);

impl Clock {
    /// A clock that reads `now` (ms since the epoch).
    pub fn from_fn(now: impl Fn() -> i64 + Send + Sync + 'static) -> Clock {
        Clock(Some(Arc::new(now)))
    }

    /// Now, ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            Some(f) => f(),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Clock(given)"
        } else {
            "Clock(system)"
        })
    }
}

/// Options for [`crate::Engine::open`].
#[derive(Debug, Clone)]
pub struct Options {
    /// WAL durability. Default [`FsyncPolicy::Always`].
    pub fsync: FsyncPolicy,
    /// What to do with a corrupt WAL record. Default [`WalCorruption::Salvage`].
    pub wal_corruption: WalCorruption,
    /// What to do with a damaged `METADATA` file. Default [`MetadataCorruption::Quarantine`].
    pub metadata_corruption: MetadataCorruption,
    /// Size at which the WAL starts a new file, bytes. Default 64 MiB.
    pub wal_file_bytes: u64,
    /// Memory the head may hold before writes are refused with a resource-exhausted error,
    /// bytes. Default 1 GiB.
    pub head_memory_budget: usize,
    /// Whether a series that wrote nothing between two flushes leaves the head after the
    /// second (keeping a compact entry; queries and later writes still find it), so that
    /// memory follows the active series, not every series seen. Default true.
    pub evict_idle_series: bool,
    /// Width of a time partition, ms; each flushed segment covers one partition. Default 2 h.
    pub partition_ms: i64,
    /// Time window compaction merges segments into, ms (a multiple of `partition_ms`).
    /// Default one day.
    pub compaction_window_ms: i64,
    /// Larger windows, ms, for data that has aged: once a whole window of one of these has
    /// passed, its segments are merged into one (as Prometheus' block ranges), so that a
    /// month-long panel reads a few segments per series rather than thirty. Ascending, each
    /// a multiple of the one before it and the first of `compaction_window_ms`. A compacted
    /// segment may keep expired samples on disk for up to a quarter of its span (queries
    /// hide them at once; see [`crate::Engine::compact`]). Default 8 and 32 days.
    pub compaction_aged_windows_ms: Vec<i64>,
    /// Most samples per second a compaction merges (it sleeps to stay under), so that it
    /// leaves the cores and the disk to writes and queries; 0: as fast as it can. Default
    /// 5 M/s (a fifth of what one core merges).
    pub compaction_samples_per_sec: u64,
    /// How long data is kept, relative to the wall clock: older samples are refused by
    /// writes, hidden from queries at once, and dropped by compaction. Default: forever.
    pub retention: Option<Duration>,
    /// Retention of particular namespaces, overriding [`Options::retention`] (for example
    /// camera counts 90 days, socio-economic indicators forever: give those no entry and no
    /// global retention).
    pub retention_by_namespace: std::collections::BTreeMap<String, Duration>,
    /// How long each rollup tier (interval ms) is kept when that is longer than the raw
    /// samples' retention: compaction then keeps a window's rollups after its raw samples
    /// have expired, so that panels a tier answers reach further back than raw data (raw
    /// 90 days, hourly summaries two years). A tier not named here is kept as long as the
    /// raw samples.
    pub rollup_retention: std::collections::BTreeMap<i64, Duration>,
    /// Rollup retention of particular namespaces, tier by tier, overriding
    /// [`Options::rollup_retention`].
    pub rollup_retention_by_namespace:
        std::collections::BTreeMap<String, std::collections::BTreeMap<i64, Duration>>,
    /// Input limits.
    pub limits: Limits,
    /// Query limits.
    pub query_limits: QueryLimits,
    /// Workers shared by all queries; 0: one per core. Default 0.
    pub query_threads: usize,
    /// Bytes the result cache of range queries may hold (see [`crate::query::cache`]);
    /// 0 turns it off. Default 64 MiB.
    pub query_cache_bytes: usize,
    /// Rollup tiers, interval in ms: every segment a flush or a compaction writes
    /// summarises each series per interval of each tier (see [`crate::query`]'s "Rollups"),
    /// and queries whose windows are whole, aligned multiples of a tier read the summaries
    /// instead of the raw samples where the answer is the same bit for bit. Each tier costs
    /// a few bytes per series and interval on disk. Each must divide a day. Default: one
    /// hour and one day (the day tier costs a twenty-fourth of the hour's and serves
    /// year-long panels at daily steps).
    pub rollup_tiers_ms: Vec<i64>,
    /// The file system every engine file operation goes through (tests inject faults here).
    pub vfs: Arc<dyn Vfs>,
    /// Record each accepted sample's arrival delay (from its timestamp to its write) in
    /// hourly histograms, for the completeness report's delay percentiles. On by default.
    pub record_arrivals: bool,
    /// The write path's clock. Default: the system's.
    pub clock: Clock,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fsync: FsyncPolicy::Always,
            wal_corruption: WalCorruption::Salvage,
            metadata_corruption: MetadataCorruption::Quarantine,
            wal_file_bytes: 64 << 20,
            head_memory_budget: 1 << 30,
            evict_idle_series: true,
            partition_ms: 2 * 3600 * 1000,
            compaction_window_ms: 24 * 3600 * 1000,
            compaction_aged_windows_ms: vec![8 * 86_400_000, 32 * 86_400_000],
            compaction_samples_per_sec: 5_000_000,
            retention: None,
            retention_by_namespace: std::collections::BTreeMap::new(),
            rollup_retention: std::collections::BTreeMap::new(),
            rollup_retention_by_namespace: std::collections::BTreeMap::new(),
            limits: Limits::default(),
            query_limits: QueryLimits::default(),
            query_threads: 0,
            query_cache_bytes: 64 << 20,
            rollup_tiers_ms: vec![3_600_000, 86_400_000],
            vfs: Arc::new(OsFs),
            record_arrivals: true,
            clock: Clock::default(),
        }
    }
}

impl Options {
    /// The oldest timestamp kept in `namespace` at wall-clock time `now` (ms);
    /// `i64::MIN` when it keeps everything.
    pub fn retention_cutoff(&self, namespace: &str, now: i64) -> i64 {
        cutoff(
            self.retention_by_namespace
                .get(namespace)
                .or(self.retention.as_ref()),
            now,
        )
    }

    /// The oldest time whose buckets of the tier `tier` (ms) are kept in `namespace` at
    /// `now`: never later than [`Options::retention_cutoff`] (rollups live in the same
    /// segments as the samples they summarise).
    pub fn tier_cutoff(&self, namespace: &str, tier: i64, now: i64) -> i64 {
        let own = self
            .rollup_retention_by_namespace
            .get(namespace)
            .and_then(|t| t.get(&tier))
            .or_else(|| self.rollup_retention.get(&tier));
        let raw = self.retention_cutoff(namespace, now);
        own.map_or(raw, |r| cutoff(Some(r), now).min(raw))
    }

    /// The oldest time anything of `namespace` is kept at `now`, samples or rollups.
    pub fn kept_cutoff(&self, namespace: &str, now: i64) -> i64 {
        self.rollup_tiers_ms
            .iter()
            .map(|&t| self.tier_cutoff(namespace, t, now))
            .fold(self.retention_cutoff(namespace, now), i64::min)
    }
}

/// `now` minus a retention; `i64::MIN` for none or one longer than time itself.
fn cutoff(retention: Option<&Duration>, now: i64) -> i64 {
    retention.map_or(i64::MIN, |r| match i64::try_from(r.as_millis()) {
        Ok(ms) => now.saturating_sub(ms),
        Err(_) => i64::MIN,
    })
}
