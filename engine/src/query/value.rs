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
    pub values: Points,
}

impl Row {
    /// Whether the series has a value at any step.
    pub fn is_empty(&self) -> bool {
        !self.values.any()
    }
}

/// A value or nothing at each step, in half the memory of `Vec<Option<f64>>` (whose
/// `None` takes 16 bytes like a value): the values, and a bit per step saying which are
/// there — the first 64 bits inline, so that a series of a few steps (an instant query, a
/// map tile) costs one allocation, as before. A query over thousands of series holds one
/// per series, so this is most of its memory.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Points {
    /// One per step; 0.0 where there is none, so that equal points compare equal.
    values: Vec<f64>,
    /// Bit `i` for steps `i` < 64: whether it has a value.
    low: u64,
    /// Bit `i % 64` of word `i / 64 - 1` for the steps after.
    high: Vec<u64>,
}

impl Points {
    /// Room for `steps` steps.
    pub fn with_capacity(steps: usize) -> Self {
        Points {
            values: Vec::with_capacity(steps),
            low: 0,
            high: Vec::with_capacity(steps.div_ceil(64).saturating_sub(1)),
        }
    }

    /// `steps` steps with nothing at any.
    pub fn none(steps: usize) -> Self {
        Points {
            values: vec![0.0; steps],
            low: 0,
            high: vec![0; steps.div_ceil(64).saturating_sub(1)],
        }
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no steps.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Whether any step has a value.
    pub fn any(&self) -> bool {
        self.low != 0 || self.high.iter().any(|&w| w != 0)
    }

    /// The presence word of steps `64 k ..`.
    #[inline]
    fn word(&self, k: usize) -> u64 {
        match k.checked_sub(1) {
            None => self.low,
            Some(k) => self.high.get(k).copied().unwrap_or(0),
        }
    }

    /// The presence word of steps `64 k ..`, to change.
    #[inline]
    fn word_mut(&mut self, k: usize) -> Option<&mut u64> {
        match k.checked_sub(1) {
            None => Some(&mut self.low),
            Some(k) => self.high.get_mut(k),
        }
    }

    /// Appends a step.
    #[inline]
    pub fn push(&mut self, v: Option<f64>) {
        let i = self.values.len();
        if i >= 64 && i.is_multiple_of(64) {
            self.high.push(0);
        }
        self.values.push(v.unwrap_or(0.0));
        if v.is_some()
            && let Some(word) = self.word_mut(i / 64)
        {
            *word |= 1 << (i % 64);
        }
    }

    /// The value at step `i`, if any.
    #[inline]
    pub fn get(&self, i: usize) -> Option<f64> {
        if self.word(i / 64) >> (i % 64) & 1 == 0 {
            return None;
        }
        self.values.get(i).copied()
    }

    /// Sets step `i` (nothing when `i` is past the end).
    pub fn set(&mut self, i: usize, v: Option<f64>) {
        let Some(slot) = self.values.get_mut(i) else {
            return;
        };
        *slot = v.unwrap_or(0.0);
        let bit = 1 << (i % 64);
        if let Some(word) = self.word_mut(i / 64) {
            if v.is_some() {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
    }

    /// The steps in order.
    pub fn iter(&self) -> impl Iterator<Item = Option<f64>> + '_ {
        self.values
            .chunks(64)
            .enumerate()
            .flat_map(move |(k, chunk)| {
                let word = self.word(k);
                chunk
                    .iter()
                    .enumerate()
                    .map(move |(j, &v)| (word >> j & 1 != 0).then_some(v))
            })
    }
}

impl FromIterator<Option<f64>> for Points {
    fn from_iter<I: IntoIterator<Item = Option<f64>>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut points = Points::with_capacity(iter.size_hint().0);
        for v in iter {
            points.push(v);
        }
        points
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
                for (i, v) in row.values.iter().enumerate() {
                    match (kept.values.get(i).is_some(), v) {
                        (true, Some(_)) => {
                            return Err(Error::Execution(format!(
                                "{DUPLICATE_LABELSET}: {}",
                                kept.labels
                            )));
                        }
                        (false, Some(v)) => kept.values.set(i, Some(v)),
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

#[cfg(test)]
mod tests {
    use super::Points;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn points_hold_what_a_vec_of_options_holds(steps in prop::collection::vec(prop::option::of(any::<f64>()), 0..200), sets in prop::collection::vec((0usize..220, prop::option::of(any::<f64>())), 0..20)) {
            let mut want = steps.clone();
            let mut points: Points = steps.iter().copied().collect();
            for (i, v) in sets {
                if let Some(slot) = want.get_mut(i) {
                    *slot = v;
                }
                points.set(i, v);
            }
            let bits = |v: Option<f64>| v.map(f64::to_bits);
            prop_assert_eq!(points.len(), want.len());
            prop_assert_eq!(points.iter().map(bits).collect::<Vec<_>>(), want.iter().map(|&v| bits(v)).collect::<Vec<_>>());
            for i in 0..want.len() + 70 {
                prop_assert_eq!(bits(points.get(i)), want.get(i).copied().flatten().map(f64::to_bits));
            }
            let none = Points::none(want.len());
            prop_assert!(none.iter().all(|v| v.is_none()) && none.len() == want.len());
        }
    }
}
