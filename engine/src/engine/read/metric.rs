//! A whole metric read as its segments' metric rollups (`codec/rollup/metric.rs`): what a
//! panel of the extremes over all of a metric's series ("the busiest camera hour over a
//! month") needs, a few hundred buckets per segment instead of every series' buckets.
//!
//! A segment's metric rollups hold everything its series of the metric hold. Where it is
//! the only place that holds the metric's data over a time, they are the metric's buckets
//! there; where another source holds some too — a segment that overlaps it (a backfill not
//! yet compacted, which may correct its samples), the head, a segment without metric
//! rollups — or a deletion reaches it, they are not, and the query reads that time series
//! by series. [`MetricRollups`] says which is which; the query decides per window.

use roaring::RoaringBitmap;

use super::{Querier, Snapshot};
use crate::Result;
use crate::codec::rollup::metric::MetricBucket;
use crate::model::Namespace;

/// One segment's metric rollups over a snapshot's range.
#[derive(Debug)]
pub struct MetricSource {
    /// The time the metric's data covers in the segment.
    pub first: i64,
    /// Its end (inclusive).
    pub last: i64,
    /// Its buckets, sorted by start.
    pub buckets: Vec<MetricBucket>,
}

/// A metric's buckets of one tier over a snapshot's range, from segments' metric rollups;
/// see the module doc.
#[derive(Debug, Default)]
pub struct MetricRollups {
    /// The segments whose metric rollups may be used where nothing else holds the metric.
    pub sources: Vec<MetricSource>,
    /// Where other sources may hold the metric's data: disjoint spans (inclusive), sorted.
    pub elsewhere: Vec<(i64, i64)>,
    /// The earliest time whose buckets are all there (the tier's and the samples'
    /// retention): a window starting earlier is read series by series.
    pub from: i64,
}

impl MetricRollups {
    /// Whether some source other than metric rollups may hold data in `[start, end]`.
    pub fn elsewhere_in(&self, start: i64, end: i64) -> bool {
        let i = self.elsewhere.partition_point(|s| s.1 < start);
        self.elsewhere.get(i).is_some_and(|s| s.0 <= end)
    }
}

impl Querier<'_> {
    /// Whether some segment holding data in `[start, end]` keeps metric rollups of the tier
    /// of `interval` ms: asked before selecting a metric's series for
    /// [`Snapshot::metric_rollups`], which a store of older segments could not use.
    pub fn keeps_metric_rollups(&self, start: i64, end: i64, interval: i64) -> bool {
        self.inner.current_version().segments.iter().any(|h| {
            let seg = &h.segment;
            seg.max_t >= start && seg.min_t <= end && seg.has_metric_rollups(interval)
        })
    }
}

impl Snapshot<'_> {
    /// The buckets of `interval` ms of metric `metric` of `namespace` over the snapshot's
    /// range, from segments' metric rollups. The snapshot's series must be every series of
    /// that metric (a selector of the metric name alone): their head data, and segments
    /// without metric rollups that hold them, are where else the metric's data may lie. A
    /// damaged block is reported and its segment counted as elsewhere.
    pub fn metric_rollups(
        &self,
        namespace: &str,
        metric: &str,
        interval: i64,
    ) -> Result<MetricRollups> {
        self.check_rolled(interval)?;
        let namespace = Namespace::new(namespace).map_err(crate::Error::InvalidArgument)?;
        let opts = &self.inner.opts;
        let from = opts
            .tier_cutoff(namespace.as_str(), interval, self.now)
            .max(opts.retention_cutoff(namespace.as_str(), self.now));
        let (start, end) = (self.start, self.end);
        let ids: RoaringBitmap = self.work.iter().map(|(s, _)| s.series().id).collect();
        let mut out = MetricRollups {
            from,
            ..MetricRollups::default()
        };
        let mut elsewhere = Vec::new();
        for h in &self.version.segments {
            let seg = &h.segment;
            if seg.max_t < start || seg.min_t > end {
                continue;
            }
            let deleted = self.version.deletions.iter().any(|d| d.reaches_segment(h));
            if seg.has_metric_rollups(interval) && !deleted {
                let mut buckets = Vec::new();
                match seg.read_metric_rollup(namespace.as_str(), metric, interval, &mut buckets) {
                    Ok(Some((first, last))) if first <= end && last >= start => {
                        out.sources.push(MetricSource {
                            first,
                            last,
                            buckets,
                        });
                    }
                    // Listed but outside the range, or not listed: none of the metric's data
                    // is there (unless a series of it has no buckets, which the writer
                    // never leaves: then it is read series by series).
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        if !h.refs.is_disjoint(&ids) {
                            elsewhere.push((seg.min_t, seg.max_t));
                        }
                    }
                    Err(e) => {
                        self.inner.rollup_damaged(&e);
                        elsewhere.push((seg.min_t, seg.max_t));
                    }
                }
            } else if !h.refs.is_disjoint(&ids) {
                elsewhere.push((seg.min_t, seg.max_t));
            }
        }
        for (series, live) in &self.work {
            let id = series.series().id;
            let frozen = self.version.frozen.iter().filter_map(|g| g.series.get(&id));
            for layer in frozen.chain(std::iter::once(live)) {
                elsewhere.extend(layer.chunks.iter().map(|c| (c.min_t, c.max_t)));
                elsewhere.extend(layer.ooo.iter().map(|s| (s.t, s.t)));
            }
        }
        elsewhere.sort_unstable();
        for (lo, hi) in elsewhere {
            match out.elsewhere.last_mut() {
                Some(run) if lo <= run.1 => run.1 = run.1.max(hi),
                _ => out.elsewhere.push((lo, hi)),
            }
        }
        Ok(out)
    }
}
