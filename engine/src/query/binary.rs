//! Binary operators: arithmetic, comparisons (filtering or `bool`), and the set operators,
//! between scalars and vectors, with Prometheus 2.x vector matching (`on`, `ignoring`,
//! `group_left`, `group_right`) and its errors for ambiguous matches.

use std::collections::HashMap;

use super::eval::{Evaluator, type_name};
use super::plan::{Binary, BinaryOp, Cardinality, Matching};
use super::value::{DUPLICATE_LABELSET, Points, Row, Value, merge_same_labels};
use crate::model::{Labels, METRIC_NAME};
use crate::{Error, Result};

/// Evaluates `lhs op rhs` at every step.
pub fn binary(ev: &Evaluator<'_, '_>, b: &Binary, steps: &[i64]) -> Result<Value> {
    let lhs = ev.eval(&b.lhs, steps)?;
    let rhs = ev.eval(&b.rhs, steps)?;
    Ok(match (lhs, rhs) {
        (Value::Scalar(l), Value::Scalar(r)) => Value::Scalar(
            l.into_iter()
                .zip(r)
                .map(|(l, r)| {
                    let (v, keep) = apply(b.op, l, r);
                    if b.op.is_comparison() {
                        if keep { 1.0 } else { 0.0 }
                    } else {
                        v
                    }
                })
                .collect(),
        ),
        (Value::Vector(v), Value::Scalar(s)) => vector_scalar(b, v, &s, false)?,
        (Value::Scalar(s), Value::Vector(v)) => vector_scalar(b, v, &s, true)?,
        (Value::Vector(l), Value::Vector(r)) => {
            if b.op.is_set() {
                // `or` may hold one label set from each side at different steps: one series.
                Value::Vector(merge_same_labels(set_operation(
                    b.op,
                    &b.matching,
                    l,
                    r,
                    steps.len(),
                ))?)
            } else {
                Value::Vector(vector_vector(b, l, r, steps.len())?)
            }
        }
        (l, r) => {
            return Err(Error::InvalidArgument(format!(
                "binary operations need scalars or instant vectors, got {} and {}",
                type_name(&l),
                type_name(&r)
            )));
        }
    })
}

/// Prometheus' `vectorElemBinop`: the value, and whether a comparison holds.
fn apply(op: BinaryOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinaryOp::Add => (l + r, true),
        BinaryOp::Sub => (l - r, true),
        BinaryOp::Mul => (l * r, true),
        BinaryOp::Div => (l / r, true),
        BinaryOp::Mod => (l % r, true),
        BinaryOp::Pow => (l.powf(r), true),
        BinaryOp::Atan2 => (go_atan2(l, r), true),
        BinaryOp::Eq => (l, l == r),
        BinaryOp::Ne => (l, l != r),
        BinaryOp::Gt => (l, l > r),
        BinaryOp::Lt => (l, l < r),
        BinaryOp::Ge => (l, l >= r),
        BinaryOp::Le => (l, l <= r),
        BinaryOp::And | BinaryOp::Or | BinaryOp::Unless => (f64::NAN, false),
    }
}

fn vector_scalar(b: &Binary, rows: Vec<Row>, scalar: &[f64], swap: bool) -> Result<Value> {
    let drop_name = b.return_bool || b.op.drops_metric_name();
    let rows = rows
        .into_iter()
        .map(|row| {
            let values = row
                .values
                .iter()
                .zip(scalar)
                .map(|(v, &s)| {
                    let v = v?;
                    let (l, r) = if swap { (s, v) } else { (v, s) };
                    let (mut value, keep) = apply(b.op, l, r);
                    // A comparison keeps the vector's value, whichever side it is on.
                    if b.op.is_comparison() {
                        value = v;
                    }
                    if b.return_bool {
                        Some(if keep { 1.0 } else { 0.0 })
                    } else {
                        keep.then_some(value)
                    }
                })
                .collect();
            let labels = if drop_name {
                row.labels.without(METRIC_NAME)
            } else {
                row.labels
            };
            Row { labels, values }
        })
        .collect();
    Ok(Value::Vector(merge_same_labels(rows)?))
}

/// The labels two series are matched on.
fn signature(m: &Matching, labels: &Labels) -> Labels {
    if m.on {
        labels.keep_only(&m.labels)
    } else {
        labels.without_all(&m.labels).without(METRIC_NAME)
    }
}

