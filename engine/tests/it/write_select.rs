//! Writing and reading back through the facade: corrections, out-of-order data, flush and
//! reopen, bad input beside good input, limits, stats.

use std::time::Duration;

use iocdb_engine::{
    Engine, Error, Label, Limit, Limits, Matcher, Options, PerNamespace, RejectReason, Sample,
    SeriesWrite,
};

use crate::common::{self, Oracle, dump, request, series};

#[test]
fn written_samples_read_back_from_head_then_segments_then_after_reopen() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open(dir.path());
    let mut oracle = Oracle::default();
    let req = request(
        "tourism",
        (0..4)
            .map(|i| {
                series(
                    "tourism_visitors_current",
                    i,
                    (0..100)
                        .map(|t| Sample::new(t * 1000, (t * i as i64) as f64))
                        .collect(),
                )
            })
            .collect(),
    );
    assert_eq!(engine.write(req.clone()).expect("write").accepted, 400);
    oracle.apply(&req);
    assert_eq!(dump(&engine, "tourism"), oracle.expected());

    let report = engine.flush().expect("flush");
    assert!(
        report.segments >= 10,
        "100 s over 10 s partitions: {report:?}"
    );
    assert_eq!(dump(&engine, "tourism"), oracle.expected());

    // Corrections and backfill after the flush: the newest write wins over the segment.
    let fix = request(
        "tourism",
        vec![series(
            "tourism_visitors_current",
            1,
            vec![Sample::new(5000, -1.0), Sample::new(-7000, 3.5)],
        )],
    );
    engine.write(fix.clone()).expect("write");
    oracle.apply(&fix);
    assert_eq!(dump(&engine, "tourism"), oracle.expected());
    engine.close().expect("close");

    let engine = common::open(dir.path());
    assert_eq!(dump(&engine, "tourism"), oracle.expected());
    engine.flush().expect("flush");
    drop(engine);
    let engine = common::open(dir.path());
    assert_eq!(dump(&engine, "tourism"), oracle.expected());
}

#[test]
fn vietnamese_label_values_round_trip_exactly_through_wal_and_segments() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open(dir.path());
    engine
        .write(request(
            "lodging",
            vec![series("lodging_guests", 3, vec![Sample::new(1, 2.0)])],
        ))
        .expect("write");
    engine.flush().expect("flush");
    engine
        .write(request(
            "lodging",
            vec![series("lodging_guests", 1, vec![Sample::new(1, 2.0)])],
        ))
        .expect("write");
    drop(engine);
    let engine = common::open(dir.path());
    for commune in ["Đặc khu Phú Quốc", "Phường Châu Đốc"] {
        let got = engine
            .select("lodging", &[Matcher::equal("commune", commune)], 0, 10)
            .expect("select");
        assert_eq!(got.len(), 1, "{commune}");
        assert_eq!(got[0].labels.get("commune"), Some(commune));
    }
}

#[test]
fn each_bad_input_is_rejected_with_its_reason_and_the_good_samples_are_stored() {
    let dir = tempfile::tempdir().expect("dir");
    let limits = Limits {
        max_labels_per_series: 5,
        max_label_value_bytes: 24,
        max_label_name_bytes: 16,
        ..Limits::default()
    };
    let engine = common::open_with(
        dir.path(),
        Options {
            limits,
            retention: Some(Duration::from_secs(3600)),
            ..common::options()
        },
    )
    .expect("open");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let good = |i: usize| series("m", i, vec![Sample::new(now, 1.0)]);
    let with = |pairs: &[(&str, &str)]| SeriesWrite {
        labels: pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect(),
        samples: vec![Sample::new(now, 1.0), Sample::new(now + 1, 2.0)],
    };
    let req = request(
        "health",
        vec![
            good(0),
            with(&[("site", "x")]),
            with(&[("__name__", "m"), ("bad-name", "x")]),
            with(&[("__name__", "m"), ("a", "1"), ("a", "2")]),
            with(&[("__name__", "m"), ("v", "a value that is much too long")]),
            with(&[
                ("__name__", "m"),
                ("a", "1"),
                ("b", "1"),
                ("c", "1"),
                ("d", "1"),
                ("e", "1"),
            ]),
            with(&[("__name__", "m"), ("a_name_longer_than_sixteen", "1")]),
            SeriesWrite {
                labels: common::labels("m", 1),
                samples: vec![
                    Sample::new(now + 3_600_000, 1.0),
                    Sample::new(now, 5.0),
                    Sample::new(now - 7_200_000, 1.0),
                ],
            },
            good(2),
        ],
    );
    let outcome = engine.write(req).expect("write");
    assert_eq!(outcome.accepted, 3);
    let reasons: Vec<(usize, Option<usize>, &str)> = outcome
        .rejected
        .iter()
        .map(|r| (r.series_index, r.sample_index, r.reason.kind()))
        .collect();
    assert_eq!(
        reasons,
        [
            (1, None, "missing_metric_name"),
            (2, None, "invalid_label_name"),
            (3, None, "duplicate_label_name"),
            (4, None, "label_value_too_long"),
            (5, None, "too_many_labels"),
            (6, None, "label_name_too_long"),
            (7, Some(0), "too_far_in_future"),
            (7, Some(2), "too_old"),
        ]
    );
    assert!(
        outcome
            .rejected
            .iter()
            .all(|r| !r.reason.to_string().is_empty())
    );
    assert!(
        matches!(&outcome.rejected[1].reason, RejectReason::InvalidLabelName { name } if name == "bad-name")
    );
    let stored = dump(&engine, "health");
    assert_eq!(stored.len(), 3, "{stored:?}");
    assert_eq!(stored["s1"], vec![(now, 5f64.to_bits())]);
    let stats = engine.stats();
    assert_eq!(stats.rejected_samples.get("missing_metric_name"), Some(&2));
    assert_eq!(stats.rejected_samples.get("too_old"), Some(&1));
    assert_eq!(stats.accepted_samples, 3);

    let bad_ns = engine
        .write(request("no spaces allowed", vec![good(0)]))
        .expect("write");
    assert_eq!(bad_ns.accepted, 0);
    assert_eq!(bad_ns.rejected[0].reason.kind(), "invalid_namespace");
}

