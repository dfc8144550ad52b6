//! Evaluating a range query: read, per-series step evaluation on all cores, aggregation.

use std::collections::BTreeMap;

use super::aggregate::{aggregate, select_k};
use super::{Budget, DEFAULT_LOOKBACK_MS, QueryResult, RangeQuery, ResultSeries, is_stale_marker};
use crate::engine::read::{Querier, SeriesHandle};
use crate::model::{Labels, METRIC_NAME, Sample};
use crate::{Error, Limit, Result};

/// Per series: its output labels and a value (or none) per step.
type Evaluated = (Labels, Vec<Option<f64>>);

/// Runs a range query over the read view (see the module doc of [`crate::query`] for the
/// semantics).
pub fn range(querier: &Querier<'_>, q: &RangeQuery) -> Result<QueryResult> {
    let limits = querier.limits();
    if q.step <= 0 {
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
    if points > limits.max_points_per_series as i128 {
        return Err(Error::ResourceExhausted {
            limit: Limit::QueryMaxPointsPerSeries,
            detail: format!(
                "{points} steps from start to end, the limit is {}; use a larger step",
                limits.max_points_per_series
            ),
        });
    }
    let window = match q.function {
        Some(f) if f.window_ms <= 0 => {
            return Err(Error::InvalidArgument(format!(
                "the window of {} must be positive",
                f.kind.name()
            )));
        }
        Some(f) => f.window_ms,
        None => match q.lookback_ms {
            Some(l) if l < 0 => {
                return Err(Error::InvalidArgument(format!(
                    "the lookback must not be negative, got {l} ms"
                )));
            }
            l => l.unwrap_or(DEFAULT_LOOKBACK_MS).max(1),
        },
    };
    let budget = Budget::new(limits, q.deadline);
    budget.check_time()?;
    let series = querier.select(&q.namespace, &q.matchers)?;
    budget.check_series(series.len())?;
    let series_read = series.len() as u64;
    // start + i × step ≤ end for every step, so the i128 result fits an i64.
    let steps: Vec<i64> = (0..points)
        .map(|i| (i128::from(q.start) + i * i128::from(q.step)) as i64)
        .collect();
    let evaluated = querier
        .snapshot(series, q.start.saturating_sub(window), q.end)
        .for_each(&|s, samples| {
            budget.spend(samples.len())?;
            Ok(evaluate_one(q, s, samples, &steps, window))
        })?;
    let series: Vec<ResultSeries> = match &q.aggregation {
        None => unique(evaluated)?
            .into_iter()
            .map(|(l, v)| to_series(l, v, &steps))
            .collect(),
        Some(agg) if agg.op.selects_series() => {
            let groups = groups(&evaluated, &agg.grouping);
            let mut kept: Vec<Vec<Option<f64>>> = vec![vec![None; steps.len()]; evaluated.len()];
            for members in groups.values() {
                for step in 0..steps.len() {
                    let candidates = members
                        .iter()
                        .filter_map(|&i| {
                            evaluated.get(i).and_then(|(l, v)| {
                                v.get(step).copied().flatten().map(|x| (i, x, l))
                            })
                        })
                        .collect();
                    for i in select_k(agg.op, candidates) {
                        let value = evaluated
                            .get(i)
                            .and_then(|(_, v)| v.get(step).copied().flatten());
                        if let Some(slot) = kept.get_mut(i).and_then(|k| k.get_mut(step)) {
                            *slot = value;
                        }
                    }
                }
            }
            evaluated
                .into_iter()
                .zip(kept)
                .map(|((l, _), v)| to_series(l, v, &steps))
                .collect()
        }
        Some(agg) => {
            let groups = groups(&evaluated, &agg.grouping);
            let mut values = Vec::new();
            groups
                .into_iter()
                .map(|(group, members)| {
                    let per_step = (0..steps.len())
                        .map(|step| {
                            values.clear();
                            values.extend(members.iter().filter_map(|&i| {
                                evaluated
                                    .get(i)
                                    .and_then(|(_, v)| v.get(step).copied().flatten())
                            }));
                            aggregate(agg.op, &values)
                        })
                        .collect();
                    to_series(group, per_step, &steps)
                })
                .collect()
        }
    };
    let mut series: Vec<ResultSeries> = series
        .into_iter()
        .filter(|s: &ResultSeries| !s.points.is_empty())
        .collect();
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(QueryResult {
        series,
        series_read,
        samples_read: budget.samples_read(),
    })
}

/// Series positions by group.
fn groups(evaluated: &[Evaluated], grouping: &super::Grouping) -> BTreeMap<Labels, Vec<usize>> {
    let mut groups: BTreeMap<Labels, Vec<usize>> = BTreeMap::new();
    for (i, (labels, _)) in evaluated.iter().enumerate() {
        groups.entry(grouping.group_of(labels)).or_default().push(i);
    }
    groups
}

fn to_series(labels: Labels, values: Vec<Option<f64>>, steps: &[i64]) -> ResultSeries {
    let points = steps
        .iter()
        .zip(values)
        .filter_map(|(&t, v)| v.map(|v| Sample { t, v }))
        .collect();
    ResultSeries { labels, points }
}

/// After a function drops `__name__`, two series may have the same labels: PromQL refuses
/// such a result, and so do we.
fn unique(evaluated: Vec<Evaluated>) -> Result<Vec<Evaluated>> {
    let mut seen = std::collections::HashSet::new();
    for (labels, values) in &evaluated {
        if values.iter().any(Option::is_some) && !seen.insert(labels) {
            return Err(Error::InvalidArgument(format!(
                "the result would hold two series with labels {labels} (the function dropped the metric name); add a matcher on __name__"
            )));
        }
    }
    Ok(evaluated)
}

fn evaluate_one(
    q: &RangeQuery,
    series: &SeriesHandle,
    samples: &[Sample],
    steps: &[i64],
    window: i64,
) -> Evaluated {
    let mut values = Vec::with_capacity(steps.len());
    let (mut lo, mut hi) = (0usize, 0usize);
    match q.function {
        None => {
            // Latest sample in [t - lookback, t].
            for &t in steps {
                while samples.get(hi).is_some_and(|s| s.t <= t) {
                    hi += 1;
                }
                let latest = hi.checked_sub(1).and_then(|i| samples.get(i));
                values.push(
                    latest
                        .filter(|s| s.t >= t.saturating_sub(window) && !is_stale_marker(s.v))
                        .map(|s| s.v),
                );
            }
        }
        Some(f) => {
            let live: Vec<Sample> = samples
                .iter()
                .filter(|s| !is_stale_marker(s.v))
                .copied()
                .collect();
            for &t in steps {
                while live.get(hi).is_some_and(|s| s.t <= t) {
                    hi += 1;
                }
                while live.get(lo).is_some_and(|s| s.t < t.saturating_sub(window)) {
                    lo += 1;
                }
                let in_window = live.get(lo..hi.max(lo)).unwrap_or(&[]);
                values.push(f.eval(in_window, t));
            }
        }
    }
    let labels = match q.function {
        Some(f) if !f.kind.keeps_metric_name() => series.labels().without(METRIC_NAME),
        _ => series.labels().clone(),
    };
    (labels, values)
}
