//! Completeness ("complete"): over a window, the samples each series was expected to send
//! (from its indicator's declared interval, or the median gap of its own samples when none
//! is declared) against those received, and every gap — a stretch of expected slots with no
//! sample — with its start, end and missing count; totals grouped by metric and any labels.
//!
//! Slots follow each series' own rhythm: between two consecutive samples `d` apart, with
//! `d > 1.5 ×` the interval, `round(d / interval) − 1` slots are missing (those inside the
//! window count); after the last sample, `floor((end − 1 − last) / interval)` (such a gap is
//! `open`: the source has not reported since). Before the window the report looks back as
//! far as the window is long (at most a day) for the sample that precedes it: a series
//! with none there is taken to have started with its first sample in the window, so a new
//! source is not counted missing for the time before it existed. Expected is what was
//! received plus what is missing, so a source that reports more often than declared counts
//! complete, not more than complete.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::Budget;
use super::latest::{StaleSeries, stale_series_each};
use crate::engine::read::Querier;
use crate::index::Matcher;
use crate::model::{Labels, Sample};
use crate::{Error, Result};

/// How far before the window the report looks for the sample preceding it, at most.
const LOOKBACK_MS: i64 = 86_400_000;

/// Most gaps a report lists (the group totals count them all).
pub const MAX_LISTED_GAPS: usize = 10_000;

/// Most silent series a report lists (the counts by metric count them all).
pub const MAX_LISTED_SILENT: usize = 10_000;

/// The series silent at a time ([`silent`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Silent {
    /// The first [`MAX_LISTED_SILENT`] by labels.
    pub listed: Vec<StaleSeries>,
    /// How many are silent, by metric: all of them.
    pub by_metric: BTreeMap<String, u64>,
}

/// The matching series of `namespace` silent at `at` for more than `factor` of their
/// intervals ([`stale_series_each`]): listed up to [`MAX_LISTED_SILENT`] and counted by
/// metric, so that a store whose sources came and went by the million reports them in the
/// memory of one batch and one listing.
pub fn silent(
    querier: &Querier<'_>,
    namespace: &str,
    matchers: &[Matcher],
    at: i64,
    factor: f64,
) -> Result<Silent> {
    let mut out = Silent::default();
    let by_labels = |a: &StaleSeries, b: &StaleSeries| a.labels.cmp(&b.labels);
    // Once the listing was cut, the last series kept bounds what can still enter it.
    let mut cut: Option<Labels> = None;
    stale_series_each(querier, namespace, matchers, at, factor, &mut |s| {
        let metric = s.labels.metric_name();
        match out.by_metric.get_mut(metric) {
            Some(n) => *n += 1,
            None => {
                out.by_metric.insert(metric.to_owned(), 1);
            }
        }
        if cut.as_ref().is_some_and(|last| s.labels >= *last) {
            return Ok(());
        }
        out.listed.push(s);
        if out.listed.len() >= 2 * MAX_LISTED_SILENT {
            keep_first(&mut out.listed, MAX_LISTED_SILENT, by_labels);
            cut = out.listed.last().map(|s| s.labels.clone());
        }
        Ok(())
    })?;
    keep_first(&mut out.listed, MAX_LISTED_SILENT, by_labels);
    Ok(out)
}

/// What a completeness report covers.
#[derive(Debug, Clone, Default)]
pub struct CompletenessQuery {
    /// The series (all of the namespace when empty).
    pub matchers: Vec<Matcher>,
    /// Window start, ms (inclusive).
    pub start: i64,
    /// Window end, ms (exclusive).
    pub end: i64,
    /// Labels to group the totals by, besides the metric (e.g. `commune`).
    pub by: Vec<String>,
}

/// The totals of one group: one metric and one value of each `by` label.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletenessGroup {
    /// The metric.
    pub metric: String,
    /// Its owning department, from the catalog ("" when not declared).
    pub department: String,
    /// The values of the `by` labels, in their order ("" when a series lacks one).
    pub labels: Vec<String>,
    /// Series seen in the window.
    pub series: u64,
    /// Samples expected.
    pub expected: u64,
    /// Samples received.
    pub received: u64,
    /// Gaps.
    pub gaps: u64,
}

impl CompletenessGroup {
    /// Received over expected (1 when nothing was expected).
    pub fn ratio(&self) -> f64 {
        if self.expected == 0 {
            1.0
        } else {
            self.received as f64 / self.expected as f64
        }
    }
}

/// A stretch of a series' expected slots with no sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    /// The series.
    pub labels: Labels,
    /// The last sample before the gap (or the window start).
    pub start: i64,
    /// The first sample after it (or the window end).
    pub end: i64,
    /// Expected samples missing.
    pub missing: u64,
    /// True when nothing came after it within the window.
    pub open: bool,
    /// The interval the slots follow, ms.
    pub interval_ms: i64,
}

