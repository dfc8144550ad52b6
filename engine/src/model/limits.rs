//! The input limits a label set and a sample are validated against.

use std::time::Duration;

/// Input limits. Defaults follow what Prometheus and Mimir operators know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most labels on one series, `__name__` included. Default 30.
    pub max_labels_per_series: usize,
    /// Longest label name, bytes. Default 256.
    pub max_label_name_bytes: usize,
    /// Longest label value, bytes. Default 2,048.
    pub max_label_value_bytes: usize,
    /// How far in the future a timestamp may be, relative to the wall clock. Default 10 min.
    pub max_future: Duration,
    /// Most series of one namespace in the head (those written since the flush before the
    /// last; series that left it are not counted, and one coming back is not refused).
    /// Default 200,000.
    pub max_series_per_namespace: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_labels_per_series: 30,
            max_label_name_bytes: 256,
            max_label_value_bytes: 2048,
            max_future: Duration::from_secs(600),
            max_series_per_namespace: 200_000,
        }
    }
}
