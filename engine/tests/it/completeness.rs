//! The completeness and liveness report on a scripted province: six facilities report every
//! minute for three hours under a clock the test moves; one has an outage, one sends half an
//! hour late in one batch, one falls silent, one corrects a past value. The report must name
//! exactly those gaps, that silent source and the delays the script injected.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use iocdb_engine::{
    Clock, CompletenessQuery, Engine, Label, MetricMetadata, Options, Sample, SeriesWrite,
    WriteRequest,
};

const NS: &str = "y_te";
const MIN: i64 = 60_000;
const FACILITIES: [&str; 6] = ["F1", "F2", "F3", "F4", "F5", "F6"];

fn write(engine: &Engine, facility: &str, ts: &[i64], value: f64) {
    let outcome = engine
        .write(WriteRequest {
            namespace: NS.into(),
            series: vec![SeriesWrite {
                labels: vec![
                    Label::new("__name__", "waiting_patients"),
                    Label::new("facility", facility),
                    Label::new(
                        "commune",
                        if facility < "F4" {
                            "Châu Đốc"
                        } else {
                            "Long Xuyên"
                        },
                    ),
                ],
                samples: ts.iter().map(|&t| Sample::new(t, value)).collect(),
            }],
        })
        .expect("write");
    assert_eq!(outcome.rejected, vec![]);
}

/// Runs the script; returns the engine, the window start and the clock.
fn province(dir: &std::path::Path) -> (Engine, i64, Arc<AtomicI64>) {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let base = wall - wall.rem_euclid(3_600_000) - 6 * 3_600_000;
    let clock = Arc::new(AtomicI64::new(base));
    let engine = open(dir, &clock);
    engine
        .set_metadata(
            NS,
            MetricMetadata {
                metric: "waiting_patients".into(),
                department: "Sở Y tế".into(),
                expected_interval_ms: Some(MIN),
                ..Default::default()
            },
        )
        .expect("catalog");
    for k in 0..180 {
        let t = base + k * MIN;
        clock.store(t + 1500, Ordering::SeqCst);
        for f in FACILITIES {
            let skipped = match f {
                "F2" => (30..50).contains(&k),
                "F3" => (60..90).contains(&k),
                "F4" => k >= 120,
                _ => false,
            };
            if !skipped {
                write(&engine, f, &[t], 10.0);
            }
        }
        if k == 100 {
            write(&engine, "F5", &[base + 50 * MIN], 11.0);
        }
        if k == 150 {
            let late: Vec<i64> = (60..90).map(|j| base + j * MIN).collect();
            write(&engine, "F3", &late, 10.0);
        }
    }
    (engine, base, clock)
}

fn open(dir: &std::path::Path, clock: &Arc<AtomicI64>) -> Engine {
    let c = clock.clone();
    let opts = Options {
        clock: Clock::from_fn(move || c.load(Ordering::SeqCst)),
        ..Options::default()
    };
    Engine::open(dir, opts).expect("open")
}