/// Expected against received, and the gaps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompletenessFigures {
    /// The labels the groups are by (the query's).
    pub by: Vec<String>,
    /// Totals by metric and `by` labels, sorted.
    pub groups: Vec<CompletenessGroup>,
    /// The gaps, by series then time (at most [`MAX_LISTED_GAPS`]).
    pub gaps: Vec<Gap>,
    /// Series with too few samples to infer an interval and none declared: counted as
    /// received, never as missing.
    pub unjudged_series: u64,
}

/// Computes the completeness of `namespace`'s matching series over the window.
pub fn completeness(
    querier: &Querier<'_>,
    namespace: &str,
    q: &CompletenessQuery,
) -> Result<CompletenessFigures> {
    if q.end <= q.start {
        return Err(Error::InvalidArgument(format!(
            "the window must end after it starts ({} ≥ {})",
            q.start, q.end
        )));
    }
    // The report keeps counts and gaps, never the samples it reads, and reads its series a
    // batch at a time: its groups are what the series limit bounds.
    let budget = Budget::new(&querier.limits().without_sample_limit(), None);
    let catalog = querier.metadata(namespace)?;
    let declared: BTreeMap<&str, i64> = catalog
        .iter()
        .filter_map(|m| Some((m.metric.as_str(), m.expected_interval_ms?)))
        .collect();
    let department = |metric: &str| {
        catalog
            .iter()
            .find(|m| m.metric == metric)
            .map(|m| m.department.clone())
            .unwrap_or_default()
    };
    let all;
    let matchers = if q.matchers.is_empty() {
        all = [Matcher::new(
            "__name__",
            crate::index::MatchOp::Regex,
            ".+",
        )?];
        &all[..]
    } else {
        &q.matchers[..]
    };
    let lookback = (q.end - q.start).min(LOOKBACK_MS);
    // The snapshot's range is inclusive; the window's end is not.
    let (from, to) = (q.start.saturating_sub(lookback), q.end - 1);
    let refs = querier.select_refs(namespace, matchers, from, to)?;
    let mut figures = CompletenessFigures {
        by: q.by.clone(),
        ..Default::default()
    };
    let mut groups: BTreeMap<(String, Vec<String>), CompletenessGroup> = BTreeMap::new();
    // Read a batch at a time: a report holds one batch's series and the gaps it lists.
    querier.in_batches(namespace, &refs, &mut |series| {
        let snapshot = querier.snapshot(series, from, to);
        let read = snapshot.for_each(&|s, samples| {
            budget.spend(samples.len())?;
            let inside = samples.partition_point(|x| x.t < q.start);
            let (before, samples) = samples.split_at(inside);
            let interval = declared
                .get(s.labels().metric_name())
                .copied()
                .or_else(|| median_gap(samples));
            let prior = before.last().map(|x| x.t);
            Ok((interval, judge(prior, samples, interval, q)))
        })?;
        for (s, (interval, (received, gaps))) in snapshot.into_series().into_iter().zip(read) {
            if received == 0 && gaps.is_empty() {
                continue;
            }
            let labels = s.labels();
            let metric = labels.metric_name().to_owned();
            let values: Vec<String> =
                q.by.iter()
                    .map(|n| labels.get(n).unwrap_or_default().to_owned())
                    .collect();
            let g = groups
                .entry((metric.clone(), values.clone()))
                .or_insert_with(|| CompletenessGroup {
                    department: department(&metric),
                    metric,
                    labels: values,
                    series: 0,
                    expected: 0,
                    received: 0,
                    gaps: 0,
                });
            g.series += 1;
            g.received += received;
            let missing: u64 = gaps.iter().map(|(_, _, m, _)| m).sum();
            g.expected += received + missing;
            g.gaps += gaps.len() as u64;
            let Some(interval_ms) = interval else {
                figures.unjudged_series += 1;
                continue;
            };
            for (start, end, missing, open) in gaps {
                figures.gaps.push(Gap {
                    labels: labels.clone(),
                    start,
                    end,
                    missing,
                    open,
                    interval_ms,
                });
            }
            if figures.gaps.len() >= 2 * MAX_LISTED_GAPS {
                keep_first(&mut figures.gaps, MAX_LISTED_GAPS, gap_order);
            }
        }
        budget.check_groups(groups.len())
    })?;
    keep_first(&mut figures.gaps, MAX_LISTED_GAPS, gap_order);
    figures.groups = groups.into_values().collect();
    Ok(figures)
}

/// Keeps the first `n` of `items` in `order`: what a listing bounded at `n` calls whenever
/// it reaches `2n` items, and once at its end.
fn keep_first<T>(items: &mut Vec<T>, n: usize, order: impl FnMut(&T, &T) -> Ordering) {
    items.sort_unstable_by(order);
    items.truncate(n);
}

/// Gaps by series, then time.
fn gap_order(a: &Gap, b: &Gap) -> Ordering {
    (&a.labels, a.start).cmp(&(&b.labels, b.start))
}

