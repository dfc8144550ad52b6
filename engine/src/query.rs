//! The query engine: one PromQL evaluator behind every front door.
//!
//! A question arrives as PromQL text ([`parse`]) or as the gRPC API's structured range
//! query ([`RangeQuery`]); both become a [`plan::Plan`], and one evaluator ([`eval`]) runs it
//! over the grid of steps. The language is Prometheus 2.42's (native histograms excluded):
//! selectors with `offset` and `@`, subqueries, every operator with vector matching, every
//! aggregation and every function; `tests/promql/` runs Prometheus' own test files.
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
//!     q > 1 → +Inf). `min`/`max` ignore NaN unless every value is NaN. Also `changes`,
//!     `resets`, `deriv`, `predict_linear`, `holt_winters`, `idelta`, `stdvar_`,
//!     `present_` and `absent_over_time`; sums are compensated (Kahan) where Prometheus'
//!     are.
//! - **Aggregations** across series at each step, grouped `by` (keep only those labels)
//!   or `without` (drop those and `__name__`), computed as Prometheus accumulates them, in
//!   input order (series sorted by labels): `sum`, `avg` (incremental mean), `min`/`max`
//!   (NaN only if every value is NaN), `count`, `group`, `stddev`/`stdvar` (population),
//!   `quantile(φ)`, `count_values("label")`, `topk(k)`/`bottomk(k)` (they keep the input
//!   series' labels and choose among ties and NaN exactly as Prometheus' heap does).
//! - **Operators**: arithmetic and comparisons between scalars and vectors (comparisons
//!   filter, or answer 0/1 with `bool`), `and`/`or`/`unless`; vectors match on all labels
//!   but `__name__`, or `on(…)`/`ignoring(…)`, one-to-one unless `group_left`/`group_right`
//!   says which side has many; an ambiguous match is an error, as in Prometheus. Arithmetic
//!   drops `__name__` (not `atan2`, not a comparison without `bool`).
//! - **`offset` and `@`** move the time a selector or subquery reads at; `@ start()` and
//!   `@ end()` are the query's. A **subquery** `expr[range:step]` evaluates `expr` at the
//!   multiples of its step (1 min by default) inside each window.
//! - A result holding one label set twice at a step ("vector cannot contain metrics with the
//!   same labelset"), or a malformed regex in `label_replace`, is an execution error; bad
//!   syntax is a bad argument naming line and column.
//! - A result series with no point in range is left out; a range query's results are
//!   sorted by labels, an instant query's vector keeps PromQL's order (`sort`, `topk`).
//!
//! # Rollups
//! Segments summarise each series per interval of each configured tier (an hour and a day
//! by default; `codec/rollup.rs` says what a bucket holds). The evaluator reads a tier instead
//! of raw samples only where the answer is the same bit for bit, and reads raw samples
//! everywhere else:
//! - a range function among `max_`, `min_`, `sum_`, `count_`, `last_`, `present_over_time`,
//!   `rate`, `increase` and `delta`, whose window is a whole number of the tier's intervals
//!   and whose every evaluation time (after `offset` and `@`) lies on the tier's boundaries
//!   — the coarsest such tier that is kept as far back as the query reads (else the one
//!   kept longest); a window's value is composed from the whole buckets inside it
//!   plus the sample at its closing instant (Prometheus 2.x windows are closed at both ends);
//! - instant selection (a bare selector, `timestamp(…)`) at times on a tier's boundaries:
//!   the sample at the boundary, else the last of the bucket before it, within the lookback,
//!   and no value where a stale marker is the latest sample;
//! - per series: a sum whose values are not all integers (floating-point addition depends
//!   on the order), or a counter reset among non-integers, reads that series raw;
//! - per bucket: a bucket comes from a segment only where that segment alone holds the
//!   series' data of that interval, no deletion reaches it and the interval lies whole in
//!   the range read; late writes, corrections, backfill and the live head therefore read
//!   raw until compaction folds them into one segment, so a rollup is never older than the
//!   data it summarises;
//! - per step, for `max(max_over_time(m[r]))` and `min(min_over_time(m[r]))` of a metric
//!   named alone: from segments' metric rollups (the metric's series folded per bucket)
//!   where one segment alone holds the metric over the window, no deletion reaches it and
//!   the extreme is neither NaN nor zero; other steps as above, series by series (the
//!   buckets counted in `rollup_buckets` are then the metric's, a few per step).
//!
//! `avg_over_time`, quantiles, `stddev`/`stdvar`, `changes`, `resets`, `irate`, `deriv`,
//! subqueries and unaligned windows read raw samples. `PromqlResult::rollup_buckets` and
//! `rollup_tier_ms` say what a query read from which tier. Where a tier is kept longer than
//! the samples (`Options::rollup_retention`), what it answers reaches back that far; what
//! needs raw samples sees none before their retention, as with data that is missing.
//!
//! Execution goes through the engine's read view only ([`crate::engine::read::Querier`]):
//! select series by matchers, take a snapshot of them over `[start − window, end]`, and
//! evaluate each series as the snapshot reads it (on the engine's shared query pool),
//! charging this module's [`Budget`] of series, samples and time.
//!
//! May use: the read view (`engine::read`), `model`, `index::Matcher`, `options`, errors —
//! nothing else of the engine (checked by `engine/tests/it/rooms.rs`).

