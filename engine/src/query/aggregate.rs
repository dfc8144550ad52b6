//! Aggregation across series at each step, grouped `by` or `without` labels: every
//! aggregation operator of Prometheus 2.42, computed as it computes them (its incremental
//! mean and variance, its NaN rules, its `topk` order).

use std::cmp::Ordering;
use std::collections::HashMap;

use super::Budget;
use super::eval::Evaluator;
use super::plan::{Aggregate, AggregateOp, Grouping};
use super::value::{Points, Row, Value};
use super::window::quantile;
use crate::model::{Labels, METRIC_NAME, is_valid_label_name};
use crate::{Error, Result};

impl Grouping {
    /// The group a series with `labels` falls in.
    pub fn group_of(&self, labels: &Labels) -> Labels {
        match self {
            Grouping::By(names) => labels.keep_only(names),
            Grouping::Without(names) => labels.without_all(names).without(METRIC_NAME),
        }
    }
}

/// Evaluates an aggregation at every step.
pub fn aggregate(ev: &Evaluator<'_, '_>, a: &Aggregate, steps: &[i64]) -> Result<Value> {
    let param = match (&a.param, a.op) {
        (Some(p), AggregateOp::CountValues) => match ev.eval(p, steps)? {
            Value::String(s) => Param::Label(s),
            _ => {
                return Err(Error::InvalidArgument(
                    "count_values needs a label name".into(),
                ));
            }
        },
        (Some(p), _) => Param::Scalar(ev.eval_scalar(p, steps)?),
        (None, _) => Param::None,
    };
    if let Param::None = param
        && let Some(rows) = by_metric_rollups(ev, a, steps)?
    {
        return Ok(Value::Vector(rows));
    }
    aggregate_series(ev, a, steps, param)
}

/// [`aggregate`] of the series the expression gives, with its parameter evaluated.
fn aggregate_series(
    ev: &Evaluator<'_, '_>,
    a: &Aggregate,
    steps: &[i64],
    param: Param,
) -> Result<Value> {
    if let Param::None = param
        && let Some(rows) = folded(ev, a, steps)?
    {
        return Ok(Value::Vector(rows));
    }
    let rows = ev.eval_vector(&a.expr, steps)?;
    let rows = match (a.op, param) {
        (AggregateOp::CountValues, Param::Label(label)) => {
            count_values(ev.budget(), &a.grouping, &label, rows, steps.len())?
        }
        (AggregateOp::Topk | AggregateOp::Bottomk, Param::Scalar(k)) => {
            select_k(a.op, &a.grouping, rows, &k, steps.len())?
        }
        (op, param) => {
            let q = match param {
                Param::Scalar(q) => q,
                _ => Vec::new(),
            };
            reduce(op, &a.grouping, rows, &q, steps.len())
        }
    };
    Ok(Value::Vector(rows))
}

enum Param {
    None,
    Scalar(Vec<f64>),
    Label(String),
}

/// `max(max_over_time(metric[range]))` or `min(min_over_time(…))`, of a metric named
/// alone, from segments' metric rollups wherever they answer a step exactly (see
/// [`Evaluator::metric_extremes`]); the other steps are aggregated series by series.
/// `None`: not this shape, or no tier answers it.
fn by_metric_rollups(
    ev: &Evaluator<'_, '_>,
    a: &Aggregate,
    steps: &[i64],
) -> Result<Option<Vec<Row>>> {
    use super::plan::{Function, Plan};
    use super::window::WindowFunction;
    let Plan::Call(call) = &*a.expr else {
        return Ok(None);
    };
    let (Function::Window(f), [Plan::Range(rs)]) = (call.func, call.args.as_slice()) else {
        return Ok(None);
    };
    let matching = matches!(
        (a.op, f),
        (AggregateOp::Max, WindowFunction::MaxOverTime)
            | (AggregateOp::Min, WindowFunction::MinOverTime)
    );
    let ungrouped = matches!(&a.grouping, Grouping::By(names) if names.is_empty());
    if !matching || !ungrouped || a.param.is_some() {
        return Ok(None);
    }
    let Some(per_step) = ev.metric_extremes(f, rs, steps)? else {
        return Ok(None);
    };
    let mut values = Points::with_capacity(steps.len());
    let mut rest = Vec::new();
    for (i, v) in per_step.into_iter().enumerate() {
        if v.is_none() {
            rest.push(i);
        }
        values.push(v.flatten());
    }
    if !rest.is_empty() {
        let rest_steps: Vec<i64> = rest.iter().filter_map(|&i| steps.get(i).copied()).collect();
        if let Value::Vector(rows) = aggregate_series(ev, a, &rest_steps, Param::None)?
            && let Some(row) = rows.first()
        {
            for (j, &i) in rest.iter().enumerate() {
                values.set(i, row.values.get(j));
            }
        }
    }
    Ok(Some(if values.any() {
        vec![Row {
            labels: Labels::default(),
            values,
        }]
    } else {
        Vec::new()
    }))
}

