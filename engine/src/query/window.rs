//! Functions of the samples of one series in one window: `rate`, `delta`, the
//! `*_over_time` family and the other range-vector functions of Prometheus 2.42.

use crate::engine::read::{Bucket, rollup};
use crate::model::Sample;
use crate::{Error, Result};

/// The range-vector functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowFunction {
    /// Per-second increase of a counter, extrapolated.
    Rate,
    /// Increase of a counter, extrapolated.
    Increase,
    /// Difference of a gauge, extrapolated.
    Delta,
    /// Per-second increase from the last two samples.
    Irate,
    /// Difference of the last two samples.
    Idelta,
    /// How often the value changed.
    Changes,
    /// How often the value dropped (counter resets).
    Resets,
    /// Per-second slope of a least-squares fit.
    Deriv,
    /// The least-squares fit `t` seconds after the step (`predict_linear(m, t)`).
    PredictLinear,
    /// Double exponential smoothing (`holt_winters(m, sf, tf)`).
    HoltWinters,
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
    /// φ-quantile (`quantile_over_time(φ, m)`).
    QuantileOverTime,
    /// Population standard deviation.
    StddevOverTime,
    /// Population variance.
    StdvarOverTime,
    /// 1 when the window has a sample.
    PresentOverTime,
}

impl WindowFunction {
    /// The PromQL name.
    pub fn name(self) -> &'static str {
        match self {
            WindowFunction::Rate => "rate",
            WindowFunction::Increase => "increase",
            WindowFunction::Delta => "delta",
            WindowFunction::Irate => "irate",
            WindowFunction::Idelta => "idelta",
            WindowFunction::Changes => "changes",
            WindowFunction::Resets => "resets",
            WindowFunction::Deriv => "deriv",
            WindowFunction::PredictLinear => "predict_linear",
            WindowFunction::HoltWinters => "holt_winters",
            WindowFunction::AvgOverTime => "avg_over_time",
            WindowFunction::MinOverTime => "min_over_time",
            WindowFunction::MaxOverTime => "max_over_time",
            WindowFunction::SumOverTime => "sum_over_time",
            WindowFunction::CountOverTime => "count_over_time",
            WindowFunction::LastOverTime => "last_over_time",
            WindowFunction::QuantileOverTime => "quantile_over_time",
            WindowFunction::StddevOverTime => "stddev_over_time",
            WindowFunction::StdvarOverTime => "stdvar_over_time",
            WindowFunction::PresentOverTime => "present_over_time",
        }
    }

    /// All of them, for name lookup.
    pub const ALL: [WindowFunction; 20] = [
        WindowFunction::Rate,
        WindowFunction::Increase,
        WindowFunction::Delta,
        WindowFunction::Irate,
        WindowFunction::Idelta,
        WindowFunction::Changes,
        WindowFunction::Resets,
        WindowFunction::Deriv,
        WindowFunction::PredictLinear,
        WindowFunction::HoltWinters,
        WindowFunction::AvgOverTime,
        WindowFunction::MinOverTime,
        WindowFunction::MaxOverTime,
        WindowFunction::SumOverTime,
        WindowFunction::CountOverTime,
        WindowFunction::LastOverTime,
        WindowFunction::QuantileOverTime,
        WindowFunction::StddevOverTime,
        WindowFunction::StdvarOverTime,
        WindowFunction::PresentOverTime,
    ];

    /// Where the range vector is among the arguments (the others are scalars).
    pub fn range_arg(self) -> usize {
        match self {
            WindowFunction::QuantileOverTime => 1,
            _ => 0,
        }
    }

    /// Whether the result keeps `__name__` (only `last_over_time` does in Prometheus 2.x).
    pub fn keeps_metric_name(self) -> bool {
        self == WindowFunction::LastOverTime
    }

    /// Evaluates over `samples` (sorted, stale markers removed), all within
    /// `[range_start, range_end]`. `params` are the scalar arguments at this step in order;
    /// `step_t` is the step's time (`predict_linear` predicts from it). `None` when the
    /// function has no value here.
    pub fn eval(
        self,
        samples: &[Sample],
        range_start: i64,
        range_end: i64,
        params: &[f64],
        step_t: i64,
    ) -> Result<Option<f64>> {
        let Some(last) = samples.last() else {
            return Ok(None);
        };
        let values = || samples.iter().map(|s| s.v);
        let param = |i: usize| params.get(i).copied().unwrap_or(f64::NAN);
        let range_secs = (range_end as f64 - range_start as f64) / 1000.0;
        Ok(match self {
            WindowFunction::Rate => {
                extrapolated(samples, range_start, range_end, true, Some(range_secs))
            }
            WindowFunction::Increase => extrapolated(samples, range_start, range_end, true, None),
            WindowFunction::Delta => extrapolated(samples, range_start, range_end, false, None),
            WindowFunction::Irate | WindowFunction::Idelta => {
                let [.., prev, last] = samples else {
                    return Ok(None);
                };
                let dt = last.t - prev.t;
                if dt == 0 {
                    return Ok(None);
                }
                if self == WindowFunction::Idelta {
                    Some(last.v - prev.v)
                } else {
                    let inc = if last.v < prev.v {
                        last.v
                    } else {
                        last.v - prev.v
                    };
                    Some(inc / (dt as f64 / 1000.0))
                }
            }
            WindowFunction::Changes => Some(
                samples
                    .windows(2)
                    .filter(|w| match w {
                        [a, b] => a.v != b.v && !(a.v.is_nan() && b.v.is_nan()),
                        _ => false,
                    })
                    .count() as f64,
            ),
            WindowFunction::Resets => Some(
                samples
                    .windows(2)
                    .filter(|w| matches!(w, [a, b] if b.v < a.v))
                    .count() as f64,
            ),
            WindowFunction::Deriv => {
                let Some(first) = samples.first().filter(|_| samples.len() >= 2) else {
                    return Ok(None);
                };
                Some(linear_regression(samples, first.t).0)
            }
            WindowFunction::PredictLinear => {
                if samples.len() < 2 {
                    return Ok(None);
                }
                let (slope, intercept) = linear_regression(samples, step_t);
                Some(intercept + slope * param(0))
            }
            WindowFunction::HoltWinters => holt_winters(samples, param(0), param(1))?,
            WindowFunction::AvgOverTime => Some(mean(values())),
            WindowFunction::MinOverTime => {
                Some(values().fold(last.v, |m, v| if v < m || m.is_nan() { v } else { m }))
            }
            WindowFunction::MaxOverTime => {
                Some(values().fold(last.v, |m, v| if v > m || m.is_nan() { v } else { m }))
            }
            WindowFunction::SumOverTime => {
                let (sum, c) = values().fold((0.0, 0.0), |(s, c), v| kahan_add(v, s, c));
                Some(if sum.is_infinite() { sum } else { sum + c })
            }
            WindowFunction::CountOverTime => Some(samples.len() as f64),
            WindowFunction::LastOverTime => Some(last.v),
            WindowFunction::QuantileOverTime => Some(quantile(param(0), values().collect())),
            WindowFunction::StddevOverTime => Some(variance(values()).sqrt()),
            WindowFunction::StdvarOverTime => Some(variance(values())),
            WindowFunction::PresentOverTime => Some(1.0),
        })
    }
}

