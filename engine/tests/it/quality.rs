//! Data-quality rules at ingest: each rule under each policy rejects or flags exactly the
//! bad samples, stores the good ones beside them, counts them, and the record survives a
//! restart and a damaged journal line.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use iocdb_engine::{
    Engine, Label, Matcher, MetricMetadata, Options, QualityAction, QualityFilter, QualityPolicy,
    QualityRule, QualityRules, RawSeriesWrite, RawWriteRequest, Sample, SeriesBy, SeriesWrite,
    WriteRequest,
};

const NS: &str = "y_te";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn entry(metric: &str, kind: &str, rules: QualityRules) -> MetricMetadata {
    MetricMetadata {
        metric: metric.into(),
        kind: kind.into(),
        department: "Sở Y tế".into(),
        rules,
        ..Default::default()
    }
}

fn declare(engine: &Engine) {
    let entries = [
        entry(
            "waiting_patients",
            "gauge",
            QualityRules {
                valid_min: Some(0.0),
                valid_max: Some(100.0),
                ..Default::default()
            },
        ),
        entry("visits_total", "counter", QualityRules::default()),
        entry(
            "beds_free",
            "gauge",
            QualityRules {
                revision_window_ms: Some(60_000),
                ..Default::default()
            },
        ),
        entry(
            "doctors_on_duty",
            "gauge",
            QualityRules {
                required_labels: vec!["commune".into()],
                ..Default::default()
            },
        ),
        entry(
            "ambulances_out",
            "gauge",
            QualityRules {
                max_change_factor: Some(10.0),
                ..Default::default()
            },
        ),
    ];
    for mut e in entries {
        if e.kind == "counter" {
            // A counter with no other rule turns its check on by naming a policy; here the
            // namespace's (set per test) must decide, so it declares a range that never binds.
            e.rules.valid_min = Some(f64::MIN);
        }
        engine.set_metadata(NS, e).expect("declare");
    }
}

fn series(metric: &str, commune: Option<&str>, points: &[(i64, f64)]) -> SeriesWrite {
    let mut labels = vec![
        Label::new("__name__", metric),
        Label::new("facility", "Bệnh viện Đa khoa An Giang"),
    ];
    if let Some(c) = commune {
        labels.push(Label::new("commune", c));
    }
    SeriesWrite {
        labels,
        samples: points.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
    }
}

/// Writes the scenario; returns the (series index, sample index, kind) of every rejection.
fn write_scenario(engine: &Engine, t0: i64) -> Vec<(usize, Option<usize>, &'static str)> {
    let s = 1000;
    // beds_free's latest sample comes first, in its own write: the later revision is judged
    // against what the head holds.
    engine
        .write(WriteRequest {
            namespace: NS.into(),
            series: vec![series(
                "beds_free",
                Some("Châu Đốc"),
                &[(t0 + 600 * s, 7.0)],
            )],
        })
        .expect("write");
    let outcome = engine
        .write(WriteRequest {
            namespace: NS.into(),
            series: vec![
                // 0: -5 and 1e9 are outside [0, 100]
                series(
                    "waiting_patients",
                    Some("Long Xuyên"),
                    &[
                        (t0, 5.0),
                        (t0 + s, -5.0),
                        (t0 + 2 * s, 1e9),
                        (t0 + 3 * s, 50.0),
                    ],
                ),
                // 1: 15 after 20 is a decrease; 2 after it is a reset
                series(
                    "visits_total",
                    Some("Châu Đốc"),
                    &[
                        (t0, 10.0),
                        (t0 + s, 20.0),
                        (t0 + 2 * s, 15.0),
                        (t0 + 3 * s, 2.0),
                        (t0 + 4 * s, 3.0),
                    ],
                ),
                // 2: 100 s before the latest is beyond the 60 s window; 10 s is within
                series(
                    "beds_free",
                    Some("Châu Đốc"),
                    &[(t0 + 500 * s, 6.0), (t0 + 590 * s, 6.5)],
                ),
                // 3: no commune label
                series("doctors_on_duty", None, &[(t0, 4.0), (t0 + s, 5.0)]),
                // 4: with it
                series("doctors_on_duty", Some("Tri Tôn"), &[(t0, 4.0)]),
                // 5: 600 after 50 is 12×
                series(
                    "ambulances_out",
                    Some("Tịnh Biên"),
                    &[
                        (t0, 10.0),
                        (t0 + s, 50.0),
                        (t0 + 2 * s, 600.0),
                        (t0 + 3 * s, 60.0),
                    ],
                ),
            ],
        })
        .expect("write");
    outcome
        .rejected
        .iter()
        .map(|r| (r.series_index, r.sample_index, r.reason.kind()))
        .collect()
}