fn set_operation(
    op: BinaryOp,
    m: &Matching,
    lhs: Vec<Row>,
    rhs: Vec<Row>,
    steps: usize,
) -> Vec<Row> {
    let lsig: Vec<Labels> = lhs.iter().map(|r| signature(m, &r.labels)).collect();
    let rsig: Vec<Labels> = rhs.iter().map(|r| signature(m, &r.labels)).collect();
    // Per signature, at which steps the other side has a value.
    let present = |rows: &[Row], sigs: &[Labels]| {
        let mut at: HashMap<Labels, Vec<bool>> = HashMap::new();
        for (row, sig) in rows.iter().zip(sigs) {
            let slot = at.entry(sig.clone()).or_insert_with(|| vec![false; steps]);
            for (s, v) in slot.iter_mut().zip(row.values.iter()) {
                *s |= v.is_some();
            }
        }
        at
    };
    let has = |at: &HashMap<Labels, Vec<bool>>, sig: &Labels, i: usize| {
        at.get(sig).and_then(|v| v.get(i)).copied().unwrap_or(false)
    };
    match op {
        BinaryOp::And | BinaryOp::Unless => {
            let right = present(&rhs, &rsig);
            let want = op == BinaryOp::And;
            lhs.into_iter()
                .zip(&lsig)
                .map(|(row, sig)| Row {
                    values: row
                        .values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| v.filter(|_| has(&right, sig, i) == want))
                        .collect(),
                    labels: row.labels,
                })
                .filter(|r| !r.is_empty())
                .collect()
        }
        _ => {
            let left = present(&lhs, &lsig);
            let mut out = lhs;
            out.extend(
                rhs.into_iter()
                    .zip(&rsig)
                    .map(|(row, sig)| Row {
                        values: row
                            .values
                            .iter()
                            .enumerate()
                            .map(|(i, v)| v.filter(|_| !has(&left, sig, i)))
                            .collect(),
                        labels: row.labels,
                    })
                    .filter(|r| !r.is_empty()),
            );
            out
        }
    }
}

/// The labels of a matched pair's result (Prometheus' `resultMetric`).
fn result_labels(b: &Binary, many: &Labels, one: &Labels) -> Labels {
    let m = &b.matching;
    let mut labels = if b.op.drops_metric_name() || b.return_bool {
        many.without(METRIC_NAME)
    } else {
        many.clone()
    };
    if m.card == Cardinality::OneToOne {
        labels = if m.on {
            labels.keep_only(&m.labels)
        } else {
            labels.without_all(&m.labels)
        };
    }
    for name in &m.include {
        labels = labels.with(name, one.get(name).unwrap_or(""));
    }
    labels
}

fn vector_vector(b: &Binary, lhs: Vec<Row>, rhs: Vec<Row>, steps: usize) -> Result<Vec<Row>> {
    let m = &b.matching;
    // Iterate the "many" side; look up the "one" side.
    let (many, one, swapped) = if m.card == Cardinality::OneToMany {
        (rhs, lhs, true)
    } else {
        (lhs, rhs, false)
    };
    let many_sig: Vec<Labels> = many.iter().map(|r| signature(m, &r.labels)).collect();
    let mut one_by_sig: HashMap<Labels, Vec<usize>> = HashMap::new();
    for (i, r) in one.iter().enumerate() {
        one_by_sig
            .entry(signature(m, &r.labels))
            .or_default()
            .push(i);
    }
    let mut out: Vec<Row> = Vec::new();
    let mut out_index: HashMap<Labels, usize> = HashMap::new();
    let mut pair_out: HashMap<(usize, usize), usize> = HashMap::new();
    let present = |rows: &[Row], step: usize| rows.iter().any(|r| r.values.get(step).is_some());
    for step in 0..steps {
        // Prometheus short-circuits a step where either side is empty, before it checks
        // the "one" side for duplicates.
        if !present(&many, step) || !present(&one, step) {
            continue;
        }
        // The "one" side at this step: at most one series per signature.
        let mut one_at: HashMap<&Labels, usize> = HashMap::new();
        for (sig, members) in &one_by_sig {
            let mut found: Option<usize> = None;
            for &i in members {
                if one.get(i).and_then(|r| r.values.get(step)).is_none() {
                    continue;
                }
                if let Some(prev) = found {
                    let side = if swapped { "left" } else { "right" };
                    let name =
                        |i: usize| one.get(i).map(|r| r.labels.to_string()).unwrap_or_default();
                    return Err(Error::Execution(format!(
                        "found duplicate series for the match group {sig} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                        name(i),
                        name(prev)
                    )));
                }
                found = Some(i);
            }
            if let Some(i) = found {
                one_at.insert(sig, i);
            }
        }
        let mut matched_one_to_one: HashMap<&Labels, ()> = HashMap::new();
        let mut matched_groups: HashMap<&Labels, Vec<usize>> = HashMap::new();
        for (mi, row) in many.iter().enumerate() {
            let Some(mv) = row.values.get(step) else {
                continue;
            };
            let Some(sig) = many_sig.get(mi) else {
                continue;
            };
            let Some(&oi) = one_at.get(sig) else { continue };
            let Some(ov) = one.get(oi).and_then(|r| r.values.get(step)) else {
                continue;
            };
            let (l, r) = if swapped { (ov, mv) } else { (mv, ov) };
            let (value, keep) = apply(b.op, l, r);
            let value = if b.return_bool {
                if keep { 1.0 } else { 0.0 }
            } else if keep {
                value
            } else {
                continue;
            };
            let slot = match pair_out.get(&(mi, oi)) {
                Some(&slot) => slot,
                None => {
                    let one_labels = one.get(oi).map(|r| &r.labels);
                    let labels = result_labels(b, &row.labels, one_labels.unwrap_or(&row.labels));
                    let slot = *out_index.entry(labels.clone()).or_insert_with(|| {
                        out.push(Row {
                            labels,
                            values: Points::none(steps),
                        });
                        out.len() - 1
                    });
                    pair_out.insert((mi, oi), slot);
                    slot
                }
            };
            if m.card == Cardinality::OneToOne {
                if matched_one_to_one.insert(sig, ()).is_some() {
                    return Err(Error::Execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                    ));
                }
            } else {
                let group = matched_groups.entry(sig).or_default();
                if group.contains(&slot) {
                    return Err(Error::Execution(
                        "multiple matches for labels: grouping labels must ensure unique matches"
                            .into(),
                    ));
                }
                group.push(slot);
            }
            let Some(r) = out.get_mut(slot) else {
                continue;
            };
            if r.values.get(step).is_some() {
                return Err(Error::Execution(format!(
                    "{DUPLICATE_LABELSET}: {}",
                    r.labels
                )));
            }
            r.values.set(step, Some(value));
        }
    }
    Ok(out.into_iter().filter(|r| !r.is_empty()).collect())
}