/// `max`, `min`, `count` or `group` of a window function of one metric's series that a
/// rollup tier answers, folded as the series are read instead of holding a row per series
/// (the busiest camera hour over a month at ×1 is 6,000 series × 720 steps). Each worker
/// folds a run of the series in the order the rows would come in; runs combine in that
/// order, which for these operators gives what one fold over the rows gives, bit for bit
/// (the first of equal values kept, NaN only where every value is NaN, the last NaN's
/// payload then). `None`: evaluate rows (see [`Evaluator::fold_rolled_windows`]).
fn folded(ev: &Evaluator<'_, '_>, a: &Aggregate, steps: &[i64]) -> Result<Option<Vec<Row>>> {
    use super::plan::{Function, Plan};
    let op = a.op;
    if !matches!(
        op,
        AggregateOp::Max | AggregateOp::Min | AggregateOp::Count | AggregateOp::Group
    ) {
        return Ok(None);
    }
    let Plan::Call(call) = &*a.expr else {
        return Ok(None);
    };
    let (Function::Window(f), [Plan::Range(rs)]) = (call.func, call.args.as_slice()) else {
        return Ok(None);
    };
    // A row's labels lack the metric name where `f` drops it; only `by (__name__)` sees that.
    let unnamed = !f.keeps_metric_name()
        && matches!(&a.grouping, Grouping::By(names) if names.iter().any(|n| n == METRIC_NAME));
    let fold = |groups: &mut Groups, labels: &Labels, values: &Points| {
        let group = if unnamed {
            a.grouping.group_of(&labels.without(METRIC_NAME))
        } else {
            a.grouping.group_of(labels)
        };
        groups.add(op, group, values, steps.len());
    };
    let Some(parts) = ev.fold_rolled_windows(f, rs, steps, &Groups::default, &fold)? else {
        return Ok(None);
    };
    let mut all = Groups::default();
    for part in parts {
        for (labels, states) in part.order {
            let into = all.states(labels, steps.len()).into_iter().flatten();
            for (state, other) in into.zip(&states) {
                state.merge(op, other);
            }
        }
    }
    Ok(Some(all.into_rows(op)))
}

/// Running states per group and step, the groups in order of first appearance.
#[derive(Default)]
struct Groups {
    index: HashMap<Labels, usize>,
    order: Vec<(Labels, Vec<Running>)>,
}

impl Groups {
    /// The states of `group`, added after the others if it is new.
    fn states(&mut self, group: Labels, steps: usize) -> Option<&mut Vec<Running>> {
        let i = match self.index.get(&group) {
            Some(&i) => i,
            None => {
                self.index.insert(group.clone(), self.order.len());
                self.order.push((group, vec![Running::default(); steps]));
                self.order.len() - 1
            }
        };
        self.order.get_mut(i).map(|(_, states)| states)
    }

    /// Adds a row's `values` to its group's states.
    fn add(&mut self, op: AggregateOp, group: Labels, values: &Points, steps: usize) {
        let states = self.states(group, steps).into_iter().flatten();
        for (state, v) in states.zip(values.iter()) {
            if let Some(v) = v {
                state.add(op, v);
            }
        }
    }