#[test]
fn the_series_limit_rejects_new_series_only() {
    let dir = tempfile::tempdir().expect("dir");
    let limits = Limits {
        max_series_per_namespace: 2,
        ..Limits::default()
    };
    let engine = common::open_with(
        dir.path(),
        Options {
            limits,
            ..common::options()
        },
    )
    .expect("open");
    let out = engine
        .write(request(
            "cams",
            (0..3)
                .map(|i| series("c", i, vec![Sample::new(1, 1.0)]))
                .collect(),
        ))
        .expect("write");
    assert_eq!(out.accepted, 2);
    assert!(matches!(
        out.rejected[0].reason,
        RejectReason::SeriesLimit { max: 2, .. }
    ));
    assert_eq!(
        engine
            .write(request(
                "other",
                vec![series("c", 9, vec![Sample::new(1, 1.0)])]
            ))
            .expect("w")
            .accepted,
        1
    );
}

/// A head budget (and a namespace share) that a few dozen batches fill, well above what
/// the test's series cost by themselves.
const SMALL_HEAD: usize = 32 << 10;

/// Batch `k` of a memory test: eight series of 64 samples each in `ns`.
fn eight_series(ns: &str, k: i64) -> iocdb_engine::WriteRequest {
    request(
        ns,
        (0..8)
            .map(|i| {
                series(
                    "c",
                    i,
                    (0..64)
                        .map(|t| Sample::new(k * 1000 + t, t as f64 * 0.37))
                        .collect(),
                )
            })
            .collect(),
    )
}

#[test]
fn a_full_head_refuses_writes_until_a_flush_frees_it() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open_with(
        dir.path(),
        Options {
            head_memory_budget: SMALL_HEAD,
            ..common::options()
        },
    )
    .expect("open");
    let batch = |k: i64| eight_series("cams", k);
    let mut refused = None;
    for k in 0..500 {
        if let Err(e) = engine.write(batch(k)) {
            refused = Some(e);
            break;
        }
    }
    assert!(
        matches!(
            refused,
            Some(Error::ResourceExhausted {
                limit: Limit::HeadMemoryBudget,
                ..
            })
        ),
        "{refused:?}"
    );
    engine.flush().expect("flush");
    assert!(engine.write(batch(99)).is_ok());
}

