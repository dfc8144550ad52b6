//! Rollup tiers never change an answer: random writes — late ones, corrections of a
//! timestamp already written, counters with resets, NaN, signed zeros, stale markers —
//! deletions, flushes and compactions, interleaved with random range queries, answer bit
//! for bit with rollups as without, at every step; and the windows and instants a tier
//! answers exactly are read from it (the statistics say which tier), the others from raw
//! samples.

use iocdb_engine::{
    Engine, MatchOp, Matcher, Options, PromqlQuery, PromqlResult, QueryValue, STALE_NAN_BITS,
    Sample,
};
use proptest::prelude::*;

use crate::common::{self, bits, matrix_bits, request};

/// Flushes cut 10-s partitions and compaction merges minutes (and then pairs of minutes),
/// so that 5-s and 1-min buckets lie whole in segments while 20-s buckets straddle flushed
/// ones (and must be read raw until compaction merges them).
fn options() -> Options {
    Options {
        query_cache_bytes: 0,
        compaction_window_ms: 60_000,
        compaction_aged_windows_ms: vec![120_000],
        rollup_tiers_ms: vec![5_000, 20_000, 60_000],
        ..common::options()
    }
}

/// Windows and grids that tiers answer (whole, aligned multiples) and some they do not.
const EXPRS: &[&str] = &[
    "max_over_time(m[20s])",
    "min_over_time(m[1m])",
    "sum_over_time(m[1m])",
    "count_over_time(m[20s])",
    "last_over_time(m[5s])",
    "present_over_time(m[1m])",
    "rate(m[1m])",
    "increase(m[20s])",
    "delta(m[1m])",
    "rate(m[30s])",
    "sum by (site) (max_over_time(m[1m]))",
    // Folded as the series are read where a tier answers (no row per series).
    "max(max_over_time(m[1m]))",
    "min(min_over_time(m[20s]))",
    // Also from segments' metric rollups where they alone hold the windows.
    "max(max_over_time(m[20s]))",
    "min(min_over_time({__name__=\"m\"}[1m]))",
    "max(max_over_time(m[1m] offset 20s))",
    "max without (site) (sum_over_time(m[1m]))",
    "count(count_over_time(m[20s]))",
    "group(last_over_time(m[5s]))",
    "min by (__name__) (max_over_time(m[1m]))",
    "max_over_time(m[1m] offset 20s)",
    "sum_over_time(m[1m] @ 120)",
    "max_over_time(m[7s])",
    "avg_over_time(m[1m])",
    "m",
    "timestamp(m)",
    "sum(m offset 20s)",
    "m @ 60",
];

#[derive(Debug, Clone)]
enum Op {
    Write {
        site: usize,
        t: i64,
        v: f64,
    },
    Delete {
        site: usize,
        from: i64,
        len: i64,
    },
    Flush,
    Compact,
    Query {
        expr: usize,
        step: i64,
        first: i64,
        steps: i64,
    },
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => (0i64..100).prop_map(|v| v as f64),
        2 => -1e3..1e3f64,
        1 => Just(f64::NAN),
        1 => Just(-0.0),
        1 => Just(f64::from_bits(STALE_NAN_BITS)),
        1 => Just(f64::INFINITY),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0..3usize, 0..240i64, value()).prop_map(|(site, t, v)| Op::Write { site, t: t * 1000, v }),
        1 => (0..3usize, 0..240_000i64, 0..40_000i64).prop_map(|(site, from, len)| Op::Delete { site, from, len }),
        2 => Just(Op::Flush),
        1 => Just(Op::Compact),
        3 => (0..EXPRS.len(), prop_oneof![Just(5i64), Just(10), Just(20), Just(60)], 0..6i64, 1..12i64)
            .prop_map(|(expr, step, first, steps)| Op::Query { expr, step, first, steps }),
    ]
}

fn query(expr: &str, step_s: i64, first: i64, steps: i64, rollups: bool) -> PromqlQuery {
    let step = step_s * 1000;
    PromqlQuery {
        use_rollups: rollups,
        lookback_ms: Some(20_000),
        ..PromqlQuery::range("ns", expr, first * step, (first + steps) * step, step)
    }
}

