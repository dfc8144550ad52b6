//! Metadata queries: which series, label names and label values exist in a time range.
//! They use chunk and segment bounds, never decoding samples, so they stay cheap over long
//! ranges (like Prometheus, a series counts if it has a chunk overlapping the range).

use std::collections::BTreeSet;

use crate::engine::Engine;
use crate::index::Matcher;
use crate::model::Labels;
use crate::{Error, Result};

/// Which series a metadata query is about.
#[derive(Debug, Clone)]
pub struct SeriesFilter {
    /// Namespace.
    pub namespace: String,
    /// Matchers (empty: every series of the namespace).
    pub matchers: Vec<Matcher>,
    /// Range start, ms.
    pub start: i64,
    /// Range end, ms.
    pub end: i64,
    /// Most results to return.
    pub limit: usize,
}

impl Engine {
    /// Labels of the matching series with data in the range, sorted, at most `limit`.
    pub fn series(&self, f: &SeriesFilter) -> Result<Vec<Labels>> {
        let mut out: Vec<Labels> = self
            .matching_series(&f.namespace, &f.matchers)?
            .into_iter()
            .filter(|s| self.has_data(s, f.start, f.end))
            .map(|s| s.labels.clone())
            .collect();
        out.sort();
        truncate(out, f.limit)
    }

    /// Label names of the matching series with data in the range, sorted.
    pub fn label_names(&self, f: &SeriesFilter) -> Result<Vec<String>> {
        let names: BTreeSet<String> = self
            .matching_series(&f.namespace, &f.matchers)?
            .into_iter()
            .filter(|s| self.has_data(s, f.start, f.end))
            .flat_map(|s| s.labels.iter().map(|l| l.name.clone()).collect::<Vec<_>>())
            .collect();
        truncate(names.into_iter().collect(), f.limit)
    }

    /// Values of label `name` among the matching series with data in the range, sorted.
    pub fn label_values(&self, f: &SeriesFilter, name: &str) -> Result<Vec<String>> {
        let values: BTreeSet<String> = self
            .matching_series(&f.namespace, &f.matchers)?
            .into_iter()
            .filter(|s| self.has_data(s, f.start, f.end))
            .filter_map(|s| s.labels.get(name).map(str::to_owned))
            .collect();
        truncate(values.into_iter().collect(), f.limit)
    }
}

fn truncate<T>(mut v: Vec<T>, limit: usize) -> Result<Vec<T>> {
    if limit == 0 {
        return Err(Error::InvalidArgument("limit must be positive".into()));
    }
    v.truncate(limit);
    Ok(v)
}
