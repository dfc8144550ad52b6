//! Labels as they arrive on the wire — byte slices into the request, not yet checked, not
//! even as UTF-8 — and the two ways from them to a series: the quick one for a label set the
//! head already knows (a lookup by these bytes, [`crate::head::Finder::find_raw`]), and the
//! full one ([`to_labels`], then [`Labels::validate`]) for one it does not.
//!
//! Why the quick way gives exactly the series the full one would: it looks up the set as
//! validation shapes it ([`shape`]: empty values dropped, sorted by name) within the
//! configurable limits ([`within`]); what it leaves unchecked — UTF-8, the name rules,
//! duplicate names, `__name__` — holds for every label set the head holds, so a shaped set
//! equal byte for byte to a known series' labels would pass validation and become those
//! very labels.
//! A set equal label for label to a known series' labels is shaped already (every set the
//! head holds is), so the lookup tries the bytes as they came before shaping them.
//! A set the quick way does not find is not refused by it: it goes the full way, which
//! names what is wrong. The head's tests check the equivalence on random, invalid and
//! colliding inputs.

use super::{Label, Labels, Limits, RejectReason};

/// One label off the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawLabel<'a> {
    /// The name's bytes.
    pub name: &'a [u8],
    /// The value's bytes.
    pub value: &'a [u8],
}

impl<'a> RawLabel<'a> {
    /// A label off the wire from its two slices.
    pub fn new(name: &'a [u8], value: &'a [u8]) -> Self {
        RawLabel { name, value }
    }
}

impl Labels {
    /// The labels as bytes, in label order (to hash and compare with labels off the wire).
    pub fn raw(&self) -> impl ExactSizeIterator<Item = RawLabel<'_>> + Clone {
        self.iter()
            .map(|l| RawLabel::new(l.name.as_bytes(), l.value.as_bytes()))
    }
}

