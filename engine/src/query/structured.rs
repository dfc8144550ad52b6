//! The structured range query of the gRPC API (a selector, at most one range function, at
//! most one aggregation): lowered to the same [`Plan`] as PromQL and run by the same
//! evaluator, so both front doors give the same answer to the same question.

use std::time::Instant;

use super::plan::{self, Aggregate, Call, Function, Grouping, Plan, RangeSelector, Selector};
use super::window::WindowFunction;
use super::{PromqlQuery, QueryResult, QueryValue};
use crate::engine::read::Querier;
use crate::index::Matcher;
use crate::model::Sample;
use crate::{Error, Result};

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
    /// Lookback for instant selection, ms; `None`: [`super::DEFAULT_LOOKBACK_MS`].
    pub lookback_ms: Option<i64>,
    /// The caller's deadline, if tighter than the configured timeout.
    pub deadline: Option<Instant>,
    /// A sample budget tighter than the configured `max_samples` (a namespace's share).
    pub max_samples: Option<u64>,
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
            max_samples: None,
        }
    }

    /// The plan this query stands for.
    pub fn plan(&self) -> Result<Plan> {
        let selector = Selector {
            matchers: self.matchers.clone(),
            offset_ms: 0,
            at: None,
        };
        let inner = match self.function {
            None => Plan::Selector(selector),
            Some(f) => {
                if f.window_ms <= 0 {
                    return Err(Error::InvalidArgument(format!(
                        "the window of {} must be positive",
                        f.kind.name()
                    )));
                }
                let (window, param) = f.kind.window_function();
                let range = Plan::Range(RangeSelector {
                    selector,
                    range_ms: f.window_ms,
                });
                let args = match param {
                    Some(q) => vec![Plan::Number(q), range],
                    None => vec![range],
                };
                Plan::Call(Call {
                    func: Function::Window(window),
                    args,
                })
            }
        };
        Ok(match &self.aggregation {
            None => inner,
            Some(agg) => {
                let (op, param) = agg.op.plan_op();
                Plan::Aggregate(Aggregate {
                    op,
                    param: param.map(|p| Box::new(Plan::Number(p))),
                    grouping: agg.grouping.clone(),
                    expr: Box::new(inner),
                })
            }
        })
    }
}

/// Runs a structured range query: the results sorted by labels.
pub fn range(querier: &Querier<'_>, q: &RangeQuery) -> Result<QueryResult> {
    if q.step <= 0 {
        return Err(Error::InvalidArgument(format!(
            "step must be positive, got {} ms",
            q.step
        )));
    }
    if let Some(l) = q.lookback_ms.filter(|l| *l < 0) {
        return Err(Error::InvalidArgument(format!(
            "the lookback must not be negative, got {l} ms"
        )));
    }
    let run = PromqlQuery {
        namespace: q.namespace.clone(),
        expr: String::new(),
        start: q.start,
        end: q.end,
        step: q.step,
        lookback_ms: q.lookback_ms.map(|l| l.max(1)),
        deadline: q.deadline,
        max_samples: q.max_samples,
        use_rollups: true,
    };
    let answer = super::run_plan(querier, &run, &q.plan()?)?;
    let series = match answer.value {
        QueryValue::Matrix(series) => series,
        _ => Vec::new(),
    };
    Ok(QueryResult {
        series,
        series_read: answer.series_read,
        samples_read: answer.samples_read,
    })
}

/// The range functions of the structured API.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FunctionKind {
    /// Per-second increase of a counter, extrapolated.
    Rate,
    /// Increase of a counter, extrapolated.
    Increase,
    /// Difference of a gauge, extrapolated.
    Delta,
    /// Per-second increase from the last two samples.
    Irate,
    /// Mean.
    AvgOverTime,
    /// Minimum.
    MinOverTime,
    /// Maximum.
    MaxOverTime,
    /// Sum.
    SumOverTime,
    /// Count.
    CountOverTime,
    /// Last value.
    LastOverTime,
    /// φ-quantile, 0 ≤ φ ≤ 1.
    QuantileOverTime(f64),
    /// Population standard deviation.
    StddevOverTime,
}