fn write(engine: &Engine, site: usize, samples: Vec<Sample>) {
    engine
        .write(request("ns", vec![common::series("m", site, samples)]))
        .expect("write");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn answers_with_rollups_equal_answers_without(ops in proptest::collection::vec(op(), 1..120)) {
        let dir = tempfile::tempdir().expect("dir");
        let engine = common::open_with(dir.path(), options()).expect("open");
        for op in ops {
            match op {
                Op::Write { site, t, v } => write(&engine, site, vec![Sample::new(t, v)]),
                Op::Delete { site, from, len } => {
                    let matchers = [
                        Matcher::equal("__name__", "m"),
                        Matcher::new("site", MatchOp::Equal, format!("s{site}")).expect("matcher"),
                    ];
                    engine.delete("ns", &matchers, from, from + len).expect("delete");
                }
                Op::Flush => {
                    engine.flush().expect("flush");
                }
                Op::Compact => {
                    engine.flush().expect("flush");
                    engine.compact().expect("compact");
                }
                Op::Query { expr, step, first, steps } => {
                    let expr = EXPRS[expr];
                    let with = engine.query(&query(expr, step, first, steps, true));
                    let without = engine.query(&query(expr, step, first, steps, false));
                    prop_assert_eq!(bits(&with), bits(&without), "{} step {}s from {}", expr, step, first * step);
                }
            }
        }
    }
}

/// A counter of cameras' people (with a reset) and a gauge, one sample every 15 s over
/// three hours, flushed and compacted: the hourly panel reads the hourly tier.
fn compacted_store(dir: &std::path::Path) -> Engine {
    let engine = common::open_with(
        dir,
        Options {
            query_cache_bytes: 0,
            rollup_tiers_ms: vec![300_000, 3_600_000],
            ..Options::default()
        },
    )
    .expect("open");
    let base = 1_764_547_200_000; // 2025-12-01T00:00:00Z, a whole hour
    let counter: Vec<Sample> = (0..720)
        .map(|i| Sample::new(base + i * 15_000, ((i % 500) * 3) as f64))
        .collect();
    let gauge: Vec<Sample> = (0..720)
        .map(|i| Sample::new(base + i * 15_000, 20.0 + ((i * 7) % 13) as f64 / 4.0))
        .collect();
    write(&engine, 0, counter);
    write(&engine, 1, gauge);
    engine.flush().expect("flush");
    engine.compact().expect("compact");
    engine
}

const BASE: i64 = 1_764_547_200_000;
const HOUR: i64 = 3_600_000;

fn range(expr: &str, step: i64, rollups: bool) -> PromqlResult {
    engine_query(expr, BASE + HOUR, BASE + 3 * HOUR, step, rollups)
}

thread_local! {
    static ENGINE: std::cell::RefCell<Option<(tempfile::TempDir, Engine)>> = const { std::cell::RefCell::new(None) };
}

fn engine_query(expr: &str, start: i64, end: i64, step: i64, rollups: bool) -> PromqlResult {
    ENGINE.with(|e| {
        let mut e = e.borrow_mut();
        let (_, engine) = e.get_or_insert_with(|| {
            let dir = tempfile::tempdir().expect("dir");
            let engine = compacted_store(dir.path());
            (dir, engine)
        });
        engine
            .query(&PromqlQuery {
                use_rollups: rollups,
                ..PromqlQuery::range("ns", expr, start, end, step)
            })
            .expect("query")
    })
}

