//! The evaluator: runs a [`Plan`] over a grid of steps. Every node is evaluated once for all
//! steps (a range query is not a loop of instant queries), and every selector reads each of
//! its series once, on all cores, evaluating it as it is read: an instant selector or a
//! range-vector function never holds more than one series' samples per worker.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::aggregate::aggregate;
use super::binary::binary;
use super::functions::call;
use super::plan::{At, Plan, RangeSelector, Selector, Subquery};
use super::value::{Points, RangeRow, Row, Value, check_unique_labels};
use super::window::WindowFunction;
use super::{Budget, is_stale_marker};
use crate::engine::read::rollup::metric::MetricBucket;
use crate::engine::read::{
    Bucket, MetricSource, Querier, RollupCost, SeriesHandle, Wanted, rollup,
};
use crate::model::{Labels, METRIC_NAME, Sample};
use crate::{Error, Limit, Result};

/// What [`Evaluator::read_windows`] hands each series' labels and live samples to.
type WindowFn<'f, T> = &'f (dyn Fn(&Labels, &[Sample]) -> Result<Option<T>> + Sync);

/// Prometheus' default subquery step (its default `evaluation_interval`), ms.
pub const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

/// One query's evaluation context.
pub struct Evaluator<'q, 'a> {
    querier: &'q Querier<'a>,
    namespace: &'q str,
    budget: &'q Budget,
    /// The query's own start and end, for `@ start()` and `@ end()`.
    start: i64,
    end: i64,
    lookback_ms: i64,
    series_read: AtomicU64,
    /// Rollup tiers the query may read, coarsest first (empty: raw samples only).
    tiers: Vec<i64>,
    rollup_buckets: AtomicU64,
    /// The coarsest tier that answered some window (0: none).
    rollup_tier: AtomicI64,
}

impl<'q, 'a> Evaluator<'q, 'a> {
    /// An evaluator for a query over `[start, end]`.
    pub fn new(
        querier: &'q Querier<'a>,
        namespace: &'q str,
        budget: &'q Budget,
        (start, end): (i64, i64),
        lookback_ms: i64,
    ) -> Self {
        Evaluator {
            querier,
            namespace,
            budget,
            start,
            end,
            lookback_ms,
            series_read: AtomicU64::new(0),
            tiers: Vec::new(),
            rollup_buckets: AtomicU64::new(0),
            rollup_tier: AtomicI64::new(0),
        }
    }

    /// Lets windows that a tier of `tiers` (interval ms) answers exactly read its rollups.
    pub fn with_rollups(mut self, tiers: &[i64]) -> Self {
        self.tiers = tiers.iter().copied().filter(|&t| t > 0).collect();
        self.tiers.sort_unstable_by(|a, b| b.cmp(a));
        self
    }

    /// Buckets read from rollups so far, and the coarsest tier that gave them (0: none).
    pub fn rollups_read(&self) -> (u64, i64) {
        (
            self.rollup_buckets.load(Ordering::Relaxed),
            self.rollup_tier.load(Ordering::Relaxed),
        )
    }

    /// The query's allowance.
    pub fn budget(&self) -> &Budget {
        self.budget
    }

    /// Series read so far.
    pub fn series_read(&self) -> u64 {
        self.series_read.load(Ordering::Relaxed)
    }

