//! The query engine: one engine behind every front door (gRPC today, PromQL tomorrow).
//!
//! # Semantics (PromQL 2.x, written down so a dashboard author can predict every number)
//! - **Steps.** A range query is evaluated at `start, start + step, …` up to and including
//!   `end`. Each point is computed from the samples at or before its step time.
//! - **Instant selection** (no function): at each step `t`, the latest sample in
//!   `[t − lookback, t]` (lookback 5 min by default). A Prometheus stale marker as that
//!   latest sample means "no value". Labels, `__name__` included, are kept.
//! - **Range functions** look at the samples in the closed window `[t − window, t]`
//!   (Prometheus 2.x; 3.x made it left-open) and drop `__name__`, except
//!   `last_over_time`, which keeps it:
//!   - `rate`, `increase`, `delta`: need two samples; counter resets (a drop) add the value
//!     before the drop (`rate`, `increase` only); the result is extrapolated towards the
//!     window edges when the first/last sample is within 1.1 average intervals of the edge,
//!     else by half an interval, and a counter is never extrapolated below zero;
//!     `rate` divides by the window in seconds.
//!   - `irate`: the last two samples; a drop means a reset (the last value is the
//!     increase); per second.
//!   - `avg_`, `min_`, `max_`, `sum_`, `count_`, `last_`, `stddev_` (population),
//!     `quantile_over_time(q)` (linear interpolation between closest ranks; q < 0 → −Inf,
//!     q > 1 → +Inf). `min`/`max` ignore NaN unless every value is NaN.
//! - **Aggregations** across series at each step, grouped `by` (keep only those labels)
//!   or `without` (drop those and `__name__`): `sum`, `avg`, `min`, `max`, `count`,
//!   `stddev` (population), `quantile(q)`, `topk(k)`, `bottomk(k)`. `topk`/`bottomk` keep
//!   the input series' labels and rank NaN last; ties go to the smaller label set.
//!   NaN propagates through `sum`, `avg` and `stddev`, as in Prometheus.
//! - A result series with no point in range is left out; results are sorted by labels.
//!
//! Execution goes through the engine's read view only ([`crate::engine::read::Querier`]):
//! select series by matchers, take a snapshot of them over `[start − window, end]`, and
//! evaluate each series as the snapshot reads it (on the engine's shared query pool),
//! charging this module's [`Budget`] of series, samples and time.
//!
//! May use: the read view (`engine::read`), `model`, `index::Matcher`, `options`, errors —
//! nothing else of the engine (checked by `engine/tests/it/rooms.rs`).

pub mod aggregate;
mod budget;
mod eval;
pub mod functions;
mod latest;
mod meta;

use std::time::Instant;

pub use aggregate::{AggregateOp, Aggregation, Grouping};
pub use budget::Budget;
pub use eval::range;
pub use functions::{FunctionKind, RangeFunction};
pub use latest::{LatestSample, StaleSeries, latest, stale_series};
pub use meta::{SeriesFilter, label_names, label_values, series};

use crate::index::Matcher;
use crate::model::{Labels, Sample};

/// The Prometheus 2.x default lookback for instant selection, ms.
pub const DEFAULT_LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// The bit pattern Prometheus writes as a staleness marker.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether a value is a Prometheus staleness marker.
pub fn is_stale_marker(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// A range query.
#[derive(Debug, Clone)]
pub struct RangeQuery {
    /// Namespace.
    pub namespace: String,
    /// Series selection.
    pub matchers: Vec<Matcher>,
    /// First step, ms.
    pub start: i64,
    /// Last step (inclusive, if on the grid), ms.
    pub end: i64,
    /// Step, ms (> 0).
    pub step: i64,
    /// Per-series range function, if any.
    pub function: Option<RangeFunction>,
    /// Aggregation across series, if any.
    pub aggregation: Option<Aggregation>,
    /// Lookback for instant selection, ms; `None`: [`DEFAULT_LOOKBACK_MS`].
    pub lookback_ms: Option<i64>,
    /// The caller's deadline, if tighter than the configured timeout.
    pub deadline: Option<Instant>,
}

impl RangeQuery {
    /// A plain selection query (no function, no aggregation).
    pub fn new(
        namespace: impl Into<String>,
        matchers: Vec<Matcher>,
        start: i64,
        end: i64,
        step: i64,
    ) -> Self {
        RangeQuery {
            namespace: namespace.into(),
            matchers,
            start,
            end,
            step,
            function: None,
            aggregation: None,
            lookback_ms: None,
            deadline: None,
        }
    }
}

/// One result series.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultSeries {
    /// Its labels.
    pub labels: Labels,
    /// Its points, one per step where it has a value.
    pub points: Vec<Sample>,
}

/// A query's answer and what it cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryResult {
    /// Result series, sorted by labels.
    pub series: Vec<ResultSeries>,
    /// Series read.
    pub series_read: u64,
    /// Samples read.
    pub samples_read: u64,
}

#[cfg(test)]
mod tests;