#[test]
fn aligned_hourly_windows_are_read_from_the_hourly_tier_and_say_so() {
    for expr in [
        "max_over_time(m[1h])",
        "count_over_time(m[1h])",
        "sum_over_time(m{site=\"s0\"}[1h])",
        "increase(m{site=\"s0\"}[1h])",
        "rate(m{site=\"s0\"}[2h])",
    ] {
        let with = range(expr, HOUR, true);
        let without = range(expr, HOUR, false);
        assert_eq!(matrix_bits(&with), matrix_bits(&without), "{expr}");
        assert_eq!(with.rollup_tier_ms, HOUR, "{expr}");
        assert!(with.rollup_buckets > 0, "{expr}");
        assert!(
            with.samples_read * 20 < without.samples_read,
            "{expr}: {} read with rollups, {} without",
            with.samples_read,
            without.samples_read
        );
        assert_eq!((without.rollup_buckets, without.rollup_tier_ms), (0, 0));
    }
    // Five-minute windows every five minutes: the finer tier.
    let five = range("max_over_time(m[10m])", 300_000, true);
    assert_eq!(five.rollup_tier_ms, 300_000);
    // A long panel of the values themselves: instant selection at hour boundaries.
    for expr in ["m", "quantile(0.95, m)", "timestamp(m)"] {
        let with = range(expr, HOUR, true);
        assert_eq!(
            matrix_bits(&with),
            matrix_bits(&range(expr, HOUR, false)),
            "{expr}"
        );
        assert_eq!(with.rollup_tier_ms, HOUR, "{expr}");
    }
}

#[test]
fn windows_no_tier_answers_exactly_are_read_raw_and_say_so() {
    for (expr, step) in [
        // Not a whole number of buckets.
        ("max_over_time(m[7m])", HOUR),
        // Steps off the tier's boundaries.
        ("max_over_time(m[1h])", HOUR + 60_000),
        // Not composable exactly.
        ("avg_over_time(m[1h])", HOUR),
        ("quantile_over_time(0.5, m[1h])", HOUR),
    ] {
        let with = range(expr, step, true);
        let without = range(expr, step, false);
        assert_eq!(matrix_bits(&with), matrix_bits(&without), "{expr}");
        assert_eq!((with.rollup_buckets, with.rollup_tier_ms), (0, 0), "{expr}");
    }
    // A sum of non-integers: the gauge's series is read raw again, the counter's from the
    // tier, and the answer is the raw one.
    let with = range("sum_over_time(m[1h])", HOUR, true);
    let without = range("sum_over_time(m[1h])", HOUR, false);
    assert_eq!(matrix_bits(&with), matrix_bits(&without));
}

/// An aggregation that tries to fold its series' buckets as it reads them and finds one
/// series they cannot answer exactly (the gauge's fractional sums) evaluates rows instead:
/// what the abandoned fold read is not counted again, in the statistics or the budget.
#[test]
fn an_abandoned_fold_counts_its_reads_once() {
    let rows = range("sum_over_time(m[1h])", HOUR, true);
    let folded = range("count(sum_over_time(m[1h]))", HOUR, true);
    assert_eq!(folded.rollup_tier_ms, HOUR);
    assert_eq!(
        (folded.samples_read, folded.rollup_buckets),
        (rows.samples_read, rows.rollup_buckets),
        "the aggregation read what its rows read, no more"
    );
}

#[test]
fn a_correction_after_compaction_is_seen_at_once() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = compacted_store(dir.path());
    let q = |rollups| {
        engine
            .query(&PromqlQuery {
                use_rollups: rollups,
                ..PromqlQuery::range(
                    "ns",
                    "max_over_time(m{site=\"s1\"}[1h])",
                    BASE + HOUR,
                    BASE + 3 * HOUR,
                    HOUR,
                )
            })
            .expect("query")
    };
    let before = q(true);
    // A department corrects one value in the second hour, far above the rest.
    write(&engine, 1, vec![Sample::new(BASE + HOUR + 60_000, 1e6)]);
    let after = q(true);
    assert_eq!(matrix_bits(&after), matrix_bits(&q(false)));
    assert_ne!(matrix_bits(&before), matrix_bits(&after));
    let QueryValue::Matrix(series) = &after.value else {
        panic!("a matrix");
    };
    assert_eq!(series[0].points[1].v, 1e6);
    // The corrected hour is read raw until compaction folds the correction in; the other
    // hours still come from the tier.
    assert!(after.rollup_buckets > 0);
    engine.flush().expect("flush");
    engine.compact().expect("compact");
    let compacted = q(true);
    assert_eq!(matrix_bits(&compacted), matrix_bits(&after));
    // And a deletion hides what it deletes from the tier too.
    let matchers = [Matcher::equal("site", "s1")];
    engine
        .delete("ns", &matchers, BASE + HOUR, BASE + HOUR + 120_000)
        .expect("delete");
    let deleted = q(true);
    assert_eq!(matrix_bits(&deleted), matrix_bits(&q(false)));
    let QueryValue::Matrix(series) = &deleted.value else {
        panic!("a matrix");
    };
    assert!(series[0].points[1].v < 1e6);
}