    /// Evaluates `plan` at every step of `steps` (sorted ascending, not empty).
    pub fn eval(&self, plan: &Plan, steps: &[i64]) -> Result<Value> {
        self.budget.check_time()?;
        Ok(match plan {
            Plan::Number(v) => Value::Scalar(vec![*v; steps.len()]),
            Plan::String(s) => Value::String(s.clone()),
            Plan::Selector(sel) => Value::Vector(self.instant_selector(sel, steps, false)?),
            Plan::Range(rs) => {
                let refs = self.refs(rs.selector.at, rs.selector.offset_ms, steps);
                let mut rows = self.read_windows(&rs.selector, rs.range_ms, &refs, &|l, s| {
                    Ok((!s.is_empty()).then(|| RangeRow {
                        labels: l.clone(),
                        samples: s.to_vec(),
                    }))
                })?;
                rows.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
                Value::Matrix(rows)
            }
            Plan::Subquery(sq) => {
                let (rows, refs) = self.subquery(sq, steps)?;
                let last = refs.last().copied().unwrap_or_default();
                let from = last.saturating_sub(sq.range_ms);
                Value::Matrix(
                    rows.into_iter()
                        .map(|r| RangeRow {
                            labels: r.labels,
                            samples: r
                                .samples
                                .into_iter()
                                .filter(|s| s.t >= from && s.t <= last)
                                .collect(),
                        })
                        .filter(|r| !r.samples.is_empty())
                        .collect(),
                )
            }
            Plan::Call(c) => call(self, c, steps)?,
            Plan::Aggregate(a) => aggregate(self, a, steps)?,
            Plan::Binary(b) => binary(self, b, steps)?,
            Plan::Negate(e) => match self.eval(e, steps)? {
                Value::Scalar(v) => Value::Scalar(v.into_iter().map(|x| -x).collect()),
                Value::Vector(rows) => {
                    let rows: Vec<Row> = rows
                        .into_iter()
                        .map(|r| Row {
                            labels: r.labels.without(METRIC_NAME),
                            values: r.values.iter().map(|v| v.map(|x| -x)).collect(),
                        })
                        .collect();
                    check_unique_labels(&rows)?;
                    Value::Vector(rows)
                }
                other => {
                    return Err(Error::InvalidArgument(format!(
                        "unary minus needs a scalar or an instant vector, got {}",
                        type_name(&other)
                    )));
                }
            },
        })
    }

    /// Evaluates to an instant vector (the parser checked the type).
    pub fn eval_vector(&self, plan: &Plan, steps: &[i64]) -> Result<Vec<Row>> {
        match self.eval(plan, steps)? {
            Value::Vector(rows) => Ok(rows),
            other => Err(Error::InvalidArgument(format!(
                "expected an instant vector, got {}",
                type_name(&other)
            ))),
        }
    }

    /// Evaluates to a scalar per step (the parser checked the type).
    pub fn eval_scalar(&self, plan: &Plan, steps: &[i64]) -> Result<Vec<f64>> {
        match self.eval(plan, steps)? {
            Value::Scalar(v) => Ok(v),
            other => Err(Error::InvalidArgument(format!(
                "expected a scalar, got {}",
                type_name(&other)
            ))),
        }
    }

    /// The time each step reads at: the step (or the `@` time) minus the offset.
    pub fn refs(&self, at: Option<At>, offset_ms: i64, steps: &[i64]) -> Vec<i64> {
        let pinned = at.map(|a| match a {
            At::Time(t) => t,
            At::Start => self.start,
            At::End => self.end,
        });
        steps
            .iter()
            .map(|&t| pinned.unwrap_or(t).saturating_sub(offset_ms))
            .collect()
    }

    /// Selects a selector's series that may have samples in the windows reaching `reach`
    /// ms back from the ref times `refs`, and charges the budget for them.
    fn select(&self, sel: &Selector, refs: &[i64], reach: i64) -> Result<Vec<SeriesHandle>> {
        let series = self.select_uncharged(sel, refs, reach)?;
        self.charge_series(series.len(), refs.len())?;
        Ok(series)
    }

    /// [`Evaluator::select`] without charging the budget for the series (the caller does,
    /// with [`Evaluator::charge_series`], once it knows it reads them).
    fn select_uncharged(
        &self,
        sel: &Selector,
        refs: &[i64],
        reach: i64,
    ) -> Result<Vec<SeriesHandle>> {
        let (Some(&lo), Some(&hi)) = (refs.iter().min(), refs.iter().max()) else {
            return Ok(Vec::new());
        };
        self.querier
            .select(self.namespace, &sel.matchers, lo.saturating_sub(reach), hi)
    }

    /// Charges the budget for `series` series read at `steps` steps, and counts them.
    fn charge_series(&self, series: usize, steps: usize) -> Result<()> {
        self.budget.check_series(series)?;
        self.budget.check_points(series, steps)?;
        self.series_read.fetch_add(series as u64, Ordering::Relaxed);
        Ok(())
    }

