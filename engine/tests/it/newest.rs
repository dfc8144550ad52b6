//! The newest-sample read of an instant selector at one step (`Querier::snapshot_newest`,
//! which skips decoding what precedes a series' newest sample) answers exactly as the full
//! read: random writes — in order, late, and corrections of a timestamp already written —
//! deletions, flushes and compactions, then every step of a range query (the full read)
//! against the same query asked for that step alone (the newest read), bit for bit, and the
//! same for the read view itself over random windows.

use std::collections::BTreeMap;

use iocdb_engine::{Engine, MatchOp, Matcher, PromqlQuery, Sample};
use proptest::prelude::*;

use crate::common::{self, bits, request};

const EXPRS: &[&str] = &[
    "m",
    "max(m)",
    "timestamp(m)",
    "m offset 10s",
    "sum by (site) (m)",
];

#[derive(Debug, Clone)]
enum Op {
    /// Samples of one site at these seconds (a grid, so that corrections happen).
    Write {
        site: usize,
        at: Vec<(i64, f64)>,
    },
    /// A new value for the newest time written to a site.
    Correct {
        site: usize,
        v: f64,
    },
    Delete {
        site: usize,
        from: i64,
        len: i64,
    },
    Flush,
    Compact,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..3usize, proptest::collection::vec((0..120i64, -1e3..1e3f64), 1..6))
            .prop_map(|(site, at)| Op::Write { site, at }),
        2 => (0..3usize, -1e3..1e3f64).prop_map(|(site, v)| Op::Correct { site, v }),
        1 => (0..3usize, 0..120i64, 0..30i64).prop_map(|(site, from, len)| Op::Delete { site, from, len }),
        2 => Just(Op::Flush),
        1 => Just(Op::Compact),
    ]
}

/// Applies `op`; `newest` holds each site's newest time written.
fn apply(engine: &Engine, op: &Op, newest: &mut [i64; 3]) {
    let write = |site: usize, samples: Vec<Sample>| {
        engine
            .write(request("ns", vec![common::series("m", site, samples)]))
            .expect("write");
    };
    match op {
        Op::Write { site, at } => {
            let samples: Vec<Sample> = at.iter().map(|&(s, v)| Sample::new(s * 1000, v)).collect();
            for s in &samples {
                newest[*site] = newest[*site].max(s.t);
            }
            write(*site, samples);
        }
        Op::Correct { site, v } => write(*site, vec![Sample::new(newest[*site].max(0), *v)]),
        Op::Delete { site, from, len } => {
            let matchers = [
                Matcher::equal("__name__", "m"),
                Matcher::new("site", MatchOp::Equal, format!("s{site}")).expect("matcher"),
            ];
            engine
                .delete("ns", &matchers, from * 1000, (from + len) * 1000)
                .expect("delete");
        }
        Op::Flush => {
            engine.flush().expect("flush");
        }
        Op::Compact => {
            engine.compact().expect("compact");
        }
    }
}

fn range(expr: &str, start: i64, end: i64, step: i64) -> PromqlQuery {
    PromqlQuery {
        lookback_ms: Some(20_000),
        ..PromqlQuery::range("ns", expr, start, end, step)
    }
}

/// Each step's points of a matrix, by series: step → labels → value bits.
type ByStep = BTreeMap<i64, BTreeMap<String, u64>>;

