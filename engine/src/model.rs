//! The data model: labels and series identity, samples, namespaces, write batches, the
//! input limits, the reasons a sample can be rejected, the declared data-quality rules, and the latency histogram the
//! engine and the server record into.
//!
//! May use: nothing else of the engine (every other room builds on it; checked by
//! `engine/tests/it/rooms.rs`).

mod echo;
pub(crate) mod labels;
mod latency;
mod limits;
mod namespace;
mod quality;
pub(crate) mod raw_labels;
mod reject;
mod sample;
mod write;

pub use echo::{echo, shorten};
pub use labels::{Label, Labels, METRIC_NAME, is_valid_label_name};
pub use latency::{LATENCY_BUCKETS, Latency, LatencySnapshot};
pub use limits::Limits;
pub use namespace::{DEFAULT_NAMESPACE, Namespace, PerNamespace};
pub use quality::{
    QualityAction, QualityCount, QualityEvent, QualityPolicy, QualityRule, QualityRules,
};
pub use raw_labels::RawLabel;
pub use reject::{RejectReason, Rejection};
pub use sample::{STALE_NAN_BITS, Sample, is_stale_marker};
pub use write::{SeriesWrite, WriteOutcome, WriteRequest};
