//! The shape of a write: a namespace and a list of series, each with its labels once and its
//! samples; and what the engine answers.

use super::{Label, Rejection, Sample};

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
