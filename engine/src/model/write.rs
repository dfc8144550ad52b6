//! The shape of a write: a namespace and a list of series, each with its labels once and its
//! samples; and what the engine answers.

use std::borrow::Cow;

use super::{Label, RawLabel, Rejection, Sample};

/// A batch of samples for one namespace.
#[derive(Debug, Clone, Default)]
pub struct WriteRequest {
    /// The namespace; empty means [`super::DEFAULT_NAMESPACE`].
    pub namespace: String,
    /// The series and their samples.
    pub series: Vec<SeriesWrite>,
}

/// The samples of one series in a write.
#[derive(Debug, Clone, Default)]
pub struct SeriesWrite {
    /// The labels, in any order; validated and sorted by the engine.
    pub labels: Vec<Label>,
    /// The samples, in any order; a repeated timestamp replaces the value (last write wins).
    pub samples: Vec<Sample>,
}

/// A batch whose labels are still the request's bytes ([`RawLabel`]): what the front doors
/// that read their messages in place hand the engine, so that a known series costs a lookup
/// by those bytes and nothing else (see `model/raw_labels.rs`).
#[derive(Debug, Clone, Default)]
pub struct RawWriteRequest<'a> {
    /// The namespace; empty means [`super::DEFAULT_NAMESPACE`].
    pub namespace: &'a str,
    /// The series and their samples (a slice, so that a front door keeps its array for
    /// its next request).
    pub series: &'a [RawSeriesWrite<'a>],
}

/// The samples of one series in a [`RawWriteRequest`].
#[derive(Debug, Clone, Default)]
pub struct RawSeriesWrite<'a> {
    /// The labels as sent, in any order.
    pub labels: &'a [RawLabel<'a>],
    /// The samples, as in [`SeriesWrite::samples`]: borrowed where the front door holds a
    /// request's samples in one array (no allocation per series), or owned.
    pub samples: Cow<'a, [Sample]>,
}

/// What a write did: how many samples were stored and, for each one that was not, why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Samples stored (durable under the configured fsync policy when this is returned).
    pub accepted: usize,
    /// The rejected samples, in request order.
    pub rejected: Vec<Rejection>,
}

impl WriteOutcome {
    /// Total rejected samples.
    pub fn rejected_samples(&self) -> usize {
        self.rejected.iter().map(|r| r.samples).sum()
    }
}
