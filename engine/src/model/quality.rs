//! Data quality as the catalog declares it and as ingest records it: the rules an indicator's
//! samples must keep, the policy for a sample that breaks one, and what was rejected or
//! flagged. Plain data: the checking lives in the `quality` room.

use std::fmt;

/// What happens to a sample that breaks a declared rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QualityPolicy {
    /// Rules are not checked.
    Off,
    /// The sample is stored, counted and listed (the default: storing loses nothing).
    #[default]
    Flag,
    /// The sample is not stored; the write response says why.
    Reject,
}

impl QualityPolicy {
    /// Every policy's name, as configuration files and the API spell it.
    pub const NAMES: [&'static str; 3] = ["off", "flag", "reject"];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            QualityPolicy::Off => "off",
            QualityPolicy::Flag => "flag",
            QualityPolicy::Reject => "reject",
        }
    }

    /// The policy of that name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "off" => Some(QualityPolicy::Off),
            "flag" => Some(QualityPolicy::Flag),
            "reject" => Some(QualityPolicy::Reject),
            _ => None,
        }
    }
}

/// The rules the catalog declares for one indicator; each is checked only when declared.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QualityRules {
    /// Smallest valid value.
    pub valid_min: Option<f64>,
    /// Largest valid value.
    pub valid_max: Option<f64>,
    /// Labels every series of the indicator must carry.
    pub required_labels: Vec<String>,
    /// How far (ms) a sample may lie before the series' latest one — a revision of a past
    /// value. `Some(0)`: revisions are not expected; `None`: not checked.
    pub revision_window_ms: Option<i64>,
    /// A value may change from one sample to the next by at most this factor (up or down).
    pub max_change_factor: Option<f64>,
    /// This indicator's policy; `None`: its namespace's.
    pub policy: Option<QualityPolicy>,
}

impl QualityRules {
    /// Whether any rule is declared.
    pub fn any(&self) -> bool {
        self.valid_min.is_some()
            || self.valid_max.is_some()
            || !self.required_labels.is_empty()
            || self.revision_window_ms.is_some()
            || self.max_change_factor.is_some()
    }
}

/// A rule a sample broke. Counters decreasing is checked for indicators of kind `counter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QualityRule {
    /// Outside `[valid_min, valid_max]`.
    OutOfRange,
    /// A counter went down by less than half its value, which a restart does not do.
    CounterDecrease,
    /// Older than the series' latest sample by more than the revision window.
    TimestampRegression,
    /// A required label is missing.
    MissingRequiredLabel,
    /// Changed by more than the declared factor since the previous sample.
    ExcessiveChange,
}

impl QualityRule {
    /// Every rule's stable short name, in declaration order.
    pub const KINDS: [&'static str; 5] = [
        "out_of_range",
        "counter_decrease",
        "timestamp_regression",
        "missing_required_label",
        "excessive_change",
    ];

    /// Every rule, in the order of [`QualityRule::KINDS`].
    pub const ALL: [QualityRule; 5] = [
        QualityRule::OutOfRange,
        QualityRule::CounterDecrease,
        QualityRule::TimestampRegression,
        QualityRule::MissingRequiredLabel,
        QualityRule::ExcessiveChange,
    ];

    /// Its position in [`QualityRule::KINDS`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Its stable short name.
    pub fn kind(self) -> &'static str {
        match self {
            QualityRule::OutOfRange => "out_of_range",
            QualityRule::CounterDecrease => "counter_decrease",
            QualityRule::TimestampRegression => "timestamp_regression",
            QualityRule::MissingRequiredLabel => "missing_required_label",
            QualityRule::ExcessiveChange => "excessive_change",
        }
    }

    /// The rule of that short name.
    pub fn parse(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.kind() == kind)
    }
}

impl fmt::Display for QualityRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

/// What the policy did with samples that broke a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QualityAction {
    /// Not stored.
    Rejected,
    /// Stored and flagged.
    Flagged,
}

impl QualityAction {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            QualityAction::Rejected => "rejected",
            QualityAction::Flagged => "flagged",
        }
    }

    /// The action of that name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "rejected" => Some(QualityAction::Rejected),
            "flagged" => Some(QualityAction::Flagged),
            _ => None,
        }
    }
}

/// One rejection or flag: which series, which sample, which rule, when it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityEvent {
    /// When the write arrived (ms since the epoch).
    pub arrival_ms: i64,
    /// Namespace.
    pub namespace: String,
    /// Metric.
    pub metric: String,
    /// The series, as `{name="value", …}` (cut to a readable length).
    pub series: String,
    /// The rule broken.
    pub rule: QualityRule,
    /// What was done.
    pub action: QualityAction,
    /// Samples concerned (more than one when the series itself broke the rule).
    pub samples: u64,
    /// The (first) sample's timestamp, ms.
    pub timestamp: i64,
    /// The (first) sample's value.
    pub value: f64,
    /// What was wrong, for people.
    pub detail: String,
}

/// Samples rejected or flagged, per namespace, metric, rule and action, since the store was
/// created.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct QualityCount {
    /// Namespace.
    pub namespace: String,
    /// Metric.
    pub metric: String,
    /// The rule broken.
    pub rule: QualityRule,
    /// What was done.
    pub action: QualityAction,
    /// Samples.
    pub samples: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quality_rules_are_rejection_kinds_of_the_same_names() {
        for rule in QualityRule::ALL {
            let reason = crate::model::RejectReason::Quality {
                rule,
                detail: String::new(),
            };
            assert_eq!(reason.kind(), rule.kind());
        }
    }

    #[test]
    fn kinds_are_listed_in_index_order() {
        for rule in QualityRule::ALL {
            assert_eq!(QualityRule::KINDS.get(rule.index()), Some(&rule.kind()));
        }
    }

    #[test]
    fn names_parse_back() {
        for rule in QualityRule::ALL {
            assert_eq!(QualityRule::parse(rule.kind()), Some(rule));
        }
        for name in QualityPolicy::NAMES {
            assert_eq!(
                QualityPolicy::parse(name).map(QualityPolicy::name),
                Some(name)
            );
        }
        for action in [QualityAction::Rejected, QualityAction::Flagged] {
            assert_eq!(QualityAction::parse(action.name()), Some(action));
        }
    }
}