/// Prometheus' `extrapolatedRate`; `per_second` divides by the window (in seconds).
fn extrapolated(
    samples: &[Sample],
    range_start: i64,
    range_end: i64,
    counter: bool,
    per_second: Option<f64>,
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
    let ends = Ends {
        first: *first,
        last: *last,
        count: samples.len(),
    };
    Some(extrapolate(
        &ends,
        result,
        (range_start, range_end),
        counter,
        per_second,
    ))
}

/// The first and last samples of a window and how many it holds.
struct Ends {
    first: Sample,
    last: Sample,
    count: usize,
}

/// The extrapolation of `extrapolatedRate` from a window's ends and its (reset-corrected)
/// difference `result`. The division is folded into the extrapolation factor before
/// multiplying, as Prometheus does it, so that the last bit agrees.
fn extrapolate(
    ends: &Ends,
    result: f64,
    (range_start, range_end): (i64, i64),
    counter: bool,
    per_second: Option<f64>,
) -> f64 {
    let (first, last) = (&ends.first, &ends.last);
    let mut to_start = (first.t as f64 - range_start as f64) / 1000.0;
    let to_end = (range_end as f64 - last.t as f64) / 1000.0;
    let sampled = (last.t as f64 - first.t as f64) / 1000.0;
    let average = sampled / (ends.count - 1) as f64;
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
    let mut factor = interval / sampled;
    if let Some(secs) = per_second {
        factor /= secs;
    }
    result * factor
}

