//! Hand-computed values for every range function and aggregation.

use super::{AggregateOp, FunctionKind, RangeFunction, aggregate_values as aggregate};
use crate::model::Sample;

fn s(points: &[(i64, f64)]) -> Vec<Sample> {
    points
        .iter()
        .map(|&(t, v)| Sample::new(t * 1000, v))
        .collect()
}

fn f(kind: FunctionKind, window_s: i64) -> RangeFunction {
    RangeFunction {
        kind,
        window_ms: window_s * 1000,
    }
}

fn close(a: Option<f64>, b: f64) {
    let a = a.unwrap_or_else(|| panic!("no value, expected {b}"));
    assert!(
        a == b || (a - b).abs() < 1e-9 || (a.is_nan() && b.is_nan()),
        "{a} != {b}"
    );
}

#[test]
fn rate_and_increase_of_a_regular_counter_need_no_extrapolation() {
    let data = s(&[
        (0, 0.0),
        (10, 10.0),
        (20, 20.0),
        (30, 30.0),
        (40, 40.0),
        (50, 50.0),
        (60, 60.0),
    ]);
    close(f(FunctionKind::Increase, 60).eval(&data, 60_000), 60.0);
    close(f(FunctionKind::Rate, 60).eval(&data, 60_000), 1.0);
}

#[test]
fn a_counter_reset_adds_the_value_before_the_drop() {
    let data = s(&[(0, 0.0), (10, 10.0), (20, 20.0), (30, 5.0), (40, 15.0)]);
    close(f(FunctionKind::Increase, 40).eval(&data, 40_000), 35.0);
    close(f(FunctionKind::Rate, 40).eval(&data, 40_000), 0.875);
    // delta is for gauges: no reset handling.
    close(f(FunctionKind::Delta, 40).eval(&data, 40_000), 15.0);
}

#[test]
fn samples_near_the_edges_extrapolate_to_the_edges() {
    let data = s(&[(5, 10.0), (15, 20.0), (25, 30.0)]);
    close(f(FunctionKind::Increase, 30).eval(&data, 30_000), 30.0);
    close(f(FunctionKind::Rate, 30).eval(&data, 30_000), 1.0);
    close(f(FunctionKind::Delta, 30).eval(&data, 30_000), 30.0);
}

#[test]
fn a_counter_is_not_extrapolated_below_zero() {
    let data = s(&[(5, 1.0), (15, 11.0), (25, 21.0)]);
    // Zero point 1 s before the first sample: 20 × (20 + 1 + 5) / 20.
    close(f(FunctionKind::Increase, 30).eval(&data, 30_000), 26.0);
    // delta has no zero point: 20 × 30 / 20.
    close(f(FunctionKind::Delta, 30).eval(&data, 30_000), 30.0);
}

#[test]
fn a_gap_at_the_start_extrapolates_by_half_an_interval() {
    let data = s(&[(30, 100.0), (40, 110.0), (50, 120.0)]);
    // to_start 30 s > 1.1 × 10 s → +5 s; to_end 10 s → +10 s: 20 × 35 / 20.
    close(f(FunctionKind::Increase, 60).eval(&data, 60_000), 35.0);
}

#[test]
fn rate_needs_two_samples() {
    assert_eq!(
        f(FunctionKind::Rate, 60).eval(&s(&[(10, 1.0)]), 60_000),
        None
    );
    assert_eq!(
        f(FunctionKind::Irate, 60).eval(&s(&[(10, 1.0)]), 60_000),
        None
    );
    assert_eq!(f(FunctionKind::Rate, 60).eval(&[], 60_000), None);
}

#[test]
fn irate_uses_the_last_two_samples_and_sees_resets() {
    close(
        f(FunctionKind::Irate, 60).eval(&s(&[(0, 1.0), (10, 3.0), (20, 9.0)]), 20_000),
        0.6,
    );
    close(
        f(FunctionKind::Irate, 60).eval(&s(&[(0, 10.0), (10, 20.0), (20, 5.0)]), 20_000),
        0.5,
    );
}

#[test]
fn over_time_functions_on_hand_values() {
    let data = s(&[
        (0, 2.0),
        (10, 4.0),
        (20, 4.0),
        (30, 4.0),
        (40, 5.0),
        (50, 5.0),
        (60, 7.0),
        (70, 9.0),
    ]);
    let at = |k| f(k, 100).eval(&data, 70_000);
    close(at(FunctionKind::AvgOverTime), 5.0);
    close(at(FunctionKind::MinOverTime), 2.0);
    close(at(FunctionKind::MaxOverTime), 9.0);
    close(at(FunctionKind::SumOverTime), 40.0);
    close(at(FunctionKind::CountOverTime), 8.0);
    close(at(FunctionKind::LastOverTime), 9.0);
    close(at(FunctionKind::StddevOverTime), 2.0);
    close(at(FunctionKind::QuantileOverTime(0.5)), 4.5);
    close(at(FunctionKind::QuantileOverTime(0.25)), 4.0);
    close(at(FunctionKind::QuantileOverTime(1.0)), 9.0);
    close(at(FunctionKind::QuantileOverTime(-1.0)), f64::NEG_INFINITY);
    close(at(FunctionKind::QuantileOverTime(2.0)), f64::INFINITY);
}

#[test]
fn nan_is_ignored_by_min_and_max_but_spreads_through_sums() {
    let data = s(&[(0, f64::NAN), (10, 3.0), (20, 1.0)]);
    close(f(FunctionKind::MinOverTime, 60).eval(&data, 20_000), 1.0);
    close(f(FunctionKind::MaxOverTime, 60).eval(&data, 20_000), 3.0);
    assert!(
        f(FunctionKind::SumOverTime, 60)
            .eval(&data, 20_000)
            .is_some_and(f64::is_nan)
    );
    assert!(
        f(FunctionKind::AvgOverTime, 60)
            .eval(&data, 20_000)
            .is_some_and(f64::is_nan)
    );
    let all_nan = s(&[(0, f64::NAN)]);
    assert!(
        f(FunctionKind::MinOverTime, 60)
            .eval(&all_nan, 0)
            .is_some_and(f64::is_nan)
    );
}

#[test]
fn single_samples_have_values_where_one_sample_is_enough() {
    let one = s(&[(5, 42.0)]);
    close(f(FunctionKind::AvgOverTime, 60).eval(&one, 5000), 42.0);
    close(f(FunctionKind::StddevOverTime, 60).eval(&one, 5000), 0.0);
    close(
        f(FunctionKind::QuantileOverTime(0.9), 60).eval(&one, 5000),
        42.0,
    );
}

#[test]
fn aggregations_on_hand_values() {
    let v = [1.0, 2.0, 3.0, 4.0];
    close(aggregate(AggregateOp::Sum, &v), 10.0);
    close(aggregate(AggregateOp::Avg, &v), 2.5);
    close(aggregate(AggregateOp::Min, &v), 1.0);
    close(aggregate(AggregateOp::Max, &v), 4.0);
    close(aggregate(AggregateOp::Count, &v), 4.0);
    close(aggregate(AggregateOp::Stddev, &v), 1.25f64.sqrt());
    close(aggregate(AggregateOp::Quantile(0.95), &v), 3.85);
    assert_eq!(aggregate(AggregateOp::Sum, &[]), None);
    close(aggregate(AggregateOp::Max, &[f64::NAN, 1.0]), 1.0);
    assert!(aggregate(AggregateOp::Sum, &[f64::NAN, 1.0]).is_some_and(f64::is_nan));
    close(
        aggregate(AggregateOp::Avg, &[f64::INFINITY, 1.0]),
        f64::INFINITY,
    );
}
