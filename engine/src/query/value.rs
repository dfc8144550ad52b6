//! What the evaluator passes between plan nodes: values for every step of the evaluation at
//! once, so that each series is read and evaluated once for the whole range.

use std::collections::HashMap;

use crate::model::{Labels, Sample};
use crate::{Error, Result};

/// One series of an instant vector over the steps: a value or nothing at each step.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Its labels.
    pub labels: Labels,
    /// One entry per step.
    pub values: Vec<Option<f64>>,
}

impl Row {
    /// Whether the series has a value at any step.
    pub fn is_empty(&self) -> bool {
        self.values.iter().all(Option::is_none)
    }
}

/// One series of a range vector: its samples (an instant query's matrix result).
#[derive(Debug, Clone, PartialEq)]
pub struct RangeRow {
    /// Its labels.
    pub labels: Labels,
    /// Its samples, in time order.
    pub samples: Vec<Sample>,
}

/// The value of a plan node over all steps.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// One number per step.
    Scalar(Vec<f64>),
    /// A string.
    String(String),
    /// Series with a value or nothing per step. The order is the one Prometheus gives an
    /// instant query (it matters for `sort`, `topk` …).
    Vector(Vec<Row>),
    /// Series with their samples (only at the top of an instant query).
    Matrix(Vec<RangeRow>),
}

/// The message Prometheus gives when a result would hold one label set twice.
pub const DUPLICATE_LABELSET: &str = "vector cannot contain metrics with the same labelset";

/// Merges rows with the same labels, as Prometheus joins one label set's points across
/// steps; fails when two of them have a value at the same step. Keeps first-seen order.
pub fn merge_same_labels(rows: Vec<Row>) -> Result<Vec<Row>> {
    let mut out: Vec<Row> = Vec::with_capacity(rows.len());
    let mut index: HashMap<Labels, usize> = HashMap::with_capacity(rows.len());
    for row in rows {
        if row.is_empty() {
            continue;
        }
        match index.get(&row.labels) {
            None => {
                index.insert(row.labels.clone(), out.len());
                out.push(row);
            }
            Some(&i) => {
                let Some(kept) = out.get_mut(i) else {
                    continue;
                };
                for (slot, v) in kept.values.iter_mut().zip(row.values) {
                    match (slot.is_some(), v) {
                        (true, Some(_)) => {
                            return Err(Error::Execution(format!(
                                "{DUPLICATE_LABELSET}: {}",
                                kept.labels
                            )));
                        }
                        (false, Some(v)) => *slot = Some(v),
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Fails when two non-empty rows have the same labels at all (Prometheus' check on the
/// result of a range-vector function, whatever the steps).
pub fn check_unique_labels(rows: &[Row]) -> Result<()> {
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    for row in rows.iter().filter(|r| !r.is_empty()) {
        if !seen.insert(&row.labels) {
            return Err(Error::Execution(format!(
                "{DUPLICATE_LABELSET}: {}",
                row.labels
            )));
        }
    }
    Ok(())
}
