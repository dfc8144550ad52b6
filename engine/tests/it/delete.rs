//! Deletion: hidden at once, durable across reopening and snapshots, blind to what is written
//! after it, removed from disk by compaction, and refused when it would delete too much.

use iocdb_engine::{Error, MatchOp, Matcher, Options, Sample, SeriesFilter};

use crate::common::{self, COMMUNES, dump, request, series};

fn options() -> Options {
    Options {
        partition_ms: 10_000,
        compaction_window_ms: 60_000,
        ..common::options()
    }
}

/// Sites 0..4, samples at 0, 1 s, … 119 s with value t/1000.
fn fill(engine: &iocdb_engine::Engine) {
    for site in 0..4 {
        let samples = (0..120)
            .map(|i| Sample::new(i * 1000, i as f64))
            .collect::<Vec<_>>();
        engine
            .write(request("ns", vec![series("m", site, samples)]))
            .expect("write");
    }
}

fn commune_is(i: usize) -> Vec<Matcher> {
    vec![
        Matcher::equal("__name__", "m"),
        Matcher::equal("commune", COMMUNES[i]),
    ]
}

fn times(engine: &iocdb_engine::Engine, site: &str) -> Vec<i64> {
    dump(engine, "ns")
        .get(site)
        .map(|s| s.iter().map(|(t, _)| *t).collect())
        .unwrap_or_default()
}

#[test]
fn a_deletion_hides_at_once_survives_reopening_and_compaction_removes_it() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open_with(dir.path(), options()).expect("open");
    fill(&engine);
    engine.flush().expect("flush");
    // Site 1 also has head data in the range: the deletion reaches it too.
    engine
        .write(request(
            "ns",
            vec![series("m", 1, vec![Sample::new(30_500, -1.0)])],
        ))
        .expect("write");
    let before = engine.stats().segment_bytes;

    // Châu Đốc is site 1: its samples in [20 s, 49 s] go, the other sites keep theirs.
    let report = engine
        .delete("ns", &commune_is(1), 20_000, 49_000)
        .expect("delete");
    assert_eq!(report.series, 1);
    let kept: Vec<i64> = (0..120)
        .map(|i| i * 1000)
        .filter(|t| !(20_000..=49_000).contains(t))
        .collect();
    assert_eq!(times(&engine, "s1"), kept);
    assert_eq!(times(&engine, "s0").len(), 120);

    // A correction written after the deletion is not deleted.
    engine
        .write(request(
            "ns",
            vec![series("m", 1, vec![Sample::new(25_000, 7.0)])],
        ))
        .expect("write");
    let mut with_fix = kept.clone();
    with_fix.push(25_000);
    with_fix.sort();
    assert_eq!(times(&engine, "s1"), with_fix);

    // Durable: the manifest records it, in Vietnamese.
    engine.close().expect("close");
    drop(engine);
    let manifest = std::fs::read_to_string(dir.path().join("MANIFEST")).expect("manifest");
    assert!(manifest.contains("tombstone"), "{manifest}");
    assert!(manifest.contains("Châu%20Đốc"), "{manifest}");
    let engine = common::open_with(dir.path(), options()).expect("reopen");
    assert_eq!(times(&engine, "s1"), with_fix);
    assert_eq!(engine.tombstones().len(), 1);

    // Compaction applies it for good: the tombstone goes, the answer stays, disk shrinks.
    engine.flush().expect("flush");
    let report = engine.compact().expect("compact");
    assert_eq!(report.deletions_applied, 1);
    assert!(engine.tombstones().is_empty());
    assert_eq!(times(&engine, "s1"), with_fix);
    let after = engine.stats().segment_bytes;
    assert!(after < before, "{before} bytes before, {after} after");
    engine.close().expect("close");
    drop(engine);
    let manifest = std::fs::read_to_string(dir.path().join("MANIFEST")).expect("manifest");
    assert!(!manifest.contains("tombstone"), "{manifest}");
    let engine = common::open_with(dir.path(), options()).expect("reopen");
    assert_eq!(times(&engine, "s1"), with_fix);
}

#[test]
fn a_lone_segment_is_rewritten_to_apply_a_deletion() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open_with(dir.path(), options()).expect("open");
    engine
        .write(request(
            "ns",
            vec![series(
                "m",
                0,
                vec![Sample::new(1000, 1.0), Sample::new(2000, 2.0)],
            )],
        ))
        .expect("write");
    engine.flush().expect("flush");
    assert_eq!(engine.stats().segments, 1);
    engine
        .delete("ns", &[Matcher::equal("site", "s0")], 1000, 1000)
        .expect("delete");
    let report = engine.compact().expect("compact");
    assert_eq!((report.segments_in, report.segments_out), (1, 1));
    assert!(engine.tombstones().is_empty());
    assert_eq!(times(&engine, "s0"), vec![2000]);
}

#[test]
fn a_deleted_series_leaves_the_series_listing_and_a_partial_one_stays() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open_with(dir.path(), options()).expect("open");
    fill(&engine);
    engine
        .delete("ns", &commune_is(0), i64::MIN, i64::MAX)
        .expect("delete");
    engine
        .delete("ns", &commune_is(2), 0, 5000)
        .expect("delete");
    let filter = SeriesFilter {
        namespace: "ns".into(),
        matchers: vec![Matcher::equal("__name__", "m")],
        start: i64::MIN,
        end: i64::MAX,
        limit: 100,
    };
    let sites: Vec<String> = engine
        .series(&filter)
        .expect("series")
        .iter()
        .map(|l| l.get("site").unwrap_or_default().to_owned())
        .collect();
    assert_eq!(sites, ["s1", "s2", "s3"]);
    assert!(!dump(&engine, "ns").contains_key("s0"));
}

#[test]
fn deleting_nothing_records_nothing_and_too_broad_or_backwards_deletions_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open_with(dir.path(), options()).expect("open");
    fill(&engine);
    let none = engine
        .delete("ns", &[Matcher::equal("site", "s9")], 0, 1000)
        .expect("delete");
    assert_eq!(none.series, 0);
    let outside = engine
        .delete("ns", &[Matcher::equal("site", "s0")], 500_000, 600_000)
        .expect("delete");
    assert_eq!(outside.series, 0);
    assert!(engine.tombstones().is_empty());

    for matchers in [
        vec![],
        vec![Matcher::new("site", MatchOp::Regex, ".*").expect("m")],
        vec![Matcher::new("x", MatchOp::NotEqual, "y").expect("m")],
    ] {
        let err = engine.delete("ns", &matchers, 0, 1000).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(m) if m.contains("does not match the empty")),
            "{err}"
        );
    }
    let err = engine
        .delete("ns", &[Matcher::equal("site", "s0")], 10, 5)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert_eq!(times(&engine, "s0").len(), 120);
}

#[test]
fn a_snapshot_keeps_the_deletion() {
    let dir = tempfile::tempdir().expect("dir");
    let to = tempfile::tempdir().expect("to");
    let target = to.path().join("snap");
    let engine = common::open_with(dir.path(), options()).expect("open");
    fill(&engine);
    engine
        .delete("ns", &[Matcher::equal("site", "s3")], 0, 59_000)
        .expect("delete");
    engine.snapshot(&target).expect("snapshot");
    let want = dump(&engine, "ns");
    let copy = common::open_with(&target, options()).expect("open snapshot");
    assert_eq!(dump(&copy, "ns"), want);
    assert_eq!(times(&copy, "s3").first(), Some(&60_000));
}