    /// An instant selector at every step: the latest sample in `[ref − lookback, ref]`,
    /// unless it is a stale marker. With `timestamps`, the sample's time (seconds) instead
    /// of its value (`timestamp(selector)`). Rows come sorted by labels, as from
    /// Prometheus' storage. When every step lies on a rollup tier's boundaries, each series
    /// is read as that tier's buckets: at a boundary `r` the latest sample at or before `r`
    /// is the one at `r` itself, else the last of the bucket before (see
    /// [`latest_from_buckets`]).
    pub fn instant_selector(
        &self,
        sel: &Selector,
        steps: &[i64],
        timestamps: bool,
    ) -> Result<Vec<Row>> {
        let refs = self.refs(sel.at, sel.offset_ms, steps);
        let (Some(&lo), Some(&hi)) = (refs.first(), refs.last()) else {
            return Ok(Vec::new());
        };
        let lookback = self.lookback_ms;
        let series = self.select(sel, &refs, lookback)?;
        // One series' row from `latest(r)`, called for each ref time in order.
        let row = |s: &SeriesHandle, latest: &mut dyn FnMut(i64) -> Option<Sample>| {
            let values: Points = refs
                .iter()
                .map(|&r| latest(r).map(|x| if timestamps { x.t as f64 / 1000.0 } else { x.v }))
                .collect();
            values.any().then(|| Row {
                labels: s.labels().clone(),
                values,
            })
        };
        let (from, tier) = (lo.saturating_sub(lookback), self.tier_for_instants(&refs));
        // At one step each series' newest sample in the lookback window is its value, and
        // the read can skip decoding what comes before it (an instant query, or the one
        // new step of a cached panel's refresh).
        let snapshot = if refs.len() == 1 && tier.is_none() {
            self.querier.snapshot_newest(series, from, hi)
        } else {
            self.querier.snapshot(series, from, hi)
        };
        let rows = match tier {
            Some(tier) => snapshot.for_each_rolled(tier, Wanted::NONE, &|s, buckets, cost| {
                self.charge_rollup(tier, cost)?;
                let mut next = 0usize;
                Ok(row(s, &mut |r| {
                    while buckets.get(next).is_some_and(|b| b.start < r) {
                        next += 1;
                    }
                    latest_from_buckets(buckets, next, r, lookback)
                }))
            })?,
            None => snapshot.for_each(&|s, samples| {
                self.budget.spend(samples.len())?;
                let mut next = 0usize;
                Ok(row(s, &mut |r| {
                    while samples.get(next).is_some_and(|x| x.t <= r) {
                        next += 1;
                    }
                    next.checked_sub(1)
                        .and_then(|i| samples.get(i))
                        .filter(|x| x.t >= r.saturating_sub(lookback) && !is_stale_marker(x.v))
                        .copied()
                }))
            })?,
        };
        let mut rows: Vec<Row> = rows.into_iter().flatten().collect();
        rows.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        Ok(rows)
    }

    /// Reads a selector's series over the windows `[ref − range, ref]` of every ref time
    /// and hands each series' live samples (stale markers removed) to `f`.
    fn read_windows<T: Send>(
        &self,
        sel: &Selector,
        range_ms: i64,
        refs: &[i64],
        f: WindowFn<'_, T>,
    ) -> Result<Vec<T>> {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let series = self.select(sel, refs, range_ms)?;
        self.read_windows_of(series, range_ms, refs, f)
    }

    /// [`Evaluator::read_windows`] over series already selected.
    fn read_windows_of<T: Send>(
        &self,
        series: Vec<SeriesHandle>,
        range_ms: i64,
        refs: &[i64],
        f: WindowFn<'_, T>,
    ) -> Result<Vec<T>> {
        let (Some(&lo), Some(&hi)) = (refs.iter().min(), refs.iter().max()) else {
            return Ok(Vec::new());
        };
        let out = self
            .querier
            .snapshot(series, lo.saturating_sub(range_ms), hi)
            .for_each(&|s, samples| {
                self.budget.spend(samples.len())?;
                if samples.iter().any(|x| is_stale_marker(x.v)) {
                    let live: Vec<Sample> = samples
                        .iter()
                        .filter(|x| !is_stale_marker(x.v))
                        .copied()
                        .collect();
                    f(s.labels(), &live)
                } else {
                    f(s.labels(), samples)
                }
            })?;
        Ok(out.into_iter().flatten().collect())
    }

