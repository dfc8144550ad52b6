//! Compaction: a window's segments merged into one change no answer, survive reopening, and
//! leave no file behind; a crash between publishing and deleting is cleaned at open.

use std::collections::BTreeMap;

use iocdb_engine::{Engine, MatchOp, Matcher, Options, Sample};
use proptest::prelude::*;

use crate::common::{self, dump, request};

/// One window size: each 60 s window is merged alone.
fn options() -> Options {
    Options {
        partition_ms: 10_000,
        compaction_window_ms: 60_000,
        compaction_aged_windows_ms: vec![],
        ..common::options()
    }
}

/// Windows that grow with age: 1, 2 and 4 minutes.
fn aged_options() -> Options {
    Options {
        compaction_aged_windows_ms: vec![120_000, 240_000],
        ..options()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Write {
        site: usize,
        t: i64,
        v: f64,
    },
    /// Deletes sites `site..site + width` over `[from, from + len]`.
    Delete {
        site: usize,
        width: usize,
        from: i64,
        len: i64,
    },
    Flush,
    Compact,
    /// Compacts the windows over by `end` (the background compaction's call).
    CompactBefore {
        end: i64,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..4usize, 0..180_000i64, -1e6..1e6f64).prop_map(|(site, t, v)| Op::Write { site, t, v }),
        1 => (0..4usize, 1..3usize, 0..180_000i64, 0..60_000i64)
            .prop_map(|(site, width, from, len)| Op::Delete { site, width, from, len }),
        2 => Just(Op::Flush),
        2 => Just(Op::Compact),
        2 => (0..300_000i64).prop_map(|end| Op::CompactBefore { end }),
        1 => Just(Op::Reopen),
    ]
}

type Model = BTreeMap<String, Vec<(i64, u64)>>;

fn segment_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("segments"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random writes — late ones, and corrections of a timestamp already written — and
    /// deletions, with flushes, compactions (of everything, or of the windows over by some
    /// time, which grow with age) and reopenings in between, answer exactly as the newest
    /// write of each timestamp says, unless a later deletion removed it.
    #[test]
    fn compaction_changes_no_answer(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().expect("dir");
        let mut engine = common::open_with(dir.path(), aged_options()).expect("open");
        let mut model: BTreeMap<String, BTreeMap<i64, u64>> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Write { site, t, v } => {
                    let out = engine
                        .write(request("ns", vec![common::series("m", site, vec![Sample::new(t, v)])]))
                        .expect("write");
                    prop_assert_eq!(out.accepted, 1);
                    model.entry(format!("s{site}")).or_default().insert(t, v.to_bits());
                }
                Op::Delete { site, width, from, len } => {
                    let sites: Vec<String> = (site..site + width).map(|s| format!("s{s}")).collect();
                    let matchers = [
                        Matcher::equal("__name__", "m"),
                        Matcher::new("site", MatchOp::Regex, sites.join("|")).expect("regex"),
                    ];
                    let report = engine.delete("ns", &matchers, from, from + len).expect("delete");
                    let mut touched = 0;
                    for name in &sites {
                        if let Some(samples) = model.get_mut(name) {
                            let before = samples.len();
                            samples.retain(|t, _| !(from..=from + len).contains(t));
                            touched += u64::from(samples.len() != before);
                        }
                    }
                    prop_assert_eq!(report.series, touched);
                }
                Op::Flush => {
                    engine.flush().expect("flush");
                }
                Op::Compact => {
                    engine.compact().expect("compact");
                }
                Op::CompactBefore { end } => {
                    engine.compact_before(end).expect("compact");
                }
                Op::Reopen => {
                    engine.close().expect("close");
                    drop(engine);
                    engine = common::open_with(dir.path(), aged_options()).expect("reopen");
                }
            }
            let want: Model = model
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.clone(), v.iter().map(|(t, b)| (*t, *b)).collect()))
                .collect();
            prop_assert_eq!(dump(&engine, "ns"), want);
        }
        // After a flush and a compaction, another compaction has nothing to do, and every
        // file on disk is a live segment.
        engine.flush().expect("flush");
        engine.compact().expect("compact");
        let again = engine.compact().expect("compact");
        prop_assert_eq!(again.windows, 0, "{:?}", again);
        let files = segment_files(dir.path());
        let manifest = std::fs::read_to_string(dir.path().join("MANIFEST")).expect("manifest");
        for f in &files {
            prop_assert!(manifest.contains(&format!("segment {f}")), "{} is not live: {}", f, manifest);
        }
        prop_assert!(!manifest.contains("retired"), "{}", manifest);
        // Every deletion was applied to the segments it reached and its tombstone dropped.
        prop_assert!(!manifest.contains("tombstone"), "{}", manifest);
        prop_assert!(engine.tombstones().is_empty());
    }
}

