//! The query engine through the facade: steps and lookback, grouping, the same answers from
//! head, segments and both, a naive reference evaluator, limits, latest values, liveness and
//! metadata.

use std::collections::BTreeMap;

use iocdb_engine::{
    AggregateOp, Aggregation, Engine, Error, FunctionKind, Grouping, Label, Labels, Limit, MatchOp,
    Matcher, MetricMetadata, Options, QueryLimits, QueryResult, RangeFunction, RangeQuery, Sample,
    SeriesFilter, SeriesWrite, WriteRequest,
};
use proptest::prelude::*;

use crate::common::{self, request};

fn sw(metric: &str, pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> SeriesWrite {
    let mut labels = vec![Label::new("__name__", metric)];
    labels.extend(pairs.iter().map(|(n, v)| Label::new(*n, *v)));
    SeriesWrite {
        labels,
        samples: samples.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
    }
}

fn all(metric: &str) -> Vec<Matcher> {
    vec![Matcher::equal("__name__", metric)]
}

fn points(r: &QueryResult) -> Vec<(String, Vec<(i64, f64)>)> {
    r.series
        .iter()
        .map(|s| {
            (
                s.labels.to_string(),
                s.points.iter().map(|p| (p.t, p.v)).collect(),
            )
        })
        .collect()
}

#[test]
fn instant_selection_takes_the_latest_sample_within_the_lookback() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open(dir.path());
    engine
        .write(request(
            "t",
            vec![sw(
                "g",
                &[("site", "a")],
                &[(0, 1.0), (60_000, 2.0), (400_000, 3.0)],
            )],
        ))
        .expect("w");
    let q = RangeQuery::new("t", all("g"), 0, 800_000, 100_000);
    let r = engine.query_range(&q).expect("query");
    // 0→1, 100k→2, 200k→2, 300k→2 (60 s + 5 min lookback covers it? 300k-60k = 240 s ≤ 300 s: yes),
    // 400k→3, 500k→3, 600k→3, 700k→3 (300 s back is exactly 400k: closed), 800k→none.
    assert_eq!(
        points(&r),
        [(
            "g{site=\"a\"}".to_owned(),
            vec![
                (0, 1.0),
                (100_000, 2.0),
                (200_000, 2.0),
                (300_000, 2.0),
                (400_000, 3.0),
                (500_000, 3.0),
                (600_000, 3.0),
                (700_000, 3.0),
            ]
        )]
    );
    let short = RangeQuery {
        lookback_ms: Some(50_000),
        ..q
    };
    let r = engine.query_range(&short).expect("query");
    assert_eq!(
        points(&r)[0].1,
        vec![(0, 1.0), (100_000, 2.0), (400_000, 3.0)]
    );
}

