//! What one query may still spend: series, samples and time. The query engine charges it
//! as the read view hands it each series; the read view knows nothing of it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::options::QueryLimits;
use crate::{Error, Limit, Result};

/// A query's allowance of series, samples and time.
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

    /// Fails when a query would read more series than allowed.
    pub fn check_series(&self, n: usize) -> Result<()> {
        let max = self.limits.max_series;
        if n > max {
            return Err(Error::ResourceExhausted {
                limit: Limit::QueryMaxSeries,
                detail: format!("the query selects {n} series, the limit is {max}; add matchers"),
            });
        }
        Ok(())
    }

    /// Fails when a report grouping its series holds more than the series limit's worth of
    /// groups: what bounds a report's memory is its groups, not the series it reads a
    /// batch at a time.
    pub fn check_groups(&self, n: usize) -> Result<()> {
        let max = self.limits.max_series;
        if n > max {
            return Err(Error::ResourceExhausted {
                limit: Limit::QueryMaxSeries,
                detail: format!(
                    "the report has more than {max} groups (the query series limit); group by \
                     fewer labels or add matchers"
                ),
            });
        }
        Ok(())
    }

    /// Fails when an evaluation would hold more values than the sample limit allows: `rows`
    /// series with a value slot for each of `steps` steps (Prometheus counts the points a
    /// query holds against the same limit). Checked before the memory is taken.
    pub fn check_points(&self, rows: usize, steps: usize) -> Result<()> {
        let points = (rows as u128) * (steps as u128);
        let max = self.limits.max_samples;
        if points > u128::from(max) {
            return Err(Error::ResourceExhausted {
                limit: Limit::QueryMaxSamples,
                detail: format!(
                    "query processing would hold {points} points ({rows} series × {steps} steps) in memory, the limit is {max}; use a larger step, a shorter range or more matchers"
                ),
            });
        }
        Ok(())
    }

    /// Charges one series' samples, just read: fails past the sample limit or the deadline.
    pub fn spend(&self, samples: usize) -> Result<()> {
        let total = self.samples.fetch_add(samples as u64, Ordering::Relaxed) + samples as u64;
        let max = self.limits.max_samples;
        if total > max {
            return Err(Error::ResourceExhausted {
                limit: Limit::QueryMaxSamples,
                detail: format!(
                    "the query read more than {max} samples; narrow its range or matchers"
                ),
            });
        }
        self.check_time()
    }

    /// Gives back samples charged for reads whose results were dropped and will be read
    /// again (an abandoned attempt), so that they count once.
    pub fn refund(&self, samples: u64) {
        self.samples.fetch_sub(samples, Ordering::Relaxed);
    }

    /// Samples read so far.
    pub fn samples_read(&self) -> u64 {
        self.samples.load(Ordering::Relaxed)
    }
}