#[test]
fn a_window_of_many_flushes_becomes_one_segment_and_a_crash_after_publishing_is_cleaned() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open_with(dir.path(), options()).expect("open");
    // Six partitions of one window, one flush each, and a late correction in the first.
    for p in 0..6i64 {
        let samples = (0..10).map(|i| Sample::new(p * 10_000 + i * 1000, (p * 10 + i) as f64));
        engine
            .write(request(
                "ns",
                vec![common::series("m", 0, samples.collect())],
            ))
            .expect("write");
        engine.flush().expect("flush");
    }
    engine
        .write(request(
            "ns",
            vec![common::series("m", 0, vec![Sample::new(3000, -1.0)])],
        ))
        .expect("correction");
    engine.flush().expect("flush");
    assert_eq!(segment_files(dir.path()).len(), 7);
    let before = dump(&engine, "ns");
    let report = engine.compact().expect("compact");
    assert_eq!(
        (report.windows, report.segments_in, report.segments_out),
        (1, 7, 1)
    );
    assert_eq!(report.samples, 60);
    assert_eq!(segment_files(dir.path()).len(), 1);
    assert_eq!(dump(&engine, "ns"), before);
    assert_eq!(
        before["s0"][3],
        (3000, (-1.0f64).to_bits()),
        "the correction wins"
    );
    // Nothing left to do.
    assert_eq!(engine.compact().expect("again").windows, 0);
    engine.close().expect("close");
    drop(engine);

    // A crash after the manifest named a segment retired but before it was deleted: the
    // next open deletes it (the manifest proves it garbage) and answers the same.
    let live = segment_files(dir.path()).remove(0);
    let leftover = "0000000000000002_0.seg";
    std::fs::copy(
        dir.path().join("segments").join(&live),
        dir.path().join("segments").join(leftover),
    )
    .expect("copy");
    let manifest = std::fs::read_to_string(dir.path().join("MANIFEST")).expect("manifest");
    let body = manifest
        .lines()
        .filter(|l| !l.starts_with("crc32c"))
        .map(|l| {
            if l == "iocdb-manifest 1" {
                "iocdb-manifest 2"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    common::write_manifest(dir.path(), &format!("{body}\nretired {leftover}\n"));
    let engine = common::open_with(dir.path(), options()).expect("reopen");
    assert_eq!(segment_files(dir.path()), vec![live]);
    assert_eq!(dump(&engine, "ns"), before);
    assert!(engine.stats().quarantined.is_empty());
    let manifest = std::fs::read_to_string(dir.path().join("MANIFEST")).expect("manifest");
    assert!(!manifest.contains("retired"), "{manifest}");
}

/// Three flushes into one window and one into another, by an engine on `fs`.
fn setup(fs: &crate::faults::FaultyFs, dir: &std::path::Path) -> (Engine, Model) {
    let engine = common::open_with(
        dir,
        Options {
            vfs: std::sync::Arc::new(fs.clone()),
            ..options()
        },
    )
    .expect("open");
    let mut model: BTreeMap<String, BTreeMap<i64, u64>> = BTreeMap::new();
    for (round, base) in [(0, 0i64), (1, 10_000), (2, 5_000), (3, 70_000)] {
        let samples: Vec<Sample> = (0..5)
            .map(|i| Sample::new(base + i * 1000, f64::from(round * 10 + i as i32)))
            .collect();
        for site in 0..2 {
            for s in &samples {
                model
                    .entry(format!("s{site}"))
                    .or_default()
                    .insert(s.t, s.v.to_bits());
            }
            engine
                .write(request(
                    "ns",
                    vec![common::series("m", site, samples.clone())],
                ))
                .expect("write");
        }
        engine.flush().expect("flush");
    }
    let model = model
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect();
    (engine, model)
}

/// A disk that fails at any one operation of a compaction, from then on, followed by a power
/// cut: the store reopens to the same answers, with nothing quarantined and every segment
/// file on disk listed in the manifest.
#[test]
fn a_failure_at_any_step_of_a_compaction_loses_nothing_and_leaves_no_orphan() {
    use crate::faults::{FaultyFs, Mode};
    let counting = FaultyFs::default();
    let dir = tempfile::tempdir().expect("dir");
    let (engine, _) = setup(&counting, dir.path());
    let before = counting.0.lock().ops;
    let report = engine.compact().expect("compact");
    // Three segments of the first window merged, and the second window's lone flushed one
    // rewritten in the cold encoding.
    assert_eq!((report.windows, report.segments_in), (2, 4));
    let after = counting.0.lock().ops;
    assert!(
        after > before + 3,
        "a compaction of {} operations?",
        after - before
    );
    drop(engine);
    for k in before..after {
        let dir = tempfile::tempdir().expect("dir");
        let fs = FaultyFs::failing(k, std::io::ErrorKind::Other, Mode::Persistent);
        let (engine, model) = setup(&fs, dir.path());
        assert_eq!(fs.0.lock().ops, before, "the setup is deterministic");
        let _ = engine.compact();
        drop(engine);
        fs.power_cut();
        let engine = common::open_with(dir.path(), options()).expect("reopen");
        assert_eq!(dump(&engine, "ns"), model, "failure at operation {k}");
        assert!(
            engine.stats().quarantined.is_empty(),
            "failure at operation {k}: {:?}",
            engine.stats().quarantined
        );
        let manifest = std::fs::read_to_string(dir.path().join("MANIFEST")).expect("manifest");
        for f in segment_files(dir.path()) {
            assert!(
                manifest.contains(&format!("segment {f}")),
                "failure at operation {k}: {f} is not live: {manifest}"
            );
        }
    }
}

/// Retention per namespace: expired samples are hidden at once and refused, and compaction
/// drops the segments every namespace of which has expired, leaving the others.
#[test]
fn retention_hides_at_once_and_compaction_drops_expired_segments() {
    use std::time::Duration;
    let dir = tempfile::tempdir().expect("dir");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let (old, older, recent) = (now - 50 * 60_000, now - 40 * 60_000, now - 5 * 60_000);
    let write = |engine: &Engine, ns: &str, t: i64| {
        engine
            .write(request(
                ns,
                vec![common::series("m", 0, vec![Sample::new(t, 1.0)])],
            ))
            .expect("write")
    };
    {
        let engine = common::open_with(
            dir.path(),
            Options {
                retention: Some(Duration::from_secs(7200)),
                ..options()
            },
        )
        .expect("open");
        for (ns, t) in [
            ("cams", old),
            ("eco", old),
            ("cams", older),
            ("cams", recent),
        ] {
            assert_eq!(write(&engine, ns, t).accepted, 1);
        }
        engine.flush().expect("flush");
        engine.close().expect("close");
    }
    // Cameras are kept 30 minutes from now on; indicators forever.
    let engine = common::open_with(
        dir.path(),
        Options {
            retention_by_namespace: [("cams".to_owned(), Duration::from_secs(1800))].into(),
            ..options()
        },
    )
    .expect("reopen");
    let times = |ns: &str| -> Vec<i64> {
        dump(&engine, ns)
            .values()
            .flatten()
            .map(|(t, _)| *t)
            .collect()
    };
    assert_eq!(
        times("cams"),
        vec![recent],
        "expired samples are hidden at once"
    );
    assert_eq!(times("eco"), vec![old]);
    let refused = write(&engine, "cams", older);
    assert_eq!(refused.accepted, 0);
    assert_eq!(refused.rejected[0].reason.kind(), "too_old");
    let files = segment_files(dir.path()).len();
    let report = engine.compact().expect("compact");
    // The segment of `older` held only cameras: gone. The one of `old` also holds
    // indicators: kept (its camera sample stays hidden).
    assert_eq!(report.expired, 1, "{report:?}");
    assert_eq!(segment_files(dir.path()).len(), files - 1);
    assert_eq!(times("cams"), vec![recent]);
    assert_eq!(times("eco"), vec![old]);
}

/// A finished window's lone flushed segment is rewritten once, cold: header flag set,
/// chunks compressed where that pays, the same answers; a second compaction leaves it.
#[test]
fn a_lone_flushed_segment_is_rewritten_cold_once() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open_with(dir.path(), options()).expect("open");
    // Every 10 ms of a 10-second partition: regular timestamps, small integers.
    let samples: Vec<Sample> = (0..1000)
        .map(|i| Sample::new(i * 10, f64::from((i % 7) as i32)))
        .collect();
    engine
        .write(request("ns", vec![common::series("m", 0, samples)]))
        .expect("write");
    engine.flush().expect("flush");
    let before = dump(&engine, "ns");
    let flushed = segment_files(dir.path());
    assert_eq!(flushed.len(), 1);
    let flag = |name: &str| {
        let bytes = std::fs::read(dir.path().join("segments").join(name)).expect("read");
        u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"))
    };
    assert_eq!(flag(&flushed[0]), 0, "flushed segments are not cold");
    let report = engine.compact().expect("compact");
    assert_eq!((report.windows, report.segments_in), (1, 1));
    assert!(report.bytes_out < report.bytes_in, "{report:?}");
    let cold = segment_files(dir.path());
    assert_eq!(flag(&cold[0]), 1, "compaction writes cold segments");
    assert_eq!(dump(&engine, "ns"), before);
    assert_eq!(engine.compact().expect("again").windows, 0);
    drop(engine);
    let engine = common::open_with(dir.path(), options()).expect("reopen");
    assert_eq!(dump(&engine, "ns"), before);
}

/// A segment written before the current format is rewritten once by compaction, even a
/// compacted one (an older file keeps a label index built in memory); it answers the same.
#[test]
fn segments_of_an_older_format_are_rewritten_in_the_current_one() {
    use iocdb_engine::fs::Bytes;
    use iocdb_engine::internal::Segment;
    let dir = tempfile::tempdir().expect("dir");
    {
        let engine = common::open(dir.path());
        engine
            .write(request(
                "tourism",
                vec![common::series("m", 0, vec![Sample::new(1_000, 1.0)])],
            ))
            .expect("write");
        engine.flush().expect("flush");
        engine.close().expect("close");
    }
    // The store's one segment becomes a golden file of version 1, flagged cold (as
    // compaction writes them): 300 samples of one series in namespace "security".
    let name = segment_files(dir.path()).pop().expect("a segment");
    let path = dir.path().join("segments").join(&name);
    let mut old = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/segment_v1.seg"),
    )
    .expect("fixture");
    old[12] |= 1;
    std::fs::write(&path, &old).expect("replace");
    let engine = common::open(dir.path());
    let before = engine
        .select("security", &[], i64::MIN, i64::MAX)
        .expect("select");
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].samples.len(), 300);
    engine.compact().expect("compact");
    for name in segment_files(dir.path()) {
        let path = dir.path().join("segments").join(name);
        let bytes = Bytes::owned(std::fs::read(&path).expect("read"));
        let segment = Segment::open(&path, bytes).expect("opens");
        assert_eq!(
            segment.format_version(),
            iocdb_engine::internal::SEGMENT_VERSION
        );
    }
    assert_eq!(
        engine
            .select("security", &[], i64::MIN, i64::MAX)
            .expect("select"),
        before
    );
}