#[test]
fn rate_by_agency_drops_the_metric_name_and_groups() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open(dir.path());
    let counter =
        |k: f64| -> Vec<(i64, f64)> { (0..=12).map(|i| (i * 10_000, k * i as f64)).collect() };
    engine
        .write(request(
            "p",
            vec![
                sw(
                    "dossiers_resolved_total",
                    &[("agency", "A"), ("commune", "Xã Tri Tôn")],
                    &counter(1.0),
                ),
                sw(
                    "dossiers_resolved_total",
                    &[("agency", "A"), ("commune", "Phường Châu Đốc")],
                    &counter(2.0),
                ),
                sw(
                    "dossiers_resolved_total",
                    &[("agency", "B"), ("commune", "Xã Tri Tôn")],
                    &counter(5.0),
                ),
            ],
        ))
        .expect("w");
    let mut q = RangeQuery::new("p", all("dossiers_resolved_total"), 60_000, 120_000, 60_000);
    q.function = Some(RangeFunction {
        kind: FunctionKind::Rate,
        window_ms: 60_000,
    });
    let per_series = engine.query_range(&q).expect("query");
    assert_eq!(per_series.series.len(), 3);
    assert!(
        per_series
            .series
            .iter()
            .all(|s| s.labels.get("__name__").is_none())
    );
    q.aggregation = Some(Aggregation {
        op: AggregateOp::Sum,
        grouping: Grouping::By(vec!["agency".into()]),
    });
    let r = engine.query_range(&q).expect("query");
    let rounded: Vec<(String, Vec<(i64, f64)>)> = points(&r)
        .into_iter()
        .map(|(l, p)| {
            (
                l,
                p.into_iter()
                    .map(|(t, v)| (t, (v * 1e9).round() / 1e9))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        rounded,
        [
            (
                "{agency=\"A\"}".to_owned(),
                vec![(60_000, 0.3), (120_000, 0.3)]
            ),
            (
                "{agency=\"B\"}".to_owned(),
                vec![(60_000, 0.5), (120_000, 0.5)]
            ),
        ]
    );
    q.aggregation = Some(Aggregation {
        op: AggregateOp::Max,
        grouping: Grouping::Without(vec!["commune".into()]),
    });
    let r = engine.query_range(&q).expect("query");
    assert_eq!(
        points(&r)[0],
        (
            "{agency=\"A\"}".to_owned(),
            vec![(60_000, 0.2), (120_000, 0.2)]
        )
    );
    q.aggregation = Some(Aggregation {
        op: AggregateOp::Topk(1),
        grouping: Grouping::By(vec![]),
    });
    let r = engine.query_range(&q).expect("query");
    assert_eq!(r.series.len(), 1);
    assert_eq!(r.series[0].labels.get("agency"), Some("B"));
}

#[test]
fn an_empty_selection_gives_an_empty_result_not_an_error() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open(dir.path());
    let mut q = RangeQuery::new("nobody", all("x"), 0, 1000, 10);
    q.aggregation = Some(Aggregation {
        op: AggregateOp::Sum,
        grouping: Grouping::By(vec![]),
    });
    assert!(engine.query_range(&q).expect("query").series.is_empty());
}

#[test]
fn limits_are_answered_with_errors_that_name_them() {
    let dir = tempfile::tempdir().expect("dir");
    let limits = QueryLimits {
        max_series: 2,
        max_samples: 50,
        max_points_per_series: 100,
        ..QueryLimits::default()
    };
    let engine = common::open_with(
        dir.path(),
        Options {
            query_limits: limits,
            ..common::options()
        },
    )
    .expect("open");
    engine
        .write(request(
            "l",
            (0..3)
                .map(|i| {
                    sw(
                        "m",
                        &[("i", &i.to_string())],
                        &(0..40).map(|t| (t, 1.0)).collect::<Vec<_>>(),
                    )
                })
                .collect(),
        ))
        .expect("w");
    let too_many = engine
        .query_range(&RangeQuery::new("l", all("m"), 0, 10, 1))
        .expect_err("series");
    assert!(
        matches!(
            too_many,
            Error::ResourceExhausted {
                limit: Limit::QueryMaxSeries,
                ..
            }
        ),
        "{too_many}"
    );
    let two = vec![Matcher::new("i", MatchOp::Regex, "0|1").expect("m")];
    let samples = engine
        .query_range(&RangeQuery::new("l", two.clone(), 0, 50, 1))
        .expect_err("samples");
    assert!(
        matches!(
            samples,
            Error::ResourceExhausted {
                limit: Limit::QueryMaxSamples,
                ..
            }
        ),
        "{samples}"
    );
    let steps = engine
        .query_range(&RangeQuery::new("l", two.clone(), 0, 1000, 1))
        .expect_err("points");
    assert!(
        matches!(
            steps,
            Error::ResourceExhausted {
                limit: Limit::QueryMaxPointsPerSeries,
                ..
            }
        ),
        "{steps}"
    );
    // One series read (40 samples, within the limit) but a value slot for each of 100
    // steps: what the evaluation would hold counts against the sample limit too.
    let held = engine
        .query(&iocdb_engine::PromqlQuery::range(
            "l",
            "m{i=\"0\"}",
            0,
            99,
            1,
        ))
        .expect_err("points held");
    assert!(
        matches!(
            &held,
            Error::ResourceExhausted {
                limit: Limit::QueryMaxSamples,
                detail,
            } if detail.contains("100 points")
        ),
        "{held}"
    );
    let past = RangeQuery {
        deadline: Some(std::time::Instant::now()),
        ..RangeQuery::new("l", two.clone(), 0, 10, 1)
    };
    std::thread::sleep(std::time::Duration::from_millis(2));
    assert!(matches!(
        engine.query_range(&past),
        Err(Error::DeadlineExceeded { .. })
    ));
    assert!(matches!(
        engine.query_range(&RangeQuery::new("l", two, 10, 0, 1)),
        Err(Error::InvalidArgument(_))
    ));
}