/// The first segment file of the store in `dir`, and its bytes.
fn first_segment(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>) {
    let path = std::fs::read_dir(dir.join("segments"))
        .expect("segments")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .expect("a segment");
    let bytes = std::fs::read(&path).expect("read");
    (path, bytes)
}

/// `bytes` with the last byte of the block whose payload starts at `payload` flipped and
/// the block's checksum written again: damage only a recomputation finds.
fn forged(bytes: &[u8], payload: usize) -> Vec<u8> {
    let len = u32::from_le_bytes(bytes[payload - 8..payload - 4].try_into().expect("4")) as usize;
    let mut forged = bytes.to_vec();
    forged[payload + len - 1] ^= 0x01;
    let crc = crc32c::crc32c(&forged[payload..payload + len]);
    forged[payload - 4..payload].copy_from_slice(&crc.to_le_bytes());
    forged
}

/// Asserts that `iocdb verify` of the store in `dir` reports a problem in `path` that
/// `found` accepts.
fn assert_verify_finds(
    dir: &std::path::Path,
    path: &std::path::Path,
    found: impl Fn(&iocdb_engine::Problem) -> bool,
) {
    let report = Engine::verify(dir, &iocdb_engine::fs::OsFs).expect("verify");
    assert!(
        report.problems.iter().any(|p| p.file == path && found(p)),
        "{:?}",
        report.problems
    );
}

/// Opens the store in `dir` (whose segment `path` is damaged) and asserts that `expr` over
/// the compacted hours answers with rollups as without, and that the damage is told.
fn assert_answers_as_raw_and_tells(dir: &std::path::Path, path: &std::path::Path, expr: &str) {
    let engine = common::open_with(
        dir,
        Options {
            rollup_tiers_ms: vec![300_000, 3_600_000],
            query_cache_bytes: 0,
            ..Options::default()
        },
    )
    .expect("open");
    let q = |rollups| PromqlQuery {
        use_rollups: rollups,
        ..PromqlQuery::range("ns", expr, BASE + HOUR, BASE + 3 * HOUR, HOUR)
    };
    assert_eq!(engine.stats().damaged_rollup_reads, 0);
    let with = engine.query(&q(true)).expect("answered from raw samples");
    let without = engine.query(&q(false)).expect("raw");
    assert_eq!(matrix_bits(&with), matrix_bits(&without));
    assert!(matrix_bits(&with).is_ok_and(|m| !m.is_empty()));
    let stats = engine.stats();
    assert!(stats.damaged_rollup_reads >= 1);
    let told = stats.last_damaged_rollup.expect("the damage is told");
    assert!(
        told.contains(&path.display().to_string()) && told.contains("rollup"),
        "{told}"
    );
    engine.close().expect("close");
}

#[test]
fn a_damaged_rollup_is_named_by_verify_and_the_query_answers_from_raw_samples() {
    use iocdb_engine::fs::{Bytes, OsFs};
    use iocdb_engine::internal::Segment;
    let dir = tempfile::tempdir().expect("dir");
    compacted_store(dir.path()).close().expect("close");
    let clean = Engine::verify(dir.path(), &OsFs).expect("verify");
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);
    let (path, bytes) = first_segment(dir.path());
    let segment = Segment::open(&path, Bytes::owned(bytes.clone())).expect("opens");
    let offset = segment
        .rollup_offset(segment.series(0).expect("a series"))
        .expect("where")
        .expect("a rollup block");
    let payload = offset as usize + 8;

    // A flipped bit: the block's checksum names it.
    let mut flipped = bytes.clone();
    flipped[payload + 3] ^= 0x04;
    std::fs::write(&path, &flipped).expect("write");
    assert_verify_finds(dir.path(), &path, |p| p.reason.contains("rollup block"));
    // The damaged block is not used: the raw samples it summarises answer, exactly as they
    // do with rollups off, and the damage is told (file and offset).
    assert_answers_as_raw_and_tells(dir.path(), &path, "max_over_time(m[1h])");

    // A block rewritten with a valid checksum but other numbers: verify recomputes it.
    std::fs::write(&path, forged(&bytes, payload)).expect("write");
    assert_verify_finds(dir.path(), &path, |p| p.offset == offset);
}

