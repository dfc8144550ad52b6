//! The result cache of range queries never changes an answer: random writes — late ones and
//! corrections of a timestamp already written — deletions and flushes, interleaved with
//! random range queries and refreshes that move their window, answer bit for bit as a store
//! without the cache answers, at every step; and a refresh reuses what is still exact.

use iocdb_engine::{Engine, MatchOp, Matcher, Options, PromqlQuery, QueryValue, Sample};
use proptest::prelude::*;

use crate::common::{self, bits, matrix_bits, request};

fn options(cache: bool) -> Options {
    Options {
        query_cache_bytes: if cache { 1 << 20 } else { 0 },
        ..common::options()
    }
}

/// Expressions covering selectors, windows, offsets both ways, subqueries, aggregations,
/// binary operations, functions of time and no data at all.
const EXPRS: &[&str] = &[
    "m",
    "sum(m)",
    "rate(m[30s])",
    "max_over_time(m[20s])",
    "m offset 10s",
    "m offset -15s",
    "sum by (site) (increase(m[1m]))",
    "avg_over_time(m[15s:5s])",
    "count(m) + on() group_left sum(m offset 5s)",
    "timestamp(m)",
    "changes(m[45s])",
    "vector(1)",
    "time() - max(timestamp(m))",
    "topk(2, m)",
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
    /// A new query: expression, step (s), first step (in steps), steps.
    Query {
        expr: usize,
        step: i64,
        first: i64,
        steps: i64,
    },
    /// The last query again, its window moved forward by this many steps.
    Refresh {
        by: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..4usize, 0..200_000i64, -1e3..1e3f64).prop_map(|(site, t, v)| Op::Write { site, t, v }),
        1 => (0..4usize, 0..200_000i64, 0..40_000i64).prop_map(|(site, from, len)| Op::Delete { site, from, len }),
        1 => Just(Op::Flush),
        2 => (0..EXPRS.len(), prop_oneof![Just(5i64), Just(10)], 0..20i64, 1..30i64)
            .prop_map(|(expr, step, first, steps)| Op::Query { expr, step, first, steps }),
        4 => (0..4i64).prop_map(|by| Op::Refresh { by }),
    ]
}

fn query(expr: &str, step: i64, first: i64, steps: i64) -> PromqlQuery {
    let step = step * 1000;
    PromqlQuery {
        lookback_ms: Some(20_000),
        ..PromqlQuery::range("ns", expr, first * step, (first + steps) * step, step)
    }
}

fn both(engines: &[Engine; 2], f: impl Fn(&Engine)) {
    for e in engines {
        f(e);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn answers_with_the_cache_equal_answers_without(ops in proptest::collection::vec(op(), 1..80)) {
        let dirs = [tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir")];
        let engines = [
            common::open_with(dirs[0].path(), options(true)).expect("open"),
            common::open_with(dirs[1].path(), options(false)).expect("open"),
        ];
        let mut last: Option<(usize, i64, i64, i64)> = None;
        for op in ops {
            let asked = match op {
                Op::Write { site, t, v } => {
                    both(&engines, |e| {
                        e.write(request("ns", vec![common::series("m", site, vec![Sample::new(t, v)])]))
                            .expect("write");
                    });
                    None
                }
                Op::Delete { site, from, len } => {
                    let matchers = [
                        Matcher::equal("__name__", "m"),
                        Matcher::new("site", MatchOp::Equal, format!("s{site}")).expect("matcher"),
                    ];
                    both(&engines, |e| {
                        e.delete("ns", &matchers, from, from + len).expect("delete");
                    });
                    None
                }
                Op::Flush => {
                    both(&engines, |e| {
                        e.flush().expect("flush");
                    });
                    None
                }
                Op::Query { expr, step, first, steps } => Some((expr, step, first, steps)),
                Op::Refresh { by } => last.map(|(expr, step, first, steps)| (expr, step, first + by, steps)),
            };
            if let Some((expr, step, first, steps)) = asked {
                last = asked;
                let q = query(EXPRS[expr], step, first, steps);
                let cached = bits(&engines[0].query(&q));
                let plain = bits(&engines[1].query(&q));
                prop_assert_eq!(cached, plain, "{} from step {} ({} s) for {} steps", EXPRS[expr], first, step, steps);
            }
        }
    }
}

/// A refresh with the window moved reuses every step no write reached, computes the new
/// ones and those a late sample touched, and answers as a store without the cache does.
#[test]
fn a_refresh_reuses_the_steps_still_exact() {
    let dirs = [
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    ];
    let engines = [
        common::open_with(dirs[0].path(), options(true)).expect("open"),
        common::open_with(dirs[1].path(), options(false)).expect("open"),
    ];
    let write = |t: i64, v: f64| {
        both(&engines, |e| {
            let s = (0..3)
                .map(|site| common::series("m", site, vec![Sample::new(t, v + site as f64)]))
                .collect();
            e.write(request("ns", s)).expect("write");
        });
    };
    for k in 0..60 {
        write(k * 10_000, k as f64);
    }
    let ask = |first: i64| {
        let q = query("sum(rate(m[30s]))", 10, first, 30);
        let cached = engines[0].query(&q).expect("cached");
        assert_eq!(matrix_bits(&cached), bits(&engines[1].query(&q)));
        cached.steps_from_cache
    };
    assert_eq!(ask(10), 0, "a first query computes everything");
    assert_eq!(ask(10), 31, "the same query again: all of it");
    // Live data arrives at the end and the window moves two steps: the steps that cannot
    // see the new samples come from the cache.
    write(600_000, 60.0);
    write(610_000, 61.0);
    assert_eq!(ask(12), 29, "steps 12..=40 of 12..=42 are still exact");
    // A correction in the middle of the window: only the steps whose window reaches it are
    // computed again.
    write(300_000, -5.0);
    assert_eq!(
        ask(12),
        18,
        "steps 12..=29: their windows end before t = 300 s"
    );
    let stats = engines[0].stats().query_cache;
    assert_eq!((stats.hits, stats.invalidations), (3, 1), "{stats:?}");
    assert_eq!(engines[1].stats().query_cache.lookups, 0);
}

/// The default namespace has two spellings, "" and "default": a late sample written under
/// either reaches a cached answer asked under either.
#[test]
fn the_default_namespace_under_either_name_invalidates_alike() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open_with(dir.path(), options(true)).expect("open");
    let write = |ns: &str, t: i64, v: f64| {
        engine
            .write(request(
                ns,
                vec![common::series("m", 0, vec![Sample::new(t, v)])],
            ))
            .expect("write");
    };
    for k in 0..30 {
        write("", k * 20_000, 1.0);
    }
    let sum = |ns: &str, at: i64| {
        let q = PromqlQuery {
            namespace: ns.into(),
            ..query("sum(m)", 10, 0, 59)
        };
        let r = engine.query(&q).expect("query");
        let QueryValue::Matrix(series) = r.value else {
            panic!("a matrix");
        };
        series[0].points.iter().find(|p| p.t == at).map(|p| p.v)
    };
    for (write_as, ask_as) in [
        ("", ""),
        ("default", ""),
        ("", "default"),
        ("default", "default"),
    ] {
        assert_eq!(sum(ask_as, 310_000), Some(1.0), "{write_as} → {ask_as}");
        // A late sample between two others: the step at 310 s now sees it.
        write(write_as, 310_000, 7.0);
        assert_eq!(sum(ask_as, 310_000), Some(7.0), "{write_as} → {ask_as}");
        write(write_as, 310_000, 1.0);
    }
}