/// Go's `math.Atan2`, which Prometheus computes with: Cephes' rational approximation. The
/// platform's `atan2` differs in the last bit, and `%` or a comparison after it can turn
/// that bit into a different answer.
fn go_atan2(y: f64, x: f64) -> f64 {
    use std::f64::consts::PI;
    if y.is_nan() || x.is_nan() {
        return f64::NAN;
    }
    if y == 0.0 {
        return if x >= 0.0 && !x.is_sign_negative() {
            0f64.copysign(y)
        } else {
            PI.copysign(y)
        };
    }
    if x == 0.0 {
        return (PI / 2.0).copysign(y);
    }
    if x.is_infinite() {
        return match (x > 0.0, y.is_infinite()) {
            (true, true) => (PI / 4.0).copysign(y),
            (true, false) => 0f64.copysign(y),
            (false, true) => (3.0 * PI / 4.0).copysign(y),
            (false, false) => PI.copysign(y),
        };
    }
    if y.is_infinite() {
        return (PI / 2.0).copysign(y);
    }
    let q = go_atan(y / x);
    if x < 0.0 {
        if q <= 0.0 { q + PI } else { q - PI }
    } else {
        q
    }
}

fn go_atan(x: f64) -> f64 {
    if x == 0.0 {
        x
    } else if x > 0.0 {
        satan(x)
    } else {
        -satan(-x)
    }
}

/// Reduces a positive argument to [0, 0.66] for [`xatan`].
// The constants are Go's, digit for digit, so they can be checked against its source.
#[allow(clippy::excessive_precision)]
fn satan(x: f64) -> f64 {
    const MOREBITS: f64 = 6.123233995736765886130e-17;
    const TAN3PIO8: f64 = 2.41421356237309504880;
    use std::f64::consts::PI;
    if x <= 0.66 {
        return xatan(x);
    }
    if x > TAN3PIO8 {
        return PI / 2.0 - xatan(1.0 / x) + MOREBITS;
    }
    PI / 4.0 + xatan((x - 1.0) / (x + 1.0)) + 0.5 * MOREBITS
}

/// Cephes' series for atan on [0, 0.66].
#[allow(clippy::excessive_precision)]
fn xatan(x: f64) -> f64 {
    const P0: f64 = -8.750608600031904122785e-01;
    const P1: f64 = -1.615753718733365076637e+01;
    const P2: f64 = -7.500855792314704667340e+01;
    const P3: f64 = -1.228866684490136173410e+02;
    const P4: f64 = -6.485021904942025371773e+01;
    const Q0: f64 = 2.485846490142306297962e+01;
    const Q1: f64 = 1.650270098316988542046e+02;
    const Q2: f64 = 4.328810604912902668951e+02;
    const Q3: f64 = 4.853903996359136964868e+02;
    const Q4: f64 = 1.945506571482613964425e+02;
    let z = x * x;
    let z = z * ((((P0 * z + P1) * z + P2) * z + P3) * z + P4)
        / (((((z + Q0) * z + Q1) * z + Q2) * z + Q3) * z + Q4);
    x * z + x
}