const BAD: [(usize, Option<usize>, &str); 6] = [
    (0, Some(1), "out_of_range"),
    (0, Some(2), "out_of_range"),
    (1, Some(2), "counter_decrease"),
    (2, Some(0), "timestamp_regression"),
    (3, None, "missing_required_label"),
    (5, Some(2), "excessive_change"),
];

/// Samples per metric that the store holds.
fn stored(engine: &Engine) -> BTreeMap<String, Vec<(i64, f64)>> {
    let all = engine
        .select(
            NS,
            &[Matcher::new("__name__", iocdb_engine::MatchOp::Regex, ".+").expect("m")],
            i64::MIN,
            i64::MAX,
        )
        .expect("select");
    let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for s in all {
        out.entry(s.labels.metric_name().to_owned())
            .or_default()
            .extend(s.samples.iter().map(|x| (x.t, x.v)));
    }
    out.values_mut().for_each(|v| v.sort_by_key(|x| x.0));
    out
}

fn counts(engine: &Engine) -> BTreeMap<(String, QualityRule, QualityAction), u64> {
    engine
        .quality(&QualityFilter::default())
        .counts
        .into_iter()
        .map(|c| ((c.metric, c.rule, c.action), c.samples))
        .collect()
}

#[test]
fn each_rule_under_each_policy_rejects_or_flags_exactly_the_bad_samples_and_survives_restart() {
    let t0 = now() - 3_600_000;
    for policy in [
        QualityPolicy::Reject,
        QualityPolicy::Flag,
        QualityPolicy::Off,
    ] {
        let dir = tempfile::tempdir().expect("dir");
        let engine = Engine::open(dir.path(), Options::default()).expect("open");
        engine.set_quality_policies([(NS.to_owned(), policy)].into());
        declare(&engine);
        let rejected = write_scenario(&engine, t0);
        let held = stored(&engine);
        let total: usize = held.values().map(Vec::len).sum();
        let report = engine.quality(&QualityFilter {
            limit: 100,
            ..Default::default()
        });
        let expected_counts: BTreeMap<_, u64> = match policy {
            QualityPolicy::Off => BTreeMap::new(),
            _ => {
                let action = if policy == QualityPolicy::Reject {
                    QualityAction::Rejected
                } else {
                    QualityAction::Flagged
                };
                [
                    ("waiting_patients", QualityRule::OutOfRange, 2),
                    ("visits_total", QualityRule::CounterDecrease, 1),
                    ("beds_free", QualityRule::TimestampRegression, 1),
                    ("doctors_on_duty", QualityRule::MissingRequiredLabel, 2),
                    ("ambulances_out", QualityRule::ExcessiveChange, 1),
                ]
                .into_iter()
                .map(|(m, r, n)| ((m.to_owned(), r, action), n))
                .collect()
            }
        };
        assert_eq!(counts(&engine), expected_counts, "{policy:?}");
        match policy {
            QualityPolicy::Reject => {
                assert_eq!(rejected, BAD.to_vec());
                assert_eq!(
                    total,
                    19 - 7,
                    "every good sample beside the bad ones is stored"
                );
                assert_eq!(held["waiting_patients"], vec![(t0, 5.0), (t0 + 3000, 50.0)]);
                assert_eq!(held["doctors_on_duty"], vec![(t0, 4.0)]);
                assert_eq!(report.events.len(), 6, "one event per rejection");
                let e = &report.events[0];
                assert_eq!((e.metric.as_str(), e.value), ("waiting_patients", -5.0));
                assert!(e.series.contains("Long Xuyên"), "{}", e.series);
                assert!(e.detail.contains("[0, 100]"), "{}", e.detail);
                assert!(
                    engine.stats().rejected_samples.get("out_of_range") == Some(&2),
                    "rejections by kind include the rules"
                );
            }
            _ => {
                assert_eq!(rejected, vec![], "{policy:?} stores everything");
                assert_eq!(total, 19);
                let flagged = if policy == QualityPolicy::Flag { 6 } else { 0 };
                assert_eq!(report.events.len(), flagged);
            }
        }
        drop(engine);
        let reopened = Engine::open(dir.path(), Options::default()).expect("reopen");
        assert_eq!(
            counts(&reopened),
            expected_counts,
            "{policy:?} after restart"
        );
        let again = reopened.quality(&QualityFilter {
            limit: 100,
            ..Default::default()
        });
        assert_eq!(
            again.events, report.events,
            "{policy:?} events after restart"
        );
        assert_eq!(reopened.stats().quality.len(), expected_counts.len());
    }
}