#[test]
fn a_namespace_over_its_head_share_is_refused_while_the_others_write() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open(dir.path());
    engine.set_head_shares(PerNamespace {
        default: None,
        by_namespace: [("cams".to_owned(), SMALL_HEAD as u64)].into(),
    });
    let batch = eight_series;
    let mut refused = None;
    for k in 0..500 {
        if let Err(e) = engine.write(batch("cams", k)) {
            refused = Some((k, e));
            break;
        }
    }
    let Some((k, Error::ResourceExhausted { limit, detail })) = refused else {
        panic!("never refused: {refused:?}");
    };
    assert_eq!(limit, Limit::HeadMemoryShare);
    assert!(detail.contains("namespace cams"), "{detail}");
    assert!(engine.head_share_pressed());
    // The refused batch left nothing behind, and another department is unaffected.
    let stats = engine.stats();
    let cams = stats.head_bytes_by_namespace["cams"];
    assert!(cams >= SMALL_HEAD as u64, "{stats:?}");
    assert_eq!(
        stats.head_share_by_namespace.get("cams"),
        Some(&(SMALL_HEAD as u64))
    );
    for j in 0..50 {
        engine
            .write(batch("health", j))
            .expect("another namespace writes on");
    }
    let stats = engine.stats();
    assert_eq!(stats.head_bytes_by_namespace["cams"], cams);
    assert!(
        stats.head_bytes_by_namespace["health"] > 4 * cams,
        "{stats:?}"
    );
    assert_eq!(
        stats.head_bytes,
        stats.head_bytes_by_namespace.values().sum::<u64>()
    );
    let stored: usize = dump(&engine, "cams").values().map(Vec::len).sum();
    assert_eq!(
        stored,
        k as usize * 8 * 64,
        "exactly the acknowledged batches"
    );

    // The per-namespace figures survive a restart (WAL replay; the series' own cost may be
    // shared out a little differently as tables grow in another order) and a flush leaves
    // only what the series cost.
    drop(engine);
    let engine = common::open(dir.path());
    let stats = engine.stats();
    let replayed = stats.head_bytes_by_namespace["cams"];
    assert!(replayed.abs_diff(cams) <= cams / 100, "{cams} {stats:?}");
    assert_eq!(
        stats.head_bytes,
        stats.head_bytes_by_namespace.values().sum::<u64>()
    );
    engine.set_head_shares(PerNamespace {
        default: Some(SMALL_HEAD as u64),
        by_namespace: Default::default(),
    });
    assert!(
        engine.write(batch("health", 99)).is_err(),
        "the default share applies"
    );
    engine.flush().expect("flush");
    let stats = engine.stats();
    // What is left is what the series themselves cost (they stay in the head).
    assert!(
        stats.head_bytes_by_namespace["cams"] < cams / 4,
        "{stats:?}"
    );
    assert!(
        stats.head_bytes_by_namespace["health"] < cams / 4,
        "{stats:?}"
    );
    assert_eq!(
        stats.head_bytes,
        stats.head_bytes_by_namespace.values().sum::<u64>()
    );
    assert!(!engine.head_share_pressed());
    engine
        .write(batch("cams", 99))
        .expect("room again after the flush");
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let _engine = common::open(dir.path());
    assert!(matches!(
        Engine::open(dir.path(), Options::default()),
        Err(Error::Locked { .. })
    ));
}

#[test]
fn select_filters_by_time_range_and_matchers() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open(dir.path());
    engine
        .write(request(
            "edu",
            (0..3)
                .map(|i| {
                    series(
                        "school_attendance_ratio",
                        i,
                        (0..50).map(|t| Sample::new(t * 1000, 0.5)).collect(),
                    )
                })
                .collect(),
        ))
        .expect("w");
    engine.flush().expect("flush");
    let got = engine
        .select("edu", &[Matcher::equal("site", "s1")], 20_000, 29_999)
        .expect("select");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].samples.len(), 10);
    assert!(
        engine
            .select("edu", &[Matcher::equal("site", "s1")], 60_000, 70_000)
            .expect("s")
            .is_empty()
    );
    assert!(engine.select("nobody", &[], 0, 1).expect("s").is_empty());
}

/// `Engine::export` hands every matching series with samples in range once, by metric and
/// then labels, with exactly what `select` reads, whatever the batch size; from the head
/// and the segments alike.
#[test]
fn export_hands_each_series_once_by_metric_then_labels() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open(dir.path());
    let write = |metric: &str, from: i64| {
        let batch = (0..7)
            .map(|i| {
                series(
                    metric,
                    i,
                    (0..5)
                        .map(|k| Sample::new(from + k * 1000, i as f64))
                        .collect(),
                )
            })
            .collect();
        engine.write(request("edu", batch)).expect("write");
    };
    // Written out of the metrics' order, partly flushed; one metric only before the range.
    write("b_metric", 10_000);
    write("z_before_range", 0);
    engine.flush().expect("flush");
    write("a_metric", 10_000);
    write("c_metric", 12_000);
    write("b_metric", 20_000);
    let range = (10_000, 30_000);
    for (matchers, series_expected) in [
        (vec![], 21),
        (vec![Matcher::equal("commune", common::COMMUNES[2])], 6),
        (vec![Matcher::equal("__name__", "c_metric")], 7),
    ] {
        let mut expected = engine
            .select("edu", &matchers, range.0, range.1)
            .expect("select");
        expected.sort_by(|a, b| {
            (a.labels.metric_name(), &a.labels).cmp(&(b.labels.metric_name(), &b.labels))
        });
        assert_eq!(expected.len(), series_expected, "{matchers:?}");
        for batch in [1, 3, 1000] {
            let mut got = Vec::new();
            let n = engine
                .export("edu", &matchers, range, batch, &mut |s| {
                    got.push(s);
                    Ok(())
                })
                .expect("export");
            assert_eq!(n as usize, got.len());
            assert_eq!(got, expected, "{matchers:?}, batches of {batch}");
        }
    }
}

