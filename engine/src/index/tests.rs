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
        let id = ix
            .add(
                &ns,
                &labels(&[("__name__", "beds"), ("site", site)]),
                Some(2),
                || {
                    next += 1;
                    next - 1
                },
            )
            .expect("under the limit")
            .id;
        assert_eq!(id, next - 1);
    }
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
    assert_eq!(ix.namespace_counts(), [("health".to_string(), 2)]);
}

#[test]
fn bad_regexes_are_invalid_arguments() {
    assert!(matches!(
        Matcher::new("a", MatchOp::Regex, "("),
        Err(Error::InvalidArgument(_))
    ));
}