#[test]
fn an_indicator_policy_overrides_its_namespace_and_writes_by_handle_are_checked_too() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = Engine::open(dir.path(), Options::default()).expect("open");
    engine.set_quality_policies([(NS.to_owned(), QualityPolicy::Reject)].into());
    let rules = QualityRules {
        valid_max: Some(10.0),
        ..Default::default()
    };
    engine
        .set_metadata(NS, entry("strict", "gauge", rules.clone()))
        .expect("declare");
    let lenient = QualityRules {
        policy: Some(QualityPolicy::Flag),
        ..rules
    };
    engine
        .set_metadata(NS, entry("lenient", "gauge", lenient))
        .expect("declare");
    let t = now() - 60_000;
    let mut outcomes = Vec::new();
    for metric in ["strict", "lenient"] {
        let handle = engine
            .resolve(NS, series(metric, Some("An Phú"), &[]).labels)
            .expect("resolve");
        let samples = [Sample::new(t, 11.0), Sample::new(t + 1, 9.0)];
        let outcome = engine
            .write_raw(RawWriteRequest {
                namespace: NS,
                series: &[RawSeriesWrite {
                    by: SeriesBy::Handle(&handle),
                    samples: samples[..].into(),
                }],
            })
            .expect("write");
        outcomes.push((outcome.accepted, outcome.rejected.len()));
    }
    assert_eq!(outcomes, vec![(1, 1), (2, 0)]);
    let c = counts(&engine);
    assert_eq!(
        c.get(&(
            "strict".into(),
            QualityRule::OutOfRange,
            QualityAction::Rejected
        )),
        Some(&1)
    );
    assert_eq!(
        c.get(&(
            "lenient".into(),
            QualityRule::OutOfRange,
            QualityAction::Flagged
        )),
        Some(&1)
    );
    // Turning the namespace off stops the strict indicator's check, not the lenient one's.
    engine.set_quality_policies([(NS.to_owned(), QualityPolicy::Off)].into());
    let w = engine
        .write(WriteRequest {
            namespace: NS.into(),
            series: vec![
                series("strict", Some("An Phú"), &[(t + 2, 99.0)]),
                series("lenient", Some("An Phú"), &[(t + 2, 99.0)]),
            ],
        })
        .expect("write");
    assert_eq!((w.accepted, w.rejected.len()), (2, 0));
    let c = counts(&engine);
    assert_eq!(
        c.get(&(
            "lenient".into(),
            QualityRule::OutOfRange,
            QualityAction::Flagged
        )),
        Some(&2)
    );
}