#[test]
fn interval_fsync_acknowledges_and_keeps_data_across_a_clean_close() {
    let dir = tempfile::tempdir().expect("dir");
    let opts = Options {
        fsync: iocdb_engine::FsyncPolicy::Interval(Duration::from_millis(5)),
        ..common::options()
    };
    let engine = common::open_with(dir.path(), opts.clone()).expect("open");
    let req = request("s", vec![series("m", 0, vec![Sample::new(1, 1.0)])]);
    engine.write(req.clone()).expect("w");
    std::thread::sleep(Duration::from_millis(20));
    engine.close().expect("close");
    let engine = common::open_with(dir.path(), opts).expect("open");
    assert_eq!(dump(&engine, "s").len(), 1);
}

#[test]
fn extreme_timestamps_are_stored_flushed_and_read_back() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open(dir.path());
    let samples = vec![
        Sample::new(i64::MIN, 1.0),
        Sample::new(i64::MIN + 1, 2.0),
        Sample::new(-1, 3.0),
        Sample::new(0, 4.0),
    ];
    let req = request("x", vec![series("m", 0, samples.clone())]);
    assert_eq!(engine.write(req).expect("write").accepted, 4);
    engine.flush().expect("flush");
    drop(engine);
    let engine = common::open(dir.path());
    let got = dump(&engine, "x");
    assert_eq!(
        got["s0"],
        samples
            .iter()
            .map(|s| (s.t, s.v.to_bits()))
            .collect::<Vec<_>>()
    );
}

/// Writers that find known series by their bytes (under every shard's lock and the index's,
/// held for a batch) beside writers that create series (a shard's lock, then the index's)
/// must never wait on each other in a cycle: four writers mixing both, in two namespaces,
/// finish well within their deadline, and every series exists once.
#[test]
fn writers_finding_and_creating_series_at_once_never_deadlock() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = std::sync::Arc::new(common::open(dir.path()));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    for w in 0..4usize {
        let (engine, done) = (engine.clone(), done_tx.clone());
        std::thread::spawn(move || {
            for round in 0..150usize {
                let ns = ["health", "tourism"][(w + round) % 2];
                // 20 series known since round 0 and 5 new ones each round.
                let known =
                    (0..20).map(|i| series("beds_free", i, vec![Sample::new(round as i64, 1.0)]));
                let new = (0..5).map(|i| {
                    series(
                        "beds_free",
                        1000 + w * 100_000 + round * 5 + i,
                        vec![Sample::new(round as i64, 2.0)],
                    )
                });
                let req = request(ns, known.chain(new).collect());
                let out = engine.write(req).expect("write");
                assert!(out.rejected.is_empty(), "{:?}", out.rejected.first());
            }
            let _ = done.send(());
        });
    }
    for _ in 0..4 {
        done_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a writer finished within a minute (a deadlock would hang here)");
    }
    for ns in ["health", "tourism"] {
        // 20 shared series plus, per writer that wrote here, 5 new ones a round.
        assert_eq!(dump(&engine, ns).len(), 20 + 4 * 75 * 5, "{ns}");
    }
}

/// `Stats.head_samples` is kept by the write path, the flush and WAL replay rather than
/// counted series by series on every call: each sample written is held once — in order,
/// late or a correction of an earlier one — until a flush takes it.
#[test]
fn the_head_sample_count_follows_writes_corrections_flushes_and_replay() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open(dir.path());
    for k in 0..3 {
        engine.write(eight_series("cams", k)).expect("write");
    }
    engine.write(eight_series("health", 0)).expect("write");
    assert_eq!(engine.stats().head_samples, 4 * 8 * 64);
    // A late batch and a batch of corrections of samples already held: each sample counts.
    engine.write(eight_series("cams", 1)).expect("corrections");
    let late = request(
        "cams",
        vec![series(
            "c",
            0,
            vec![Sample::new(5, 1.0), Sample::new(-7, 2.0)],
        )],
    );
    engine.write(late).expect("late");
    assert_eq!(engine.stats().head_samples, 5 * 8 * 64 + 2);
    engine.flush().expect("flush");
    assert_eq!(engine.stats().head_samples, 0);
    engine.write(eight_series("cams", 9)).expect("write");
    engine.write(eight_series("health", 9)).expect("write");
    assert_eq!(engine.stats().head_samples, 2 * 8 * 64);
    drop(engine);
    // Replayed from the WAL.
    let engine = common::open(dir.path());
    assert_eq!(engine.stats().head_samples, 2 * 8 * 64);
}