    /// One row per group that has a value at some step.
    fn into_rows(self, op: AggregateOp) -> Vec<Row> {
        self.order
            .into_iter()
            .map(|(labels, per_step)| Row {
                labels,
                values: per_step.iter().map(|s| s.result(op)).collect(),
            })
            .filter(|r| !r.is_empty())
            .collect()
    }
}

/// Groups in order of first appearance, and each row's group.
fn groups(grouping: &Grouping, rows: &[Row]) -> (Vec<Labels>, Vec<usize>) {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut order = Vec::new();
    let member = rows
        .iter()
        .map(|r| {
            let g = grouping.group_of(&r.labels);
            *index.entry(g.clone()).or_insert_with(|| {
                order.push(g);
                order.len() - 1
            })
        })
        .collect();
    (order, member)
}

/// The operators that make one value per group. All but `quantile` keep one running state
/// per group and step, fed row by row in input order (the order Prometheus adds in, so sums
/// agree to the last bit); `quantile` collects the values.
fn reduce(
    op: AggregateOp,
    grouping: &Grouping,
    rows: Vec<Row>,
    q: &[f64],
    steps: usize,
) -> Vec<Row> {
    if op == AggregateOp::Quantile {
        let (order, member) = groups(grouping, &rows);
        let mut values: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); steps]; order.len()];
        for (row, &g) in rows.iter().zip(&member) {
            let Some(group) = values.get_mut(g) else {
                continue;
            };
            for (slot, v) in group.iter_mut().zip(row.values.iter()) {
                if let Some(v) = v {
                    slot.push(v);
                }
            }
        }
        return order
            .into_iter()
            .zip(values)
            .map(|(labels, per_step)| Row {
                labels,
                values: per_step
                    .into_iter()
                    .enumerate()
                    .map(|(i, vs)| {
                        (!vs.is_empty())
                            .then(|| quantile(q.get(i).copied().unwrap_or(f64::NAN), vs))
                    })
                    .collect(),
            })
            .filter(|r| !r.is_empty())
            .collect();
    }
    let mut all = Groups::default();
    for row in &rows {
        all.add(op, grouping.group_of(&row.labels), &row.values, steps);
    }
    all.into_rows(op)
}

/// One group's running aggregate at one step, updated as Prometheus 2.42 updates it: the
/// first value starts it (so a lone ±Inf has variance 0, not NaN), `avg` is the incremental
/// mean that cannot overflow, `min`/`max` skip NaN unless every value is NaN.
#[derive(Debug, Clone, Copy, Default)]
struct Running {
    count: f64,
    value: f64,
    mean: f64,
}

impl Running {
    #[inline]
    fn add(&mut self, op: AggregateOp, v: f64) {
        self.count += 1.0;
        if self.count == 1.0 {
            self.value = if matches!(op, AggregateOp::Stddev | AggregateOp::Stdvar) {
                0.0
            } else {
                v
            };
            self.mean = v;
            return;
        }
        match op {
            AggregateOp::Sum => self.value += v,
            AggregateOp::Min if self.value > v || self.value.is_nan() => self.value = v,
            AggregateOp::Max if self.value < v || self.value.is_nan() => self.value = v,
            AggregateOp::Avg => {
                if self.mean.is_infinite() {
                    if v.is_infinite() && (self.mean > 0.0) == (v > 0.0) {
                        return;
                    }
                    if !v.is_infinite() && !v.is_nan() {
                        return;
                    }
                }
                self.mean += v / self.count - self.mean / self.count;
            }
            AggregateOp::Stddev | AggregateOp::Stdvar => {
                let delta = v - self.mean;
                self.mean += delta / self.count;
                self.value += delta * (v - self.mean);
            }
            _ => {}
        }
    }

