//! The data model: labels and series identity, samples, namespaces, write batches and the
//! reasons a sample can be rejected.

pub(crate) mod labels;
mod namespace;
mod reject;
mod sample;
mod write;

pub use labels::{Label, Labels, METRIC_NAME};
pub use namespace::{DEFAULT_NAMESPACE, Namespace};
pub use reject::{RejectReason, Rejection};
pub use sample::Sample;
pub use write::{SeriesWrite, WriteOutcome, WriteRequest};
