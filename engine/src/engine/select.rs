//! Reading raw samples: matchers → postings → series, then per series the merge of
//! segments, frozen head generations and the live head, with the newest write winning.

use std::sync::Arc;

use super::{Engine, Version};
use crate::head::{SeriesLayer, dedupe_newest_wins};
use crate::index::{Matcher, Series};
use crate::model::{Labels, Namespace, Sample};
use crate::{Error, Result};

/// One series and its samples in the selected range, sorted by time.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    /// The series' labels.
    pub labels: Labels,
    /// Samples in time order, one per timestamp.
    pub samples: Vec<Sample>,
}

impl Engine {
    /// The samples in `[start, end]` (ms, inclusive) of every series of `namespace` that
    /// matches all `matchers`, sorted by labels. Series with no sample in range are left out.
    /// Sees every write acknowledged before the call.
    pub fn select(
        &self,
        namespace: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<SeriesSamples>> {
        let inner = &*self.inner;
        inner.check_open()?;
        let namespace = Namespace::new(namespace).map_err(Error::InvalidArgument)?;
        let ids = inner.index.select(&namespace, matchers);
        let series: Vec<Arc<Series>> = ids.iter().filter_map(|id| inner.index.get(id)).collect();

        // Snapshot the live head and the version together, so a flush's cut between the
        // two cannot hide data.
        let (live, version) = {
            let _gate = inner.gate.read();
            let live: Vec<SeriesLayer> =
                series.iter().map(|s| s.head.snapshot(start, end)).collect();
            (live, inner.current_version())
        };

        let mut out = Vec::new();
        for (s, live) in series.iter().zip(live) {
            let samples = read_series(&version, s, live, start, end)?;
            if !samples.is_empty() {
                out.push(SeriesSamples {
                    labels: s.labels.clone(),
                    samples,
                });
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }
}

/// Oldest first: segments by sequence, frozen generations, then the live head.
fn read_series(
    version: &Version,
    series: &Series,
    live: SeriesLayer,
    start: i64,
    end: i64,
) -> Result<Vec<Sample>> {
    let mut out = Vec::new();
    for handle in &version.segments {
        let seg = &handle.segment;
        if seg.max_t < start || seg.min_t > end || !handle.refs.contains(series.id) {
            continue;
        }
        let Some(s) = handle
            .locals
            .get(&series.id)
            .and_then(|&l| seg.series.get(l as usize))
        else {
            continue;
        };
        for c in s
            .chunks
            .iter()
            .filter(|c| c.max_t >= start && c.min_t <= end)
        {
            seg.read_chunk(c, start, end, &mut out)?;
        }
    }
    let in_memory = |layer: &SeriesLayer, out: &mut Vec<Sample>| {
        layer
            .decode_into(start, end, out)
            .map_err(|e| Error::Corrupt {
                file: "head".into(),
                offset: e.offset,
                reason: format!("in-memory chunk of {}: {}", series.labels, e.reason),
            })
    };
    for frozen in &version.frozen {
        if let Some(layer) = frozen.series.get(&series.id) {
            in_memory(layer, &mut out)?;
        }
    }
    in_memory(&live, &mut out)?;
    dedupe_newest_wins(&mut out, 0);
    Ok(out)
}
