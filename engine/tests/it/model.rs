//! Model-based property test: random writes (out of order, duplicates, several series and
//! namespaces' worth of partitions), flushes and reopenings, compared after every step with
//! a plain BTreeMap for full and partial selects.

use iocdb_engine::{Engine, MatchOp, Matcher, Sample};
use proptest::prelude::*;

use crate::common::{self, Oracle, dump, request, series};

#[derive(Debug, Clone)]
enum Op {
    Write(Vec<(usize, Vec<(i64, f64)>)>),
    Flush,
    Reopen,
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (-50i32..50).prop_map(f64::from),
        2 => any::<f64>(),
        1 => Just(f64::NAN),
        1 => Just(-0.0),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let samples = prop::collection::vec(((-5i64..60).prop_map(|t| t * 1000 + 3), value()), 1..40);
    prop_oneof![
        6 => prop::collection::vec((0usize..5, samples), 1..4).prop_map(Op::Write),
        2 => Just(Op::Flush),
        1 => Just(Op::Reopen),
    ]
}

fn check(engine: &Engine, oracle: &Oracle, (a, b): (i64, i64)) {
    assert_eq!(dump(engine, "model"), oracle.expected());
    let (start, end) = (a.min(b), a.max(b));
    let m = Matcher::new("site", MatchOp::Regex, "s[0-2]").expect("m");
    let got = engine.select("model", &[m], start, end).expect("select");
    for s in &got {
        let site = s.labels.get("site").unwrap_or_default();
        let want: Vec<(i64, u64)> = oracle.0[site]
            .range(start..=end)
            .map(|(&t, &v)| (t, v))
            .collect();
        let have: Vec<(i64, u64)> = s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect();
        assert_eq!(have, want, "{site} in [{start}, {end}]");
    }
    let expected_series = ["s0", "s1", "s2"]
        .iter()
        .filter(|s| {
            oracle
                .0
                .get(**s)
                .is_some_and(|m| m.range(start..=end).next().is_some())
        })
        .count();
    assert_eq!(got.len(), expected_series);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_store_always_answers_like_a_btreemap(ops in prop::collection::vec(op(), 1..14), range in (-6000i64..62_000, -6000i64..62_000)) {
        let dir = tempfile::tempdir().expect("dir");
        let mut engine = common::open(dir.path());
        let mut oracle = Oracle::default();
        for op in ops {
            match op {
                Op::Write(batch) => {
                    let req = request("model", batch.into_iter().map(|(i, s)| {
                        series("m", i, s.into_iter().map(|(t, v)| Sample::new(t, v)).collect())
                    }).collect());
                    let out = engine.write(req.clone()).expect("write");
                    prop_assert!(out.rejected.is_empty());
                    oracle.apply(&req);
                }
                Op::Flush => { engine.flush().expect("flush"); }
                Op::Reopen => {
                    drop(engine);
                    engine = common::open(dir.path());
                }
            }
            check(&engine, &oracle, range);
        }
    }
}
