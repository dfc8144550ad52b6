//! "Current value" tiles and liveness: the last sample of each series, and the series whose
//! sources have gone quiet for longer than N of their expected reporting intervals.

use super::{Budget, is_stale_marker};
use crate::engine::read::{Querier, SeriesHandle};
use crate::index::Matcher;
use crate::model::{Labels, Sample};
use crate::{Error, Result};

/// The last sample of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestSample {
    /// The series.
    pub labels: Labels,
    /// Its last sample at or before the query time.
    pub sample: Sample,
}

/// A series that stopped reporting.
#[derive(Debug, Clone, PartialEq)]
pub struct StaleSeries {
    /// The series.
    pub labels: Labels,
    /// Its last sample, if one was found within the search horizon.
    pub last: Option<Sample>,
    /// The interval it is expected to report at, ms (from metadata, or inferred).
    pub expected_interval_ms: i64,
    /// How long it has been silent at the query time, ms (the horizon if no sample).
    pub silent_ms: i64,
}

/// How far back a liveness check looks for a series' last sample: a year and a quarter,
/// enough for quarterly socio-economic indicators.
pub const STALE_HORIZON_MS: i64 = 456 * 86_400_000;

/// Samples used to infer a series' interval when no metadata gives it.
const INFER_SAMPLES: usize = 11;

/// The last sample in `[at − lookback_ms, at]` of each matching series (a map tile, a
/// "current value" panel), sorted by labels. Stale markers count as no value.
pub fn latest(
    querier: &Querier<'_>,
    namespace: &str,
    matchers: &[Matcher],
    at: i64,
    lookback_ms: i64,
) -> Result<Vec<LatestSample>> {
    if lookback_ms < 0 {
        return Err(Error::InvalidArgument(format!(
            "the lookback must not be negative, got {lookback_ms} ms"
        )));
    }
    let budget = Budget::new(querier.limits(), None);
    let series = querier.select(namespace, matchers, at.saturating_sub(lookback_ms), at)?;
    budget.check_series(series.len())?;
    let read = querier
        .snapshot(series, at.saturating_sub(lookback_ms), at)
        .for_each(&|s, samples| {
            budget.spend(samples.len())?;
            let last = samples.last().filter(|x| !is_stale_marker(x.v));
            Ok(last.map(|last| LatestSample {
                labels: s.labels().clone(),
                sample: *last,
            }))
        })?;
    let mut out: Vec<LatestSample> = read.into_iter().flatten().collect();
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}

/// The matching series that have sent nothing for more than `factor` of their expected
/// intervals at time `at`. The interval comes from the metric's metadata
/// ([`crate::Engine::set_metadata`]) or, failing that, from the median gap between the
/// series' last samples; a series with fewer than two samples and no metadata cannot be
/// judged and is left out.
pub fn stale_series(
    querier: &Querier<'_>,
    namespace: &str,
    matchers: &[Matcher],
    at: i64,
    factor: f64,
) -> Result<Vec<StaleSeries>> {
    if !(factor.is_finite() && factor > 0.0) {
        return Err(Error::InvalidArgument(format!(
            "the factor must be a positive number of intervals, got {factor}"
        )));
    }
    // Only each series' last samples are kept, so the sample limit does not apply (a
    // province's day of silent series is read whole when the window reaches back to it).
    let budget = Budget::new(&querier.limits().without_sample_limit(), None);
    // Any series that ever wrote before `at` may be the silent one.
    let series = querier.select(namespace, matchers, i64::MIN, at)?;
    let metadata = querier.metadata(namespace)?;
    let mut out = Vec::new();
    // Look back in growing windows: dense series are settled by the first, sparse ones
    // by later ones, and no series is read further back than it needs.
    let mut pending: Vec<SeriesHandle> = series;
    let mut window = 3_600_000i64;
    while !pending.is_empty() {
        let read = querier
            .snapshot(std::mem::take(&mut pending), at.saturating_sub(window), at)
            .for_each(&|s, samples| {
                budget.spend(samples.len())?;
                let tail = samples.get(samples.len().saturating_sub(INFER_SAMPLES)..);
                Ok((s.clone(), tail.unwrap_or_default().to_vec()))
            })?;
        for (s, samples) in read {
            let declared = metadata
                .iter()
                .find(|m| m.metric == s.labels().metric_name())
                .and_then(|m| m.expected_interval_ms);
            let inferred = infer_interval(&samples);
            // A series with no sample in the window reads further back, so that a silent one
            // is reported with its last sample ("silent since").
            let settled =
                samples.len() >= INFER_SAMPLES || (declared.is_some() && !samples.is_empty());
            if !settled && window < STALE_HORIZON_MS {
                pending.push(s);
                continue;
            }
            let Some(interval) = declared.or(inferred) else {
                continue;
            };
            let last = samples.last().copied();
            let silent = last.map_or(window, |l| at.saturating_sub(l.t));
            if silent as f64 > interval as f64 * factor {
                out.push(StaleSeries {
                    labels: s.labels().clone(),
                    last,
                    expected_interval_ms: interval,
                    silent_ms: silent,
                });
            }
        }
        window = window.saturating_mul(8).min(STALE_HORIZON_MS);
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}

/// The median gap between the last samples, if there are at least two.
fn infer_interval(samples: &[Sample]) -> Option<i64> {
    let tail = samples.get(samples.len().saturating_sub(INFER_SAMPLES)..)?;
    let mut gaps: Vec<i64> = tail
        .windows(2)
        .filter_map(|w| match w {
            [a, b] => Some(b.t - a.t),
            _ => None,
        })
        .collect();
    if gaps.is_empty() {
        return None;
    }
    gaps.sort_unstable();
    gaps.get(gaps.len() / 2).copied()
}
