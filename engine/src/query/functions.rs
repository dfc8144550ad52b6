//! Range functions over the samples of one series in one window.

use crate::model::Sample;

/// The range functions.
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
    /// The PromQL name.
    pub fn name(&self) -> &'static str {
        match self {
            FunctionKind::Rate => "rate",
            FunctionKind::Increase => "increase",
            FunctionKind::Delta => "delta",
            FunctionKind::Irate => "irate",
            FunctionKind::AvgOverTime => "avg_over_time",
            FunctionKind::MinOverTime => "min_over_time",
            FunctionKind::MaxOverTime => "max_over_time",
            FunctionKind::SumOverTime => "sum_over_time",
            FunctionKind::CountOverTime => "count_over_time",
            FunctionKind::LastOverTime => "last_over_time",
            FunctionKind::QuantileOverTime(_) => "quantile_over_time",
            FunctionKind::StddevOverTime => "stddev_over_time",
        }
    }

    /// Whether the result keeps `__name__` (only `last_over_time` does).
    pub fn keeps_metric_name(&self) -> bool {
        matches!(self, FunctionKind::LastOverTime)
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
        let first = samples.first()?;
        let last = samples.last()?;
        let values = || samples.iter().map(|s| s.v);
        match self.kind {
            FunctionKind::Rate => extrapolated(
                samples,
                t.saturating_sub(self.window_ms),
                t,
                true,
                Some(self.window_ms),
            ),
            FunctionKind::Increase => {
                extrapolated(samples, t.saturating_sub(self.window_ms), t, true, None)
            }
            FunctionKind::Delta => {
                extrapolated(samples, t.saturating_sub(self.window_ms), t, false, None)
            }
            FunctionKind::Irate => {
                let [.., prev, last] = samples else {
                    return None;
                };
                let dt = last.t.saturating_sub(prev.t);
                if dt == 0 {
                    return None;
                }
                let inc = if last.v < prev.v {
                    last.v
                } else {
                    last.v - prev.v
                };
                Some(inc / (dt as f64 / 1000.0))
            }
            FunctionKind::AvgOverTime => Some(mean(values())),
            FunctionKind::MinOverTime => {
                Some(values().fold(first.v, |m, v| if v < m || m.is_nan() { v } else { m }))
            }
            FunctionKind::MaxOverTime => {
                Some(values().fold(first.v, |m, v| if v > m || m.is_nan() { v } else { m }))
            }
            FunctionKind::SumOverTime => Some(values().sum()),
            FunctionKind::CountOverTime => Some(samples.len() as f64),
            FunctionKind::LastOverTime => Some(last.v),
            FunctionKind::QuantileOverTime(q) => Some(quantile(q, values().collect())),
            FunctionKind::StddevOverTime => Some(stddev(values())),
        }
    }
}

/// Prometheus' `extrapolatedRate`.
fn extrapolated(
    samples: &[Sample],
    range_start: i64,
    range_end: i64,
    counter: bool,
    per_second: Option<i64>,
) -> Option<f64> {
    let (first, last) = match samples {
        [first, .., last] => (first, last),
        _ => return None,
    };
    let mut result = last.v - first.v;
    if counter {
        let mut prev = 0.0;
        for s in samples {
            if s.v < prev {
                result += prev;
            }
            prev = s.v;
        }
    }
    let mut to_start = (first.t as f64 - range_start as f64) / 1000.0;
    let to_end = (range_end as f64 - last.t as f64) / 1000.0;
    let sampled = (last.t as f64 - first.t as f64) / 1000.0;
    let average = sampled / (samples.len() - 1) as f64;
    if counter && result > 0.0 && first.v >= 0.0 {
        let to_zero = sampled * (first.v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        average / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        average / 2.0
    };
    result *= interval / sampled;
    if let Some(window) = per_second {
        result /= window as f64 / 1000.0;
    }
    Some(result)
}

/// Incremental mean, as Prometheus 2.x computes `avg` (robust to overflow; ±Inf handled).
pub fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (mut mean, mut count) = (0.0f64, 0.0f64);
    for v in values {
        count += 1.0;
        if count == 1.0 {
            mean = v;
            continue;
        }
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        mean += v / count - mean / count;
    }
    mean
}

/// Population standard deviation (Welford).
pub fn stddev(values: impl Iterator<Item = f64>) -> f64 {
    let (mut count, mut mean, mut m2) = (0.0f64, 0.0f64, 0.0f64);
    for v in values {
        count += 1.0;
        let delta = v - mean;
        mean += delta / count;
        m2 += delta * (v - mean);
    }
    (m2 / count).sqrt()
}

/// Prometheus' `quantile`: linear interpolation between the closest ranks.
pub fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    let at = |i: f64| values.get(i as usize).copied().unwrap_or(f64::NAN);
    at(lower) * (1.0 - weight) + at(upper) * weight
}
