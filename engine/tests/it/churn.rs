//! Churn: series that stop writing leave the head after a flush and stay what they were —
//! found by queries, label listings, compaction, deletion and a later write, under the same
//! identity, with nothing acknowledged lost.

use iocdb_engine::{
    Engine, MatchOp, Matcher, RawSeriesWrite, RawWriteRequest, Sample, SeriesBy, SeriesFilter,
};

use crate::common::{self, Oracle, dump, request, series};

const NS: &str = "lodging";
const METRIC: &str = "lodging_guests_current";

/// Writes `count` series from `first` with samples at `ts`, value `t + site`.
fn write_generation(engine: &Engine, oracle: &mut Oracle, first: usize, count: usize, ts: &[i64]) {
    let req = request(
        NS,
        (first..first + count)
            .map(|i| {
                series(
                    METRIC,
                    i,
                    ts.iter()
                        .map(|&t| Sample::new(t, (t + i as i64) as f64))
                        .collect(),
                )
            })
            .collect(),
    );
    let outcome = engine.write(req.clone()).expect("write");
    assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
    oracle.apply(&req);
}

fn sites(engine: &Engine) -> Vec<String> {
    let f = SeriesFilter {
        namespace: NS.into(),
        matchers: Vec::new(),
        start: i64::MIN,
        end: i64::MAX,
        limit: usize::MAX,
    };
    engine.label_values(&f, "site").expect("label values")
}

#[test]
fn idle_series_leave_the_head_and_queries_listings_and_writes_still_find_them() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open(dir.path());
    let mut oracle = Oracle::default();
    // Generation 0, then generation 1 while 0 is silent: the second flush after its last
    // write sends generation 0 out of the head.
    write_generation(&engine, &mut oracle, 0, 50, &[1_000, 2_000]);
    engine.flush().expect("flush");
    assert_eq!(
        engine.stats().head_series,
        50,
        "written since the flush before"
    );
    write_generation(&engine, &mut oracle, 50, 50, &[3_000, 4_000]);
    engine.flush().expect("flush");
    let stats = engine.stats();
    assert_eq!((stats.series, stats.head_series), (100, 50));
    assert_eq!(stats.series_by_namespace.get(NS), Some(&100));
    assert_eq!(dump(&engine, NS), oracle.expected());
    assert_eq!(sites(&engine).len(), 100);
    let one = engine
        .select(NS, &[Matcher::equal("site", "s7")], i64::MIN, i64::MAX)
        .expect("select");
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].labels.get("commune"), Some(common::COMMUNES[7 % 4]));

    // Writing again brings a series back under its identity: one series, old and new
    // samples together, and corrections still win.
    write_generation(&engine, &mut oracle, 5, 3, &[2_000, 5_000]);
    let stats = engine.stats();
    assert_eq!((stats.series, stats.head_series), (100, 53));
    assert_eq!((stats.series_evicted, stats.series_revived), (50, 3));
    assert_eq!(dump(&engine, NS), oracle.expected());
    engine.flush().expect("flush");
    assert_eq!(dump(&engine, NS), oracle.expected());

    // Compaction merges series in and out of the head alike.
    engine.compact().expect("compact");
    assert_eq!(dump(&engine, NS), oracle.expected());

    // A deletion reaches a series out of the head.
    engine
        .delete(NS, &[Matcher::equal("site", "s1")], i64::MIN, i64::MAX)
        .expect("delete");
    oracle.0.remove("s1");
    assert_eq!(dump(&engine, NS), oracle.expected());
    engine.close().expect("close");

    // Reopened, the segments' series are known without being in the head.
    let engine = common::open(dir.path());
    let stats = engine.stats();
    assert_eq!(stats.series, 100);
    assert!(stats.head_series < 100, "{stats:?}");
    assert_eq!(dump(&engine, NS), oracle.expected());
    write_generation(&engine, &mut oracle, 0, 100, &[6_000]);
    assert_eq!(engine.stats().series, 100, "no series twice");
    engine.flush().expect("flush");
    assert_eq!(dump(&engine, NS), oracle.expected());
}