#[test]
fn a_damaged_journal_line_is_skipped_and_the_rest_is_kept() {
    let dir = tempfile::tempdir().expect("dir");
    let t = now() - 60_000;
    {
        let engine = Engine::open(dir.path(), Options::default()).expect("open");
        let rules = QualityRules {
            valid_min: Some(0.0),
            ..Default::default()
        };
        engine
            .set_metadata(NS, entry("m", "gauge", rules))
            .expect("declare");
        for i in 0..3 {
            let w = WriteRequest {
                namespace: NS.into(),
                series: vec![series("m", Some("Chợ Mới"), &[(t + i, -1.0)])],
            };
            engine.write(w).expect("write");
        }
    }
    let path = dir.path().join("QUALITY");
    let mut bytes = std::fs::read(&path).expect("journal");
    let lines: Vec<usize> = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i)
        .collect();
    // Flip a byte inside the second event (the third line), and cut the last one short.
    bytes[lines[1] + 20] ^= 0x20;
    bytes.truncate(bytes.len() - 5);
    std::fs::write(&path, &bytes).expect("damage");
    let engine = Engine::open(dir.path(), Options::default()).expect("opens despite damage");
    let report = engine.quality(&QualityFilter {
        limit: 10,
        ..Default::default()
    });
    assert_eq!(report.events.len(), 1, "one of three events is left whole");
    assert_eq!(report.events[0].timestamp, t);
    assert_eq!(report.counts[0].samples, 1);
    let fresh = std::fs::read_to_string(&path).expect("rewritten");
    assert!(fresh.starts_with("iocdb-quality 1\n"), "{fresh}");
}

#[test]
fn catalog_entries_with_meaningless_numbers_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = Engine::open(dir.path(), Options::default()).expect("open");
    let bad = [
        QualityRules {
            valid_min: Some(5.0),
            valid_max: Some(1.0),
            ..Default::default()
        },
        QualityRules {
            max_change_factor: Some(0.5),
            ..Default::default()
        },
        QualityRules {
            valid_max: Some(f64::NAN),
            ..Default::default()
        },
        QualityRules {
            revision_window_ms: Some(-1),
            ..Default::default()
        },
        QualityRules {
            required_labels: vec!["xã phường".into()],
            ..Default::default()
        },
    ];
    for rules in bad {
        let e = engine.set_metadata(NS, entry("m", "gauge", rules.clone()));
        assert!(
            matches!(e, Err(iocdb_engine::Error::InvalidArgument(_))),
            "{rules:?}: {e:?}"
        );
    }
}

#[test]
fn a_flush_between_two_samples_does_not_hide_a_counter_going_back() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = Engine::open(dir.path(), Options::default()).expect("open");
    let rules = QualityRules {
        policy: Some(QualityPolicy::Reject),
        ..Default::default()
    };
    engine
        .set_metadata(NS, entry("visits_total", "counter", rules))
        .expect("declare");
    let t = now() - 60_000;
    let write = |at: i64, v: f64| {
        engine
            .write(WriteRequest {
                namespace: NS.into(),
                series: vec![series("visits_total", Some("Phú Tân"), &[(at, v)])],
            })
            .expect("write")
            .rejected
            .len()
    };
    assert_eq!(write(t, 100.0), 0);
    engine.flush().expect("flush");
    assert_eq!(write(t + 1000, 90.0), 1, "compared with the flushed 100");
    assert_eq!(write(t + 2000, 101.0), 0);
    // Silent for a flush interval, the series leaves the head; its newest sample is read
    // back from the segments when it is written again, and after a restart too.
    engine.flush().expect("flush");
    engine.flush().expect("flush");
    assert_eq!(engine.stats().head_series, 0);
    assert_eq!(write(t + 3000, 95.0), 1, "compared with the stored 101");
    assert_eq!(write(t + 4000, 102.0), 0);
    engine.flush().expect("flush");
    engine.close().expect("close");
    let engine = Engine::open(dir.path(), Options::default()).expect("reopen");
    let outcome = engine
        .write(WriteRequest {
            namespace: NS.into(),
            series: vec![series("visits_total", Some("Phú Tân"), &[(t + 5000, 99.0)])],
        })
        .expect("write");
    assert_eq!(outcome.rejected.len(), 1, "compared with the stored 102");
}

