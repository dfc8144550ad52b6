//! The facade's read calls: raw samples ([`Engine::select`], and [`Engine::export`] for
//! any amount of them) and one-line wrappers that
//! hand the read view ([`Querier`]) to the query engine (`crate::query`), which owns every
//! query's semantics. The arrows run query → read view, never back.

use super::Engine;
use super::read::{self, Querier};
use crate::head::SeriesRef;
use crate::index::Matcher;
use crate::model::{Labels, METRIC_NAME, Sample};
pub use crate::quality::DelayFigures;
use crate::query::cache::{self, ResultCache};
use crate::query::{
    self, Budget, LatestSample, PromqlQuery, PromqlResult, QueryResult, QueryValue, RangeQuery,
    ResultSeries, SeriesFilter, StaleSeries,
};
use crate::{Error, Result};
use roaring::RoaringBitmap;

/// What [`Engine::completeness`] reports.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletenessReport {
    /// Expected against received, by group, and the gaps.
    pub figures: query::CompletenessFigures,
    /// Series silent now, with their last sample: the first
    /// [`query::MAX_LISTED_SILENT`] by labels.
    pub silent: Vec<StaleSeries>,
    /// How many series are silent now, by metric: all of them.
    pub silent_by_metric: std::collections::BTreeMap<String, u64>,
    /// Arrival delay percentiles per metric.
    pub delays: Vec<DelayFigures>,
}

/// One series and its samples in the selected range, sorted by time.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    /// The series' labels.
    pub labels: Labels,
    /// Samples in time order, one per timestamp.
    pub samples: Vec<Sample>,
}