    /// A range-vector function at every step: `f` over the window `[ref − range, ref]` of
    /// each series of `range_arg` (a range selector or a subquery). `params` holds the other
    /// (scalar) arguments per step. The rows are not checked for equal label sets.
    pub fn window_function(
        &self,
        f: WindowFunction,
        range_arg: &Plan,
        params: &[Vec<f64>],
        steps: &[i64],
    ) -> Result<Vec<Row>> {
        // predict_linear predicts from the step, even when `@` pins the data.
        let step_time = |i: usize| steps.get(i).copied().unwrap_or_default();
        let keep_name = f.keeps_metric_name();
        let per_series = |refs: &[i64], range_ms: i64, labels: &Labels, samples: &[Sample]| {
            let mut values = Points::with_capacity(refs.len());
            let (mut lo, mut hi) = (0usize, 0usize);
            let mut p = Vec::with_capacity(params.len());
            let mut any = false;
            for (i, &r) in refs.iter().enumerate() {
                let from = r.saturating_sub(range_ms);
                while samples.get(hi).is_some_and(|x| x.t <= r) {
                    hi += 1;
                }
                while samples.get(lo).is_some_and(|x| x.t < from) {
                    lo += 1;
                }
                let window = samples.get(lo..hi.max(lo)).unwrap_or(&[]);
                p.clear();
                p.extend(params.iter().map(|v| v.get(i).copied().unwrap_or(f64::NAN)));
                let v = f.eval(window, from, r, &p, step_time(i))?;
                any |= v.is_some();
                values.push(v);
            }
            let labels = if keep_name {
                labels.clone()
            } else {
                labels.without(METRIC_NAME)
            };
            Ok(any.then_some(Row { labels, values }))
        };
        let rows = match range_arg {
            Plan::Range(rs) => {
                let refs = self.refs(rs.selector.at, rs.selector.offset_ms, steps);
                let raw = |l: &Labels, s: &[Sample]| per_series(&refs, rs.range_ms, l, s);
                let mut rows = match self.tier_for(f, rs.range_ms, &refs) {
                    Some(tier) => {
                        let series = self.select(&rs.selector, &refs, rs.range_ms)?;
                        self.rolled_windows(f, series, (rs.range_ms, tier), &refs, &raw)?
                    }
                    None => self.read_windows(&rs.selector, rs.range_ms, &refs, &raw)?,
                };
                rows.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
                rows
            }
            Plan::Subquery(sq) => {
                let (inner, refs) = self.subquery(sq, steps)?;
                let mut rows = Vec::new();
                for r in inner {
                    rows.extend(per_series(&refs, sq.range_ms, &r.labels, &r.samples)?);
                }
                rows
            }
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "{} needs a range vector argument",
                    f.name()
                )));
            }
        };
        Ok(rows)
    }

    /// The coarsest tier whose buckets answer `f` over windows of `range_ms` ending at every
    /// time of `refs` exactly: the windows must be whole, aligned multiples of its interval.
    fn tier_for(&self, f: WindowFunction, range_ms: i64, refs: &[i64]) -> Option<i64> {
        if !f.composable() {
            return None;
        }
        self.choose_tier(range_ms, refs, |t| range_ms % t == 0)
    }

    /// The coarsest tier on whose boundaries every time of `refs` lies.
    fn tier_for_instants(&self, refs: &[i64]) -> Option<i64> {
        self.choose_tier(self.lookback_ms, refs, |_| true)
    }

    /// Among the tiers that `fits` and on whose boundaries every time of `refs` lies (each
    /// reading from `back` ms before it), the coarsest that is kept as far back as the
    /// query reads; when none is, the one kept longest (tiers may be kept for different
    /// times, and a coarser one that has expired must not hide what a finer one still has).
    fn choose_tier(&self, back: i64, refs: &[i64], fits: impl Fn(i64) -> bool) -> Option<i64> {
        let from = refs.first()?.checked_sub(back)?;
        let candidates: Vec<i64> = self
            .tiers
            .iter()
            .copied()
            .filter(|&t| {
                fits(t)
                    && refs
                        .iter()
                        .all(|r| r.rem_euclid(t) == 0 && r.checked_sub(back).is_some())
            })
            .collect();
        let kept = |t: i64| self.querier.tier_cutoff(self.namespace, t);
        candidates
            .iter()
            .copied()
            .find(|&t| kept(t) <= from)
            .or_else(|| candidates.iter().copied().min_by_key(|&t| kept(t)))
    }

    /// Charges the budget for what reading one series' buckets of `tier` read, and counts
    /// what the tier gave.
    fn charge_rollup(&self, tier: i64, cost: RollupCost) -> Result<()> {
        self.budget.spend(cost.stored + cost.raw_samples)?;
        if cost.stored > 0 {
            self.rollup_buckets
                .fetch_add(cost.stored as u64, Ordering::Relaxed);
            self.rollup_tier.fetch_max(tier, Ordering::Relaxed);
        }
        Ok(())
    }

    /// A composable window function (see [`WindowFunction::eval_buckets`]) over `series`,
    /// read as buckets of the tier `tier`; a series whose buckets cannot give the raw
    /// answer bit for bit is read again raw and evaluated by `raw`.
    fn rolled_windows(
        &self,
        f: WindowFunction,
        series: Vec<SeriesHandle>,
        (range_ms, tier): (i64, i64),
        refs: &[i64],
        raw: WindowFn<'_, Row>,
    ) -> Result<Vec<Row>> {
        let (Some(&lo), Some(&hi)) = (refs.first(), refs.last()) else {
            return Ok(Vec::new());
        };
        let keep_name = f.keeps_metric_name();
        let answers = self
            .querier
            .snapshot(series, lo.saturating_sub(range_ms), hi)
            .for_each_rolled(tier, f.bucket_values(), &|s, buckets, cost| {
                self.charge_rollup(tier, cost)?;
                Ok(match windows_from_buckets(f, buckets, refs, range_ms) {
                    Some(values) => Ok(values.any().then(|| Row {
                        labels: if keep_name {
                            s.labels().clone()
                        } else {
                            s.labels().without(METRIC_NAME)
                        },
                        values,
                    })),
                    None => Err(s.clone()),
                })
            })?;
        let mut rows = Vec::with_capacity(answers.len());
        let mut again = Vec::new();
        for a in answers {
            match a {
                Ok(row) => rows.extend(row),
                Err(series) => again.push(series),
            }
        }
        if !again.is_empty() {
            rows.extend(self.read_windows_of(again, range_ms, refs, raw)?);
        }
        Ok(rows)
    }

    /// Folds window function `f` over `rs`'s series, read as a tier's buckets, into one
    /// accumulator per share of the series (from `init`, a few per query worker), calling
    /// `fold` with each series' labels and values where it has any, without a row per
    /// series. The series are read in the order of their labels, which is the order
    /// [`Evaluator::window_function`]'s rows are aggregated in, and the shares are runs of
    /// that order. `None` — evaluate rows instead — unless the selector names one metric
    /// (so that no two series' rows could share labels), a tier answers `f` exactly at every
    /// step and every series' buckets give the raw answer (when one does not, the rows'
    /// path reads every series again; what this read is given back to the budget and the
    /// statistics, so that each read counts once).
    pub fn fold_rolled_windows<A: Send>(
        &self,
        f: WindowFunction,
        rs: &RangeSelector,
        steps: &[i64],
        init: &(dyn Fn() -> A + Sync),
        fold: &(dyn Fn(&mut A, &Labels, &Points) + Sync),
    ) -> Result<Option<Vec<A>>> {
        let one_metric = rs
            .selector
            .matchers
            .iter()
            .any(|m| m.name == METRIC_NAME && m.op == crate::index::MatchOp::Equal);
        let refs = self.refs(rs.selector.at, rs.selector.offset_ms, steps);
        let (Some(&lo), Some(&hi), true) = (refs.first(), refs.last(), one_metric) else {
            return Ok(None);
        };
        let Some(tier) = self.tier_for(f, rs.range_ms, &refs) else {
            return Ok(None);
        };
        let mut series = self.select(&rs.selector, &refs, rs.range_ms)?;
        // Ordered as the rows would be: by their labels, the metric name left out where `f`
        // drops it (where it comes in a label set depends on the other names).
        if f.keeps_metric_name() {
            series.sort_unstable_by(|a, b| a.labels().cmp(b.labels()));
        } else {
            fn unnamed(s: &SeriesHandle) -> impl Iterator<Item = &crate::model::Label> {
                s.labels().iter().filter(|l| l.name != METRIC_NAME)
            }
            series.sort_unstable_by(|a, b| unnamed(a).cmp(unnamed(b)));
        }
        // What this attempt charged: (samples and buckets, buckets), given back if it is
        // abandoned.
        let charged = (AtomicU64::new(0), AtomicU64::new(0));
        let parts = self
            .querier
            .snapshot(series, lo.saturating_sub(rs.range_ms), hi)
            .fold_rolled(
                (tier, f.bucket_values()),
                &|| (init(), true),
                &|(acc, exact), s, buckets, cost| {
                    self.charge_rollup(tier, cost)?;
                    charged
                        .0
                        .fetch_add((cost.stored + cost.raw_samples) as u64, Ordering::Relaxed);
                    charged.1.fetch_add(cost.stored as u64, Ordering::Relaxed);
                    if *exact {
                        match windows_from_buckets(f, buckets, &refs, rs.range_ms) {
                            Some(values) if values.any() => fold(acc, s.labels(), &values),
                            Some(_) => {}
                            None => *exact = false,
                        }
                    }
                    Ok(())
                },
            )?;
        let folded: Option<Vec<A>> = parts
            .into_iter()
            .map(|(acc, exact)| exact.then_some(acc))
            .collect();
        if folded.is_none() {
            self.budget.refund(charged.0.into_inner());
            self.rollup_buckets
                .fetch_sub(charged.1.into_inner(), Ordering::Relaxed);
        }
        Ok(folded)
    }

    /// `max` over every series of one metric of `max_over_time` (or `min` of
    /// `min_over_time`, as `f` is) at each step, where segments' metric rollups give it
    /// exactly (`engine/read/metric.rs`): per step, `Some` of the value (or of none, where
    /// no series has a sample in the window) or `None` where it must be computed series by
    /// series — the window reaches data held elsewhere (the head, an overlapping segment) or
    /// its extreme is a NaN or a zero, whose bits depend on the series' order. `None`
    /// altogether unless the selector is the metric's name alone, a tier answers every
    /// step's window and some segment in the range keeps the metric's rollups.
    pub fn metric_extremes(
        &self,
        f: WindowFunction,
        rs: &RangeSelector,
        steps: &[i64],
    ) -> Result<Option<Vec<Option<Option<f64>>>>> {
        let max = match f {
            WindowFunction::MaxOverTime => true,
            WindowFunction::MinOverTime => false,
            _ => return Ok(None),
        };
        let fold: fn(f64, f64) -> f64 = if max {
            rollup::fold_max
        } else {
            rollup::fold_min
        };
        let pick = |b: &MetricBucket| if max { b.max } else { b.min };
        let at_start = |b: &MetricBucket| b.at_start.map(|(hi, lo)| if max { hi } else { lo });
        let [m] = rs.selector.matchers.as_slice() else {
            return Ok(None);
        };
        if m.name != METRIC_NAME || m.op != crate::index::MatchOp::Equal {
            return Ok(None);
        }
        let refs = self.refs(rs.selector.at, rs.selector.offset_ms, steps);
        let (Some(&lo), Some(&hi)) = (refs.first(), refs.last()) else {
            return Ok(None);
        };
        let Some(tier) = self.tier_for(f, rs.range_ms, &refs) else {
            return Ok(None);
        };
        let range = rs.range_ms;
        if !self
            .querier
            .keeps_metric_rollups(lo.saturating_sub(range), hi, tier)
        {
            return Ok(None);
        }
        // Charged below only if no step is left to the series' path, which charges its own.
        let series = self.select_uncharged(&rs.selector, &refs, range)?;
        let selected = series.len();
        let rollups = self
            .querier
            .snapshot(series, lo.saturating_sub(range), hi)
            .metric_rollups(self.namespace, &m.value, tier)?;
        if rollups.sources.is_empty() {
            return Ok(None);
        }
        let mut used = 0usize;
        let mut window = |r: i64| -> Option<Option<f64>> {
            let from = r.checked_sub(range)?;
            if from < rollups.from || rollups.elsewhere_in(from, r) {
                return None;
            }
            let inside: Vec<&MetricSource> = rollups
                .sources
                .iter()
                .filter(|s| s.first <= r && s.last >= from)
                .collect();
            // Two segments holding the metric at one time within the window: the newer
            // may correct the older's samples, which their rollups cannot tell.
            for (i, a) in inside.iter().enumerate() {
                for b in inside.iter().skip(i + 1) {
                    if a.first.max(b.first).max(from) <= a.last.min(b.last).min(r) {
                        return None;
                    }
                }
            }
            let mut extreme: Option<f64> = None;
            let mut add = |v: f64| extreme = Some(extreme.map_or(v, |e| fold(e, v)));
            for s in inside {
                let first = s.buckets.partition_point(|b| b.start < from);
                for b in s.buckets.get(first..).unwrap_or_default() {
                    if b.start < r {
                        add(pick(b));
                        used += 1;
                    } else {
                        if b.start == r {
                            at_start(b).map(&mut add);
                        }
                        break;
                    }
                }
            }
            match extreme {
                None => Some(None),
                Some(v) if v.is_nan() || v == 0.0 => None,
                Some(v) => Some(Some(v)),
            }
        };
        let values: Vec<Option<Option<f64>>> = refs.iter().map(|&r| window(r)).collect();
        if values.iter().all(Option::is_some) {
            self.charge_series(selected, refs.len())?;
        }
        self.charge_rollup(
            tier,
            RollupCost {
                stored: used,
                raw_samples: 0,
            },
        )?;
        Ok(Some(values))
    }

    /// Evaluates a subquery's inner expression on its own grid (multiples of its step)
    /// covering every step's window; returns its series as samples and each step's ref time.
    pub fn subquery(&self, sq: &Subquery, steps: &[i64]) -> Result<(Vec<RangeRow>, Vec<i64>)> {
        let refs = self.refs(sq.at, sq.offset_ms, steps);
        let step = sq.step_ms.unwrap_or(DEFAULT_SUBQUERY_STEP_MS);
        let (Some(&lo), Some(&hi)) = (refs.iter().min(), refs.iter().max()) else {
            return Ok((Vec::new(), refs));
        };
        let from = i128::from(lo) - i128::from(sq.range_ms);
        let step128 = i128::from(step);
        // The first multiple of the step at or after `from`.
        let first = from.div_euclid(step128) * step128
            + if from.rem_euclid(step128) == 0 {
                0
            } else {
                step128
            };
        let count = if i128::from(hi) < first {
            0
        } else {
            (i128::from(hi) - first) / step128 + 1
        };
        let max = self.budget.limits().max_points_per_series as i128;
        if count > max {
            return Err(Error::ResourceExhausted {
                limit: Limit::QueryMaxPointsPerSeries,
                detail: format!(
                    "a subquery would evaluate {count} steps, the limit is {max}; use a larger subquery step"
                ),
            });
        }
        let grid: Vec<i64> = (0..count).map(|i| (first + i * step128) as i64).collect();
        if grid.is_empty() {
            return Ok((Vec::new(), refs));
        }
        let rows = self.eval_vector(&sq.expr, &grid)?;
        let rows = rows
            .into_iter()
            .map(|r| RangeRow {
                labels: r.labels,
                samples: grid
                    .iter()
                    .zip(r.values.iter())
                    .filter_map(|(&t, v)| v.map(|v| Sample { t, v }))
                    .collect(),
            })
            .collect();
        Ok((rows, refs))
    }
}