impl FunctionKind {
    /// The PromQL function and its scalar parameter.
    pub fn window_function(self) -> (WindowFunction, Option<f64>) {
        match self {
            FunctionKind::Rate => (WindowFunction::Rate, None),
            FunctionKind::Increase => (WindowFunction::Increase, None),
            FunctionKind::Delta => (WindowFunction::Delta, None),
            FunctionKind::Irate => (WindowFunction::Irate, None),
            FunctionKind::AvgOverTime => (WindowFunction::AvgOverTime, None),
            FunctionKind::MinOverTime => (WindowFunction::MinOverTime, None),
            FunctionKind::MaxOverTime => (WindowFunction::MaxOverTime, None),
            FunctionKind::SumOverTime => (WindowFunction::SumOverTime, None),
            FunctionKind::CountOverTime => (WindowFunction::CountOverTime, None),
            FunctionKind::LastOverTime => (WindowFunction::LastOverTime, None),
            FunctionKind::QuantileOverTime(q) => (WindowFunction::QuantileOverTime, Some(q)),
            FunctionKind::StddevOverTime => (WindowFunction::StddevOverTime, None),
        }
    }

    /// The PromQL name.
    pub fn name(self) -> &'static str {
        self.window_function().0.name()
    }

    /// Whether the result keeps `__name__` (only `last_over_time` does).
    pub fn keeps_metric_name(self) -> bool {
        self.window_function().0.keeps_metric_name()
    }
}

/// A function and its window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RangeFunction {
    /// Which function.
    pub kind: FunctionKind,
    /// Window length, ms (> 0).
    pub window_ms: i64,
}

impl RangeFunction {
    /// Evaluates over `samples` (sorted, stale markers removed), all within
    /// `[t − window, t]`; `None` when the function has no value there.
    pub fn eval(&self, samples: &[Sample], t: i64) -> Option<f64> {
        let (f, param) = self.kind.window_function();
        let params: Vec<f64> = param.into_iter().collect();
        f.eval(samples, t.saturating_sub(self.window_ms), t, &params, t)
            .ok()
            .flatten()
    }
}

/// The aggregation operators of the structured API, with their parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AggregateOp {
    /// Sum.
    Sum,
    /// Mean.
    Avg,
    /// Minimum (NaN only if all are NaN).
    Min,
    /// Maximum (NaN only if all are NaN).
    Max,
    /// Number of series with a value.
    Count,
    /// φ-quantile across series.
    Quantile(f64),
    /// Population standard deviation.
    Stddev,
    /// The k largest, keeping their labels.
    Topk(usize),
    /// The k smallest, keeping their labels.
    Bottomk(usize),
}

impl AggregateOp {
    /// Whether the result keeps each input series (topk, bottomk) rather than one per group.
    pub fn selects_series(&self) -> bool {
        matches!(self, AggregateOp::Topk(_) | AggregateOp::Bottomk(_))
    }

    /// The PromQL operator and its parameter.
    pub fn plan_op(self) -> (plan::AggregateOp, Option<f64>) {
        match self {
            AggregateOp::Sum => (plan::AggregateOp::Sum, None),
            AggregateOp::Avg => (plan::AggregateOp::Avg, None),
            AggregateOp::Min => (plan::AggregateOp::Min, None),
            AggregateOp::Max => (plan::AggregateOp::Max, None),
            AggregateOp::Count => (plan::AggregateOp::Count, None),
            AggregateOp::Quantile(q) => (plan::AggregateOp::Quantile, Some(q)),
            AggregateOp::Stddev => (plan::AggregateOp::Stddev, None),
            AggregateOp::Topk(k) => (plan::AggregateOp::Topk, Some(k as f64)),
            AggregateOp::Bottomk(k) => (plan::AggregateOp::Bottomk, Some(k as f64)),
        }
    }
}

/// An aggregation and its grouping.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregation {
    /// Operator.
    pub op: AggregateOp,
    /// Grouping.
    pub grouping: Grouping,
}

/// One group's value at one step for the operators that make one value (not `topk` or
/// `bottomk`); `None` for an empty group. The reference the property tests compare with.
pub fn aggregate_values(op: AggregateOp, values: &[f64]) -> Option<f64> {
    if values.is_empty() || op.selects_series() {
        return None;
    }
    let (op, param) = op.plan_op();
    Some(super::aggregate::one_value(
        op,
        values,
        param.unwrap_or(f64::NAN),
    ))
}
