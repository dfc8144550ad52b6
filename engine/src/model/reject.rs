//! Why a sample was rejected. Rejections are results, not errors: a batch stores its good
//! samples and reports each bad one with its reason.

use std::fmt;

use super::QualityRule;

/// The reason one sample (or all samples of one series) was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectReason {
    /// The label set has no `__name__`.
    MissingMetricName,
    /// `__name__` does not match `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    InvalidMetricName {
        /// The offending metric name.
        name: String,
    },
    /// A label name does not match `[a-zA-Z_][a-zA-Z0-9_]*`.
    InvalidLabelName {
        /// The offending name.
        name: String,
    },
    /// The same label name appears twice.
    DuplicateLabelName {
        /// The repeated name.
        name: String,
    },
    /// A label name is longer than the limit.
    LabelNameTooLong {
        /// The name (cut to 64 bytes).
        name: String,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A label value is longer than the limit.
    LabelValueTooLong {
        /// The label whose value is too long.
        name: String,
        /// The value's length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The series has more labels than the limit.
    TooManyLabels {
        /// How many labels it has.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The namespace name is not valid.
    InvalidNamespace {
        /// Why.
        detail: String,
    },
    /// The timestamp is further in the future than the accepted window.
    TooFarInFuture {
        /// The sample's timestamp (ms).
        timestamp: i64,
        /// The latest accepted timestamp at the time of the write (ms).
        max: i64,
    },
    /// The timestamp is older than the retention window.
    TooOld {
        /// The sample's timestamp (ms).
        timestamp: i64,
        /// The oldest accepted timestamp at the time of the write (ms).
        min: i64,
    },
    /// A write stream referred to a series by a stream id it never defined.
    UnknownStreamId {
        /// The id.
        id: u64,
    },
    /// The namespace already has as many series as its limit allows; this series is new.
    SeriesLimit {
        /// The namespace.
        namespace: String,
        /// The limit.
        max: usize,
    },
    /// The sample broke a rule its indicator's catalog entry declares, under the policy
    /// `reject`.
    Quality {
        /// The rule.
        rule: QualityRule,
        /// What was wrong.
        detail: String,
    },
    /// A label's name or value is not UTF-8 (only the wire formats read in place can say
    /// this of one series; elsewhere the whole request fails to decode).
    LabelNotUtf8 {
        /// The label's name (as far as it is UTF-8, cut to 64 bytes).
        name: String,
        /// Whether the name itself is the bad part.
        in_name: bool,
    },
}

impl RejectReason {
    /// Every reason's stable short name, in the order of [`RejectReason::index`].
    pub const KINDS: [&'static str; 18] = [
        "missing_metric_name",
        "invalid_metric_name",
        "invalid_label_name",
        "duplicate_label_name",
        "label_name_too_long",
        "label_value_too_long",
        "too_many_labels",
        "invalid_namespace",
        "too_far_in_future",
        "too_old",
        "series_limit",
        "unknown_stream_id",
        // The data-quality rules, in the order of `QualityRule::KINDS` (checked by a test).
        "out_of_range",
        "counter_decrease",
        "timestamp_regression",
        "missing_required_label",
        "excessive_change",
        "label_not_utf8",
    ];

    /// Position of this reason's kind in [`RejectReason::KINDS`].
    pub fn index(&self) -> usize {
        match self {
            RejectReason::MissingMetricName => 0,
            RejectReason::InvalidMetricName { .. } => 1,
            RejectReason::InvalidLabelName { .. } => 2,
            RejectReason::DuplicateLabelName { .. } => 3,
            RejectReason::LabelNameTooLong { .. } => 4,
            RejectReason::LabelValueTooLong { .. } => 5,
            RejectReason::TooManyLabels { .. } => 6,
            RejectReason::InvalidNamespace { .. } => 7,
            RejectReason::TooFarInFuture { .. } => 8,
            RejectReason::TooOld { .. } => 9,
            RejectReason::SeriesLimit { .. } => 10,
            RejectReason::UnknownStreamId { .. } => 11,
            RejectReason::Quality { rule, .. } => 12 + rule.index(),
            RejectReason::LabelNotUtf8 { .. } => 17,
        }
    }

    /// A stable short name for counting rejections by kind.
    pub fn kind(&self) -> &'static str {
        Self::KINDS.get(self.index()).copied().unwrap_or("unknown")
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::MissingMetricName => f.write_str("the series has no __name__ label"),
            RejectReason::InvalidMetricName { name } => {
                write!(
                    f,
                    "metric name {} does not match [a-zA-Z_:][a-zA-Z0-9_:]*",
                    super::echo(name)
                )
            }
            RejectReason::InvalidLabelName { name } => {
                write!(
                    f,
                    "label name {} does not match [a-zA-Z_][a-zA-Z0-9_]*",
                    super::echo(name)
                )
            }
            RejectReason::DuplicateLabelName { name } => {
                write!(f, "label name {} appears more than once", super::echo(name))
            }
            RejectReason::LabelNameTooLong { name, len, max } => {
                write!(
                    f,
                    "label name {name:?}… is {len} bytes, more than the limit of {max}"
                )
            }
            RejectReason::LabelValueTooLong { name, len, max } => {
                write!(
                    f,
                    "value of label {} is {len} bytes, more than the limit of {max}",
                    super::echo(name)
                )
            }
            RejectReason::TooManyLabels { count, max } => {
                write!(
                    f,
                    "the series has {count} labels, more than the limit of {max}"
                )
            }
            RejectReason::InvalidNamespace { detail } => f.write_str(detail),
            RejectReason::TooFarInFuture { timestamp, max } => write!(
                f,
                "timestamp {timestamp} is too far in the future (latest accepted now: {max})"
            ),
            RejectReason::TooOld { timestamp, min } => write!(
                f,
                "timestamp {timestamp} is older than the retention window (oldest accepted now: {min})"
            ),
            RejectReason::UnknownStreamId { id } => write!(
                f,
                "series id {id} was not defined earlier in this stream; send its labels with it first"
            ),
            RejectReason::SeriesLimit { namespace, max } => write!(
                f,
                "namespace {namespace:?} already has its limit of {max} series; this would be a new one"
            ),
            RejectReason::Quality { rule, detail } => write!(f, "{rule}: {detail}"),
            RejectReason::LabelNotUtf8 { name, in_name } => {
                if *in_name {
                    write!(
                        f,
                        "a label name is not UTF-8 (it reads {})",
                        super::echo(name)
                    )
                } else {
                    write!(f, "the value of label {} is not UTF-8", super::echo(name))
                }
            }
        }
    }
}

/// One rejection in a write: which series of the request, which sample of it (or all of its
/// samples, when the series itself is bad), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Index of the series in the request.
    pub series_index: usize,
    /// Index of the sample in that series; `None` when every sample of the series was
    /// rejected because of the series itself (its labels, namespace or the series limit).
    pub sample_index: Option<usize>,
    /// How many samples this rejection covers (1 for a single sample).
    pub samples: usize,
    /// Why.
    pub reason: RejectReason,
}