/// The same for a metric rollup block: verify names it, and the whole metric's panel is
/// answered series by series, as without rollups.
#[test]
fn a_damaged_metric_rollup_is_named_by_verify_and_the_panel_answers_series_by_series() {
    use iocdb_engine::fs::Bytes;
    use iocdb_engine::internal::Segment;
    let dir = tempfile::tempdir().expect("dir");
    compacted_store(dir.path()).close().expect("close");
    let (path, bytes) = first_segment(dir.path());
    let segment = Segment::open(&path, Bytes::owned(bytes.clone())).expect("opens");
    let listed: Vec<(String, String, u64)> = segment
        .metrics_listed()
        .map(|(n, m, at)| (n.to_owned(), m.to_owned(), at))
        .collect();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let offset = listed[0].2;
    let payload = offset as usize + 8;

    let mut flipped = bytes.clone();
    flipped[payload + 3] ^= 0x04;
    std::fs::write(&path, &flipped).expect("write");
    assert_verify_finds(dir.path(), &path, |p| p.reason.contains("metric rollups"));
    assert_answers_as_raw_and_tells(dir.path(), &path, "max(max_over_time(m[1h]))");

    // Rewritten with a valid checksum but another figure: verify refolds the series'.
    std::fs::write(&path, forged(&bytes, payload)).expect("write");
    assert_verify_finds(dir.path(), &path, |p| p.offset == offset);
}

const DAY: i64 = 86_400_000;

/// Two hundred days of one gauge, a sample every ten minutes, written without retention
/// and compacted into day segments; returns the last midnight.
fn two_hundred_days(dir: &std::path::Path) -> i64 {
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
        / DAY
        * DAY;
    let engine = common::open_with(
        dir,
        Options {
            query_cache_bytes: 0,
            ..Options::default()
        },
    )
    .expect("open");
    let first = today - 200 * DAY;
    let samples: Vec<Sample> = (0..200 * 144)
        .map(|i| Sample::new(first + i * 600_000, ((i * 7) % 37) as f64))
        .collect();
    for part in samples.chunks(10_000) {
        write(&engine, 0, part.to_vec());
    }
    engine.flush().expect("flush");
    engine.compact().expect("compact");
    engine.close().expect("close");
    today
}

fn kept_for(raw_days: u64, tier_days: Option<u64>) -> Options {
    let days = |d: u64| std::time::Duration::from_secs(d * 86_400);
    Options {
        query_cache_bytes: 0,
        retention: Some(days(raw_days)),
        rollup_retention: tier_days
            .map(|d| [(HOUR, days(d))].into())
            .unwrap_or_default(),
        ..Options::default()
    }
}