#[test]
fn the_report_names_exactly_the_scripted_gaps_silence_and_delays() {
    let dir = tempfile::tempdir().expect("dir");
    let (engine, base, clock) = province(dir.path());
    let end = base + 180 * MIN;
    let q = CompletenessQuery {
        start: base,
        end,
        by: vec!["facility".into()],
        ..Default::default()
    };
    let report = engine.completeness(NS, &q, end, 3.0).expect("report");

    let by_facility: Vec<(String, u64, u64, u64)> = report
        .figures
        .groups
        .iter()
        .map(|g| (g.labels[0].clone(), g.expected, g.received, g.gaps))
        .collect();
    assert_eq!(
        by_facility,
        vec![
            ("F1".into(), 180, 180, 0),
            ("F2".into(), 180, 160, 1),
            ("F3".into(), 180, 180, 0),
            ("F4".into(), 180, 120, 1),
            ("F5".into(), 180, 180, 0),
            ("F6".into(), 180, 180, 0),
        ]
    );
    assert!(
        report
            .figures
            .groups
            .iter()
            .all(|g| g.department == "Sở Y tế")
    );
    let gaps: Vec<(String, i64, i64, u64, bool)> = report
        .figures
        .gaps
        .iter()
        .map(|g| {
            (
                g.labels.get("facility").unwrap_or_default().to_owned(),
                (g.start - base) / MIN,
                (g.end - base) / MIN,
                g.missing,
                g.open,
            )
        })
        .collect();
    assert_eq!(
        gaps,
        vec![
            ("F2".into(), 29, 50, 20, false),
            ("F4".into(), 119, 180, 60, true)
        ]
    );
    let silent: Vec<(&str, i64)> = report
        .silent
        .iter()
        .map(|s| {
            (
                s.labels.get("facility").unwrap_or_default(),
                s.last.map_or(0, |l| (l.t - base) / MIN),
            )
        })
        .collect();
    assert_eq!(silent, vec![("F4", 119)]);

    // 970 samples live 1.5 s after their time, F3's 30 late by 61–90 min (+1.5 s), one
    // revision 50 min (+1.5 s) after the value it corrects.
    let check_delays = |engine: &Engine| {
        let r = engine.completeness(NS, &q, end, 3.0).expect("report");
        assert_eq!(r.delays.len(), 1);
        let d = &r.delays[0];
        assert_eq!(d.samples, 1001);
        let close = |got: i64, want: i64| (got - want).abs() as f64 <= want as f64 / 32.0;
        assert!(close(d.p50_ms, 1500), "{d:?}");
        // Rank ceil(0.99 × 1001) = 991: past the 970 live and the revision, the 20th
        // smallest late delay, 80 min.
        assert!(close(d.p99_ms, 80 * MIN + 1500), "{d:?}");
        assert!(close(d.max_ms, 90 * MIN + 1500), "{d:?}");
    };
    check_delays(&engine);
    drop(engine);
    check_delays(&open(dir.path(), &clock));
}

#[test]
fn by_commune_totals_add_up_and_a_bad_window_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let (engine, base, _) = province(dir.path());
    let end = base + 180 * MIN;
    let q = CompletenessQuery {
        start: base,
        end,
        by: vec!["commune".into()],
        ..Default::default()
    };
    let r = engine.completeness(NS, &q, end, 3.0).expect("report");
    let communes: Vec<(String, u64, u64, u64)> = r
        .figures
        .groups
        .iter()
        .map(|g| (g.labels[0].clone(), g.series, g.expected, g.received))
        .collect();
    assert_eq!(
        communes,
        vec![
            ("Châu Đốc".into(), 3, 540, 520),
            ("Long Xuyên".into(), 3, 540, 480),
        ]
    );
    let bad = CompletenessQuery {
        start: end,
        end: base,
        ..Default::default()
    };
    assert!(matches!(
        engine.completeness(NS, &bad, end, 3.0),
        Err(iocdb_engine::Error::InvalidArgument(_))
    ));
}

/// Writes `count` series of `metric` from site `first`, three samples a minute apart from
/// `t0` each, in one request.
fn write_three(engine: &Engine, metric: &str, first: usize, count: usize, t0: i64) {
    let series = (first..first + count)
        .map(|i| {
            crate::common::series(
                metric,
                i,
                (0..3).map(|k| Sample::new(t0 + k * MIN, 1.0)).collect(),
            )
        })
        .collect();
    let outcome = engine
        .write(crate::common::request(NS, series))
        .expect("write");
    assert_eq!(outcome.rejected, vec![]);
}

