//! Labels and series identity. A series is a namespace plus a sorted set of labels, one of
//! which is `__name__`, exactly as in Prometheus, so that PromQL and remote write map onto it.

use std::fmt;

use super::{Limits, RejectReason};

/// The label that holds the metric name.
pub const METRIC_NAME: &str = "__name__";

/// One label: a name matching `[a-zA-Z_][a-zA-Z0-9_]*` and any UTF-8 value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    /// The label name.
    pub name: String,
    /// The label value (UTF-8, e.g. "Châu Đốc"; never empty once validated).
    pub value: String,
}

impl Label {
    /// A label from name and value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A validated label set: sorted by name, names unique, `__name__` present, within limits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// Validates raw labels against `limits`. Labels with an empty value are dropped, as in
    /// Prometheus, where an empty value means the label is absent.
    pub fn validate(raw: Vec<Label>, limits: &Limits) -> Result<Labels, RejectReason> {
        let mut labels = raw;
        labels.retain(|l| !l.value.is_empty());
        if labels.len() > limits.max_labels_per_series {
            return Err(RejectReason::TooManyLabels {
                count: labels.len(),
                max: limits.max_labels_per_series,
            });
        }
        for label in &labels {
            if label.name.len() > limits.max_label_name_bytes {
                return Err(RejectReason::LabelNameTooLong {
                    name: truncated(&label.name, 64),
                    len: label.name.len(),
                    max: limits.max_label_name_bytes,
                });
            }
            if !is_valid_label_name(&label.name) {
                return Err(RejectReason::InvalidLabelName {
                    name: label.name.clone(),
                });
            }
            if label.value.len() > limits.max_label_value_bytes {
                return Err(RejectReason::LabelValueTooLong {
                    name: label.name.clone(),
                    len: label.value.len(),
                    max: limits.max_label_value_bytes,
                });
            }
        }
        if !labels.is_sorted_by(|a, b| a.name <= b.name) {
            labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        }
        if let Some(pair) = labels
            .windows(2)
            .find(|w| matches!(w, [a, b] if a.name == b.name))
        {
            let name = pair.first().map(|l| l.name.clone()).unwrap_or_default();
            return Err(RejectReason::DuplicateLabelName { name });
        }
        match labels.iter().find(|l| l.name == METRIC_NAME) {
            None => Err(RejectReason::MissingMetricName),
            Some(name) if !is_valid_metric_name(&name.value) => {
                Err(RejectReason::InvalidMetricName {
                    name: name.value.clone(),
                })
            }
            Some(_) => Ok(Labels(labels)),
        }
    }

    /// Builds labels that are already known to be valid (decoded from our own files after
    /// their checksum passed). Sorts them; does not check limits.
    pub fn from_trusted(mut labels: Vec<Label>) -> Labels {
        labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Labels(labels)
    }

    /// The same labels without label `name`.
    pub fn without(&self, name: &str) -> Labels {
        Labels(self.0.iter().filter(|l| l.name != name).cloned().collect())
    }

    /// The same labels with `name` set to `value`; an empty value removes the label, as
    /// everywhere in PromQL.
    pub fn with(&self, name: &str, value: &str) -> Labels {
        let mut labels: Vec<Label> = self.0.iter().filter(|l| l.name != name).cloned().collect();
        if !value.is_empty() {
            labels.push(Label::new(name, value));
            labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        }
        Labels(labels)
    }

    /// Only the labels whose names are in `names`.
    pub fn keep_only(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|l| names.contains(&l.name))
                .cloned()
                .collect(),
        )
    }

    /// Without the labels whose names are in `names`.
    pub fn without_all(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|l| !names.contains(&l.name))
                .cloned()
                .collect(),
        )
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_str())
    }

    /// The metric name (`__name__`).
    pub fn metric_name(&self) -> &str {
        self.get(METRIC_NAME).unwrap_or("")
    }

    /// The labels, sorted by name.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no labels (only possible for `Labels::default()`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Approximate heap bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.0
            .iter()
            .map(|l| l.name.capacity() + l.value.capacity() + 48)
            .sum()
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.metric_name())?;
        f.write_str("{")?;
        let mut first = true;
        for label in self.0.iter().filter(|l| l.name != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}={:?}", label.name, label.value)?;
        }
        f.write_str("}")
    }
}

/// The Prometheus label-name rule: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The Prometheus metric-name rule: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

fn truncated(s: &str, max: usize) -> String {
    s.char_indices()
        .take_while(|(i, _)| *i < max)
        .map(|(_, c)| c)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> Vec<Label> {
        pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect()
    }

    #[test]
    fn labels_are_sorted_and_vietnamese_values_kept_exactly() {
        let labels = Labels::validate(
            raw(&[
                ("commune", "Phường Châu Đốc"),
                ("__name__", "lodging_guests"),
            ]),
            &Limits::default(),
        )
        .expect("valid");
        let names: Vec<_> = labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["__name__", "commune"]);
        assert_eq!(labels.get("commune"), Some("Phường Châu Đốc"));
    }

    #[test]
    fn each_kind_of_bad_label_set_gets_its_own_reason() {
        let limits = Limits {
            max_labels_per_series: 3,
            ..Limits::default()
        };
        let check = |pairs: &[(&str, &str)]| Labels::validate(raw(pairs), &limits).err();
        assert_eq!(check(&[("a", "1")]), Some(RejectReason::MissingMetricName));
        assert_eq!(check(&[]), Some(RejectReason::MissingMetricName));
        assert_eq!(
            check(&[("__name__", "m"), ("1x", "v")]),
            Some(RejectReason::InvalidLabelName { name: "1x".into() })
        );
        assert_eq!(
            check(&[("__name__", "m"), ("a", "1"), ("a", "2")]),
            Some(RejectReason::DuplicateLabelName { name: "a".into() })
        );
        assert_eq!(
            check(&[("__name__", "m"), ("a", "1"), ("b", "2"), ("c", "3")]),
            Some(RejectReason::TooManyLabels { count: 4, max: 3 })
        );
        assert_eq!(
            check(&[("__name__", "bad name")]),
            Some(RejectReason::InvalidMetricName {
                name: "bad name".into()
            })
        );
        let long = "x".repeat(limits.max_label_value_bytes + 1);
        assert!(matches!(
            check(&[("__name__", "m"), ("v", &long)]),
            Some(RejectReason::LabelValueTooLong { len, .. }) if len == long.len()
        ));
    }

    #[test]
    fn empty_values_mean_an_absent_label() {
        let labels = Labels::validate(raw(&[("__name__", "m"), ("site", "")]), &Limits::default())
            .expect("valid");
        assert_eq!(labels.len(), 1);
    }
}
