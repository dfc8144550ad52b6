//! Function calls: dispatch to the range-vector functions ([`super::window`]) and the
//! functions of instant vectors and scalars — math, clamping, calendar fields, `label_*`,
//! `histogram_quantile`, `absent`, `sort`, `timestamp` and the conversions.

use regex::Regex;

use super::calendar::calendar_field;
use super::eval::Evaluator;
use super::histogram::histogram_quantile;
use super::plan::{Call, Function, InstantFunction, Plan, Trig};
use super::value::{Points, Row, Value, check_unique_labels, merge_same_labels};
use crate::index::MatchOp;
use crate::model::{Labels, METRIC_NAME, echo, is_valid_label_name};
use crate::{Error, Result};

/// Evaluates a function call at every step.
pub fn call(ev: &Evaluator<'_, '_>, c: &Call, steps: &[i64]) -> Result<Value> {
    let arg = |i: usize| {
        c.args
            .get(i)
            .ok_or_else(|| Error::InvalidArgument("missing function argument".into()))
    };
    let string_arg = |i: usize| match arg(i)? {
        Plan::String(s) => Ok(s.as_str()),
        _ => Err(Error::InvalidArgument("expected a string argument".into())),
    };
    Ok(match c.func {
        Function::Window(f) => {
            let range = f.range_arg();
            let params = c
                .args
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != range)
                .map(|(_, p)| ev.eval_scalar(p, steps))
                .collect::<Result<Vec<_>>>()?;
            let rows = ev.window_function(f, arg(range)?, &params, steps)?;
            // Prometheus checks a range-vector function's whole result, not step by step.
            check_unique_labels(&rows)?;
            Value::Vector(rows)
        }
        Function::AbsentOverTime => {
            let range = arg(0)?;
            let present = ev.window_function(
                super::window::WindowFunction::PresentOverTime,
                range,
                &[],
                steps,
            )?;
            absent(range, &present, steps)
        }
        Function::Absent => {
            let v = arg(0)?;
            let rows = ev.eval_vector(v, steps)?;
            absent(v, &rows, steps)
        }
        Function::Time => Value::Scalar(steps.iter().map(|&t| t as f64 / 1000.0).collect()),
        Function::Pi => Value::Scalar(vec![std::f64::consts::PI; steps.len()]),
        Function::Vector => Value::Vector(vec![Row {
            labels: Labels::default(),
            values: ev
                .eval_scalar(arg(0)?, steps)?
                .into_iter()
                .map(Some)
                .collect(),
        }]),
        Function::Scalar => {
            let rows = ev.eval_vector(arg(0)?, steps)?;
            Value::Scalar(
                (0..steps.len())
                    .map(|i| {
                        let mut present = rows.iter().filter_map(|r| r.values.get(i));
                        match (present.next(), present.next()) {
                            (Some(v), None) => v,
                            _ => f64::NAN,
                        }
                    })
                    .collect(),
            )
        }
        Function::Timestamp => {
            let rows = match arg(0)? {
                // The sample's own time, not the step's.
                Plan::Selector(sel) => ev.instant_selector(sel, steps, true)?,
                other => ev
                    .eval_vector(other, steps)?
                    .into_iter()
                    .map(|r| Row {
                        values: r
                            .values
                            .iter()
                            .zip(steps)
                            .map(|(v, &t)| v.map(|_| t as f64 / 1000.0))
                            .collect(),
                        labels: r.labels,
                    })
                    .collect(),
            };
            Value::Vector(merge_same_labels(drop_names(rows))?)
        }
        Function::Sort | Function::SortDesc => {
            let mut rows = ev.eval_vector(arg(0)?, steps)?;
            if steps.len() == 1 {
                let desc = c.func == Function::SortDesc;
                let key = |r: &Row| r.values.get(0).unwrap_or(f64::NAN);
                rows.sort_by(|a, b| {
                    let (a, b) = (key(a), key(b));
                    match (a.is_nan(), b.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if desc => b.total_cmp(&a),
                        _ => a.total_cmp(&b),
                    }
                });
            }
            Value::Vector(rows)
        }
        Function::LabelReplace => {
            let rows = ev.eval_vector(arg(0)?, steps)?;
            let (dst, replacement, src, regex) = (
                string_arg(1)?,
                string_arg(2)?,
                string_arg(3)?,
                string_arg(4)?,
            );
            Value::Vector(merge_same_labels(label_replace(
                rows,
                dst,
                replacement,
                src,
                regex,
            )?)?)
        }
        Function::LabelJoin => {
            let rows = ev.eval_vector(arg(0)?, steps)?;
            let (dst, sep) = (string_arg(1)?, string_arg(2)?);
            let src = (3..c.args.len())
                .map(string_arg)
                .collect::<Result<Vec<_>>>()?;
            Value::Vector(merge_same_labels(label_join(rows, dst, sep, &src)?)?)
        }
        Function::HistogramQuantile => {
            let q = ev.eval_scalar(arg(0)?, steps)?;
            let rows = ev.eval_vector(arg(1)?, steps)?;
            Value::Vector(merge_same_labels(histogram_quantile(
                &q,
                rows,
                steps.len(),
            ))?)
        }
        Function::NativeHistogram => {
            // Float samples are not native histograms: nothing to answer.
            for a in &c.args {
                ev.eval(a, steps)?;
            }
            Value::Vector(Vec::new())
        }
        Function::Instant(f) => {
            let rows = match (f, c.args.first()) {
                // Calendar functions default to `vector(time())`.
                (InstantFunction::Calendar(_), None) => vec![Row {
                    labels: Labels::default(),
                    values: steps.iter().map(|&t| Some(t as f64 / 1000.0)).collect(),
                }],
                _ => ev.eval_vector(arg(0)?, steps)?,
            };
            let params = c
                .args
                .iter()
                .skip(1)
                .map(|p| ev.eval_scalar(p, steps))
                .collect::<Result<Vec<_>>>()?;
            let rows = rows
                .into_iter()
                .map(|r| Row {
                    values: r
                        .values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| {
                            let p = |j: usize| params.get(j).and_then(|p| p.get(i)).copied();
                            v.and_then(|v| instant(f, v, p))
                        })
                        .collect(),
                    labels: r.labels.without(METRIC_NAME),
                })
                .collect();
            Value::Vector(merge_same_labels(rows)?)
        }
    })
}