#[test]
fn a_report_over_more_series_than_it_lists_counts_them_all_and_lists_the_first_by_labels() {
    // More series than one batch of handles and twice the listings' bound, every one
    // silent with a gap: cameras out of the head (two flushes since their write), sensors
    // in it.
    let (cameras, sensors) = (14_000, 10_000);
    let dir = tempfile::tempdir().expect("dir");
    let engine = crate::common::open(dir.path());
    let t0 = 1_700_000_000_000;
    write_three(&engine, "camera_online", 0, cameras, t0);
    engine.flush().expect("flush");
    write_three(&engine, "sensor_level", cameras, sensors, t0);
    engine.flush().expect("flush");
    let stats = engine.stats();
    assert_eq!((stats.series, stats.head_series), (24_000, sensors as u64));

    let end = t0 + 60 * MIN;
    let q = CompletenessQuery {
        start: t0,
        end,
        ..Default::default()
    };
    let r = engine.completeness(NS, &q, end, 3.0).expect("report");
    // Three samples received, the 57 minutes after the last missing, one open gap each.
    let groups: Vec<(&str, u64, u64, u64, u64)> = r
        .figures
        .groups
        .iter()
        .map(|g| (g.metric.as_str(), g.series, g.received, g.expected, g.gaps))
        .collect();
    assert_eq!(
        groups,
        vec![
            ("camera_online", 14_000, 42_000, 14_000 * 60, 14_000),
            ("sensor_level", 10_000, 30_000, 10_000 * 60, 10_000),
        ]
    );
    // Every series is silent: all counted, the first by labels listed — as the whole sorted
    // list of silent series gives them — and the gaps likewise.
    let all = engine.stale_series(NS, &[], end, 3.0).expect("stale");
    assert_eq!(all.len(), 24_000);
    assert_eq!(
        r.silent_by_metric.into_iter().collect::<Vec<_>>(),
        vec![
            ("camera_online".to_owned(), 14_000),
            ("sensor_level".to_owned(), 10_000)
        ]
    );
    assert_eq!(r.silent.len(), iocdb_engine::query::MAX_LISTED_SILENT);
    assert!(r.silent.iter().eq(all.iter().take(r.silent.len())));
    assert_eq!(r.figures.gaps.len(), iocdb_engine::query::MAX_LISTED_GAPS);
    let listed: Vec<_> = r.figures.gaps.iter().map(|g| &g.labels).collect();
    let first: Vec<_> = all.iter().map(|s| &s.labels).take(listed.len()).collect();
    assert_eq!(listed, first);
    assert!(
        r.figures
            .gaps
            .iter()
            .all(|g| (g.start, g.end, g.missing, g.open) == (t0 + 2 * MIN, end, 57, true))
    );
}

#[test]
fn the_series_limit_bounds_a_reports_groups_not_the_series_it_reads() {
    // A hundred series under a limit of fifty: reported by metric (one group) they are all
    // judged; grouped by site (a hundred groups) the report is refused, saying why.
    let dir = tempfile::tempdir().expect("dir");
    let engine = crate::common::open_with(
        dir.path(),
        iocdb_engine::Options {
            query_limits: iocdb_engine::QueryLimits {
                max_series: 50,
                ..Default::default()
            },
            ..crate::common::options()
        },
    )
    .expect("open");
    let t0 = 1_700_000_000_000;
    write_three(&engine, "camera_online", 0, 100, t0);
    let mut q = CompletenessQuery {
        start: t0,
        end: t0 + 60 * MIN,
        ..Default::default()
    };
    let r = engine.completeness(NS, &q, q.end, 3.0).expect("report");
    assert_eq!(r.figures.groups.len(), 1);
    assert_eq!(r.figures.groups[0].series, 100);
    q.by = vec!["site".into()];
    match engine.completeness(NS, &q, q.end, 3.0) {
        Err(iocdb_engine::Error::ResourceExhausted { detail, .. }) => {
            assert!(detail.contains("more than 50 groups"), "{detail}");
        }
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn silent_series_are_counted_exactly_while_they_move_in_and_out_of_the_head() {
    // Silent series rewritten with the values they already hold come back into the head,
    // and leave it again two flushes later, while reports are computed: every report must
    // count every one of them once, and judge their samples the same.
    let series = 6_000;
    let dir = tempfile::tempdir().expect("dir");
    let engine = crate::common::open(dir.path());
    let t0 = 1_700_000_000_000;
    write_three(&engine, "camera_online", 0, series, t0);
    engine.flush().expect("flush");
    engine.flush().expect("flush");
    assert_eq!(engine.stats().head_series, 0);
    let end = t0 + 60 * MIN;
    let q = CompletenessQuery {
        start: t0,
        end,
        ..Default::default()
    };
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for round in 0..12 {
                let first = (round * 1_000) % series;
                write_three(&engine, "camera_online", first, 1_000, t0);
                assert!(engine.stats().head_series >= 1_000, "back in the head");
                engine.flush().expect("flush");
            }
        });
        for _ in 0..6 {
            let r = engine.completeness(NS, &q, end, 3.0).expect("report");
            assert_eq!(
                r.silent_by_metric.get("camera_online"),
                Some(&(series as u64))
            );
            let g = &r.figures.groups[0];
            assert_eq!(
                (g.series, g.received, g.gaps),
                (series as u64, 3 * series as u64, series as u64)
            );
        }
    });
}