impl WindowFunction {
    /// Whether [`WindowFunction::eval_buckets`] can answer it from a rollup's buckets.
    pub fn composable(self) -> bool {
        matches!(
            self,
            WindowFunction::Rate
                | WindowFunction::Increase
                | WindowFunction::Delta
                | WindowFunction::MinOverTime
                | WindowFunction::MaxOverTime
                | WindowFunction::SumOverTime
                | WindowFunction::CountOverTime
                | WindowFunction::LastOverTime
                | WindowFunction::PresentOverTime
        )
    }

    /// The bucket values [`WindowFunction::eval_buckets`] reads beyond those every reader
    /// gets (see [`rollup::Wanted`]).
    pub fn bucket_values(self) -> rollup::Wanted {
        match self {
            WindowFunction::MinOverTime => rollup::Wanted::MIN,
            WindowFunction::MaxOverTime => rollup::Wanted::MAX,
            WindowFunction::SumOverTime => rollup::Wanted::SUM,
            WindowFunction::Rate | WindowFunction::Increase => rollup::Wanted::CORRECTION,
            _ => rollup::Wanted::NONE,
        }
    }

    /// Evaluates the window `[range_start, range_end]` from a rollup: `buckets` are those
    /// whose intervals lie whole in `[range_start, range_end)`, oldest first, and
    /// `boundary` is the live sample at `range_end` itself, if any (the closed window's
    /// last instant, which falls in the next bucket). `None` when composing could differ
    /// from evaluating the raw samples in any bit (a sum of non-integers, a counter reset
    /// of non-integers): the caller evaluates the raw samples instead.
    ///
    /// Why each composition is exact: count and last are; `max`/`min` fold the buckets'
    /// first extremes from the window's last value exactly as the raw fold meets them
    /// (NaN and signed zeros included); sums of integers below 2^53 are exact in any order,
    /// so the Kahan sum of the buckets' sums is the raw Kahan sum; `rate`'s difference and
    /// resets add the same integers, and its extrapolation sees the same ends and count.
    pub fn eval_buckets(
        self,
        buckets: &[Bucket],
        boundary: Option<Sample>,
        range_start: i64,
        range_end: i64,
    ) -> Option<Option<f64>> {
        // Buckets of stale markers alone hold no value.
        let live = || buckets.iter().filter(|b| b.count > 0);
        let newest = || buckets.iter().rev().find(|b| b.count > 0).map(|b| b.last);
        let Some(last) = boundary.or_else(newest) else {
            return Some(None);
        };
        // Counted and found only for the functions that use them (a month of hourly
        // windows over thousands of series is millions of calls).
        let count =
            || live().map(|b| b.count as usize).sum::<usize>() + usize::from(boundary.is_some());
        let first = || live().next().map(|b| b.first).or(boundary).unwrap_or(last);
        let range_secs = (range_end as f64 - range_start as f64) / 1000.0;
        let boundary_value = boundary.map(|s| s.v);
        Some(Some(match self {
            WindowFunction::CountOverTime => count() as f64,
            WindowFunction::LastOverTime => last.v,
            WindowFunction::PresentOverTime => 1.0,
            WindowFunction::MaxOverTime => live()
                .map(|b| b.max)
                .chain(boundary_value)
                .fold(last.v, rollup::fold_max),
            WindowFunction::MinOverTime => live()
                .map(|b| b.min)
                .chain(boundary_value)
                .fold(last.v, rollup::fold_min),
            WindowFunction::SumOverTime => {
                let exact = buckets.len() <= MAX_COMPOSED_BUCKETS
                    && live().all(|b| b.has(rollup::EXACT_SUM))
                    && boundary_value.is_none_or(rollup::is_small_integer);
                if !exact {
                    return None;
                }
                let (sum, c) = live()
                    .map(|b| b.sum)
                    .chain(boundary_value)
                    .fold((0.0, 0.0), |(s, c), v| kahan_add(v, s, c));
                if sum.is_infinite() { sum } else { sum + c }
            }
            WindowFunction::Rate | WindowFunction::Increase | WindowFunction::Delta => {
                let (count, first) = (count(), first());
                if count < 2 {
                    return Some(None);
                }
                let counter = self != WindowFunction::Delta;
                let mut result = last.v - first.v;
                if counter {
                    result = corrected(result, buckets, boundary_value, (first.v, last.v))?;
                }
                let per_second = (self == WindowFunction::Rate).then_some(range_secs);
                let ends = Ends { first, last, count };
                extrapolate(&ends, result, (range_start, range_end), counter, per_second)
            }
            _ => return None,
        }))
    }
}

/// Most buckets one composed sum may add: their sums stay below 2^53, where every
/// integer is a float.
const MAX_COMPOSED_BUCKETS: usize = 1 << 14;