/// Received samples and gaps `(start, end, missing, open)` of one series' window, given the
/// last sample before the window (`prior`) if one was found.
fn judge(
    prior: Option<i64>,
    samples: &[Sample],
    interval: Option<i64>,
    q: &CompletenessQuery,
) -> (u64, Vec<(i64, i64, u64, bool)>) {
    let received = samples.len() as u64;
    let Some(i) = interval.filter(|&i| i > 0) else {
        return (received, Vec::new());
    };
    // Slots `from + k·i` (k ≥ 1) inside the window and before `to` (exclusive, with half an
    // interval of tolerance when `to` is a sample).
    let slots = |from: i64, to: i64, tolerance: i64| -> u64 {
        let first_k = ((q.start - from + i - 1) / i).max(1);
        let last_k = (to - tolerance - 1 - from).div_euclid(i);
        (last_k - first_k + 1).max(0) as u64
    };
    let mut gaps = Vec::new();
    let Some(last) = samples.last() else {
        if let Some(p) = prior {
            let missing = slots(p, q.end, 0);
            if missing > 0 {
                gaps.push((p, q.end, missing, true));
            }
        }
        return (0, gaps);
    };
    let mut previous = prior;
    for s in samples {
        if let Some(a) = previous
            && (s.t - a) * 2 > i * 3
        {
            let missing = slots(a, s.t, i / 2);
            if missing > 0 {
                gaps.push((a, s.t, missing, false));
            }
        }
        previous = Some(s.t);
    }
    let trail = slots(last.t, q.end, 0);
    if trail > 0 {
        gaps.push((last.t, q.end, trail, true));
    }
    (received, gaps)
}

/// The median gap between a series' samples, if it has at least three.
fn median_gap(samples: &[Sample]) -> Option<i64> {
    if samples.len() < 3 {
        return None;
    }
    let mut gaps: Vec<i64> = samples
        .windows(2)
        .filter_map(|w| match w {
            [a, b] => Some(b.t - a.t),
            _ => None,
        })
        .collect();
    gaps.sort_unstable();
    gaps.get(gaps.len() / 2).copied().filter(|&g| g > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(start: i64, end: i64) -> CompletenessQuery {
        CompletenessQuery {
            start,
            end,
            ..Default::default()
        }
    }

    fn at(ts: &[i64]) -> Vec<Sample> {
        ts.iter().map(|&t| Sample::new(t, 1.0)).collect()
    }

    #[test]
    fn a_regular_series_has_no_gap_and_an_outage_has_one_per_stretch() {
        let every_10: Vec<i64> = (0..10).map(|k| 5 + 10 * k).collect();
        assert_eq!(
            judge(Some(-5), &at(&every_10), Some(10), &q(0, 100)),
            (10, vec![])
        );
        // Slots 35, 45, 55 missing; and the last two (85, 95): open.
        let ts = [5, 15, 25, 65, 75];
        let (received, gaps) = judge(None, &at(&ts), Some(10), &q(0, 100));
        assert_eq!(received, 5);
        assert_eq!(gaps, vec![(25, 65, 3, false), (75, 100, 2, true)]);
    }

    #[test]
    fn before_its_first_sample_a_series_misses_slots_only_if_it_reported_before_the_window() {
        let ts = at(&[25, 35, 45, 55, 65, 75, 85, 95]);
        // Seen at -5: slots 5 and 15 are missing (the gap starts at the prior sample).
        let (_, gaps) = judge(Some(-5), &ts, Some(10), &q(0, 100));
        assert_eq!(gaps, vec![(-5, 25, 2, false)]);
        // Never seen before: a new source, nothing missing.
        assert_eq!(judge(None, &ts, Some(10), &q(0, 100)), (8, vec![]));
        // Seen long before: only the slots inside the window count.
        let (_, gaps) = judge(Some(-1005), &ts, Some(10), &q(0, 100));
        assert_eq!(gaps, vec![(-1005, 25, 2, false)]);
    }

    #[test]
    fn jitter_below_half_an_interval_is_no_gap_and_silence_is_one_open_gap() {
        let (_, gaps) = judge(None, &at(&[5, 19, 25, 39, 45]), Some(10), &q(0, 50));
        assert_eq!(gaps, vec![]);
        assert_eq!(
            judge(Some(-5), &[], Some(10), &q(0, 100)),
            (0, vec![(-5, 100, 10, true)])
        );
        assert_eq!(judge(None, &[], Some(10), &q(0, 100)), (0, vec![]));
        assert_eq!(judge(None, &at(&[1, 2]), None, &q(0, 100)), (2, vec![]));
    }

    #[test]
    fn the_interval_is_inferred_from_the_median_gap() {
        assert_eq!(median_gap(&at(&[0, 10, 20, 60, 70])), Some(10));
        assert_eq!(median_gap(&at(&[0, 10])), None);
    }
}