/// The points of the only series of an answer, as (t, value bits).
fn points(r: &PromqlResult) -> Vec<(i64, u64)> {
    match &r.value {
        QueryValue::Matrix(m) => m
            .iter()
            .flat_map(|s| s.points.iter().map(|p| (p.t, p.v.to_bits())))
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn hourly_rollups_kept_longer_than_samples_answer_what_they_can() {
    let dir = tempfile::tempdir().expect("dir");
    let today = two_hundred_days(dir.path());
    let ask = |engine: &Engine, expr: &str, rollups: bool| {
        engine
            .query(&PromqlQuery {
                use_rollups: rollups,
                ..PromqlQuery::range("ns", expr, today - 180 * DAY, today, DAY)
            })
            .expect("query")
    };
    // (The whole metric's maximum reads its metric rollups where the samples are kept, the
    // series' buckets before.)
    let panels = [
        "max_over_time(m[1d])",
        "sum_over_time(m[1d])",
        "m",
        "max(max_over_time(m[1d]))",
    ];
    let before: Vec<Vec<(i64, u64)>> = {
        let engine = common::open_with(dir.path(), kept_for(100_000, None)).expect("open");
        panels
            .iter()
            .map(|p| points(&ask(&engine, p, false)))
            .collect()
    };
    assert!(
        before.iter().all(|p| p.len() >= 180),
        "{:?}",
        before.iter().map(Vec::len).collect::<Vec<_>>()
    );

    // Samples for 90 days, the hourly tier for a year: compaction drops the samples of the
    // days past 90 and keeps their buckets.
    let engine = common::open_with(dir.path(), kept_for(90, Some(365))).expect("open");
    let on_disk = |e: &Engine| -> (u64, u64) {
        let i = e.inspect();
        (
            i.segments.iter().map(|s| s.samples).sum(),
            i.segments.iter().map(|s| s.rollup_bytes).sum(),
        )
    };
    let (samples_before, _) = on_disk(&engine);
    let report = engine.compact().expect("compact");
    assert!(report.windows > 0, "{report:?}");
    let (samples_after, rollup_bytes) = on_disk(&engine);
    assert!(
        samples_after * 2 < samples_before,
        "{samples_before} -> {samples_after}"
    );
    assert!(rollup_bytes > 0);
    for (panel, before) in panels.iter().zip(&before) {
        let with = ask(&engine, panel, true);
        assert_eq!(
            &points(&with),
            before,
            "{panel}: the tier still answers every day"
        );
        // The day tier (a default one) is kept only as long as the samples: the hour
        // tier, kept a year, answers — a coarser tier that has expired must not hide it.
        assert_eq!(with.rollup_tier_ms, HOUR, "{panel}");
        let without = points(&ask(&engine, panel, false));
        assert!(
            (89..=92).contains(&without.len()),
            "{panel}: {} raw days",
            without.len()
        );
        // (The first raw day is cut by the retention's cutoff, which falls within it.)
        assert_eq!(
            without[1..],
            before[before.len() - without.len() + 1..],
            "{panel}"
        );
    }
    // What no tier answers has only the samples' 90 days, as missing data anywhere.
    let avg = points(&ask(&engine, "avg_over_time(m[1d])", true));
    assert!((90..=92).contains(&avg.len()), "{}", avg.len());
    engine.close().expect("close");
    let report = Engine::verify(dir.path(), &iocdb_engine::fs::OsFs).expect("verify");
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    // Once the tier's own retention passes, the days go whole.
    let engine = common::open_with(dir.path(), kept_for(90, Some(120))).expect("open");
    let report = engine.compact().expect("compact");
    // (Whole segments: the 32-day windows that lie whole before the cutoff.)
    assert!(report.expired >= 1, "{report:?}");
    let max = points(&ask(&engine, "max_over_time(m[1d])", true));
    assert!((120..=122).contains(&max.len()), "{}", max.len());
    // (The first day is cut by the tier's cutoff, which falls within it unless the test
    // runs at midnight: its maximum is that of the hours left.)
    assert_eq!(max[1..], before[0][before[0].len() - max.len() + 1..]);
}

#[test]
fn a_retention_for_what_is_not_a_tier_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let opts = Options {
        rollup_tiers_ms: vec![HOUR],
        rollup_retention: [(300_000, std::time::Duration::from_secs(86_400))].into(),
        ..Options::default()
    };
    let err = Engine::open(dir.path(), opts).expect_err("refused");
    assert!(err.to_string().contains("300000"), "{err}");
    let err = Engine::open(
        dir.path(),
        Options {
            rollup_tiers_ms: vec![7 * 60_000],
            ..Options::default()
        },
    )
    .expect_err("refused");
    assert!(err.to_string().contains("dividing a day"), "{err}");
}

/// `max`, `min`, `count` and `group` of a tier-answered window function are folded as the
/// series are read, by the query workers each over a run of the series: over enough series
/// that every worker folds a share, with signed zeros and NaNs of different payloads tied
/// across series (where the order of the fold shows in the bits), the answer is the one
/// the rows give without rollups, bit for bit.
#[test]
fn aggregations_folded_while_reading_answer_as_the_rows_do() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open_with(
        dir.path(),
        Options {
            query_cache_bytes: 0,
            query_threads: 4,
            rollup_tiers_ms: vec![3_600_000],
            ..Options::default()
        },
    )
    .expect("open");
    // Written in an order unlike the labels' (the reads' order is by reference).
    let mut sites: Vec<usize> = (0..=300).collect();
    sites.sort_by_key(|s| (s * 7919) % 301);
    for &site in &sites {
        // The first hour signed zeros alone (so the maximum is whichever zero comes first),
        // the second NaNs of different payloads, the third a mix.
        let v = |i: i64| match i / 60 {
            0 if site == 300 || site % 2 == 1 => -0.0,
            0 => 0.0,
            1 => f64::from_bits(0x7ff8_0000_0000_0000 | (site as u64 + 1)),
            _ => match (site as i64 + i) % 5 {
                0 => 0.0,
                1 => -0.0,
                2 if site % 50 == 0 => 1.0,
                3 => f64::from_bits(0x7ff8_0000_0000_0000 | (site as u64 + 1)),
                _ => -1.0,
            },
        };
        let samples: Vec<Sample> = (0..3 * 60)
            .map(|i| Sample::new(BASE + i * 60_000, v(i)))
            .collect();
        let labels = vec![
            iocdb_engine::Label::new("__name__", "m"),
            iocdb_engine::Label::new("site", format!("s{site:03}")),
            iocdb_engine::Label::new("zone", format!("z{}", site % 3)),
        ];
        // Some with a label named before `__name__`, and one with the name alone: rows drop
        // the name, so that one comes first among them, not last.
        let labels = match site {
            300 => vec![iocdb_engine::Label::new("__name__", "m")],
            s if s % 4 == 0 => {
                let mut l = labels;
                l.push(iocdb_engine::Label::new("A", "x"));
                l
            }
            _ => labels,
        };
        engine
            .write(request(
                "ns",
                vec![iocdb_engine::SeriesWrite { labels, samples }],
            ))
            .expect("write");
    }
    engine.flush().expect("flush");
    engine.compact().expect("compact");
    for expr in [
        "max(max_over_time(m[1h]))",
        "min(min_over_time(m[1h]))",
        "max by (zone) (min_over_time(m[1h]))",
        "min without (site) (max_over_time(m[1h]))",
        "count(count_over_time(m[1h]))",
        "group by (zone) (max_over_time(m[1h]))",
        "max(last_over_time(m[1h]))",
    ] {
        let ask = |rollups: bool| {
            engine
                .query(&PromqlQuery {
                    use_rollups: rollups,
                    ..PromqlQuery::range("ns", expr, BASE + HOUR, BASE + 3 * HOUR, HOUR)
                })
                .expect("query")
        };
        let with = ask(true);
        assert_eq!(with.rollup_tier_ms, HOUR, "{expr}");
        assert_eq!(matrix_bits(&with), matrix_bits(&ask(false)), "{expr}");
    }
}

