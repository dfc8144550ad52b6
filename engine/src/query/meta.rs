//! Metadata queries: which series, label names and label values exist in a time range.
//! They use chunk and segment bounds, never decoding samples, so they stay cheap over long
//! ranges (like Prometheus, a series counts if it has a chunk overlapping the range).

use crate::engine::read::{Querier, SeriesHandle};
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

/// The matching series with data in the range.
fn with_data(querier: &Querier<'_>, f: &SeriesFilter) -> Result<Vec<SeriesHandle>> {
    check_range(f)?;
    let mut series = querier.select(&f.namespace, &f.matchers, f.start, f.end)?;
    series.retain(|s| querier.has_data(s, f.start, f.end));
    Ok(series)
}

/// Labels of the matching series with data in the range, sorted, at most `limit`.
pub fn series(querier: &Querier<'_>, f: &SeriesFilter) -> Result<Vec<Labels>> {
    let mut out: Vec<Labels> = with_data(querier, f)?
        .into_iter()
        .map(SeriesHandle::into_labels)
        .collect();
    out.sort_unstable();
    truncate(out, f.limit)
}

/// Label names of the matching series with data in the range, sorted.
pub fn label_names(querier: &Querier<'_>, f: &SeriesFilter) -> Result<Vec<String>> {
    check_range(f)?;
    let names = querier.label_names(&f.namespace, &f.matchers, f.start, f.end)?;
    truncate(names, f.limit)
}

/// Values of label `name` among the matching series with data in the range, sorted.
pub fn label_values(querier: &Querier<'_>, f: &SeriesFilter, name: &str) -> Result<Vec<String>> {
    check_range(f)?;
    let values = querier.label_values(&f.namespace, &f.matchers, name, f.start, f.end)?;
    truncate(values, f.limit)
}

fn check_range(f: &SeriesFilter) -> Result<()> {
    if f.end < f.start {
        return Err(Error::InvalidArgument(format!(
            "end {} is before start {}",
            f.end, f.start
        )));
    }
    Ok(())
}

fn truncate<T>(mut v: Vec<T>, limit: usize) -> Result<Vec<T>> {
    if limit == 0 {
        return Err(Error::InvalidArgument("limit must be positive".into()));
    }
    v.truncate(limit);
    Ok(v)
}
