//! One indicator's rules, compiled from its catalog entry, and the check of a series' labels
//! and of each sample against them.

use crate::metadata::MetricMetadata;
use crate::model::{
    Labels, QualityPolicy, QualityRule, QualityRules, Sample, echo, is_stale_marker,
};

/// A broken rule and what was wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// The rule.
    pub rule: QualityRule,
    /// For people.
    pub detail: String,
}

/// The rules in force for one indicator, with the policy that applies to it.
#[derive(Debug)]
pub struct Checker {
    rules: QualityRules,
    counter: bool,
    policy: QualityPolicy,
}

impl Checker {
    /// The checker of a catalog entry, or `None` when nothing is to be checked: the policy is
    /// `off`, or the entry declares no rule and no policy of its own (metadata that remote
    /// write brings declares neither, so it costs the write path nothing).
    pub fn compile(entry: &MetricMetadata, policy: QualityPolicy) -> Option<Checker> {
        let declared = entry.rules.any() || entry.rules.policy.is_some();
        (declared && policy != QualityPolicy::Off).then(|| Checker {
            rules: entry.rules.clone(),
            counter: entry.kind == "counter",
            policy,
        })
    }

    /// The policy for samples that break a rule (`flag` or `reject`).
    pub fn policy(&self) -> QualityPolicy {
        self.policy
    }

    /// Whether a sample is checked against the series' latest one.
    pub fn needs_latest(&self) -> bool {
        self.counter
            || self.rules.revision_window_ms.is_some()
            || self.rules.max_change_factor.is_some()
    }

    /// The rules on a series as a whole: its required labels.
    pub fn check_series(&self, labels: &Labels) -> Option<Violation> {
        let missing = self
            .rules
            .required_labels
            .iter()
            .find(|name| labels.get(name).is_none_or(str::is_empty))?;
        Some(Violation {
            rule: QualityRule::MissingRequiredLabel,
            detail: format!(
                "the series has no label {}, which every series of {} must carry",
                echo(missing),
                echo(labels.metric_name())
            ),
        })
    }

    /// The rules on one sample, given the series' latest sample before it (in timestamp
    /// order) if known. The value rules compare consecutive samples, so they apply only to
    /// a sample newer than that latest one; an older one is a revision, judged by the
    /// revision window alone.
    pub fn check_sample(&self, latest: Option<Sample>, s: Sample) -> Option<Violation> {
        // A staleness marker says a series ended, not that a value is wrong.
        if is_stale_marker(s.v) {
            return None;
        }
        let r = &self.rules;
        // NaN is inside no range.
        let inside =
            |bound: Option<f64>, ok: fn(f64, f64) -> bool| bound.is_none_or(|b| ok(s.v, b));
        if !inside(r.valid_min, |v, min| v >= min) || !inside(r.valid_max, |v, max| v <= max) {
            return Some(Violation {
                rule: QualityRule::OutOfRange,
                detail: format!(
                    "value {} at {} is outside the valid range {}",
                    s.v,
                    s.t,
                    range_text(r.valid_min, r.valid_max)
                ),
            });
        }
        let latest = latest?;
        if let Some(window) = r.revision_window_ms
            && s.t < latest.t.saturating_sub(window)
        {
            let expected = match window {
                0 => "revisions are not expected".to_owned(),
                w => format!("the revision window is {w} ms"),
            };
            return Some(Violation {
                rule: QualityRule::TimestampRegression,
                detail: format!(
                    "timestamp {} is {} ms before the series' latest ({}); {expected}",
                    s.t,
                    latest.t - s.t,
                    latest.t
                ),
            });
        }
        if s.t <= latest.t {
            return None;
        }
        // A restart starts again near zero: a fall to half or less looks like a reset.
        if self.counter && s.v < latest.v && s.v > latest.v / 2.0 {
            return Some(Violation {
                rule: QualityRule::CounterDecrease,
                detail: format!(
                    "the counter fell from {} to {} at {} (a reset falls to half or less)",
                    latest.v, s.v, s.t
                ),
            });
        }
        if let Some(factor) = r.max_change_factor
            && latest.v != 0.0
            && latest.v.is_finite()
        {
            let ratio = s.v / latest.v;
            let within = ratio <= factor && ratio >= 1.0 / factor;
            if !within {
                return Some(Violation {
                    rule: QualityRule::ExcessiveChange,
                    detail: format!(
                        "the value changed from {} to {} at {}, by more than the factor {factor}",
                        latest.v, s.v, s.t
                    ),
                });
            }
        }
        None
    }
}