/// `max(max_over_time(m[1h]))` over a metric named alone reads the segments' metric
/// rollups — a bucket per hour, not one per series and hour — where a segment alone holds
/// the window; a late write (a segment overlapping the compacted one) and data in the head
/// send their windows back to the series' own buckets; every answer is the rows' answer.
#[test]
fn extremes_of_a_whole_metric_come_from_its_metric_rollups() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open_with(
        dir.path(),
        Options {
            query_cache_bytes: 0,
            rollup_tiers_ms: vec![300_000, 3_600_000],
            ..Options::default()
        },
    )
    .expect("open");
    const SERIES: usize = 40;
    // Six hours, a sample a minute; each series' own peak hour, small integers elsewhere.
    for site in 0..SERIES {
        let samples: Vec<Sample> = (0..6 * 60)
            .map(|i| {
                let peak = i / 60 == (site % 6) as i64 && i % 60 == 30;
                Sample::new(
                    BASE + i * 60_000,
                    if peak {
                        100.0 + site as f64
                    } else {
                        1.0 + (i % 7) as f64
                    },
                )
            })
            .collect();
        write(&engine, site, samples);
    }
    engine.flush().expect("flush");
    engine.compact().expect("compact");
    let ask = |expr: &str, rollups: bool| {
        engine
            .query(&PromqlQuery {
                use_rollups: rollups,
                ..PromqlQuery::range("ns", expr, BASE + HOUR, BASE + 6 * HOUR, HOUR)
            })
            .expect("query")
    };
    for expr in ["max(max_over_time(m[1h]))", "min(min_over_time(m[2h]))"] {
        let (with, without) = (ask(expr, true), ask(expr, false));
        assert_eq!(matrix_bits(&with), matrix_bits(&without), "{expr}");
        assert_eq!(with.rollup_tier_ms, HOUR, "{expr}");
        // Six steps, a bucket or two of the metric each: far fewer than the series'.
        assert!(
            with.rollup_buckets <= 12,
            "{expr}: {} buckets",
            with.rollup_buckets
        );
    }
    let metric_only = ask("max(max_over_time(m[1h]))", true).rollup_buckets;
    // A correction of the third hour's peak, flushed into a segment of its own that
    // overlaps the compacted one: that window is read series by series, and sees it.
    write(
        &engine,
        2,
        vec![Sample::new(BASE + 2 * HOUR + 30 * 60_000, 7.0)],
    );
    engine.flush().expect("flush");
    let (with, without) = (
        ask("max(max_over_time(m[1h]))", true),
        ask("max(max_over_time(m[1h]))", false),
    );
    assert_eq!(matrix_bits(&with), matrix_bits(&without));
    assert!(with.rollup_buckets > metric_only + SERIES as u64 / 2);
    // A sample in the head, in the last window: the same.
    write(&engine, 5, vec![Sample::new(BASE + 5 * HOUR + 90_000, 1e6)]);
    let (with, without) = (
        ask("max(max_over_time(m[1h]))", true),
        ask("max(max_over_time(m[1h]))", false),
    );
    assert_eq!(matrix_bits(&with), matrix_bits(&without));
    let QueryValue::Matrix(rows) = &with.value else {
        panic!("a matrix");
    };
    assert_eq!(rows[0].points.last().map(|s| s.v), Some(1e6));
}