/// Whether `raw` is as validation would shape it: no empty value, sorted by name (names
/// unique). Every label set the head holds is.
pub fn is_shaped(raw: &[RawLabel<'_>]) -> bool {
    raw.iter().all(|l| !l.value.is_empty())
        && raw.windows(2).all(|w| match w {
            [a, b] => name_order(a.name, b.name).is_lt(),
            _ => true,
        })
}

/// The order of label names (bytewise), decided by the first bytes when they differ, as
/// they mostly do, and only then by a slice comparison (a `memcmp` call): shaping a set of
/// five unsorted labels took 28 ns instead of 34–37 (a loop over 17,000 sets; gRPC clients
/// send their labels in any order, so a request of 1,733 series saves ≈ 12 µs).
fn name_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    match (a.first(), b.first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// Whether `labels` are within `limits`' count and lengths.
pub fn within(labels: &[RawLabel<'_>], limits: &Limits) -> bool {
    labels.len() <= limits.max_labels_per_series
        && labels.iter().all(|l| {
            l.name.len() <= limits.max_label_name_bytes
                && l.value.len() <= limits.max_label_value_bytes
        })
}

/// `raw` as validation would shape it — labels with empty values dropped, sorted by name —
/// in `copy`.
pub fn shape<'s, 'a>(raw: &[RawLabel<'a>], copy: &'s mut Vec<RawLabel<'a>>) -> &'s [RawLabel<'a>] {
    copy.clear();
    copy.extend(raw.iter().filter(|l| !l.value.is_empty()));
    copy.sort_unstable_by(|a, b| name_order(a.name, b.name));
    copy.as_slice()
}

/// The labels of `raw` as text, for [`Labels::validate`]: labels with empty values are left
/// out first (validation drops them; so their bytes need not be text), and a name or value
/// that is not UTF-8 refuses the series.
pub fn to_labels(raw: &[RawLabel<'_>]) -> Result<Vec<Label>, RejectReason> {
    raw.iter()
        .filter(|l| !l.value.is_empty())
        .map(|l| {
            let name = std::str::from_utf8(l.name).map_err(|e| RejectReason::LabelNotUtf8 {
                name: readable_part(l.name, e.valid_up_to()),
                in_name: true,
            })?;
            let value = std::str::from_utf8(l.value).map_err(|_| RejectReason::LabelNotUtf8 {
                name: readable_part(name.as_bytes(), name.len()),
                in_name: false,
            })?;
            Ok(Label::new(name, value))
        })
        .collect()
}

/// The UTF-8 part of `bytes` (up to `valid`), cut to 64 bytes, to name a label in a message.
fn readable_part(bytes: &[u8], valid: usize) -> String {
    let text = bytes
        .get(..valid)
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or("");
    super::shorten(text, 64)
}

/// The value of `__name__` among `raw`, when it is text (it is for every series the head
/// holds).
pub fn metric_name<'a>(raw: &[RawLabel<'a>]) -> &'a str {
    raw.iter()
        .find(|l| l.name == super::METRIC_NAME.as_bytes())
        .and_then(|l| std::str::from_utf8(l.value).ok())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<RawLabel<'a>> {
        pairs
            .iter()
            .map(|(n, v)| RawLabel::new(n.as_bytes(), v.as_bytes()))
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn names_order_as_their_bytes(a in proptest::collection::vec(0u8..4, 0..4),
                                      b in proptest::collection::vec(0u8..4, 0..4)) {
            proptest::prop_assert_eq!(name_order(&a, &b), a.cmp(&b));
        }
    }

    #[test]
    fn sorted_sets_without_empty_values_are_shaped() {
        assert!(is_shaped(&raw(&[
            ("__name__", "up"),
            ("commune", "Châu Đốc")
        ])));
        assert!(!is_shaped(&raw(&[
            ("commune", "Châu Đốc"),
            ("__name__", "up")
        ])));
        assert!(!is_shaped(&raw(&[("__name__", "up"), ("commune", "")])));
        assert!(!is_shaped(&raw(&[("__name__", "up"), ("__name__", "up")])));
    }

    #[test]
    fn other_sets_are_shaped_as_validation_shapes_them() {
        let labels = raw(&[("zone", "a"), ("empty", ""), ("__name__", "up")]);
        let mut copy = Vec::new();
        let c = shape(&labels, &mut copy);
        assert_eq!(c, raw(&[("__name__", "up"), ("zone", "a")]).as_slice());
        let validated = Labels::validate(to_labels(&labels).unwrap(), &Limits::default()).unwrap();
        assert!(validated.raw().eq(c.iter().copied()));
    }

    #[test]
    fn limits_count_labels_and_bytes() {
        let labels = raw(&[("__name__", "up"), ("zone", "Long Xuyên")]);
        assert!(within(&labels, &Limits::default()));
        let fewer = Limits {
            max_labels_per_series: 1,
            ..Limits::default()
        };
        assert!(!within(&labels, &fewer));
        let shorter = Limits {
            max_label_value_bytes: 10,
            ..Limits::default()
        };
        assert!(!within(&labels, &shorter), "\"Long Xuyên\" is 11 bytes");
    }

    #[test]
    fn bytes_that_are_not_text_refuse_the_series_by_name() {
        let bad_value = [RawLabel::new(b"commune", b"Ch\xffu")];
        match to_labels(&bad_value) {
            Err(RejectReason::LabelNotUtf8 { name, in_name }) => {
                assert_eq!((name.as_str(), in_name), ("commune", false));
            }
            other => panic!("{other:?}"),
        }
        let bad_name = [RawLabel::new(b"zo\xffne", b"x")];
        assert!(matches!(
            to_labels(&bad_name),
            Err(RejectReason::LabelNotUtf8 { in_name: true, .. })
        ));
        // An empty value drops the label before its name is read.
        assert_eq!(to_labels(&[RawLabel::new(b"\xff", b"")]), Ok(vec![]));
    }
}