fn by_step(engine: &Engine, q: &PromqlQuery) -> Result<ByStep, String> {
    let mut out = ByStep::new();
    for (labels, points) in bits(&engine.query(q))? {
        for (t, v) in points {
            out.entry(t).or_default().insert(labels.clone(), v);
        }
    }
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn one_step_answers_as_every_step_of_a_range(
        ops in proptest::collection::vec(op(), 1..40),
        expr in 0..EXPRS.len(),
        windows in proptest::collection::vec((0..130i64, 0..60i64), 1..4),
    ) {
        let dir = tempfile::tempdir().expect("dir");
        let engine = common::open_with(dir.path(), common::options()).expect("open");
        let mut newest = [i64::MIN; 3];
        for op in &ops {
            apply(&engine, op, &mut newest);
        }
        // The full read: every step of a range; the newest read: each step alone.
        let (step, first, last) = (5_000, 0, 130_000);
        let all = by_step(&engine, &range(EXPRS[expr], first, last, step));
        for t in (first..=last).step_by(step as usize) {
            let alone = by_step(&engine, &range(EXPRS[expr], t, t, step));
            let expected = all
                .as_ref()
                .map(|a| a.get(&t).cloned().unwrap_or_default())
                .map_err(String::clone);
            let got = alone.map(|mut a| a.remove(&t).unwrap_or_default());
            prop_assert_eq!(got, expected, "{} at {}", EXPRS[expr], t);
        }
        // The read view: the newest sample of each series in random windows is the last of
        // what the full read lists.
        let querier = engine.querier();
        for (from, len) in windows {
            let (start, end) = (from * 1000, (from + len) * 1000);
            let series = querier
                .select("ns", &[Matcher::equal("__name__", "m")], start, end)
                .expect("select");
            let full = querier
                .snapshot(series.clone(), start, end)
                .for_each(&|_, samples| Ok(samples.last().map(|s| (s.t, s.v.to_bits()))))
                .expect("full");
            let newest = querier
                .snapshot_newest(series, start, end)
                .for_each(&|_, samples| Ok(samples.iter().map(|s| (s.t, s.v.to_bits())).collect::<Vec<_>>()))
                .expect("newest");
            let newest: Vec<Option<(i64, u64)>> = newest
                .into_iter()
                .map(|s| {
                    assert!(s.len() <= 1, "{s:?}");
                    s.first().copied()
                })
                .collect();
            prop_assert_eq!(newest, full, "window [{}, {}]", start, end);
        }
    }
}

/// The newest read of a series written live decodes nothing: the query reads one sample
/// per series, where the full read of the same window reads every sample in it.
#[test]
fn a_live_series_newest_sample_costs_one_sample() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open_with(dir.path(), common::options()).expect("open");
    let samples = (0..100).map(|i| Sample::new(i * 1000, i as f64)).collect();
    engine
        .write(request("ns", vec![common::series("m", 0, samples)]))
        .expect("write");
    let one = engine
        .query(&range("m", 99_000, 99_000, 1000))
        .expect("one step");
    assert_eq!(one.samples_read, 1);
    let two = engine
        .query(&range("m", 98_000, 99_000, 1000))
        .expect("two steps");
    assert!(two.samples_read > 1, "{}", two.samples_read);
    // A step a little before the last sample: found among the samples the open chunk keeps
    // at hand, still without decoding.
    let before = engine
        .query(&range("m", 97_500, 97_500, 1000))
        .expect("before");
    assert_eq!(before.samples_read, 1);
    assert_eq!(
        bits(&Ok(before)).expect("bits")[0].1,
        vec![(97_500, 97f64.to_bits())]
    );
    // A late sample between two in-order ones is newer than the one before it.
    engine
        .write(request(
            "ns",
            vec![common::series("m", 0, vec![Sample::new(97_700, 0.5)])],
        ))
        .expect("late");
    let late = bits(&engine.query(&range("m", 97_800, 97_800, 1000))).expect("bits");
    assert_eq!(late[0].1, vec![(97_800, 0.5f64.to_bits())]);
    // A correction of the newest sample wins, as in the full read.
    engine
        .write(request(
            "ns",
            vec![common::series("m", 0, vec![Sample::new(99_000, -5.0)])],
        ))
        .expect("correct");
    let corrected = bits(&engine.query(&range("m", 99_000, 99_000, 1000))).expect("bits");
    assert_eq!(corrected[0].1, vec![(99_000, (-5.0f64).to_bits())]);
}