    /// Adds what `other` folded after what this one folded (`max`, `min`, `count` and
    /// `group` only: see [`folded`]).
    fn merge(&mut self, op: AggregateOp, other: &Running) {
        if other.count == 0.0 {
            return;
        }
        if self.count == 0.0 {
            *self = *other;
            return;
        }
        match op {
            AggregateOp::Max | AggregateOp::Min => {
                let count = self.count + other.count;
                self.add(op, other.value);
                self.count = count;
            }
            _ => self.count += other.count,
        }
    }

    fn result(&self, op: AggregateOp) -> Option<f64> {
        if self.count == 0.0 {
            return None;
        }
        Some(match op {
            AggregateOp::Avg => self.mean,
            AggregateOp::Count => self.count,
            AggregateOp::Group => 1.0,
            AggregateOp::Stdvar => self.value / self.count,
            AggregateOp::Stddev => (self.value / self.count).sqrt(),
            _ => self.value,
        })
    }
}

/// One group's value at one step from its values in input order (the structured API's
/// reference model in the property tests uses it).
pub(crate) fn one_value(op: AggregateOp, vs: &[f64], q: f64) -> f64 {
    if op == AggregateOp::Quantile {
        return quantile(q, vs.to_vec());
    }
    let mut state = Running::default();
    for &v in vs {
        state.add(op, v);
    }
    state.result(op).unwrap_or(f64::NAN)
}

/// `topk` / `bottomk`: the k largest (smallest) series of each group at each step, with
/// their own labels. Chosen exactly as Prometheus 2.42 chooses them — a binary heap fed in
/// input order, NaN ranking below every number — so that ties and NaN pick the same series;
/// an instant query lists each group's series best first.
fn select_k(
    op: AggregateOp,
    grouping: &Grouping,
    rows: Vec<Row>,
    k: &[f64],
    steps: usize,
) -> Result<Vec<Row>> {
    let (order, member) = groups(grouping, &rows);
    let mut by_group: Vec<Vec<usize>> = vec![Vec::new(); order.len()];
    for (i, &g) in member.iter().enumerate() {
        if let Some(m) = by_group.get_mut(g) {
            m.push(i);
        }
    }
    let top = op == AggregateOp::Topk;
    let mut kept: Vec<Points> = vec![Points::none(steps); rows.len()];
    // For a single step, the output order: group by group, best first.
    let mut ordered: Vec<usize> = Vec::new();
    let mut heap = KHeap::new(top);
    for step in 0..steps {
        let kf = k.get(step).copied().unwrap_or(f64::NAN);
        if !(kf >= i64::MIN as f64 && kf <= i64::MAX as f64) {
            return Err(Error::Execution(format!(
                "Scalar value {kf} overflows int64"
            )));
        }
        let kk = kf as i64;
        if kk < 1 {
            continue;
        }
        for members in &by_group {
            heap.clear();
            for &i in members {
                if let Some(v) = rows.get(i).and_then(|r| r.values.get(step)) {
                    heap.offer(kk, i, v);
                }
            }
            for (i, v) in heap.best_first() {
                if let Some(points) = kept.get_mut(i) {
                    points.set(step, Some(v));
                }
                if steps == 1 {
                    ordered.push(i);
                }
            }
        }
    }
    let mut rows: Vec<Option<Row>> = rows
        .into_iter()
        .zip(kept)
        .map(|(r, values)| {
            Some(Row {
                labels: r.labels,
                values,
            })
        })
        .collect();
    if steps == 1 {
        return Ok(ordered
            .into_iter()
            .filter_map(|i| rows.get_mut(i).and_then(Option::take))
            .collect());
    }
    Ok(rows
        .into_iter()
        .flatten()
        .filter(|r| !r.is_empty())
        .collect())
}

/// Go's `container/heap` over (row, value) with Prometheus' orders: for `topk` the smallest
/// on top (`vectorByValueHeap`), for `bottomk` the largest (`vectorByReverseValueHeap`);
/// NaN is "less" than anything in both.
struct KHeap {
    top: bool,
    items: Vec<(usize, f64)>,
}

impl KHeap {
    fn new(top: bool) -> Self {
        KHeap {
            top,
            items: Vec::new(),
        }
    }