/// The Prometheus name of a value's type.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Scalar(_) => "scalar",
        Value::String(_) => "string",
        Value::Vector(_) => "instant vector",
        Value::Matrix(_) => "range vector",
    }
}

/// `f` at every time of `refs` (ascending, each a multiple of the buckets' interval) over
/// the window `[ref − range_ms, ref]`, from one series' buckets; `None` when some window
/// cannot be composed exactly.
fn windows_from_buckets(
    f: WindowFunction,
    buckets: &[Bucket],
    refs: &[i64],
    range_ms: i64,
) -> Option<Points> {
    // `max_over_time` and `min_over_time` over windows of at most one bucket (an hourly
    // window on the hourly tier: the commonest long-range panel) are composed by a loop of
    // their own, each with its extreme and fold inlined, as `eval_buckets` composes them.
    match f {
        WindowFunction::MaxOverTime => {
            extremes_from_buckets(f, buckets, refs, range_ms, |b| b.max, rollup::fold_max)
        }
        WindowFunction::MinOverTime => {
            extremes_from_buckets(f, buckets, refs, range_ms, |b| b.min, rollup::fold_min)
        }
        _ => windows_by(buckets, refs, range_ms, |window, boundary, from, r| {
            f.eval_buckets(window, boundary, from, r)
        }),
    }
}

