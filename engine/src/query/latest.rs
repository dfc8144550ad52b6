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
/// intervals at time `at`, sorted by labels; see [`stale_series_each`].
pub fn stale_series(
    querier: &Querier<'_>,
    namespace: &str,
    matchers: &[Matcher],
    at: i64,
    factor: f64,
) -> Result<Vec<StaleSeries>> {
    let mut out = Vec::new();
    stale_series_each(querier, namespace, matchers, at, factor, &mut |s| {
        out.push(s);
        Ok(())
    })?;
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}

/// Hands `each` the matching series that have sent nothing for more than `factor` of their
/// expected intervals at time `at`, in no particular order. The interval comes from the
/// metric's metadata ([`crate::Engine::set_metadata`]) or, failing that, from the median gap
/// between the series' last samples; a series with fewer than two samples and no metadata
/// cannot be judged and is left out. Any series that ever wrote may be the silent one, so
/// the series are selected by reference and read a batch at a time
/// ([`Querier::in_batches`]): a store whose sources came and went by the million holds one
/// batch's handles and last samples.
pub fn stale_series_each(
    querier: &Querier<'_>,
    namespace: &str,
    matchers: &[Matcher],
    at: i64,
    factor: f64,
    each: &mut dyn FnMut(StaleSeries) -> Result<()>,
) -> Result<()> {
    if !(factor.is_finite() && factor > 0.0) {
        return Err(Error::InvalidArgument(format!(
            "the factor must be a positive number of intervals, got {factor}"
        )));
    }
    // Only each series' last samples are kept, so the sample limit does not apply (a
    // province's day of silent series is read whole when the window reaches back to it).
    let budget = Budget::new(&querier.limits().without_sample_limit(), None);
    let refs = querier.select_refs(namespace, matchers, i64::MIN, at)?;
    let metadata = querier.metadata(namespace)?;
    let declared = |s: &SeriesHandle| {
        metadata
            .iter()
            .find(|m| m.metric == s.labels().metric_name())
            .and_then(|m| m.expected_interval_ms)
    };
    let checked = querier.in_batches(namespace, &refs, &mut |mut pending| {
        // Look back in growing windows: dense series are settled by the first, sparse ones
        // by later ones, and no series is read further back than it needs.
        let mut window = 3_600_000i64;
        while !pending.is_empty() {
            let start = at.saturating_sub(window);
            let snapshot = querier.snapshot(std::mem::take(&mut pending), start, at);
            let read = snapshot.for_each(&|_, samples| {
                budget.spend(samples.len())?;
                let tail = samples.get(samples.len().saturating_sub(INFER_SAMPLES)..);
                Ok(tail.unwrap_or_default().to_vec())
            })?;
            for (s, samples) in snapshot.into_series().into_iter().zip(read) {
                let declared = declared(&s);
                // A series with no sample in the window reads further back, so that a
                // silent one is reported with its last sample ("silent since"), and so does
                // one with too few to infer its interval — unless, by the chunks' bounds,
                // it has nothing older.
                let settled = samples.len() >= INFER_SAMPLES
                    || (!samples.is_empty()
                        && (declared.is_some()
                            || !querier.has_data(&s, i64::MIN, start.saturating_sub(1))));
                if !settled && window < STALE_HORIZON_MS {
                    pending.push(s);
                    continue;
                }
                let Some(interval) = declared.or_else(|| infer_interval(&samples)) else {
                    continue;
                };
                let last = samples.last().copied();
                let silent = last.map_or(window, |l| at.saturating_sub(l.t));
                if silent as f64 > interval as f64 * factor {
                    each(StaleSeries {
                        labels: s.into_labels(),
                        last,
                        expected_interval_ms: interval,
                        silent_ms: silent,
                    })?;
                }
            }
            window = window.saturating_mul(8).min(STALE_HORIZON_MS);
        }
        Ok(())
    });
    // It read the data of every series in every segment.
    querier.release_segment_pages();
    checked
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