const DAY: i64 = 86_400_000;

/// Days, then 8 days, then 32 days (the defaults), a segment per flushed day.
fn growing_windows() -> Options {
    Options {
        partition_ms: DAY,
        compaction_window_ms: DAY,
        compaction_aged_windows_ms: vec![8 * DAY, 32 * DAY],
        ..common::options()
    }
}

/// Writes `sites` series an hour apart over days `from..to` with values from `value`, and
/// records them in `model`.
fn write_hours(
    engine: &Engine,
    model: &mut BTreeMap<String, BTreeMap<i64, u64>>,
    sites: usize,
    (from, to): (i64, i64),
    value: f64,
) {
    for site in 0..sites {
        let samples: Vec<Sample> = (from * 24..to * 24)
            .map(|h| Sample::new(h * 3_600_000, value + h as f64))
            .collect();
        for s in &samples {
            model
                .entry(format!("s{site}"))
                .or_default()
                .insert(s.t, s.v.to_bits());
        }
        let out = engine
            .write(request("ns", vec![common::series("m", site, samples)]))
            .expect("write");
        assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    }
}

fn flat(model: &BTreeMap<String, BTreeMap<i64, u64>>) -> Model {
    model
        .iter()
        .map(|(k, v)| (k.clone(), v.iter().map(|(t, b)| (*t, *b)).collect()))
        .collect()
}

