//! Postings on their own: references handed out in order, the series limit, bad regexes.
//! Selection semantics are tested through the head in `head/tests.rs`.

use super::*;
use crate::Error;
use crate::model::Label;
use crate::model::Limits;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::validate(
        pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect(),
        &Limits::default(),
    )
    .expect("valid")
}

#[test]
fn added_references_are_selected_and_the_limit_refuses_without_assigning() {
    let ix = Index::default();
    let ns = Namespace::new("health").expect("ns");
    let mut next = 0;
    for site in ["a", "b"] {
        ix.add(
            &ns,
            &labels(&[("__name__", "beds"), ("site", site)]),
            Some(2),
            || {
                next += 1;
                next - 1
            },
        )
        .expect("under the limit");
    }
    assert_eq!(next, 2);
    let refused = ix.add(
        &ns,
        &labels(&[("__name__", "beds"), ("site", "c")]),
        Some(2),
        || unreachable!("a refused series gets no reference"),
    );
    assert!(matches!(
        refused,
        Err(RejectReason::SeriesLimit { max: 2, .. })
    ));
    let selected: Vec<u32> = ix
        .select(&ns, &[Matcher::equal("site", "b")])
        .iter()
        .collect();
    assert_eq!(selected, [1]);
}

#[test]
fn series_taken_out_leave_no_trace_and_the_rest_read_back_after_the_arena_is_rewritten() {
    let ix = Index::default();
    let ns = Namespace::new("security").expect("ns");
    let camera = |i: u32| {
        labels(&[
            ("__name__", "people"),
            ("camera", &format!("cam-{i:06}-Châu Đốc")),
            ("commune", ["Châu Đốc", "Long Xuyên"][i as usize % 2]),
        ])
    };
    // Enough unique values that the dead ones pass the arena's rewrite threshold.
    let n = 20_000u32;
    let pairs: Vec<PairIds> = (0..n)
        .map(|i| ix.add(&ns, &camera(i), None, || i).expect("added").pairs)
        .collect();
    let full = ix.heap_bytes();
    for (i, p) in pairs.iter().enumerate().filter(|(i, _)| i % 4 != 0) {
        ix.remove(&ns, i as u32, p);
    }
    assert!(ix.heap_bytes() < full, "{} !< {full}", ix.heap_bytes());
    let all: Vec<u32> = ix.select(&ns, &[]).iter().collect();
    assert_eq!(all, (0..n).step_by(4).collect::<Vec<_>>());
    let reader = ix.reader();
    for i in (0..n).step_by(4) {
        assert_eq!(reader.labels(&pairs[i as usize]), camera(i));
    }
    drop(reader);
    assert_eq!(
        ix.label_values("commune", &ix.select(&ns, &[])),
        ["Châu Đốc"],
        "a pair no series carries is gone"
    );
    // Forgotten pairs' ids are reused, and new pairs read back.
    let again = ix.add(&ns, &camera(1), None, || 1).expect("added");
    assert_eq!(ix.reader().labels(&again.pairs), camera(1));
    let found: Vec<u32> = ix
        .select(&ns, &[Matcher::equal("camera", "cam-000001-Châu Đốc")])
        .iter()
        .collect();
    assert_eq!(found, [1]);
}

#[test]
fn bad_regexes_are_invalid_arguments() {
    assert!(matches!(
        Matcher::new("a", MatchOp::Regex, "("),
        Err(Error::InvalidArgument(_))
    ));
}
