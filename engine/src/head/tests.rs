//! The registry: identity, the series limit, and selection through the postings.

use super::*;
use crate::index::MatchOp;
use crate::model::Label;
use crate::model::Limits;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::validate(
        pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect(),
        &Limits::default(),
    )
    .expect("valid")
}

fn fixture() -> (Head, Namespace) {
    let ix = Head::default();
    let ns = Namespace::new("tourism").expect("ns");
    for (site, commune) in [("a", "Châu Đốc"), ("b", "Long Xuyên"), ("c", "")] {
        ix.get_or_create(
            &ns,
            &labels(&[
                ("__name__", "visitors"),
                ("site", site),
                ("commune", commune),
            ]),
            None,
        )
        .expect("created");
    }
    (ix, ns)
}

fn ids(series: Vec<Arc<Series>>) -> Vec<u32> {
    series.iter().map(|s| s.id).collect()
}

#[test]
fn the_same_labels_give_the_same_series() {
    let (ix, ns) = fixture();
    let again = ix
        .get_or_create(
            &ns,
            &labels(&[
                ("site", "a"),
                ("__name__", "visitors"),
                ("commune", "Châu Đốc"),
            ]),
            None,
        )
        .expect("found");
    assert_eq!(again.id, 0);
    assert_eq!(ix.len(), 3);
}

#[test]
fn matchers_follow_promql_semantics_for_absent_labels() {
    let (ix, ns) = fixture();
    let sel = |ms: Vec<Matcher>| ids(ix.select(&ns, &ms));
    assert_eq!(sel(vec![Matcher::equal("commune", "Châu Đốc")]), [0]);
    assert_eq!(sel(vec![Matcher::equal("commune", "")]), [2]);
    let present = Matcher::new("commune", MatchOp::NotEqual, "").expect("m");
    assert_eq!(sel(vec![present]), [0, 1]);
    let re = Matcher::new("commune", MatchOp::Regex, "Long.*").expect("m");
    assert_eq!(sel(vec![re]), [1]);
    let anchored = Matcher::new("site", MatchOp::Regex, "a|b").expect("m");
    assert_eq!(sel(vec![anchored]), [0, 1]);
    let not_re = Matcher::new("commune", MatchOp::NotRegex, "Châu.*").expect("m");
    assert_eq!(sel(vec![not_re]), [1, 2]);
    assert_eq!(sel(vec![Matcher::equal("site", "zzz")]), Vec::<u32>::new());
    assert!(ids(ix.select(&Namespace::new("health").expect("ns"), &[])).is_empty());
}

#[test]
fn the_series_limit_refuses_only_new_series() {
    let (ix, ns) = fixture();
    let new = labels(&[("__name__", "visitors"), ("site", "d")]);
    assert!(matches!(
        ix.get_or_create(&ns, &new, Some(3)),
        Err(RejectReason::SeriesLimit { max: 3, .. })
    ));
    let old = labels(&[
        ("__name__", "visitors"),
        ("site", "a"),
        ("commune", "Châu Đốc"),
    ]);
    assert!(ix.get_or_create(&ns, &old, Some(3)).is_ok());
}