/// A series that left long ago lives in an old segment only: a write finds it there (the
/// head keeps half its hash, not its labels), before and after a reopen, never twice.
#[test]
fn a_series_silent_for_many_flushes_comes_back_from_an_old_segment() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open(dir.path());
    let mut oracle = Oracle::default();
    for generation in 0..6 {
        let t = 1_000 * (generation as i64 + 1);
        write_generation(&engine, &mut oracle, generation * 20, 20, &[t]);
        engine.flush().expect("flush");
    }
    let stats = engine.stats();
    assert_eq!(
        (stats.series, stats.head_series, stats.segments),
        (120, 20, 6)
    );
    write_generation(&engine, &mut oracle, 0, 40, &[10_000]);
    let stats = engine.stats();
    assert_eq!((stats.series, stats.series_revived), (120, 40));
    engine.flush().expect("flush");
    engine.flush().expect("flush");
    engine.close().expect("close");
    let engine = common::open(dir.path());
    write_generation(&engine, &mut oracle, 10, 100, &[11_000]);
    assert_eq!(engine.stats().series, 120, "no series twice");
    // A new series whose labels are a known series' plus one is new.
    let mut extra = series(METRIC, 3, vec![Sample::new(12_000, 1.0)]);
    extra
        .labels
        .push(iocdb_engine::Label::new("zone", "Châu Đốc"));
    let outcome = engine.write(request(NS, vec![extra])).expect("write");
    assert!(outcome.rejected.is_empty());
    assert_eq!(engine.stats().series, 121);
    let s3 = engine
        .select(NS, &[Matcher::equal("site", "s3")], i64::MIN, i64::MAX)
        .expect("select");
    assert_eq!(s3.len(), 2);
    assert!(s3.iter().any(|s| s.labels.get("zone") == Some("Châu Đốc")));
}

#[test]
fn a_held_handle_keeps_its_series_and_a_readers_handle_writes_to_the_same_series() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open(dir.path());
    let held = engine
        .resolve(NS, common::labels(METRIC, 1))
        .expect("resolve");
    let write = |handle: &iocdb_engine::SeriesHandle, t: i64| {
        let outcome = engine
            .write_raw(RawWriteRequest {
                namespace: NS,
                series: &[RawSeriesWrite {
                    by: SeriesBy::Handle(handle),
                    samples: vec![Sample::new(t, t as f64)].into(),
                }],
            })
            .expect("write");
        assert_eq!(outcome.accepted, 1);
    };
    write(&held, 1_000);
    let mut oracle = Oracle::default();
    write_generation(&engine, &mut oracle, 2, 1, &[1_000]);
    for _ in 0..3 {
        engine.flush().expect("flush");
    }
    // The stream's series stayed (its handle holds it); the other left.
    assert_eq!(engine.stats().head_series, 1);
    write(&held, 2_000);

    // A handle a reader got for the series out of the head is detached from it; writing
    // through it brings the series back rather than losing the samples.
    let querier = engine.querier();
    let read = querier
        .select(NS, &[Matcher::equal("site", "s2")], i64::MIN, i64::MAX)
        .expect("select");
    assert_eq!(read.len(), 1);
    write(&read[0], 3_000);
    assert_eq!(engine.stats().head_series, 2);
    engine.close().expect("close");
    let engine = common::open(dir.path());
    let got = engine
        .select(
            NS,
            &[Matcher::new("site", MatchOp::Regex, "s1|s2").expect("m")],
            i64::MIN,
            i64::MAX,
        )
        .expect("select");
    let got: Vec<(String, Vec<i64>)> = got
        .iter()
        .map(|s| {
            (
                s.labels.get("site").unwrap_or_default().to_owned(),
                s.samples.iter().map(|x| x.t).collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("s1".to_owned(), vec![1_000, 2_000]),
            ("s2".to_owned(), vec![1_000, 3_000])
        ]
    );
}

