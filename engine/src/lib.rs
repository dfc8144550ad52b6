//! # iocdb-engine
//!
//! The storage core of iocdb, a time-series metrics engine: a write-ahead log with group
//! commit, an in-memory head of compressed chunks, a label index on roaring bitmaps, and
//! immutable, memory-mapped columnar segment files. It knows nothing of gRPC.
//!
//! ```
//! use iocdb_engine::{Engine, Label, Matcher, Options, Sample, SeriesWrite, WriteRequest};
//!
//! let dir = tempfile::tempdir()?;
//! let engine = Engine::open(dir.path(), Options::default())?;
//! let outcome = engine.write(WriteRequest {
//!     namespace: "lodging".into(),
//!     series: vec![SeriesWrite {
//!         labels: vec![Label::new("__name__", "lodging_guests"), Label::new("commune", "Châu Đốc")],
//!         samples: vec![Sample::new(1_700_000_000_000, 42.0)],
//!     }],
//! })?;
//! assert_eq!(outcome.accepted, 1);
//! let found = engine.select("lodging", &[Matcher::equal("commune", "Châu Đốc")], 0, i64::MAX)?;
//! assert_eq!(found[0].samples, vec![Sample::new(1_700_000_000_000, 42.0)]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Module map (following the data): `model` → `engine` (write) → `wal` → `head`;
//! `engine` (flush) → `segment` + `manifest`; `query` → the read view ([`Querier`],
//! [`Snapshot`]) → `head` (registry, `index` postings) and segments, merged
//! newest-write-wins. All file I/O goes through [`fs::Vfs`]. The modules are private: the
//! API is what this root re-exports; `internal` (hidden) serves the engine's own tests,
//! benches and fuzz targets. `docs/ARCHITECTURE.md` has the rooms table — which module may
//! use which — that `engine/tests/it/rooms.rs` enforces.

mod codec;
mod engine;
mod error;
pub mod fs;
mod fuzzing;
mod head;
mod index;
#[doc(hidden)]
pub mod internal;
mod manifest;
mod metadata;
mod model;
mod options;
mod quality;
pub mod query;
pub mod scratch;
mod segment;
mod textfile;
mod wal;

pub use engine::flush::FlushReport;
pub use engine::read::{Querier, SeriesFn, Snapshot};
pub use engine::write::{RawSeriesWrite, RawWriteRequest, SeriesBy};
pub use engine::{
    CompactReport, DeleteReport, Inspection, Problem, SegmentInfo, SnapshotReport, VerifyReport,
};
pub use engine::{
    CompletenessReport, DelayFigures, Engine, Quarantined, RepairReport, SeriesSamples, Stats,
    Subscription, Wake, WatchEvent,
};
pub use error::{DecodeError, Error, Limit, Result};
pub use head::SeriesHandle;
pub use index::{MatchOp, Matcher};
pub use manifest::Tombstone;
pub use metadata::MetricMetadata;
pub use model::{
    DEFAULT_NAMESPACE, LATENCY_BUCKETS, Label, Labels, Latency, LatencySnapshot, METRIC_NAME,
    Namespace, PerNamespace, QualityAction, QualityCount, QualityEvent, QualityPolicy, QualityRule,
    QualityRules, RawLabel, RejectReason, Rejection, Sample, SeriesWrite, WriteOutcome,
    WriteRequest, echo, is_valid_label_name,
};
pub use options::{
    Clock, FsyncPolicy, Limits, MetadataCorruption, Options, QueryLimits, WalCorruption,
};
pub use quality::{MAX_EVENTS as MAX_QUALITY_EVENTS, QualityFilter, QualityReport};
pub use query::{
    AggregateOp, Aggregation, Budget, CompletenessFigures, CompletenessGroup, CompletenessQuery,
    DEFAULT_LOOKBACK_MS, FunctionKind, Gap, Grouping, LatestSample, PromqlQuery, PromqlResult,
    QueryResult, QueryValue, RangeFunction, RangeQuery, ResultSeries, STALE_NAN_BITS, SeriesFilter,
    StaleSeries, VectorSample, is_stale_marker,
};
pub use wal::writer::WalTimings;