#[test]
fn a_snapshot_carries_the_quality_record_and_the_arrival_delays() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = Engine::open(dir.path().join("store"), Options::default()).expect("open");
    let rules = QualityRules {
        valid_min: Some(0.0),
        ..Default::default()
    };
    engine
        .set_metadata(NS, entry("m", "gauge", rules))
        .expect("declare");
    let t = now() - 60_000;
    engine
        .write(WriteRequest {
            namespace: NS.into(),
            series: vec![series("m", Some("Thoại Sơn"), &[(t, -1.0), (t + 1, 2.0)])],
        })
        .expect("write");
    let q = iocdb_engine::CompletenessQuery {
        start: t - 3_600_000,
        end: t + 3_600_000,
        ..Default::default()
    };
    let delays = |e: &Engine| e.completeness(NS, &q, t, 3.0).expect("report").delays;
    let before = (
        engine.quality(&QualityFilter::default()).counts,
        delays(&engine),
    );
    assert_eq!(before.0.len(), 1);
    assert_eq!(before.1[0].samples, 2);
    let copy = dir.path().join("snapshot");
    engine.snapshot(&copy).expect("snapshot");
    drop(engine);
    let restored = Engine::open(&copy, Options::default()).expect("open the snapshot");
    let after = (
        restored.quality(&QualityFilter::default()).counts,
        delays(&restored),
    );
    assert_eq!(after, before);
}

#[test]
fn a_damaged_arrivals_file_is_quarantined_named_by_verify_and_the_store_still_opens() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let engine = Engine::open(dir.path(), Options::default()).expect("open");
        let w = WriteRequest {
            namespace: NS.into(),
            series: vec![series("m", Some("Tân Châu"), &[(now() - 1000, 1.0)])],
        };
        engine.write(w).expect("write");
    }
    let path = dir.path().join("ARRIVALS");
    let mut bytes = std::fs::read(&path).expect("stored at close");
    bytes[20] ^= 0x01;
    std::fs::write(&path, &bytes).expect("damage");
    let report = Engine::verify(dir.path(), &iocdb_engine::fs::OsFs).expect("verify");
    assert!(
        report.problems.iter().any(|p| p.file.ends_with("ARRIVALS")),
        "{report:?}"
    );
    let engine = Engine::open(dir.path(), Options::default()).expect("opens despite it");
    let stats = engine.stats();
    assert!(
        stats
            .quarantined
            .iter()
            .any(|q| q.file.ends_with("ARRIVALS")),
        "{:?}",
        stats.quarantined
    );
    assert_eq!(stats.series, 1);
}

#[test]
fn a_backfill_is_stored_without_arrival_delays() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = Engine::open(dir.path(), Options::default()).expect("open");
    let t = now() - 86_400_000;
    let write = |live: bool| {
        let req = WriteRequest {
            namespace: NS.into(),
            series: vec![series("m", Some("Châu Phú"), &[(t, 1.0), (t + 1, 2.0)])],
        };
        let out = if live {
            engine.write(req)
        } else {
            engine.write_backfill(req)
        };
        assert_eq!(out.expect("write").accepted, 2);
    };
    let q = iocdb_engine::CompletenessQuery {
        start: t - 3_600_000,
        end: t + 3_600_000,
        ..Default::default()
    };
    let delays = || engine.completeness(NS, &q, t, 3.0).expect("report").delays;
    write(false);
    assert_eq!(delays(), vec![], "history records no delays");
    write(true);
    assert_eq!(delays()[0].samples, 2);
}