/// Runs the same queries against the store in four states and returns their answers.
fn dashboard_answers(engine: &Engine) -> Vec<String> {
    let cases: Vec<(Option<FunctionKind>, Option<AggregateOp>)> = vec![
        (None, None),
        (None, Some(AggregateOp::Sum)),
        (Some(FunctionKind::Rate), Some(AggregateOp::Sum)),
        (Some(FunctionKind::MaxOverTime), Some(AggregateOp::Max)),
        (Some(FunctionKind::QuantileOverTime(0.95)), None),
        (None, Some(AggregateOp::Quantile(0.95))),
        (Some(FunctionKind::AvgOverTime), Some(AggregateOp::Topk(2))),
    ];
    cases
        .into_iter()
        .map(|(f, a)| {
            let mut q = RangeQuery::new("d", all("m"), 0, 200_000, 7_000);
            q.function = f.map(|kind| RangeFunction {
                kind,
                window_ms: 30_000,
            });
            q.aggregation = a.map(|op| Aggregation {
                op,
                grouping: Grouping::By(vec!["commune".into()]),
            });
            format!("{:?}", points(&engine.query_range(&q).expect("query")))
        })
        .collect()
}

#[test]
fn answers_are_identical_from_head_segments_both_and_after_reopen() {
    let write_half = |engine: &Engine, part: i64| {
        let series = (0..6)
            .map(|i| {
                let samples: Vec<(i64, f64)> = (0..100)
                    .filter(|k| k % 2 == part)
                    .map(|k| (k * 2000 + i, ((k * 7 + i) % 13) as f64 + k as f64))
                    .collect();
                sw(
                    "m",
                    &[
                        ("site", &format!("s{i}")),
                        ("commune", common::COMMUNES[i as usize % 2]),
                    ],
                    &samples,
                )
            })
            .collect();
        engine
            .write(WriteRequest {
                namespace: "d".into(),
                series,
            })
            .expect("w");
    };
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open(dir.path());
    write_half(&engine, 0);
    write_half(&engine, 1);
    let in_head = dashboard_answers(&engine);
    engine.flush().expect("flush");
    assert_eq!(dashboard_answers(&engine), in_head, "segments");
    drop(engine);
    let engine = common::open(dir.path());
    assert_eq!(dashboard_answers(&engine), in_head, "reopened");

    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open(dir.path());
    write_half(&engine, 0);
    engine.flush().expect("flush");
    write_half(&engine, 1);
    assert_eq!(dashboard_answers(&engine), in_head, "split");
    drop(engine);
    let engine = common::open(dir.path());
    assert_eq!(dashboard_answers(&engine), in_head, "split, reopened");
}