#[test]
fn with_eviction_off_every_series_stays_in_the_head() {
    let dir = tempfile::tempdir().expect("dir");
    let opts = iocdb_engine::Options {
        evict_idle_series: false,
        ..common::options()
    };
    let engine = common::open_with(dir.path(), opts).expect("open");
    let mut oracle = Oracle::default();
    write_generation(&engine, &mut oracle, 0, 10, &[1_000]);
    engine.flush().expect("flush");
    engine.flush().expect("flush");
    write_generation(&engine, &mut oracle, 10, 10, &[2_000]);
    engine.flush().expect("flush");
    assert_eq!(engine.stats().head_series, 20);
}

/// The head's accounted bytes fall as series leave it and return when they come back.
#[test]
fn the_head_accounts_what_leaving_series_give_back() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open(dir.path());
    let mut oracle = Oracle::default();
    let (empty, _) = engine.head_memory();
    write_generation(&engine, &mut oracle, 0, 2_000, &[1_000]);
    engine.flush().expect("flush");
    let (hot, _) = engine.head_memory();
    engine.flush().expect("flush");
    let (cold, _) = engine.head_memory();
    assert_eq!(engine.stats().head_series, 0);
    let per_hot = (hot - empty) as f64 / 2_000.0;
    let per_cold = (cold - empty) as f64 / 2_000.0;
    assert!(
        per_cold < per_hot * 0.75,
        "a series out of the head accounts {per_cold:.0} B against {per_hot:.0} B in it"
    );
    write_generation(&engine, &mut oracle, 0, 2_000, &[2_000]);
    engine.flush().expect("flush");
    let (back, _) = engine.head_memory();
    assert!(
        back.abs_diff(hot) < hot / 10,
        "back in the head: {back} B against {hot} B"
    );
    assert_eq!(dump(&engine, NS), oracle.expected());
}