impl Engine {
    /// The read view queries go through.
    pub fn querier(&self) -> Querier<'_> {
        Querier::new(&self.inner)
    }

    /// The samples in `[start, end]` (ms, inclusive) of every series of `namespace` that
    /// matches all `matchers`, sorted by labels. Series with no sample in range are left out.
    /// Sees every write acknowledged before the call.
    pub fn select(
        &self,
        namespace: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<SeriesSamples>> {
        if end < start {
            return Err(Error::InvalidArgument(format!(
                "end {end} is before start {start}"
            )));
        }
        let querier = self.querier();
        let budget = Budget::new(querier.limits(), None);
        let series = querier.select(namespace, matchers, start, end)?;
        budget.check_series(series.len())?;
        let read = querier
            .snapshot(series, start, end)
            .for_each(&|s, samples| {
                budget.spend(samples.len())?;
                Ok((!samples.is_empty()).then(|| SeriesSamples {
                    labels: s.labels().clone(),
                    samples: samples.to_vec(),
                }))
            })?;
        let mut out: Vec<SeriesSamples> = read.into_iter().flatten().collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// Every matching series of `namespace` with samples in `[start, end]`, handed to `each`
    /// by metric name and then labels, read `batch` series at a time; no query limit applies
    /// (an operator's export is not a dashboard's query). It holds the label sets of one
    /// metric's series (to order them) and one batch's samples, not the store's: the metrics
    /// come one at a time from the postings, each metric's series as references, their
    /// handles a batch at a time. Each batch is a consistent view of its series as of its
    /// reading; a series gone between the listing and its batch is left out. `each` stops
    /// the export by returning an error.
    pub fn export(
        &self,
        namespace: &str,
        matchers: &[Matcher],
        (start, end): (i64, i64),
        batch: usize,
        each: &mut dyn FnMut(SeriesSamples) -> Result<()>,
    ) -> Result<u64> {
        if end < start {
            return Err(Error::InvalidArgument(format!(
                "end {end} is before start {start}"
            )));
        }
        let querier = self.querier();
        let mut exported = 0;
        // By metric first (text formats keep a metric's series together), then labels.
        for metric in querier.label_values(namespace, matchers, METRIC_NAME, start, end)? {
            let mut of_metric = matchers.to_vec();
            of_metric.push(Matcher::equal(METRIC_NAME, &metric));
            let refs = querier.select_refs(namespace, &of_metric, start, end)?;
            let mut ordered: Vec<(Labels, SeriesRef)> = Vec::with_capacity(refs.len() as usize);
            querier.in_batches(namespace, &refs, &mut |handles| {
                for h in handles {
                    let id = h.series().id;
                    ordered.push((h.into_labels(), id));
                }
                Ok(())
            })?;
            ordered.sort_unstable();
            for part in ordered.chunks(batch.max(1)) {
                let refs: RoaringBitmap = part.iter().map(|(_, id)| *id).collect();
                let mut handles = Vec::with_capacity(part.len());
                querier.in_batches(namespace, &refs, &mut |mut more| {
                    handles.append(&mut more);
                    Ok(())
                })?;
                // In label order again (`in_batches` gives reference order).
                handles.sort_unstable_by(|a, b| a.labels().cmp(b.labels()));
                let read = querier
                    .snapshot(handles, start, end)
                    .for_each(&|s, samples| {
                        Ok((!samples.is_empty()).then(|| SeriesSamples {
                            labels: s.labels().clone(),
                            samples: samples.to_vec(),
                        }))
                    })?;
                for s in read.into_iter().flatten() {
                    exported += 1;
                    each(s)?;
                }
            }
        }
        Ok(exported)
    }

    /// Runs a PromQL query (see [`crate::query`]).
    pub fn query(&self, q: &PromqlQuery) -> Result<PromqlResult> {
        let _span = tracing::debug_span!(
            "query",
            namespace = %crate::model::echo(&q.namespace),
            expr = %crate::model::echo(&q.expr),
            start = q.start,
            end = q.end,
            step = q.step
        )
        .entered();
        match &self.inner.cache {
            Some(cache) if !q.is_instant() => self.query_cached(cache, q),
            _ => query::run(&self.querier(), q),
        }
    }

    /// A range query through the result cache: the steps still exact come from it, the rest
    /// are computed, and the whole answer is kept for the next refresh.
    fn query_cached(&self, cache: &ResultCache, q: &PromqlQuery) -> Result<PromqlResult> {
        let plan = query::parse(&q.expr)?;
        let lookback = q.lookback_ms.unwrap_or(query::DEFAULT_LOOKBACK_MS);
        let querier = self.querier();
        let (Some(reach), true) = (cache::reach(&plan, lookback), q.step > 0 && lookback >= 0)
        else {
            return query::run_plan(&querier, q, &plan);
        };
        // The namespace as writes name it ("" is the default namespace's): the change log,
        // the retention and the key must all agree with the write path.
        let Ok(namespace) = crate::model::Namespace::new(&q.namespace) else {
            return query::run_plan(&querier, q, &plan);
        };
        let ns = namespace.as_str();
        let inner = &*self.inner;
        // Before the snapshot: a change this query's snapshot misses has a later sequence.
        let seq = inner.changes.current();
        let cutoff = inner.opts.retention_cutoff(ns, read::wall_clock_ms());
        let key = cache::Key::of(q, ns, lookback);
        let look = || {
            cache.lookup(&key, q.start, q.end, cutoff, reach, |since| {
                inner.changes.earliest_since(ns, since)
            })
        };
        let last_step = q.start + (q.end - q.start) / q.step * q.step;
        let mut reuse = look();
        // Steps to compute: lead, or wait for an identical query computing them and look
        // again (then compute what is still missing without leading).
        let mut leader = None;
        if reuse.as_ref().is_none_or(|r| r.last < last_step) {
            leader = cache.lead_or_wait(&key, q.deadline);
            if leader.is_none() {
                reuse = look();
            }
        }
        let steps = |from: i64| {
            if from > q.end {
                0
            } else {
                ((q.end - from) / q.step + 1) as u64
            }
        };
        let (answer, reused) = match reuse {
            None => (query::run_plan(&querier, q, &plan)?, 0),
            Some(reuse) => {
                let from = reuse.last + q.step;
                let fresh = if from <= q.end {
                    let rest = PromqlQuery {
                        start: from,
                        ..q.clone()
                    };
                    query::run_plan(&querier, &rest, &plan)?
                } else {
                    PromqlResult {
                        value: QueryValue::Matrix(Vec::new()),
                        series_read: 0,
                        samples_read: 0,
                        steps_from_cache: 0,
                        rollup_buckets: 0,
                        rollup_tier_ms: 0,
                    }
                };
                let QueryValue::Matrix(computed) = fresh.value else {
                    return Err(crate::Error::Internal(
                        "a range query answered something other than a matrix".into(),
                    ));
                };
                let reused = steps(q.start) - steps(from);
                (
                    PromqlResult {
                        value: QueryValue::Matrix(join(reuse.series, computed)),
                        steps_from_cache: reused,
                        ..fresh
                    },
                    reused,
                )
            }
        };
        cache.computed(steps(q.start) - reused);
        if let QueryValue::Matrix(series) = &answer.value {
            cache.store(key, seq, cutoff, q.start, last_step, series.clone());
        }
        // Those waiting for this computation look again once its answer is stored (and
        // compute on their own if it failed, when `?` dropped the leader above).
        drop(leader);
        Ok(answer)
    }

    /// Runs a structured range query (see [`crate::query`] for the semantics).
    pub fn query_range(&self, q: &RangeQuery) -> Result<QueryResult> {
        let _span = tracing::debug_span!(
            "query_range",
            namespace = %crate::model::echo(&q.namespace),
            start = q.start,
            end = q.end
        )
        .entered();
        query::range(&self.querier(), q)
    }

    /// The last sample of each matching series; see [`query::latest`].
    pub fn latest(
        &self,
        namespace: &str,
        matchers: &[Matcher],
        at: i64,
        lookback_ms: i64,
    ) -> Result<Vec<LatestSample>> {
        query::latest(&self.querier(), namespace, matchers, at, lookback_ms)
    }

    /// The matching series whose sources went quiet; see [`query::stale_series`].
    pub fn stale_series(
        &self,
        namespace: &str,
        matchers: &[Matcher],
        at: i64,
        factor: f64,
    ) -> Result<Vec<StaleSeries>> {
        query::stale_series(&self.querier(), namespace, matchers, at, factor)
    }

    /// The completeness and liveness report of a namespace over a window: expected against
    /// received samples and the gaps ([`query::completeness`]), the series silent at `at`
    /// for more than `silent_factor` intervals ([`query::silent`]), and the arrival
    /// delay percentiles per metric of the samples whose timestamps lie in the window's
    /// hours.
    pub fn completeness(
        &self,
        namespace: &str,
        q: &query::CompletenessQuery,
        at: i64,
        silent_factor: f64,
    ) -> Result<CompletenessReport> {
        let _span =
            tracing::debug_span!("completeness", namespace = %crate::model::echo(namespace))
                .entered();
        let querier = self.querier();
        let figures = query::completeness(&querier, namespace, q)?;
        let silent = query::silent(&querier, namespace, &q.matchers, at, silent_factor)?;
        let metrics: std::collections::BTreeSet<&str> =
            figures.groups.iter().map(|g| g.metric.as_str()).collect();
        let delays = self
            .inner
            .quality
            .delays(namespace, None, q.start, q.end)
            .into_iter()
            .filter(|d| metrics.contains(d.metric.as_str()))
            .collect();
        Ok(CompletenessReport {
            figures,
            silent: silent.listed,
            silent_by_metric: silent.by_metric,
            delays,
        })
    }

    /// Labels of the matching series with data in the range; see [`query::series`].
    pub fn series(&self, f: &SeriesFilter) -> Result<Vec<Labels>> {
        query::series(&self.querier(), f)
    }

    /// Label names of the matching series with data in the range, sorted.
    pub fn label_names(&self, f: &SeriesFilter) -> Result<Vec<String>> {
        query::label_names(&self.querier(), f)
    }

    /// Values of label `name` among the matching series with data in the range, sorted.
    pub fn label_values(&self, f: &SeriesFilter, name: &str) -> Result<Vec<String>> {
        query::label_values(&self.querier(), f, name)
    }
}

/// The cached points of the first steps and the computed points of the rest, series by
/// series, sorted by labels as a whole evaluation sorts them.
fn join(cached: Vec<ResultSeries>, computed: Vec<ResultSeries>) -> Vec<ResultSeries> {
    let mut by_labels: std::collections::BTreeMap<Labels, Vec<Sample>> =
        cached.into_iter().map(|s| (s.labels, s.points)).collect();
    for s in computed {
        by_labels.entry(s.labels).or_default().extend(s.points);
    }
    by_labels
        .into_iter()
        .map(|(labels, points)| ResultSeries { labels, points })
        .collect()
}