fn range_text(min: Option<f64>, max: Option<f64>) -> String {
    let bound = |b: Option<f64>, open: &str| b.map_or_else(|| open.to_owned(), |b| b.to_string());
    format!("[{}, {}]", bound(min, "-inf"), bound(max, "+inf"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Label;

    fn checker(kind: &str, rules: QualityRules) -> Checker {
        let entry = MetricMetadata {
            metric: "m".into(),
            kind: kind.into(),
            rules,
            ..Default::default()
        };
        Checker::compile(&entry, QualityPolicy::Flag).expect("rules declared")
    }

    fn rule_of(c: &Checker, latest: Option<(i64, f64)>, s: (i64, f64)) -> Option<QualityRule> {
        let latest = latest.map(|(t, v)| Sample::new(t, v));
        c.check_sample(latest, Sample::new(s.0, s.1))
            .map(|v| v.rule)
    }

    #[test]
    fn nothing_declared_or_policy_off_compiles_to_no_checker() {
        let mut entry = MetricMetadata {
            metric: "m".into(),
            kind: "counter".into(),
            ..Default::default()
        };
        assert!(Checker::compile(&entry, QualityPolicy::Flag).is_none());
        entry.rules.valid_min = Some(0.0);
        assert!(Checker::compile(&entry, QualityPolicy::Off).is_none());
        assert!(Checker::compile(&entry, QualityPolicy::Reject).is_some());
        entry.rules = QualityRules {
            policy: Some(QualityPolicy::Flag),
            ..Default::default()
        };
        assert!(
            Checker::compile(&entry, QualityPolicy::Flag).is_some(),
            "a policy of its own turns the counter rule on"
        );
    }

    #[test]
    fn range_bounds_are_inclusive_and_nan_is_out_but_staleness_is_not() {
        let c = checker(
            "gauge",
            QualityRules {
                valid_min: Some(0.0),
                valid_max: Some(5000.0),
                ..Default::default()
            },
        );
        assert_eq!(rule_of(&c, None, (1, 0.0)), None);
        assert_eq!(rule_of(&c, None, (1, 5000.0)), None);
        assert_eq!(rule_of(&c, None, (1, -5.0)), Some(QualityRule::OutOfRange));
        assert_eq!(rule_of(&c, None, (1, 1e9)), Some(QualityRule::OutOfRange));
        assert_eq!(
            rule_of(&c, None, (1, f64::NAN)),
            Some(QualityRule::OutOfRange)
        );
        let stale = f64::from_bits(crate::model::STALE_NAN_BITS);
        assert_eq!(rule_of(&c, None, (1, stale)), None);
    }

    #[test]
    fn a_counter_may_reset_but_not_slip_back() {
        let c = checker(
            "counter",
            QualityRules {
                policy: Some(QualityPolicy::Flag),
                ..Default::default()
            },
        );
        assert_eq!(rule_of(&c, Some((1, 100.0)), (2, 120.0)), None);
        assert_eq!(rule_of(&c, Some((1, 100.0)), (2, 3.0)), None, "a reset");
        assert_eq!(
            rule_of(&c, Some((1, 100.0)), (2, 50.0)),
            None,
            "half is a reset"
        );
        assert_eq!(
            rule_of(&c, Some((1, 100.0)), (2, 90.0)),
            Some(QualityRule::CounterDecrease)
        );
        assert_eq!(
            rule_of(&c, None, (2, 90.0)),
            None,
            "nothing to compare with"
        );
        assert_eq!(
            rule_of(&c, Some((5, 100.0)), (2, 90.0)),
            None,
            "an older sample is a revision, not a decrease"
        );
    }

    #[test]
    fn revisions_within_the_window_pass_and_beyond_it_are_regressions() {
        let c = checker(
            "gauge",
            QualityRules {
                revision_window_ms: Some(1000),
                ..Default::default()
            },
        );
        assert_eq!(rule_of(&c, Some((5000, 1.0)), (4000, 1.0)), None);
        assert_eq!(
            rule_of(&c, Some((5000, 1.0)), (3999, 1.0)),
            Some(QualityRule::TimestampRegression)
        );
        let none = checker(
            "gauge",
            QualityRules {
                revision_window_ms: Some(0),
                ..Default::default()
            },
        );
        assert_eq!(
            rule_of(&none, Some((5000, 1.0)), (5000, 2.0)),
            None,
            "same time"
        );
        assert_eq!(
            rule_of(&none, Some((5000, 1.0)), (4999, 1.0)),
            Some(QualityRule::TimestampRegression)
        );
    }

    #[test]
    fn a_change_by_more_than_the_factor_either_way_is_excessive() {
        let c = checker(
            "gauge",
            QualityRules {
                max_change_factor: Some(10.0),
                ..Default::default()
            },
        );
        assert_eq!(rule_of(&c, Some((1, 10.0)), (2, 100.0)), None);
        assert_eq!(rule_of(&c, Some((1, 10.0)), (2, 1.0)), None);
        assert_eq!(
            rule_of(&c, Some((1, 10.0)), (2, 101.0)),
            Some(QualityRule::ExcessiveChange)
        );
        assert_eq!(
            rule_of(&c, Some((1, 10.0)), (2, 0.5)),
            Some(QualityRule::ExcessiveChange)
        );
        assert_eq!(
            rule_of(&c, Some((1, 10.0)), (2, -10.0)),
            Some(QualityRule::ExcessiveChange),
            "a change of sign"
        );
        assert_eq!(
            rule_of(&c, Some((1, 0.0)), (2, 7.0)),
            None,
            "no ratio from zero"
        );
    }

    #[test]
    fn a_required_label_must_be_present_and_not_empty() {
        let c = checker(
            "gauge",
            QualityRules {
                required_labels: vec!["commune".into()],
                ..Default::default()
            },
        );
        let labels = |pairs: &[(&str, &str)]| {
            Labels::from_trusted(pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect())
        };
        let with = labels(&[("__name__", "m"), ("commune", "Châu Đốc")]);
        assert_eq!(c.check_series(&with), None);
        let without = labels(&[("__name__", "m"), ("facility", "BV An Giang")]);
        let v = c.check_series(&without).expect("missing");
        assert_eq!(v.rule, QualityRule::MissingRequiredLabel);
        assert!(v.detail.contains("\"commune\""), "{}", v.detail);
    }
}