#[test]
fn latest_values_and_silent_sources() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open(dir.path());
    let every = |step: i64, until: i64| -> Vec<(i64, f64)> {
        (0..=until / step).map(|k| (k * step, k as f64)).collect()
    };
    engine
        .write(request(
            "c",
            vec![
                sw(
                    "camera_people_count",
                    &[("camera", "live")],
                    &every(10_000, 1_000_000),
                ),
                sw(
                    "camera_people_count",
                    &[("camera", "quiet")],
                    &every(10_000, 900_000),
                ),
                sw(
                    "lodging_guests",
                    &[("facility", "f1")],
                    &every(30_000, 60_000),
                ),
            ],
        ))
        .expect("w");
    let latest = engine
        .latest("c", &all("camera_people_count"), 1_000_000, 300_000)
        .expect("latest");
    let got: Vec<(String, i64)> = latest
        .iter()
        .map(|l| (l.labels.get("camera").unwrap_or("").to_owned(), l.sample.t))
        .collect();
    assert_eq!(
        got,
        [
            ("live".to_owned(), 1_000_000),
            ("quiet".to_owned(), 900_000)
        ]
    );

    let stale = engine
        .stale_series("c", &[], 1_000_000, 3.0)
        .expect("stale");
    let names: Vec<String> = stale.iter().map(|s| s.labels.to_string()).collect();
    assert_eq!(
        names,
        [
            "camera_people_count{camera=\"quiet\"}",
            "lodging_guests{facility=\"f1\"}"
        ]
    );
    assert_eq!(stale[0].expected_interval_ms, 10_000);
    assert_eq!(stale[0].silent_ms, 100_000);

    // Declared metadata wins over the inferred interval.
    let meta = MetricMetadata {
        metric: "lodging_guests".into(),
        unit: "người".into(),
        description: "khách lưu trú".into(),
        expected_interval_ms: Some(3_600_000),
        kind: "gauge".into(),
        ..Default::default()
    };
    engine.set_metadata("c", meta.clone()).expect("metadata");
    let stale = engine
        .stale_series("c", &[], 1_000_000, 3.0)
        .expect("stale");
    assert_eq!(stale.len(), 1);
    drop(engine);
    let engine = common::open(dir.path());
    assert_eq!(engine.metadata("c").expect("metadata"), [meta]);
}

#[test]
fn silent_sources_are_found_however_many_samples_they_sent_before() {
    // The silent-series check reads back as far as a series' last samples: a day of data
    // before the silence is read whole, yet only its last samples are kept, so the query
    // sample limit (which bounds memory) does not stop it — it once failed the periodic
    // completeness export on one province day.
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open_with(
        dir.path(),
        Options {
            query_limits: QueryLimits {
                max_samples: 50,
                ..QueryLimits::default()
            },
            ..common::options()
        },
    )
    .expect("open");
    let until = 5_000_000;
    let samples: Vec<(i64, f64)> = (0..500).map(|k| (until - k * 10_000, 1.0)).rev().collect();
    engine
        .write(request(
            "c",
            (0..3)
                .map(|i| sw("m", &[("camera", &format!("cam-{i}"))], &samples))
                .collect(),
        ))
        .expect("w");
    let at = until + 10 * 3_600_000;
    let stale = engine.stale_series("c", &[], at, 3.0).expect("stale");
    assert_eq!(stale.len(), 3);
    for s in &stale {
        assert_eq!(s.last.map(|l| l.t), Some(until));
        assert_eq!(s.expected_interval_ms, 10_000);
        assert_eq!(s.silent_ms, at - until);
    }
    let q = iocdb_engine::CompletenessQuery {
        start: at - 3_600_000,
        end: at,
        ..Default::default()
    };
    let report = engine.completeness("c", &q, at, 3.0).expect("completeness");
    assert_eq!(report.silent.len(), 3);
}

#[test]
fn a_series_with_few_recent_samples_is_judged_by_its_last_samples_however_old() {
    // Two samples in the last hour (30 min apart) after a morning of one a minute: the
    // interval comes from the last eleven samples, which reach back into the morning, so
    // the check must read on past the first window rather than judge the two alone.
    // Another series has only its two recent samples: judged by them at once.
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open(dir.path());
    let hour = 3_600_000;
    let at = 10 * hour;
    let mut morning: Vec<(i64, f64)> = (0..120).map(|k| (2 * hour + k * 60_000, 1.0)).collect();
    morning.extend([(at - 50 * 60_000, 1.0), (at - 20 * 60_000, 1.0)]);
    let recent = [(at - 50 * 60_000, 1.0), (at - 20 * 60_000, 1.0)];
    engine
        .write(request(
            "c",
            vec![
                sw("m", &[("camera", "busy-before")], &morning),
                sw("m", &[("camera", "always-sparse")], &recent),
            ],
        ))
        .expect("w");
    let stale = engine.stale_series("c", &[], at, 3.0).expect("stale");
    let got: Vec<(String, i64, i64)> = stale
        .iter()
        .map(|s| {
            (
                s.labels.get("camera").unwrap_or("").to_owned(),
                s.expected_interval_ms,
                s.silent_ms,
            )
        })
        .collect();
    // Silent 20 min: more than three 1-min intervals, less than three of 30 min.
    assert_eq!(got, [("busy-before".to_owned(), 60_000, 20 * 60_000)]);
}