mod aggregate;
mod binary;
mod budget;
pub mod cache;
mod calendar;
mod completeness;
pub mod eval;
mod functions;
mod histogram;
mod latest;
mod meta;
pub mod parse;
pub mod plan;
mod structured;
pub mod value;
pub mod window;

use std::time::Instant;

pub use aggregate::format_value;
pub use budget::Budget;
pub use completeness::{
    CompletenessFigures, CompletenessGroup, CompletenessQuery, Gap, MAX_LISTED_GAPS,
    MAX_LISTED_SILENT, Silent, completeness, silent,
};
pub use latest::{LatestSample, StaleSeries, latest, stale_series, stale_series_each};
pub use meta::{SeriesFilter, label_names, label_values, series};
pub use parse::parse;
pub use plan::Grouping;
pub use structured::{
    AggregateOp, Aggregation, FunctionKind, RangeFunction, RangeQuery, aggregate_values, range,
};

use crate::engine::read::Querier;
use crate::model::{Labels, Sample};
use crate::{Error, Limit, Result};
use eval::Evaluator;
use plan::{Plan, ValueType};
use value::Value;

/// The Prometheus 2.x default lookback for instant selection, ms.
pub const DEFAULT_LOOKBACK_MS: i64 = 5 * 60 * 1000;

pub use crate::model::{STALE_NAN_BITS, is_stale_marker};

/// A PromQL query: instant (`step` 0, `start` = `end`) or over a range of steps.
#[derive(Debug, Clone)]
pub struct PromqlQuery {
    /// Namespace.
    pub namespace: String,
    /// The PromQL expression.
    pub expr: String,
    /// First step (the evaluation time of an instant query), ms.
    pub start: i64,
    /// Last step (inclusive, if on the grid), ms.
    pub end: i64,
    /// Step, ms; 0 for an instant query.
    pub step: i64,
    /// Lookback for instant selection, ms; `None`: [`DEFAULT_LOOKBACK_MS`].
    pub lookback_ms: Option<i64>,
    /// The caller's deadline, if tighter than the configured timeout.
    pub deadline: Option<Instant>,
    /// A sample budget tighter than the configured `max_samples` (a namespace's share).
    pub max_samples: Option<u64>,
    /// Whether rollup tiers may answer windows they answer exactly (on by default; off
    /// reads every raw sample, for comparison).
    pub use_rollups: bool,
}

impl PromqlQuery {
    /// An instant query at `time` (ms).
    pub fn instant(namespace: impl Into<String>, expr: impl Into<String>, time: i64) -> Self {
        PromqlQuery {
            namespace: namespace.into(),
            expr: expr.into(),
            start: time,
            end: time,
            step: 0,
            lookback_ms: None,
            deadline: None,
            max_samples: None,
            use_rollups: true,
        }
    }

    /// A range query from `start` to `end` every `step` (ms).
    pub fn range(
        namespace: impl Into<String>,
        expr: impl Into<String>,
        start: i64,
        end: i64,
        step: i64,
    ) -> Self {
        PromqlQuery {
            step,
            end,
            ..PromqlQuery::instant(namespace, expr, start)
        }
    }

    /// Whether this is an instant query.
    pub fn is_instant(&self) -> bool {
        self.step == 0
    }
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorSample {
    /// Its labels.
    pub labels: Labels,
    /// Its value at the evaluation time.
    pub sample: Sample,
}

/// A query's answer, typed as PromQL types it.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    /// A number at the evaluation time.
    Scalar(Sample),
    /// A string at the evaluation time (ms).
    String(i64, String),
    /// An instant vector, in PromQL's order (it matters after `sort` or `topk`).
    Vector(Vec<VectorSample>),
    /// Series of points: a range query's answer (sorted by labels), or a range vector
    /// asked at an instant.
    Matrix(Vec<ResultSeries>),
}

/// A PromQL query's answer and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct PromqlResult {
    /// The value.
    pub value: QueryValue,
    /// Series read.
    pub series_read: u64,
    /// Samples read.
    pub samples_read: u64,
    /// Steps answered from the result cache (the rest were computed).
    pub steps_from_cache: u64,
    /// Buckets read from rollups instead of raw samples (counted in `samples_read` too).
    pub rollup_buckets: u64,
    /// The coarsest rollup tier that answered some window, ms (0: raw samples only).
    pub rollup_tier_ms: i64,
}

/// One result series.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultSeries {
    /// Its labels.
    pub labels: Labels,
    /// Its points, one per step where it has a value.
    pub points: Vec<Sample>,
}

/// A structured range query's answer and what it cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryResult {
    /// Result series, sorted by labels.
    pub series: Vec<ResultSeries>,
    /// Series read.
    pub series_read: u64,
    /// Samples read.
    pub samples_read: u64,
}