mod by_handle {
    //! A series named by its handle is stored exactly as it would be by its labels, in its
    //! own namespace, whatever the request's; a series the door refused is counted at its
    //! place and costs the others nothing.

    use std::borrow::Cow;

    use iocdb_engine::{
        RawLabel, RawSeriesWrite, RawWriteRequest, RejectReason, Sample, SeriesBy, SeriesHandle,
    };
    use proptest::prelude::*;

    use crate::common::{self, dump};

    const NAMESPACES: [&str; 2] = ["tourism", "lodging"];

    /// Series `i`'s namespace.
    fn namespace(i: usize) -> &'static str {
        NAMESPACES[i % 2]
    }

    /// How an entry names its series in the mixed write.
    #[derive(Debug, Clone, Copy)]
    enum Way {
        Labels,
        Handle,
        Refused,
    }

    fn way() -> impl Strategy<Value = Way> {
        prop_oneof![Just(Way::Labels), Just(Way::Handle), Just(Way::Refused)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn a_series_by_handle_is_stored_as_by_its_labels(
            entries in prop::collection::vec((0usize..6, way(), 0i64..40, -1e3f64..1e3), 1..30),
        ) {
            let (mixed_dir, plain_dir) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
            let (mixed, plain) = (common::open(mixed_dir.path()), common::open(plain_dir.path()));
            let t0 = 1_000_000;
            let sets: Vec<Vec<iocdb_engine::Label>> = (0..6).map(|i| common::labels("guests", i)).collect();
            let handles: Vec<SeriesHandle> = sets
                .iter()
                .enumerate()
                .map(|(i, l)| mixed.resolve(namespace(i), l.clone()).expect("resolve"))
                .collect();
            let raw: Vec<Vec<RawLabel<'_>>> = sets
                .iter()
                .map(|l| l.iter().map(|l| RawLabel::new(l.name.as_bytes(), l.value.as_bytes())).collect())
                .collect();
            let samples: Vec<[Sample; 1]> = entries
                .iter()
                .map(|&(_, _, dt, v)| [Sample::new(t0 + dt * 1000, v)])
                .collect();
            // One request of the first namespace: a series of the other namespace can only
            // be named by its handle there; by labels it would be a series of the first.
            let series: Vec<RawSeriesWrite<'_>> = entries
                .iter()
                .zip(&samples)
                .map(|(&(i, way, _, _), s)| RawSeriesWrite {
                    by: match way {
                        Way::Labels if namespace(i) == NAMESPACES[0] => SeriesBy::Labels(&raw[i]),
                        Way::Labels | Way::Handle => SeriesBy::Handle(&handles[i]),
                        Way::Refused => SeriesBy::Refused(RejectReason::UnknownStreamId { id: i as u64 }),
                    },
                    samples: Cow::Borrowed(&s[..]),
                })
                .collect();
            let outcome = mixed
                .write_raw(RawWriteRequest { namespace: NAMESPACES[0], series: &series })
                .expect("mixed write");
            let refused: Vec<usize> = entries
                .iter()
                .enumerate()
                .filter(|(_, e)| matches!(e.1, Way::Refused))
                .map(|(k, _)| k)
                .collect();
            let rejected: Vec<usize> = outcome.rejected.iter().map(|r| r.series_index).collect();
            prop_assert_eq!(&rejected, &refused);
            prop_assert!(outcome.rejected.iter().all(|r| r.reason.kind() == "unknown_stream_id"));
            prop_assert_eq!(outcome.accepted, entries.len() - refused.len());
            // The same samples by labels, each series in its own namespace, in entry order.
            for (&(i, way, _, _), s) in entries.iter().zip(&samples) {
                if matches!(way, Way::Refused) {
                    continue;
                }
                plain
                    .write(common::request(
                        namespace(i),
                        vec![iocdb_engine::SeriesWrite { labels: sets[i].clone(), samples: s.to_vec() }],
                    ))
                    .expect("plain write");
            }
            for ns in NAMESPACES {
                prop_assert_eq!(dump(&mixed, ns), dump(&plain, ns), "{}", ns);
            }
        }
    }
}