#[test]
fn series_label_names_and_values_follow_matchers_and_time() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open(dir.path());
    engine
        .write(request(
            "m",
            vec![
                sw("a", &[("commune", "Phường Long Xuyên")], &[(1000, 1.0)]),
                sw("a", &[("commune", "Xã An Phú")], &[(50_000, 1.0)]),
                sw("b", &[("site", "x")], &[(1000, 1.0)]),
            ],
        ))
        .expect("w");
    engine.flush().expect("flush");
    let f = |matchers, start, end| SeriesFilter {
        namespace: "m".into(),
        matchers,
        start,
        end,
        limit: 100,
    };
    assert_eq!(
        engine
            .series(&f(all("a"), 0, 10_000))
            .expect("series")
            .len(),
        1
    );
    assert_eq!(
        engine
            .label_values(&f(vec![], 0, 100_000), "commune")
            .expect("values"),
        ["Phường Long Xuyên", "Xã An Phú"]
    );
    assert_eq!(
        engine.label_names(&f(vec![], 0, 10_000),).expect("names"),
        ["__name__", "commune", "site"]
    );
    assert_eq!(
        engine
            .label_values(&f(vec![], 0, 100_000), "__name__")
            .expect("values"),
        ["a", "b"]
    );
    assert!(
        engine
            .series(&f(vec![], 200_000, 300_000))
            .expect("series")
            .is_empty()
    );
}

// ---- a naive reference evaluator -------------------------------------------------------

fn naive(data: &BTreeMap<Labels, Vec<Sample>>, q: &RangeQuery) -> Vec<(String, Vec<(i64, u64)>)> {
    let mut per_series: Vec<(Labels, BTreeMap<i64, f64>)> = Vec::new();
    for (labels, samples) in data {
        let mut values = BTreeMap::new();
        let mut t = q.start;
        while t <= q.end {
            let v = match q.function {
                None => samples
                    .iter()
                    .rfind(|s| s.t <= t && s.t >= t - 300_000)
                    .map(|s| s.v),
                Some(f) => {
                    let window: Vec<Sample> = samples
                        .iter()
                        .filter(|s| s.t <= t && s.t >= t - f.window_ms)
                        .copied()
                        .collect();
                    f.eval(&window, t)
                }
            };
            if let Some(v) = v {
                values.insert(t, v);
            }
            t += q.step;
        }
        let labels = match q.function {
            Some(f) if !f.kind.keeps_metric_name() => labels.without("__name__"),
            _ => labels.clone(),
        };
        per_series.push((labels, values));
    }
    let mut out: Vec<(String, Vec<(i64, u64)>)> = match &q.aggregation {
        None => per_series
            .into_iter()
            .map(|(l, v)| {
                (
                    l.to_string(),
                    v.into_iter().map(|(t, x)| (t, x.to_bits())).collect(),
                )
            })
            .collect(),
        Some(agg) => {
            let mut groups: BTreeMap<Labels, Vec<usize>> = BTreeMap::new();
            for (i, (l, _)) in per_series.iter().enumerate() {
                groups.entry(agg.grouping.group_of(l)).or_default().push(i);
            }
            groups
                .into_iter()
                .map(|(g, members)| {
                    let mut pts = Vec::new();
                    let mut t = q.start;
                    while t <= q.end {
                        let vals: Vec<f64> = members
                            .iter()
                            .filter_map(|&i| per_series[i].1.get(&t).copied())
                            .collect();
                        if let Some(v) = iocdb_engine::internal::aggregate(agg.op, &vals) {
                            pts.push((t, v.to_bits()));
                        }
                        t += q.step;
                    }
                    (g.to_string(), pts)
                })
                .collect()
        }
    };
    out.retain(|(_, p)| !p.is_empty());
    out.sort();
    out
}

