//! The registry: identity, the series limit, and selection through the postings.

use std::collections::HashMap;

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
            &(),
        )
        .expect("created");
    }
    (ix, ns)
}

/// The references [`Head::select`] gives with no series out of the head.
fn ids(head: &Head, namespace: &Namespace, matchers: &[Matcher]) -> Vec<u32> {
    head.select(namespace, matchers, |_| Ok::<_, ()>(Vec::new()))
        .expect("select")
        .iter()
        .map(|s| s.series().id)
        .collect()
}

/// Segments as a test knows them: the labels of series out of the head, by reference.
#[derive(Default)]
struct Segments(HashMap<SeriesRef, (Namespace, Labels)>);

impl ColdLabels for Segments {
    fn find_labels(
        &self,
        namespace: &Namespace,
        labels: &Labels,
        cold: &RoaringBitmap,
    ) -> Option<SeriesRef> {
        self.0
            .iter()
            .find(|(id, (n, l))| cold.contains(**id) && n == namespace && l == labels)
            .map(|(&id, _)| id)
    }

    fn cold_labels(&self, id: SeriesRef) -> Option<(Namespace, Labels)> {
        self.0.get(&id).cloned()
    }
}

#[test]
fn a_series_struct_stays_in_its_allocation_class() {
    // 192 bytes and the `Arc`'s two counts: 208, a class of its own; the layout that puts a
    // look-up's fields together (`Series`' doc) must not grow it.
    assert!(
        std::mem::size_of::<Series>() <= 192,
        "{}",
        std::mem::size_of::<Series>()
    );
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
            &(),
        )
        .expect("found");
    assert_eq!(again.id, 0);
    assert_eq!(ix.len(), 3);
}

#[test]
fn matchers_follow_promql_semantics_for_absent_labels() {
    let (ix, ns) = fixture();
    let sel = |ms: Vec<Matcher>| ids(&ix, &ns, &ms);
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
    assert!(ids(&ix, &Namespace::new("health").expect("ns"), &[]).is_empty());
}

#[test]
fn the_series_limit_refuses_only_new_series() {
    let (ix, ns) = fixture();
    let new = labels(&[("__name__", "visitors"), ("site", "d")]);
    assert!(matches!(
        ix.get_or_create(&ns, &new, Some(3), &()),
        Err(RejectReason::SeriesLimit { max: 3, .. })
    ));
    let old = labels(&[
        ("__name__", "visitors"),
        ("site", "a"),
        ("commune", "Châu Đốc"),
    ]);
    assert!(ix.get_or_create(&ns, &old, Some(3), &()).is_ok());
}