/// A finished 32-day window becomes one segment (and a finished 8 days another); late data
/// beside the month is merged by day without rewriting the month until it reaches an
/// eighth of it; then the month is merged again. Every answer stays the newest write's.
#[test]
fn finished_months_become_one_segment_and_late_data_does_not_rewrite_them() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open_with(dir.path(), growing_windows()).expect("open");
    let mut model = BTreeMap::new();
    // Days 320..360 of 1970: day 320 starts a 32-day window, day 352 an 8-day one.
    write_hours(&engine, &mut model, 4, (320, 360), 0.0);
    engine.flush().expect("flush");
    let names = |e: &Engine| -> Vec<String> {
        let mut n: Vec<String> = e.inspect().segments.into_iter().map(|s| s.name).collect();
        n.sort();
        n
    };
    assert_eq!(names(&engine).len(), 40, "a segment per flushed day");
    let report = engine.compact_before(360 * DAY).expect("compact");
    assert_eq!((report.windows, report.segments_in), (2, 40), "{report:?}");
    let merged = names(&engine);
    let starts: Vec<i64> = engine
        .inspect()
        .segments
        .iter()
        .map(|s| s.min_t / DAY)
        .collect();
    assert_eq!(merged.len(), 2, "{merged:?}");
    assert!(starts.contains(&320) && starts.contains(&352), "{starts:?}");
    assert_eq!(dump(&engine, "ns"), flat(&model));

    // A correction of day 330, one series: merged as that day's segment, the month kept.
    write_hours(&engine, &mut model, 1, (330, 331), 0.5);
    engine.flush().expect("flush");
    let report = engine.compact_before(360 * DAY).expect("compact");
    assert_eq!((report.windows, report.segments_in), (1, 1), "{report:?}");
    let now = names(&engine);
    assert_eq!(now.len(), 3, "{now:?}");
    assert!(
        merged.iter().all(|m| now.contains(m)),
        "{merged:?} -> {now:?}"
    );
    assert_eq!(dump(&engine, "ns"), flat(&model));
    assert_eq!(
        engine.compact_before(360 * DAY).expect("compact").windows,
        0
    );

    // Corrections of half the month: the month is merged again, with them.
    write_hours(&engine, &mut model, 4, (320, 336), 0.25);
    engine.flush().expect("flush");
    let report = engine.compact_before(360 * DAY).expect("compact");
    assert_eq!(report.windows, 1, "{report:?}");
    let after = names(&engine);
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(!after.contains(&merged[0]) || !after.contains(&merged[1]));
    assert_eq!(dump(&engine, "ns"), flat(&model));
    engine.close().expect("close");
    let engine = common::open_with(dir.path(), growing_windows()).expect("reopen");
    assert_eq!(dump(&engine, "ns"), flat(&model));
}