/// Each step's value from the buckets of its window (those starting in `[r - range, r)`)
/// and the sample at its closing instant `r` where one lies exactly there (the first of
/// the next bucket), by `eval(window, boundary, from, r)`; `None` where `eval` says the
/// buckets cannot give the raw answer.
#[inline(always)]
fn windows_by(
    buckets: &[Bucket],
    refs: &[i64],
    range_ms: i64,
    mut eval: impl FnMut(&[Bucket], Option<Sample>, i64, i64) -> Option<Option<f64>>,
) -> Option<Points> {
    let mut values = Points::with_capacity(refs.len());
    let (mut lo, mut hi) = (0usize, 0usize);
    for &r in refs {
        let from = r.saturating_sub(range_ms);
        while buckets.get(hi).is_some_and(|b| b.start < r) {
            hi += 1;
        }
        while buckets.get(lo).is_some_and(|b| b.start < from) {
            lo += 1;
        }
        let window = buckets.get(lo..hi.max(lo)).unwrap_or(&[]);
        let boundary = buckets
            .get(hi)
            .filter(|b| b.start == r && b.count > 0 && b.first.t == r)
            .map(|b| b.first);
        values.push(eval(window, boundary, from, r)?);
    }
    Some(values)
}

/// [`windows_by`] for `f`, `max_over_time` (`extreme` the bucket's maximum, `fold` the fold
/// that keeps the first maximum) or `min_over_time`: a window of one bucket or none is
/// composed here, a wider one by `eval_buckets`.
#[inline(always)]
fn extremes_from_buckets(
    f: WindowFunction,
    buckets: &[Bucket],
    refs: &[i64],
    range_ms: i64,
    extreme: impl Fn(&Bucket) -> f64,
    fold: impl Fn(f64, f64) -> f64,
) -> Option<Points> {
    windows_by(buckets, refs, range_ms, |window, boundary, from, r| {
        let live = match window {
            [] => None,
            [b] => Some(b).filter(|b| b.count > 0),
            _ => return f.eval_buckets(window, boundary, from, r),
        };
        Some(
            boundary
                .map(|s| s.v)
                .or(live.map(|b| b.last.v))
                .map(|last| {
                    let m = live.map_or(last, |b| fold(last, extreme(b)));
                    boundary.map_or(m, |s| fold(m, s.v))
                }),
        )
    })
}

/// The latest live sample at or before `r` within `lookback`, from buckets (sorted by
/// start) of which `buckets[next]` is the first starting at or after `r`; `None` when there
/// is none or the latest sample is a stale marker.
fn latest_from_buckets(buckets: &[Bucket], next: usize, r: i64, lookback: i64) -> Option<Sample> {
    if let Some(at) = buckets.get(next).filter(|b| b.start == r) {
        if at.has(rollup::STARTS_STALE) {
            return None;
        }
        if at.count > 0 && at.first.t == r {
            return Some(at.first);
        }
    }
    let before = buckets.get(next.checked_sub(1)?)?;
    (!before.has(rollup::ENDS_STALE) && before.count > 0 && before.last.t >= r - lookback)
        .then_some(before.last)
}