/// Two flushes within one hour leave two segments holding the metric at different times
/// of that hour: their metric buckets fold together (no sample of one lies in the other's
/// time), so the hour is still read from metric rollups.
#[test]
fn flushes_of_one_hour_fold_their_metric_rollups_together() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open_with(
        dir.path(),
        Options {
            query_cache_bytes: 0,
            rollup_tiers_ms: vec![3_600_000],
            ..Options::default()
        },
    )
    .expect("open");
    for half in 0..4i64 {
        for site in 0..20usize {
            let samples = (0..30)
                .map(|i| {
                    let t = BASE + half * 30 * 60_000 + i * 60_000;
                    Sample::new(t, ((site as i64 * 31 + i + half * 7) % 97) as f64 + 1.0)
                })
                .collect();
            write(&engine, site, samples);
        }
        engine.flush().expect("flush");
    }
    let ask = |rollups: bool| {
        engine
            .query(&PromqlQuery {
                use_rollups: rollups,
                ..PromqlQuery::range(
                    "ns",
                    "max(max_over_time(m[1h]))",
                    BASE + HOUR,
                    BASE + 2 * HOUR,
                    HOUR,
                )
            })
            .expect("query")
    };
    let (with, without) = (ask(true), ask(false));
    assert_eq!(matrix_bits(&with), matrix_bits(&without));
    assert_eq!(with.rollup_tier_ms, HOUR);
    let QueryValue::Matrix(rows) = &with.value else {
        panic!("a matrix");
    };
    assert!(rows[0].points.iter().all(|p| p.v < 1e9), "{rows:?}");
    // Two steps, each an hour's bucket from each of two segments (and a boundary).
    assert!(with.rollup_buckets <= 6, "{} buckets", with.rollup_buckets);
}