/// Writers come back to series while flushes send them out of the head and readers hold
/// them: every acknowledged sample is read back, each series once.
#[test]
fn writes_racing_evictions_lose_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open(dir.path());
    let done = std::sync::atomic::AtomicBool::new(false);
    let oracles: Vec<Oracle> = std::thread::scope(|scope| {
        let flusher = scope.spawn(|| {
            let mut flushes = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) && flushes < 2_000 {
                engine.flush().expect("flush");
                flushes += 1;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        let reader = scope.spawn(|| {
            let mut reads = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) && reads < 2_000 {
                let got = engine
                    .select(
                        NS,
                        &[Matcher::equal("commune", common::COMMUNES[0])],
                        i64::MIN,
                        i64::MAX,
                    )
                    .expect("select");
                let mut sites: Vec<_> = got.iter().filter_map(|s| s.labels.get("site")).collect();
                let all = sites.len();
                sites.dedup();
                assert_eq!(sites.len(), all, "a series read twice");
                reads += 1;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let engine = &engine;
                scope.spawn(move || {
                    let mut oracle = Oracle::default();
                    // Bounded; past 200 rounds, only until the race has happened (a
                    // loaded machine flushes less often).
                    for round in 0..2_000i64 {
                        let raced = || {
                            let s = engine.stats();
                            s.series_evicted > 0 && s.series_revived > 0
                        };
                        if round >= 200 && raced() {
                            break;
                        }
                        // Each writer cycles through its own 80 series, 4 at a time: each
                        // series is silent for nineteen rounds (a few flushes) between its
                        // writes.
                        let first = w * 1_000 + (round as usize % 20) * 4;
                        write_generation(
                            engine,
                            &mut oracle,
                            first,
                            4,
                            &[round * 10, round * 10 + 5],
                        );
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    oracle
                })
            })
            .collect();
        let oracles = writers
            .into_iter()
            .map(|w| w.join().expect("writer"))
            .collect();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        flusher.join().expect("flusher");
        reader.join().expect("reader");
        oracles
    });
    let mut expected = Oracle::default();
    for o in oracles {
        expected.0.extend(o.0);
    }
    assert_eq!(dump(&engine, NS), expected.expected());
    let stats = engine.stats();
    assert_eq!(stats.series, 160);
    assert!(
        stats.series_evicted > 0 && stats.series_revived > 0,
        "the race was not run: {stats:?}"
    );
    engine.close().expect("close");
    let engine = common::open(dir.path());
    assert_eq!(dump(&engine, NS), expected.expected());
}

/// Out of the head, a series is out of the in-memory label index too; listings and
/// selections find it in the segments that cover the range asked, and only there.
#[test]
fn series_out_of_the_head_are_listed_from_the_segments_that_cover_the_range() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open(dir.path());
    let mut oracle = Oracle::default();
    // Generation 0 at 1 s, generation 1 at 25 s (other partitions: 10 s each).
    write_generation(&engine, &mut oracle, 0, 500, &[1_000]);
    engine.flush().expect("flush");
    let with_all = engine.stats().index_label_bytes;
    write_generation(&engine, &mut oracle, 500, 2, &[25_000]);
    engine.flush().expect("flush");
    assert_eq!(engine.stats().head_series, 2);
    // Another 500 series take the places the first 500 left in the index: it does not grow.
    let mut later = Oracle::default();
    write_generation(&engine, &mut later, 2_000, 500, &[26_000]);
    let index_bytes = engine.stats().index_label_bytes;
    assert!(
        index_bytes < with_all + with_all / 4,
        "the index grew with series that left: {index_bytes} bytes against {with_all}"
    );
    let filter = |start, end| SeriesFilter {
        namespace: NS.into(),
        matchers: vec![Matcher::new("site", MatchOp::Regex, "s1.*").expect("m")],
        start,
        end,
        limit: usize::MAX,
    };
    // s1, s10..s19, s100..s199: 111 series in the first partition, none in the second.
    assert_eq!(engine.series(&filter(0, 9_999)).expect("series").len(), 111);
    assert_eq!(
        engine
            .label_values(&filter(0, 9_999), "site")
            .expect("values")
            .len(),
        111
    );
    assert!(
        engine
            .series(&filter(20_000, 30_000))
            .expect("series")
            .is_empty()
    );
    assert!(
        engine
            .label_values(&filter(20_000, 30_000), "site")
            .expect("values")
            .is_empty()
    );
    let names = engine.label_names(&filter(0, 9_999)).expect("names");
    assert_eq!(names, ["__name__", "commune", "site"]);
    let communes = engine
        .label_values(&filter(0, i64::MAX), "commune")
        .expect("values");
    assert_eq!(
        communes.len(),
        4,
        "Vietnamese values read back from the segments"
    );
    assert!(communes.iter().any(|c| c == "Phường Châu Đốc"));
    // A PromQL query over the old range sees them; the inspection counts every series.
    let q = iocdb_engine::PromqlQuery::instant(NS, format!("count({METRIC})"), 1_000);
    let answer = engine.query(&q).expect("query");
    assert!(
        format!("{:?}", answer.value).contains("500"),
        "{:?}",
        answer.value
    );
    let inspection = engine.inspect();
    let counted: u64 = inspection.series_by_metric.values().sum();
    assert_eq!(counted, 1_002);
}

/// A series out of the head whose last samples retention dropped is forgotten; written
/// again, it is a series like any new one.
#[test]
fn series_whose_samples_all_expired_are_forgotten() {
    use std::time::Duration;
    let dir = tempfile::tempdir().expect("dir");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let open_keeping = |secs: u64| {
        let opts = iocdb_engine::Options {
            retention: Some(Duration::from_secs(secs)),
            ..common::options()
        };
        common::open_with(dir.path(), opts).expect("open")
    };
    let mut oracle = Oracle::default();
    {
        let engine = open_keeping(7200);
        write_generation(&engine, &mut oracle, 0, 10, &[now - 50 * 60_000]);
        write_generation(&engine, &mut oracle, 100, 10, &[now - 5 * 60_000]);
        engine.flush().expect("flush");
        engine.close().expect("close");
    }
    let engine = open_keeping(1800);
    let stats = engine.stats();
    assert_eq!((stats.series, stats.head_series), (20, 0));
    let report = engine.compact().expect("compact");
    assert!(report.expired >= 1, "{report:?}");
    let stats = engine.stats();
    assert_eq!(stats.series, 10, "{stats:?}");
    assert_eq!(stats.series_by_namespace.get(NS), Some(&10));
    let mut again = Oracle::default();
    write_generation(&engine, &mut again, 0, 10, &[now - 60_000]);
    assert_eq!(engine.stats().series, 20);
    let sites = sites(&engine);
    assert_eq!(sites.len(), 20);
    engine.flush().expect("flush");
    assert_eq!(dump(&engine, NS).len(), 20);
}

/// Series out of the head are matched the same whether a segment holds a few of them (their
/// own labels are read) or many (through the postings), as series in the head are.
#[test]
fn matchers_select_the_same_series_in_and_out_of_the_head() {
    let stores: Vec<(tempfile::TempDir, Engine)> = [true, false]
        .into_iter()
        .map(|evict| {
            let dir = tempfile::tempdir().expect("dir");
            let opts = iocdb_engine::Options {
                evict_idle_series: evict,
                ..common::options()
            };
            let engine = common::open_with(dir.path(), opts).expect("open");
            let mut oracle = Oracle::default();
            // Sparse generations of 3 series, then one of 100, each in its own partition.
            for g in 0..6usize {
                write_generation(&engine, &mut oracle, g * 3, 3, &[g as i64 * 10_000 + 1]);
                engine.flush().expect("flush");
            }
            write_generation(&engine, &mut oracle, 100, 100, &[70_001]);
            engine.flush().expect("flush");
            engine.flush().expect("flush");
            (dir, engine)
        })
        .collect();
    let (out, within) = (&stores[0].1, &stores[1].1);
    assert_eq!(out.stats().head_series, 0);
    assert_eq!(within.stats().head_series, 118);
    let queries: Vec<Vec<Matcher>> = vec![
        vec![],
        vec![Matcher::equal("commune", common::COMMUNES[1])],
        vec![Matcher::new("commune", MatchOp::NotEqual, common::COMMUNES[1]).expect("m")],
        vec![Matcher::new("site", MatchOp::Regex, "s1.*|s4").expect("m")],
        vec![Matcher::new("site", MatchOp::NotRegex, "s1.*").expect("m")],
        vec![Matcher::equal("absent", "")],
        vec![Matcher::new("absent", MatchOp::NotEqual, "").expect("m")],
        vec![
            Matcher::new("commune", MatchOp::Regex, "Phường.*").expect("m"),
            Matcher::new("site", MatchOp::Regex, "s1..").expect("m"),
        ],
    ];
    let selected = |engine: &Engine, q: &[Matcher]| -> Vec<(String, usize)> {
        let mut sites: Vec<(String, usize)> = engine
            .select(NS, q, i64::MIN, i64::MAX)
            .expect("select")
            .iter()
            .map(|s| {
                (
                    s.labels.get("site").unwrap_or_default().to_owned(),
                    s.samples.len(),
                )
            })
            .collect();
        sites.sort();
        sites
    };
    assert_eq!(selected(within, &queries[0]).len(), 118);
    for q in &queries {
        assert_eq!(selected(out, q), selected(within, q), "{q:?}");
    }
}