    fn clear(&mut self) {
        self.items.clear();
    }

    fn less(&self, i: usize, j: usize) -> bool {
        let (Some(a), Some(b)) = (self.items.get(i), self.items.get(j)) else {
            return false;
        };
        // As Prometheus: a NaN is "less" than anything, another NaN included.
        if a.1.is_nan() {
            return true;
        }
        if self.top { a.1 < b.1 } else { a.1 > b.1 }
    }

    fn up(&mut self, mut j: usize) {
        while j > 0 {
            let i = (j - 1) / 2;
            if !self.less(j, i) {
                break;
            }
            self.items.swap(i, j);
            j = i;
        }
    }

    fn down(&mut self, i0: usize, n: usize) {
        let mut i = i0;
        loop {
            let j1 = 2 * i + 1;
            if j1 >= n {
                break;
            }
            let mut j = j1;
            if j1 + 1 < n && self.less(j1 + 1, j1) {
                j = j1 + 1;
            }
            if !self.less(j, i) {
                break;
            }
            self.items.swap(i, j);
            i = j;
        }
    }

    fn push(&mut self, row: usize, v: f64) {
        self.items.push((row, v));
        let last = self.items.len() - 1;
        self.up(last);
    }

    fn pop(&mut self) {
        let n = self.items.len().saturating_sub(1);
        self.items.swap(0, n);
        self.down(0, n);
        self.items.pop();
    }

    /// Prometheus 2.42's per-sample step of `topk`/`bottomk`: room left, or a better value
    /// than the top, or a NaN top: pop the top (k > 1) or replace it (k = 1), then push.
    fn offer(&mut self, k: i64, row: usize, v: f64) {
        let full = self.items.len() as i64 >= k;
        let head = self.items.first().map_or(f64::NAN, |h| h.1);
        let better = if self.top { head < v } else { head > v };
        if full && !better && !head.is_nan() {
            return;
        }
        if full {
            if k == 1 {
                if let Some(first) = self.items.first_mut() {
                    *first = (row, v);
                }
                return;
            }
            self.pop();
        }
        self.push(row, v);
    }

    /// The kept series, best first (Prometheus sorts the heap in reverse).
    fn best_first(&self) -> Vec<(usize, f64)> {
        let mut out = self.items.clone();
        let top = self.top;
        out.sort_by(|a, b| {
            let less =
                |x: f64, y: f64| (x.is_nan() && !y.is_nan()) || if top { x < y } else { x > y };
            if less(b.1, a.1) {
                Ordering::Less
            } else if less(a.1, b.1) {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        });
        out
    }
}

/// Prometheus' float formatting for label values (`strconv.FormatFloat(v, 'f', -1, 64)`).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// `count_values("label", v)`: per group, how many series have each value.
fn count_values(
    budget: &Budget,
    grouping: &Grouping,
    label: &str,
    rows: Vec<Row>,
    steps: usize,
) -> Result<Vec<Row>> {
    if !is_valid_label_name(label) {
        return Err(Error::Execution(format!("invalid label name {label:?}")));
    }
    let grouping = match grouping {
        Grouping::By(names) => {
            let mut names = names.clone();
            names.push(label.to_string());
            Grouping::By(names)
        }
        without => without.clone(),
    };
    let mut out: Vec<Row> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for step in 0..steps {
        for row in &rows {
            let Some(v) = row.values.get(step) else {
                continue;
            };
            let labels = grouping.group_of(&row.labels.with(label, &format_value(v)));
            if !index.contains_key(&labels) {
                budget.check_points(out.len() + 1, steps)?;
            }
            let slot = *index.entry(labels.clone()).or_insert_with(|| {
                out.push(Row {
                    labels,
                    values: Points::none(steps),
                });
                out.len() - 1
            });
            if let Some(r) = out.get_mut(slot) {
                let count = r.values.get(step).unwrap_or(0.0) + 1.0;
                r.values.set(step, Some(count));
            }
        }
    }
    Ok(out)
}