/// `result` plus what `rate` adds back for counter resets, composed from buckets: the
/// value before each drop between buckets, added one by one as the raw loop adds them, and
/// each bucket's own corrections, added as one sum. Only the latter differs from the raw
/// order of additions, so where a bucket has drops every term must be an integer (then
/// every order gives the same sum); `None` when they are not.
fn corrected(
    mut result: f64,
    buckets: &[Bucket],
    boundary: Option<f64>,
    (first, last): (f64, f64),
) -> Option<f64> {
    let regrouped = buckets.iter().any(|b| b.has(rollup::DROPS));
    if regrouped
        && !(buckets.len() <= MAX_COMPOSED_BUCKETS
            && rollup::is_small_integer(first)
            && rollup::is_small_integer(last)
            && buckets
                .iter()
                .all(|b| !b.has(rollup::DROPS) || b.has(rollup::EXACT_CORRECTION)))
    {
        return None;
    }
    let mut prev = 0.0;
    let drops = buckets
        .iter()
        .filter(|b| b.count > 0)
        .map(|b| (b.first.v, Some(b)))
        .chain(boundary.map(|v| (v, None)));
    for (v, bucket) in drops {
        if v < prev {
            if regrouped && !rollup::is_small_integer(prev) {
                return None;
            }
            result += prev;
        }
        if let Some(b) = bucket {
            if b.has(rollup::DROPS) {
                result += b.correction;
            }
            prev = b.last.v;
        }
    }
    Some(result)
}

/// One step of Kahan–Neumaier summation, as Prometheus 2.x sums: (sum, compensation).
fn kahan_add(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Least-squares fit of the samples, time in seconds from `intercept_t`: (slope, intercept),
/// with compensated sums as Prometheus computes it.
fn linear_regression(samples: &[Sample], intercept_t: i64) -> (f64, f64) {
    let first = samples.first().map_or(f64::NAN, |s| s.v);
    if samples.iter().all(|s| s.v == first) {
        if first.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, first);
    }
    let mut n = 0.0;
    let (mut sum_x, mut c_x) = (0.0, 0.0);
    let (mut sum_y, mut c_y) = (0.0, 0.0);
    let (mut sum_xy, mut c_xy) = (0.0, 0.0);
    let (mut sum_x2, mut c_x2) = (0.0, 0.0);
    for s in samples {
        let x = (s.t - intercept_t) as f64 / 1000.0;
        n += 1.0;
        (sum_x, c_x) = kahan_add(x, sum_x, c_x);
        (sum_y, c_y) = kahan_add(s.v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_add(x * s.v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_add(x * x, sum_x2, c_x2);
    }
    let (sum_x, sum_y, sum_xy, sum_x2) = (sum_x + c_x, sum_y + c_y, sum_xy + c_xy, sum_x2 + c_x2);
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    (slope, sum_y / n - slope * sum_x / n)
}

fn holt_winters(samples: &[Sample], sf: f64, tf: f64) -> Result<Option<f64>> {
    if !(sf > 0.0 && sf < 1.0) {
        return Err(Error::Execution(format!(
            "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf}"
        )));
    }
    if !(tf > 0.0 && tf < 1.0) {
        return Err(Error::Execution(format!(
            "invalid trend factor. Expected: 0 < tf < 1, got: {tf}"
        )));
    }
    let [first, second, ..] = samples else {
        return Ok(None);
    };
    let (mut s0, mut s1) = (0.0, first.v);
    let mut b = second.v - first.v;
    for (i, s) in samples.iter().enumerate().skip(1) {
        let x = sf * s.v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Ok(Some(s1))
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

/// Population variance over time, as Prometheus 2.x computes `stdvar_over_time`: Welford's
/// running mean and sum of squares, each with compensated summation (so an overflow to
/// ±Inf gives NaN, as there).
pub fn variance(values: impl Iterator<Item = f64>) -> f64 {
    let mut count = 0.0f64;
    let (mut mean, mut c_mean) = (0.0f64, 0.0f64);
    let (mut aux, mut c_aux) = (0.0f64, 0.0f64);
    for v in values {
        count += 1.0;
        let delta = v - (mean + c_mean);
        (mean, c_mean) = kahan_add(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_add(delta * (v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

/// Prometheus' `quantile`: linear interpolation between the closest ranks; NaN sorts first.
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
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.total_cmp(b),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    let at = |i: f64| values.get(i as usize).copied().unwrap_or(f64::NAN);
    at(lower) * (1.0 - weight) + at(upper) * weight
}