/// Parses and runs a PromQL query.
pub fn run(querier: &Querier<'_>, q: &PromqlQuery) -> Result<PromqlResult> {
    let plan = parse(&q.expr)?;
    run_plan(querier, q, &plan)
}

/// Runs a plan as the query `q` describes (its text is not looked at).
pub fn run_plan(querier: &Querier<'_>, q: &PromqlQuery, plan: &Plan) -> Result<PromqlResult> {
    let steps = steps(querier, q)?;
    if !q.is_instant() && matches!(plan.value_type(), ValueType::Matrix | ValueType::String) {
        return Err(Error::InvalidArgument(format!(
            "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
            match plan.value_type() {
                ValueType::Matrix => "range vector",
                _ => "string",
            }
        )));
    }
    let lookback = match q.lookback_ms {
        Some(l) if l < 0 => {
            return Err(Error::InvalidArgument(format!(
                "the lookback must not be negative, got {l} ms"
            )));
        }
        l => l.unwrap_or(DEFAULT_LOOKBACK_MS),
    };
    let mut limits = querier.limits().clone();
    if let Some(cap) = q.max_samples {
        limits.max_samples = limits.max_samples.min(cap);
    }
    let budget = Budget::new(&limits, q.deadline);
    let tiers = if q.use_rollups {
        querier.rollup_tiers()
    } else {
        &[]
    };
    let ev = Evaluator::new(querier, &q.namespace, &budget, (q.start, q.end), lookback)
        .with_rollups(tiers);
    let value = ev.eval(plan, &steps)?;
    let value = if q.is_instant() {
        instant_value(value, q.start)
    } else {
        QueryValue::Matrix(matrix(value, &steps))
    };
    let (rollup_buckets, rollup_tier_ms) = ev.rollups_read();
    Ok(PromqlResult {
        value,
        series_read: ev.series_read(),
        samples_read: budget.samples_read(),
        steps_from_cache: 0,
        rollup_buckets,
        rollup_tier_ms,
    })
}

/// The step times of a query, checked against the limits.
fn steps(querier: &Querier<'_>, q: &PromqlQuery) -> Result<Vec<i64>> {
    if q.is_instant() {
        return Ok(vec![q.start]);
    }
    if q.step < 0 {
        return Err(Error::InvalidArgument(format!(
            "step must be positive, got {} ms",
            q.step
        )));
    }
    if q.end < q.start {
        return Err(Error::InvalidArgument(format!(
            "end {} is before start {}",
            q.end, q.start
        )));
    }
    // i128: start and end come from the network and may be anywhere in i64.
    let points = (i128::from(q.end) - i128::from(q.start)) / i128::from(q.step) + 1;
    let max = querier.limits().max_points_per_series;
    if points > max as i128 {
        return Err(Error::ResourceExhausted {
            limit: Limit::QueryMaxPointsPerSeries,
            detail: format!(
                "{points} steps from start to end, the limit is {max}; use a larger step"
            ),
        });
    }
    // start + i × step ≤ end for every step, so the i128 result fits an i64.
    Ok((0..points)
        .map(|i| (i128::from(q.start) + i * i128::from(q.step)) as i64)
        .collect())
}

fn instant_value(value: Value, t: i64) -> QueryValue {
    match value {
        Value::Scalar(v) => {
            QueryValue::Scalar(Sample::new(t, v.first().copied().unwrap_or(f64::NAN)))
        }
        Value::String(s) => QueryValue::String(t, s),
        Value::Vector(rows) => QueryValue::Vector(
            rows.into_iter()
                .filter_map(|r| {
                    let v = r.values.get(0)?;
                    Some(VectorSample {
                        labels: r.labels,
                        sample: Sample::new(t, v),
                    })
                })
                .collect(),
        ),
        Value::Matrix(rows) => QueryValue::Matrix(
            rows.into_iter()
                .map(|r| ResultSeries {
                    labels: r.labels,
                    points: r.samples,
                })
                .collect(),
        ),
    }
}

fn matrix(value: Value, steps: &[i64]) -> Vec<ResultSeries> {
    let points = |values: &mut dyn Iterator<Item = Option<f64>>| -> Vec<Sample> {
        steps
            .iter()
            .zip(values)
            .filter_map(|(&t, v)| v.map(|v| Sample::new(t, v)))
            .collect()
    };
    let mut series: Vec<ResultSeries> = match value {
        Value::Scalar(v) => vec![ResultSeries {
            labels: Labels::default(),
            points: points(&mut v.into_iter().map(Some)),
        }],
        Value::Vector(rows) => rows
            .into_iter()
            .map(|r| ResultSeries {
                labels: r.labels,
                points: points(&mut r.values.iter()),
            })
            .collect(),
        Value::String(_) | Value::Matrix(_) => Vec::new(),
    };
    series.retain(|s| !s.points.is_empty());
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    series
}

#[cfg(test)]
mod tests;