/// A month-long segment keeps samples its retention has passed (hidden from queries) until
/// they are a quarter of its span, then is rewritten without them once.
#[test]
fn a_month_segment_is_trimmed_once_a_quarter_of_it_has_expired() {
    use std::time::Duration;
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
        / DAY;
    // The 32-day window that ended at least 40 days ago.
    let month = (today - 40 - 32).div_euclid(32) * 32;
    let dir = tempfile::tempdir().expect("dir");
    let mut model = BTreeMap::new();
    {
        let engine = common::open_with(dir.path(), growing_windows()).expect("open");
        write_hours(&engine, &mut model, 2, (month, month + 32), 0.0);
        engine.flush().expect("flush");
        engine.compact_before(today * DAY).expect("compact");
        assert_eq!(engine.inspect().segments.len(), 1);
        engine.close().expect("close");
    }
    let kept_from = |expired_days: i64| Options {
        retention: Some(Duration::from_secs(
            ((today - month - expired_days) * 86_400) as u64,
        )),
        ..growing_windows()
    };
    let samples = |e: &Engine| -> u64 { e.inspect().segments.iter().map(|s| s.samples).sum() };
    // 5 of its 32 days expired: hidden, still on disk.
    let engine = common::open_with(dir.path(), kept_from(5)).expect("open");
    let all = samples(&engine);
    assert_eq!(
        engine.compact_before(today * DAY).expect("compact").windows,
        0
    );
    assert_eq!(samples(&engine), all);
    let shown: usize = dump(&engine, "ns").values().map(Vec::len).sum();
    assert!(shown as u64 <= all - 2 * 5 * 24, "{shown} of {all}");
    engine.close().expect("close");
    // 9 days: rewritten without them, once.
    let engine = common::open_with(dir.path(), kept_from(9)).expect("open");
    assert_eq!(
        engine.compact_before(today * DAY).expect("compact").windows,
        1
    );
    let left = samples(&engine);
    assert!(
        left <= all - 2 * 8 * 24 && left >= all - 2 * 10 * 24,
        "{left} of {all}"
    );
    assert_eq!(
        engine.compact_before(today * DAY).expect("compact").windows,
        0
    );
    let shown: usize = dump(&engine, "ns").values().map(Vec::len).sum();
    assert!(
        shown as u64 <= left && left - shown as u64 <= 2 * 24,
        "{shown} of {left}"
    );
}
