//! Reading raw samples: matchers → postings → series, then per series the merge of
//! segments, frozen head generations and the live head, with the newest write winning.
//! Segments and chunks outside the range, or without the series, are skipped by their
//! bounds and reference bitmaps without decoding. Large selections are read on all cores.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Engine, Version};
use crate::head::{SeriesLayer, dedupe_newest_wins};
use crate::index::{Matcher, Series};
use crate::model::{Labels, Namespace, Sample};
use crate::options::QueryLimits;
use crate::{Error, Result};

/// One series and its samples in the selected range, sorted by time.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    /// The series' labels.
    pub labels: Labels,
    /// Samples in time order, one per timestamp.
    pub samples: Vec<Sample>,
}

/// What one query may still spend: series, samples and time.
#[derive(Debug)]
pub struct Budget {
    limits: QueryLimits,
    deadline: Instant,
    timeout: Duration,
    samples: AtomicU64,
}

impl Budget {
    /// A budget from the limits, with an optional tighter deadline from the caller.
    pub fn new(limits: &QueryLimits, deadline: Option<Instant>) -> Budget {
        let configured = Instant::now() + limits.timeout;
        let deadline = deadline.map_or(configured, |d| d.min(configured));
        Budget {
            limits: limits.clone(),
            timeout: deadline.saturating_duration_since(Instant::now()),
            deadline,
            samples: AtomicU64::new(0),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &QueryLimits {
        &self.limits
    }

    /// Fails once the deadline has passed.
    pub fn check_time(&self) -> Result<()> {
        if Instant::now() > self.deadline {
            return Err(Error::DeadlineExceeded {
                limit: self.timeout,
            });
        }
        Ok(())
    }

    pub(crate) fn check_series(&self, n: usize) -> Result<()> {
        let max = self.limits.max_series;
        if n > max {
            return Err(Error::ResourceExhausted {
                limit: "query_max_series",
                detail: format!("the query selects {n} series, the limit is {max}; add matchers"),
            });
        }
        Ok(())
    }

    fn spend_samples(&self, n: usize) -> Result<()> {
        let total = self.samples.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        let max = self.limits.max_samples;
        if total > max {
            return Err(Error::ResourceExhausted {
                limit: "query_max_samples",
                detail: format!(
                    "the query read more than {max} samples; narrow its range or matchers"
                ),
            });
        }
        Ok(())
    }

    /// Samples read so far.
    pub fn samples_read(&self) -> u64 {
        self.samples.load(Ordering::Relaxed)
    }
}

/// What [`Engine::read_series_with`] does with each series as soon as it is read.
pub(crate) type SeriesMap<'a, T> = &'a (dyn Fn(&Arc<Series>, &[Sample]) -> Result<T> + Sync);

/// Below this many series a selection is read on the calling thread.
const PARALLEL_MIN_SERIES: usize = 64;

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
        let budget = Budget::new(&self.inner.opts.query_limits, None);
        let mut out: Vec<SeriesSamples> = self
            .gather(namespace, matchers, start, end, &budget)?
            .into_iter()
            .filter(|(_, samples)| !samples.is_empty())
            .map(|(s, samples)| SeriesSamples {
                labels: s.labels.clone(),
                samples,
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// The series of `namespace` matching `matchers`, in reference order.
    pub(crate) fn matching_series(
        &self,
        namespace: &str,
        matchers: &[Matcher],
    ) -> Result<Vec<Arc<Series>>> {
        let inner = &*self.inner;
        inner.check_open()?;
        let namespace = Namespace::new(namespace).map_err(Error::InvalidArgument)?;
        let ids = inner.index.select(&namespace, matchers);
        Ok(ids.iter().filter_map(|id| inner.index.get(id)).collect())
    }

    /// Every matching series with its samples in `[start, end]` (possibly none), charging
    /// `budget`.
    pub(crate) fn gather(
        &self,
        namespace: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
        budget: &Budget,
    ) -> Result<Vec<(Arc<Series>, Vec<Sample>)>> {
        let series = self.matching_series(namespace, matchers)?;
        budget.check_series(series.len())?;
        self.read_series(series, start, end, budget)
    }

    /// Reads the given series over `[start, end]`.
    pub(crate) fn read_series(
        &self,
        series: Vec<Arc<Series>>,
        start: i64,
        end: i64,
        budget: &Budget,
    ) -> Result<Vec<(Arc<Series>, Vec<Sample>)>> {
        self.read_series_with(series, start, end, budget, &|s, samples| {
            Ok((s.clone(), samples.to_vec()))
        })
    }

    /// Reads the given series over `[start, end]` and maps each with `f` as soon as it is
    /// read, on all cores. Each worker reuses one sample buffer, so a query over thousands of
    /// series holds one series' samples per core, not all of them.
    pub(crate) fn read_series_with<T: Send>(
        &self,
        series: Vec<Arc<Series>>,
        start: i64,
        end: i64,
        budget: &Budget,
        f: SeriesMap<'_, T>,
    ) -> Result<Vec<T>> {
        let inner = &*self.inner;
        // Snapshot the live head and the version together, so a flush's cut between the
        // two cannot hide data.
        let (live, version) = {
            let _gate = inner.gate.read();
            let live: Vec<SeriesLayer> =
                series.iter().map(|s| s.head.snapshot(start, end)).collect();
            (live, inner.current_version())
        };
        let work: Vec<(Arc<Series>, SeriesLayer)> = series.into_iter().zip(live).collect();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let run = |part: &[(Arc<Series>, SeriesLayer)]| -> Result<Vec<T>> {
            let mut buf = Vec::new();
            let mut out = Vec::with_capacity(part.len());
            for (i, (series, live)) in part.iter().enumerate() {
                if i % 64 == 0 {
                    budget.check_time()?;
                }
                buf.clear();
                read_one(&version, series, live, start, end, &mut buf)?;
                budget.spend_samples(buf.len())?;
                out.push(f(series, &buf)?);
            }
            Ok(out)
        };
        if threads < 2 || work.len() < PARALLEL_MIN_SERIES {
            return run(&work);
        }
        let per = work.len().div_ceil(threads);
        let results: Vec<Result<Vec<T>>> = std::thread::scope(|s| {
            let handles: Vec<_> = work
                .chunks(per)
                .map(|part| s.spawn(move || run(part)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::InvalidArgument("a query thread panicked".into()))
                    })
                })
                .collect()
        });
        let mut out = Vec::with_capacity(work.len());
        for r in results {
            out.extend(r?);
        }
        Ok(out)
    }
}

/// Reads one series into `out`, oldest first: segments by sequence, frozen generations,
/// then the live head; the newest write wins per timestamp.
fn read_one(
    version: &Version,
    series: &Series,
    live: &SeriesLayer,
    start: i64,
    end: i64,
    out: &mut Vec<Sample>,
) -> Result<()> {
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
            seg.read_chunk(c, start, end, out)?;
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
            in_memory(layer, out)?;
        }
    }
    in_memory(live, out)?;
    dedupe_newest_wins(out, 0);
    Ok(())
}