fn function() -> impl Strategy<Value = Option<FunctionKind>> {
    prop_oneof![
        Just(None),
        Just(Some(FunctionKind::Rate)),
        Just(Some(FunctionKind::Increase)),
        Just(Some(FunctionKind::Delta)),
        Just(Some(FunctionKind::Irate)),
        Just(Some(FunctionKind::AvgOverTime)),
        Just(Some(FunctionKind::MinOverTime)),
        Just(Some(FunctionKind::MaxOverTime)),
        Just(Some(FunctionKind::SumOverTime)),
        Just(Some(FunctionKind::CountOverTime)),
        Just(Some(FunctionKind::StddevOverTime)),
        (0.0f64..1.0).prop_map(|q| Some(FunctionKind::QuantileOverTime(q))),
    ]
}

fn aggregation() -> impl Strategy<Value = Option<AggregateOp>> {
    prop_oneof![
        Just(None),
        Just(Some(AggregateOp::Sum)),
        Just(Some(AggregateOp::Avg)),
        Just(Some(AggregateOp::Min)),
        Just(Some(AggregateOp::Max)),
        Just(Some(AggregateOp::Count)),
        Just(Some(AggregateOp::Stddev)),
        (0.0f64..1.0).prop_map(|q| Some(AggregateOp::Quantile(q))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn the_engine_agrees_with_a_naive_evaluator(
        data in prop::collection::vec(prop::collection::vec((0i64..400, -20i32..40), 0..60), 1..6),
        f in function(),
        agg in aggregation(),
        window_s in 5i64..120,
        (start, len, step) in (0i64..300, 0i64..400, 1i64..60),
        flush in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().expect("dir");
        let engine = common::open(dir.path());
        let mut reference: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        for (i, points) in data.iter().enumerate() {
            let mut m: BTreeMap<i64, f64> = BTreeMap::new();
            for &(t, v) in points {
                m.insert(t * 1000, f64::from(v));
            }
            let samples: Vec<Sample> = m.iter().map(|(&t, &v)| Sample::new(t, v)).collect();
            let series = sw("m", &[("site", &format!("s{i}")), ("commune", common::COMMUNES[i % 3])], &[]);
            let labels = Labels::validate(series.labels.clone(), &Default::default()).expect("labels");
            engine.write(WriteRequest { namespace: "p".into(), series: vec![SeriesWrite { samples: samples.clone(), ..series }] }).expect("w");
            if !samples.is_empty() {
                reference.insert(labels, samples);
            }
            if flush && i % 2 == 0 {
                engine.flush().expect("flush");
            }
        }
        let mut q = RangeQuery::new("p", all("m"), start * 1000, (start + len) * 1000, step * 1000);
        q.function = f.map(|kind| RangeFunction { kind, window_ms: window_s * 1000 });
        q.aggregation = agg.map(|op| Aggregation { op, grouping: Grouping::By(vec!["commune".into()]) });
        let got: Vec<(String, Vec<(i64, u64)>)> = engine.query_range(&q).expect("query").series.iter()
            .map(|s| (s.labels.to_string(), s.points.iter().map(|p| (p.t, p.v.to_bits())).collect())).collect();
        let mut got = got;
        got.sort();
        prop_assert_eq!(got, naive(&reference, &q));
    }
}

#[test]
fn extreme_times_from_the_network_give_answers_or_errors_never_panics() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open(dir.path());
    engine
        .write(request(
            "x",
            vec![sw("m", &[("site", "a")], &[(0, 1.0), (1000, 2.0)])],
        ))
        .expect("w");
    let whole = RangeQuery::new("x", all("m"), i64::MIN, i64::MAX, 1);
    assert!(matches!(
        engine.query_range(&whole),
        Err(Error::ResourceExhausted {
            limit: Limit::QueryMaxPointsPerSeries,
            ..
        })
    ));
    for kind in [
        FunctionKind::Rate,
        FunctionKind::Irate,
        FunctionKind::AvgOverTime,
    ] {
        let mut q = RangeQuery::new("x", all("m"), i64::MIN, i64::MAX, i64::MAX);
        q.function = Some(RangeFunction {
            kind,
            window_ms: i64::MAX,
        });
        engine
            .query_range(&q)
            .expect("a two-step query over all of time");
    }
    engine
        .latest("x", &all("m"), i64::MIN, i64::MAX)
        .expect("latest");
    engine.stale_series("x", &[], i64::MIN, 3.0).expect("stale");
    engine.stale_series("x", &[], i64::MAX, 3.0).expect("stale");
}

#[test]
fn a_panicking_query_worker_is_an_internal_error_and_the_engine_goes_on() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = Engine::open(dir.path(), Options::default()).expect("open");
    // Enough series that the snapshot is read on the shared pool, not the calling thread.
    let series: Vec<SeriesWrite> = (0..200)
        .map(|i| sw("beds", &[("site", &format!("s{i}"))], &[(1_000, i as f64)]))
        .collect();
    engine
        .write(WriteRequest {
            namespace: "health".into(),
            series,
        })
        .expect("write");
    let querier = engine.querier();
    for small in [false, true] {
        let mut selected = querier
            .select("health", &all("beds"), i64::MIN, i64::MAX)
            .expect("select");
        if small {
            selected.truncate(3);
        }
        let snapshot = querier.snapshot(selected, 0, 2_000);
        let outcome = snapshot.for_each(&|s, _| -> iocdb_engine::Result<()> {
            if s.labels().get("site") == Some("s2") {
                panic!("a bug in a query function");
            }
            Ok(())
        });
        assert!(
            matches!(&outcome, Err(Error::Internal(m)) if m.contains("a bug in a query function")),
            "{outcome:?}"
        );
    }
    let after = engine
        .select("health", &all("beds"), 0, 2_000)
        .expect("the engine still answers");
    assert_eq!(after.len(), 200);
}