fn drop_names(rows: Vec<Row>) -> Vec<Row> {
    rows.into_iter()
        .map(|r| Row {
            labels: r.labels.without(METRIC_NAME),
            values: r.values,
        })
        .collect()
}

/// Go's `math.Max`: NaN wins.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Go's `math.Min`: NaN wins.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// One element of an instant-vector function; `None` drops it (`clamp` with max < min).
fn instant(f: InstantFunction, v: f64, p: impl Fn(usize) -> Option<f64>) -> Option<f64> {
    use InstantFunction as I;
    Some(match f {
        I::Abs => v.abs(),
        I::Ceil => v.ceil(),
        I::Floor => v.floor(),
        I::Exp => v.exp(),
        I::Sqrt => v.sqrt(),
        I::Ln => v.ln(),
        I::Log2 => v.log2(),
        I::Log10 => v.log10(),
        I::Sgn => {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        }
        I::Round => {
            let inverse = 1.0 / p(0).unwrap_or(1.0);
            (v * inverse + 0.5).floor() / inverse
        }
        I::Clamp => {
            let (min, max) = (p(0)?, p(1)?);
            if max < min {
                return None;
            }
            go_max(min, go_min(max, v))
        }
        I::ClampMin => go_max(p(0)?, v),
        I::ClampMax => go_min(p(0)?, v),
        I::Deg => v * 180.0 / std::f64::consts::PI,
        I::Rad => v * std::f64::consts::PI / 180.0,
        I::Trig(t) => match t {
            Trig::Acos => v.acos(),
            Trig::Acosh => v.acosh(),
            Trig::Asin => v.asin(),
            Trig::Asinh => v.asinh(),
            Trig::Atan => v.atan(),
            Trig::Atanh => v.atanh(),
            Trig::Cos => v.cos(),
            Trig::Cosh => v.cosh(),
            Trig::Sin => v.sin(),
            Trig::Sinh => v.sinh(),
            Trig::Tan => v.tan(),
            Trig::Tanh => v.tanh(),
        },
        I::Calendar(c) => calendar_field(c, v),
    })
}

/// `absent` / `absent_over_time`: 1 at the steps where `rows` has nothing, with the labels
/// of the argument's equality matchers (a label matched twice is left out, as in Prometheus).
fn absent(arg: &Plan, rows: &[Row], steps: &[i64]) -> Value {
    let matchers = match arg {
        Plan::Selector(s) => s.matchers.as_slice(),
        Plan::Range(r) => r.selector.matchers.as_slice(),
        _ => &[],
    };
    let mut labels = Labels::default();
    let mut seen: Vec<&str> = Vec::new();
    for m in matchers.iter().filter(|m| m.name != METRIC_NAME) {
        if m.op == MatchOp::Equal && !seen.contains(&m.name.as_str()) {
            labels = labels.with(&m.name, &m.value);
            seen.push(&m.name);
        } else {
            labels = labels.with(&m.name, "");
        }
    }
    let values: Points = (0..steps.len())
        .map(|i| {
            let any = rows.iter().any(|r| r.values.get(i).is_some());
            (!any).then_some(1.0)
        })
        .collect();
    let row = Row { labels, values };
    Value::Vector(if row.is_empty() {
        Vec::new()
    } else {
        vec![row]
    })
}

fn label_replace(
    rows: Vec<Row>,
    dst: &str,
    replacement: &str,
    src: &str,
    regex: &str,
) -> Result<Vec<Row>> {
    let re = Regex::new(&format!("^(?:{regex})$")).map_err(|_| {
        Error::Execution(format!(
            "invalid regular expression in label_replace(): {}",
            echo(regex)
        ))
    })?;
    if !is_valid_label_name(dst) {
        return Err(Error::Execution(format!(
            "invalid destination label name in label_replace(): {}",
            echo(dst)
        )));
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let value = r.labels.get(src).unwrap_or("");
            let labels = match re.captures(value) {
                Some(caps) => {
                    let mut out = String::new();
                    caps.expand(replacement, &mut out);
                    r.labels.with(dst, &out)
                }
                None => r.labels.clone(),
            };
            Row {
                labels,
                values: r.values,
            }
        })
        .collect())
}

fn label_join(rows: Vec<Row>, dst: &str, sep: &str, src: &[&str]) -> Result<Vec<Row>> {
    if !is_valid_label_name(dst) {
        return Err(Error::Execution(format!(
            "invalid destination label name in label_join(): {}",
            echo(dst)
        )));
    }
    if let Some(bad) = src.iter().find(|s| !is_valid_label_name(s)) {
        return Err(Error::Execution(format!(
            "invalid source label name in label_join(): {}",
            echo(bad)
        )));
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let joined = src
                .iter()
                .map(|s| r.labels.get(s).unwrap_or(""))
                .collect::<Vec<_>>()
                .join(sep);
            Row {
                labels: r.labels.with(dst, &joined),
                values: r.values,
            }
        })
        .collect())
}
