//! Aggregation across series at one step.

use std::cmp::Ordering;

use super::functions::{mean, quantile, stddev};
use crate::model::{Label, Labels, METRIC_NAME};

/// The aggregation operators.
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
}

/// How series are grouped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouping {
    /// Keep only these labels.
    By(Vec<String>),
    /// Drop these labels and `__name__`.
    Without(Vec<String>),
}

/// An aggregation and its grouping.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregation {
    /// Operator.
    pub op: AggregateOp,
    /// Grouping.
    pub grouping: Grouping,
}

impl Grouping {
    /// The group a series with `labels` falls in.
    pub fn group_of(&self, labels: &Labels) -> Labels {
        let kept: Vec<Label> = match self {
            Grouping::By(names) => labels
                .iter()
                .filter(|l| names.contains(&l.name))
                .cloned()
                .collect(),
            Grouping::Without(names) => labels
                .iter()
                .filter(|l| l.name != METRIC_NAME && !names.contains(&l.name))
                .cloned()
                .collect(),
        };
        Labels::from_trusted(kept)
    }
}

/// Aggregates one group's values at one step (for the operators that make one value).
pub fn aggregate(op: AggregateOp, values: &[f64]) -> Option<f64> {
    let first = *values.first()?;
    let it = || values.iter().copied();
    Some(match op {
        AggregateOp::Sum => it().sum(),
        AggregateOp::Avg => mean(it()),
        AggregateOp::Min => it().fold(first, |m, v| if v < m || m.is_nan() { v } else { m }),
        AggregateOp::Max => it().fold(first, |m, v| if v > m || m.is_nan() { v } else { m }),
        AggregateOp::Count => values.len() as f64,
        AggregateOp::Quantile(q) => quantile(q, values.to_vec()),
        AggregateOp::Stddev => stddev(it()),
        AggregateOp::Topk(_) | AggregateOp::Bottomk(_) => return None,
    })
}

/// Indices of the series `topk`/`bottomk` keeps among `(index, value, labels)` candidates.
pub fn select_k(op: AggregateOp, mut candidates: Vec<(usize, f64, &Labels)>) -> Vec<usize> {
    let (k, largest) = match op {
        AggregateOp::Topk(k) => (k, true),
        AggregateOp::Bottomk(k) => (k, false),
        _ => return Vec::new(),
    };
    candidates.sort_by(|a, b| {
        let by_value = match (a.1.is_nan(), b.1.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ if largest => b.1.total_cmp(&a.1),
            _ => a.1.total_cmp(&b.1),
        };
        by_value.then_with(|| a.2.cmp(b.2))
    });
    candidates.into_iter().take(k).map(|(i, _, _)| i).collect()
}