/// The deepest queries the parser accepts evaluate on a thread with the stack a server
/// thread has (2 MiB), so no query text can abort the process by exhausting its stack.
#[test]
fn the_deepest_accepted_queries_fit_a_server_threads_stack() {
    use iocdb_engine::PromqlQuery;
    let dir = tempfile::tempdir().expect("dir");
    let engine = std::sync::Arc::new(Engine::open(dir.path(), Options::default()).expect("open"));
    engine
        .write(common::request(
            "ns",
            vec![common::series("m", 0, vec![Sample::new(1_000, 1.0)])],
        ))
        .expect("write");
    let nested = format!("{}m{}", "(".repeat(127), ")".repeat(127));
    let functions = format!("{}m{}", "abs(".repeat(127), ")".repeat(127));
    let chain = vec!["m"; 500].join(" + on(site) ");
    let scalars = vec!["1"; 512].join("+");
    let negations = format!("{}m", "-".repeat(500));
    let subqueries = format!(
        "{}m{}",
        "max_over_time((".repeat(60),
        ")[5m:1m])".repeat(60)
    );
    for q in [nested, functions, chain, scalars, negations, subqueries] {
        let engine = engine.clone();
        let head: String = q.chars().take(40).collect();
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let r = engine.query(&PromqlQuery::instant("ns", q, 2_000));
                assert!(r.is_ok(), "{r:?}");
            })
            .expect("thread")
            .join()
            .unwrap_or_else(|_| panic!("{head}…: failed on a 2 MiB stack"));
    }
    // One level more is refused with a message, not evaluated.
    let too_deep = format!("{}m{}", "(".repeat(129), ")".repeat(129));
    let e = engine
        .query(&PromqlQuery::instant("ns", too_deep, 2_000))
        .expect_err("too deep");
    assert!(e.to_string().contains("nests brackets"), "{e}");
}