mod interning {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    /// Label values as departments send them: Vietnamese place names, ASCII ids, empty
    /// values (absent labels), any UTF-8.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            prop::sample::select(vec!["Châu Đốc", "Long Xuyên", "Tân Châu", "Núi Sam", "ổ"])
                .prop_map(str::to_owned),
            "[a-z0-9-]{1,6}",
            any::<String>(),
        ]
    }

    fn raw_labels() -> impl Strategy<Value = Vec<Label>> {
        (
            "[a-c]{1,2}",
            prop::collection::btree_map(
                prop::sample::select(vec!["commune", "district", "site", "x", "y_1"]),
                value(),
                0..4,
            ),
        )
            .prop_map(|(metric, rest)| {
                std::iter::once(Label::new("__name__", metric))
                    .chain(rest.into_iter().map(|(n, v)| Label::new(n, v)))
                    .collect()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every series gives back exactly the labels it was created with, the same labels
        /// find the same series in every namespace, different ones never do, and equality
        /// selection by each of its labels finds it.
        /// With `collide`, every label set hashes alike and only the comparison of labels
        /// tells series apart.
        #[test]
        fn interned_label_sets_round_trip_exactly(
            sets in prop::collection::vec((raw_labels(), 0..3usize), 1..80),
            collide in any::<bool>(),
        ) {
            let head = if collide { Head::with_colliding_hashes() } else { Head::default() };
            let namespaces: Vec<Namespace> = ["a", "b", "c"]
                .iter()
                .map(|n| Namespace::new(n).expect("ns"))
                .collect();
            let mut seen: HashMap<(usize, Labels), SeriesRef> = HashMap::new();
            for (raw, ns) in &sets {
                let Ok(labels) = Labels::validate(raw.clone(), &Limits::default()) else {
                    continue;
                };
                let namespace = &namespaces[*ns];
                let series = head.get_or_create(namespace, &labels, None, &()).expect("created");
                let id = *seen.entry((*ns, labels.clone())).or_insert(series.id);
                prop_assert_eq!(series.id, id, "the same labels, the same series");
                prop_assert_eq!(&head.labels(&series), &labels);
                for l in labels.iter() {
                    let found = ids(&head, namespace, &[Matcher::equal(&l.name, &l.value)]);
                    prop_assert!(found.contains(&series.id));
                }
            }
            prop_assert_eq!(head.len(), seen.len(), "different labels, different series");
            for ((ns, labels), id) in &seen {
                let series = head.get(*id).expect("registered");
                prop_assert_eq!(&series.namespace, &namespaces[*ns]);
                prop_assert_eq!(&head.labels(&series), labels);
            }
            let all = roaring::RoaringBitmap::from_iter(seen.values().copied());
            let mut want: Vec<String> = seen
                .keys()
                .filter_map(|(_, l)| l.get("commune").map(str::to_owned))
                .collect();
            want.sort();
            want.dedup();
            prop_assert_eq!(head.label_values("commune", &all), want);

            // Out of the head and back: the same labels find the same series, still by
            // label comparison alone when every hash collides, and registering a known
            // label set (a segment's series at open) gives its reference, never a new one.
            let refs: Vec<SeriesRef> = seen.values().copied().collect();
            let segments = Segments(
                seen.iter().map(|((ns, l), &id)| (id, (namespaces[*ns].clone(), l.clone()))).collect(),
            );
            let evicted = head.evict(&refs, &refs.iter().copied().collect());
            prop_assert_eq!(evicted.series, seen.len());
            prop_assert_eq!((head.len(), head.label_bytes() > 0), (0, true));
            prop_assert_eq!(head.known(), seen.len());
            prop_assert_eq!(head.cold_refs().len() as usize, seen.len());
            for ((ns, labels), id) in &seen {
                prop_assert_eq!(head.identity(*id), None);
                let mut registrar = Registrar::default();
                let registered = head.register(&namespaces[*ns], labels, &segments, &mut registrar);
                prop_assert_eq!(registered, *id);
                prop_assert!(ids(&head, &namespaces[*ns], &[]).is_empty(), "the index holds none");
            }
            for (i, ((ns, labels), id)) in seen.iter().enumerate() {
                if i % 2 == 0 {
                    let back = head
                        .get_or_create(&namespaces[*ns], labels, Some(0), &segments)
                        .expect("known");
                    prop_assert_eq!(back.id, *id);
                    prop_assert!(!back.detached);
                    prop_assert_eq!(&head.labels(&back), labels);
                }
                let matchers: Vec<Matcher> =
                    labels.iter().map(|l| Matcher::equal(&l.name, &l.value)).collect();
                let selected = head
                    .select(&namespaces[*ns], &matchers, |cold| {
                        Ok::<_, ()>(
                            cold.iter()
                                .filter_map(|c| segments.0.get(&c).map(|(n, l)| (c, n, l)))
                                .filter(|(_, n, l)| *n == &namespaces[*ns] && *l == labels)
                                .map(|(c, _, l)| (c, l.clone()))
                                .collect(),
                        )
                    })
                    .expect("select");
                let mine: Vec<_> = selected.iter().filter(|s| s.series().id == *id).collect();
                prop_assert_eq!(mine.len(), 1, "each series once, in or out of the head");
                prop_assert_eq!(mine[0].labels(), labels);
                prop_assert_eq!(mine[0].series().detached, i % 2 != 0);
                let mut all: Vec<SeriesRef> = selected.iter().map(|s| s.series().id).collect();
                all.dedup();
                prop_assert_eq!(all.len(), selected.len());
            }
            prop_assert_eq!(head.known(), seen.len(), "no series twice");
        }
    }
}

mod by_wire_bytes {
    //! A series found by the request's label bytes ([`Finder::find_raw`], which tries the
    //! series that followed the previous one last time before the hash table) is
    //! exactly the one full decoding and validation give, and every known series is found
    //! that way — on valid, invalid, non-canonical and (with a hash that makes every label
    //! set collide) colliding inputs, whatever the followers remembered.

    use super::*;
    use crate::model::raw_labels::to_labels;
    use proptest::prelude::*;

    const NAMES: [&[u8]; 8] = [
        b"__name__",
        b"a",
        b"b",
        b"zone",
        b"9bad",
        b"",
        b"\xffx",
        b"longer_name",
    ];
    const VALUES: [&[u8]; 7] = [
        b"up",
        b"x",
        "Châu Đốc".as_bytes(),
        b"",
        b"\xff",
        b"1bad",
        b"long value",
    ];

    fn raw_set() -> impl Strategy<Value = Vec<(usize, usize)>> {
        prop::collection::vec((0..NAMES.len(), 0..VALUES.len()), 0..6)
    }

    /// Each input: (second namespace, strict limits, labels). Series created under the loose
    /// limits and written again under the strict ones are the case of limits lowered since.
    type Input = (bool, bool, Vec<(usize, usize)>);

    fn check(colliding: bool, inputs: Vec<Input>) -> Result<(), TestCaseError> {
        let head = if colliding {
            Head::with_colliding_hashes()
        } else {
            Head::default()
        };
        let loose = Limits::default();
        let strict = Limits {
            max_labels_per_series: 3,
            max_label_name_bytes: 8,
            max_label_value_bytes: 8,
            ..Limits::default()
        };
        let namespaces = [
            Namespace::new("health").unwrap(),
            Namespace::new("tourism").unwrap(),
        ];
        let mut shaping = Shaping::default();
        // The series found before, as a write's next series is looked up after it.
        let mut previous: Option<Arc<Series>> = None;
        for (second, strict_now, set) in inputs {
            let ns = &namespaces[usize::from(second)];
            let limits = if strict_now { &strict } else { &loose };
            let raw: Vec<RawLabel<'_>> = set
                .iter()
                .map(|&(n, v)| RawLabel::new(NAMES[n], VALUES[v]))
                .collect();
            let known = head.len();
            let found = head
                .finder()
                .find_raw(previous.as_deref(), ns, &raw, limits, &mut shaping);
            let fast = found.as_ref().map(|s| s.id);
            previous = found.or(previous);
            let slow = to_labels(&raw)
                .and_then(|labels| Labels::validate(labels, limits))
                .and_then(|labels| head.get_or_create(ns, &labels, None, &()))
                .map(|s| s.id);
            match (fast, &slow) {
                (Some(id), Ok(full)) => prop_assert_eq!(id, *full, "{:?}", raw),
                (Some(id), Err(e)) => {
                    prop_assert!(
                        false,
                        "found {} by bytes, validation says {}: {:?}",
                        id,
                        e,
                        raw
                    )
                }
                (None, Ok(full)) => prop_assert!(
                    *full as usize >= known,
                    "series {} exists but was not found by its bytes: {:?}",
                    full,
                    raw
                ),
                (None, Err(_)) => {}
            }
        }
        Ok(())
    }

    /// Inputs drawn from a few label sets, so that sets come back.
    fn inputs() -> impl Strategy<Value = Vec<Input>> {
        // An order of sets sent a few times over, as a sender sends its series write after
        // write (so that followers are remembered and tried), each time in either namespace
        // and under either limits.
        (
            prop::collection::vec(raw_set(), 1..8),
            prop::collection::vec(any::<prop::sample::Index>(), 1..20),
            prop::collection::vec((any::<bool>(), any::<bool>()), 60),
        )
            .prop_map(|(sets, order, flags)| {
                order
                    .iter()
                    .cycle()
                    .zip(flags)
                    .map(|(i, (second, strict))| (second, strict, i.get(&sets).clone()))
                    .collect()
            })
    }

    fn raw<'a>(set: &[(&'a str, &'a str)]) -> Vec<RawLabel<'a>> {
        set.iter()
            .map(|(n, v)| RawLabel::new(n.as_bytes(), v.as_bytes()))
            .collect()
    }

    #[test]
    fn a_series_remembers_which_followed_it_and_a_wrong_follower_is_not_taken() {
        let head = Head::default();
        let ns = Namespace::new("lodging").unwrap();
        let sets = [
            raw(&[("__name__", "guests"), ("commune", "Châu Đốc")]),
            raw(&[("__name__", "guests"), ("commune", "Long Xuyên")]),
            raw(&[("__name__", "rooms"), ("commune", "Châu Đốc")]),
        ];
        let limits = Limits::default();
        let series: Vec<Arc<Series>> = sets
            .iter()
            .map(|set| {
                let labels = Labels::validate(to_labels(set).unwrap(), &limits).unwrap();
                head.get_or_create(&ns, &labels, None, &()).unwrap()
            })
            .collect();
        let follower = |s: &Series| s.follower.load(Ordering::Relaxed);
        assert_eq!(
            follower(&series[0]),
            SeriesRef::MAX,
            "nothing followed it yet"
        );
        let mut shaping = Shaping::default();
        let finder = head.finder();
        let mut find = |previous: &Arc<Series>, set: &[RawLabel<'static>]| {
            finder
                .find_raw(Some(previous), &ns, set, &limits, &mut shaping)
                .map(|s| s.id)
        };
        assert_eq!(find(&series[0], &sets[1]), Some(series[1].id));
        assert_eq!(follower(&series[0]), series[1].id);
        // The remembered follower is not the series asked for: the table finds it, and it
        // becomes the follower.
        assert_eq!(find(&series[0], &sets[2]), Some(series[2].id));
        assert_eq!(follower(&series[0]), series[2].id);
        // Nor is a follower taken for labels it does not have, in another namespace, or
        // past limits lowered since it was created.
        assert_eq!(find(&series[0], &raw(&[("__name__", "rooms")])), None);
        let other = Namespace::new("tourism").unwrap();
        let in_other = finder.find_raw(Some(&series[0]), &other, &sets[2], &limits, &mut shaping);
        assert!(in_other.is_none());
        let strict = Limits {
            max_label_value_bytes: 4,
            ..Limits::default()
        };
        let past = finder.find_raw(Some(&series[0]), &ns, &sets[2], &strict, &mut shaping);
        assert!(past.is_none());
        assert_eq!(
            follower(&series[0]),
            series[2].id,
            "a miss changes no follower"
        );
    }

    proptest! {
        #[test]
        fn the_bytes_find_the_series_validation_would(inputs in inputs()) {
            check(false, inputs)?;
        }

        #[test]
        fn colliding_hashes_change_nothing(inputs in inputs()) {
            check(true, inputs)?;
        }
    }
}

#[test]
fn a_place_applies_only_after_the_earlier_places_of_its_series() {
    let (head, _) = fixture();
    let series = head.all();
    let (x, y) = (&series[0], &series[1]);
    let mut none = |_: &[Sample], _: &dyn Fn() -> Option<Sample>| {};
    // Write 1 reserves its places in x and y, then write 2 reserves its places after it.
    let (x1, y1) = (x.head.reserve(), y.head.reserve());
    let (x2, y2) = (x.head.reserve(), y.head.reserve());
    let second = [Sample::new(1, 2.0)];
    assert_eq!(
        head.try_apply(x, x2, &second, &mut none),
        None,
        "x: write 1 is out"
    );
    assert_eq!(
        head.try_apply(y, y2, &second, &mut none),
        None,
        "y: write 1 is out"
    );
    // Write 1 applies x: write 2's turn in x has come, not yet in y.
    let first = [Sample::new(1, 1.0)];
    assert!(head.try_apply(x, x1, &first, &mut none).is_some());
    assert!(head.try_apply(x, x2, &second, &mut none).is_some());
    assert_eq!(head.try_apply(y, y2, &second, &mut none), None);
    // Write 1's batch failed in y: its place is skipped, and write 2 applies.
    head.skip(y, y1);
    assert!(head.try_apply(y, y2, &second, &mut none).is_some());
    // x: write 1's value, then write 2's correction, which wins; y: write 2's alone.
    for (s, want) in [(x, vec![1.0, 2.0]), (y, vec![2.0])] {
        let mut got = Vec::new();
        s.head
            .snapshot(0, 10)
            .decode_into(0, 10, &mut got)
            .expect("decodes");
        assert_eq!(got.iter().map(|s| s.v).collect::<Vec<_>>(), want);
        layer::dedupe_newest_wins(&mut got, 0);
        assert_eq!(got, [Sample::new(1, 2.0)]);
    }
}
