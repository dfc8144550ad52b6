//! Arrival delays ("live"): for every accepted sample, the time from its timestamp to the
//! write that brought it, kept compactly as log-linear histograms per namespace, metric and
//! hour of the sample's timestamp — enough for the delay percentiles of any window of whole
//! hours, never a record per sample.
//!
//! A write collects its delays in an [`ArrivalBatch`] (runs of equal buckets, as a batch of
//! live samples mostly shares one) and merges it after it is acknowledged, under one lock.
//! The histograms are stored in the `ARRIVALS` file at every flush and at close (replaced
//! atomically, checksummed like METADATA); a crash loses the delays recorded since the last
//! flush, never the samples.
//!
//! ```text
//! iocdb-arrivals 1
//! <namespace>\t<metric>\t<hour since the epoch>\t<bucket>:<count>,<bucket>:<count>,…
//! crc32c <8 hex digits>
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use crate::fs::{Vfs, layout};
use crate::textfile::{self, escape, unescape};

const HEADER: &str = "iocdb-arrivals 1";
const HOUR_MS: i64 = 3_600_000;
/// Sub-buckets per power of two: a bucket's width is at most 1/32 of its lower bound, so a
/// percentile read from its middle is within about 1.6 % of the true delay.
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;

/// The bucket of a delay in ms (a negative delay, a sample from the future, counts as 0).
pub fn bucket(delay_ms: i64) -> u16 {
    let d = delay_ms.max(0) as u64;
    if d < SUB {
        return d as u16;
    }
    let exp = 63 - d.leading_zeros() - SUB_BITS;
    let sub = (d >> exp) - SUB;
    ((u64::from(exp) + 1) * SUB + sub) as u16
}

/// The smallest delay of a bucket and its width, ms.
fn bucket_range(b: u16) -> (u64, u64) {
    let b = u64::from(b);
    if b < SUB {
        return (b, 1);
    }
    let exp = b / SUB - 1;
    let sub = b % SUB;
    ((SUB + sub) << exp, 1 << exp)
}

/// The delay a bucket stands for in a percentile: its middle (its value when one wide).
fn bucket_value(b: u16) -> i64 {
    let (low, width) = bucket_range(b);
    (low + width / 2) as i64
}

/// Key of a histogram: namespace, metric, hour of the samples' timestamps.
type Key = (String, String, i64);

/// One write's delays, as runs.
#[derive(Debug, Default)]
pub struct ArrivalBatch {
    /// Distinct (namespace, metric) of this write.
    names: Vec<(String, String)>,
    /// (index into `names`, hour, bucket, count).
    runs: Vec<(u32, i64, u16, u64)>,
}

impl ArrivalBatch {
    /// Records the delays of one series' samples, all arrived at `arrival_ms`.
    pub fn add(
        &mut self,
        namespace: &str,
        metric: &str,
        arrival_ms: i64,
        ts: impl IntoIterator<Item = i64>,
    ) {
        let name = match self.names.last() {
            // The metric first: a write's series share their namespace, so comparing it first
            // would compare equal strings in full for every entry.
            Some((n, m)) if m == metric && n == namespace => self.names.len() - 1,
            _ => match self
                .names
                .iter()
                .position(|(n, m)| m == metric && n == namespace)
            {
                Some(i) => i,
                None => {
                    self.names.push((namespace.to_owned(), metric.to_owned()));
                    self.names.len() - 1
                }
            },
        } as u32;
        for t in ts {
            let (hour, b) = (t.div_euclid(HOUR_MS), bucket(arrival_ms.saturating_sub(t)));
            match self.runs.last_mut() {
                Some(run) if run.0 == name && run.1 == hour && run.2 == b => run.3 += 1,
                _ => self.runs.push((name, hour, b, 1)),
            }
        }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }
}

/// One delay percentile row of a report.
#[derive(Debug, Clone, PartialEq)]
pub struct DelayFigures {
    /// Metric.
    pub metric: String,
    /// Samples counted.
    pub samples: u64,
    /// Median delay, ms.
    pub p50_ms: i64,
    /// 99th percentile delay, ms.
    pub p99_ms: i64,
    /// Largest delay (its bucket's middle), ms.
    pub max_ms: i64,
}

/// Every histogram, by namespace, metric and hour; a histogram is its nonzero buckets.
#[derive(Debug, Default)]
pub struct Arrivals {
    hist: BTreeMap<Key, BTreeMap<u16, u64>>,
    /// Changed since the last store.
    dirty: bool,
}

impl Arrivals {
    /// Adds an acknowledged write's delays.
    pub fn merge(&mut self, batch: ArrivalBatch) {
        let mut last: Option<(u32, i64)> = None;
        let mut hist: Option<&mut BTreeMap<u16, u64>> = None;
        for (name, hour, b, n) in batch.runs {
            if last != Some((name, hour)) || hist.is_none() {
                let Some((ns, metric)) = batch.names.get(name as usize) else {
                    continue;
                };
                hist = Some(
                    self.hist
                        .entry((ns.clone(), metric.clone(), hour))
                        .or_default(),
                );
                last = Some((name, hour));
            }
            if let Some(h) = hist.as_deref_mut() {
                *h.entry(b).or_insert(0) += n;
            }
        }
        self.dirty = true;
    }

    /// Delay percentiles per metric of `namespace` (all metrics when `metric` is `None`) for
    /// samples whose timestamps lie in the hours that `[start, end)` touches.
    pub fn figures(
        &self,
        namespace: &str,
        metric: Option<&str>,
        start: i64,
        end: i64,
    ) -> Vec<DelayFigures> {
        let (first, last) = (start.div_euclid(HOUR_MS), (end - 1).div_euclid(HOUR_MS));
        let mut merged: BTreeMap<&str, BTreeMap<u16, u64>> = BTreeMap::new();
        for ((ns, m, hour), h) in &self.hist {
            if ns != namespace || *hour < first || *hour > last || metric.is_some_and(|x| x != m) {
                continue;
            }
            let into = merged.entry(m).or_default();
            for (&b, &n) in h {
                *into.entry(b).or_insert(0) += n;
            }
        }
        merged
            .into_iter()
            .map(|(metric, h)| {
                let samples: u64 = h.values().sum();
                let at = |q: f64| {
                    let rank = ((samples as f64 * q).ceil() as u64).max(1);
                    let mut seen = 0;
                    for (&b, &n) in &h {
                        seen += n;
                        if seen >= rank {
                            return bucket_value(b);
                        }
                    }
                    0
                };
                DelayFigures {
                    metric: metric.to_owned(),
                    samples,
                    p50_ms: at(0.5),
                    p99_ms: at(0.99),
                    max_ms: h.keys().next_back().map_or(0, |&b| bucket_value(b)),
                }
            })
            .collect()
    }

    /// Drops the hours before `cutoff(namespace)` (retention).
    pub fn prune(&mut self, cutoff: impl Fn(&str) -> i64) {
        let before = self.hist.len();
        self.hist
            .retain(|(ns, _, hour), _| (hour + 1) * HOUR_MS > cutoff(ns));
        self.dirty |= self.hist.len() != before;
    }

    /// Loads the `ARRIVALS` file of `dir` (none: empty).
    pub fn load(vfs: &dyn Vfs, dir: &Path) -> crate::Result<Arrivals> {
        let path = dir.join(layout::ARRIVALS);
        let Some(data) = textfile::read(vfs, dir, layout::ARRIVALS)? else {
            return Ok(Arrivals::default());
        };
        let body = textfile::open(&path, &data)?;
        let corrupt = |offset: usize, reason: String| crate::Error::Corrupt {
            file: path.clone(),
            offset: offset as u64,
            reason,
        };
        let mut out = Arrivals::default();
        let mut offset = 0;
        for (i, line) in body.lines().enumerate() {
            if i == 0 {
                if line != HEADER {
                    return Err(corrupt(0, "not an iocdb arrivals file (version 1)".into()));
                }
            } else {
                let fields: Vec<&str> = line.split('\t').collect();
                let [ns, metric, hour, buckets] = fields.as_slice() else {
                    return Err(corrupt(offset, format!("line {} is not 4 fields", i + 1)));
                };
                let hour: i64 = hour
                    .parse()
                    .map_err(|_| corrupt(offset, format!("bad hour {hour:?}")))?;
                let mut h = BTreeMap::new();
                for pair in buckets.split(',').filter(|p| !p.is_empty()) {
                    let parsed = pair
                        .split_once(':')
                        .and_then(|(b, n)| Some((b.parse::<u16>().ok()?, n.parse::<u64>().ok()?)));
                    let (b, n) =
                        parsed.ok_or_else(|| corrupt(offset, format!("bad bucket {pair:?}")))?;
                    h.insert(b, n);
                }
                out.hist.insert((unescape(ns), unescape(metric), hour), h);
            }
            offset += line.len() + 1;
        }
        Ok(out)
    }

    /// Replaces the `ARRIVALS` file of `dir` when something changed since the last store.
    pub fn store(&mut self, vfs: &dyn Vfs, dir: &Path) -> crate::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        self.write_to(vfs, dir)?;
        self.dirty = false;
        Ok(())
    }

    /// Writes the `ARRIVALS` file of `dir` (a snapshot's, or the store's own).
    pub fn write_to(&self, vfs: &dyn Vfs, dir: &Path) -> crate::Result<()> {
        let mut s = format!("{HEADER}\n");
        for ((ns, metric, hour), h) in &self.hist {
            let buckets: Vec<String> = h.iter().map(|(b, n)| format!("{b}:{n}")).collect();
            s.push_str(&format!(
                "{}\t{}\t{hour}\t{}\n",
                escape(ns),
                escape(metric),
                buckets.join(",")
            ));
        }
        textfile::replace(
            vfs,
            dir,
            layout::ARRIVALS,
            layout::ARRIVALS_TMP,
            &textfile::seal(s),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_within_a_thirty_second_of_the_delay() {
        let mut last = 0;
        for d in (0..100_000i64).chain([3_600_000, 7_200_000, 86_400_000 * 400]) {
            let b = bucket(d);
            assert!(b >= last, "{d}");
            last = b;
            let (low, width) = bucket_range(b);
            assert!(
                low <= d as u64 && (d as u64) < low + width,
                "{d}: {low}+{width}"
            );
            assert!(width as f64 <= (low as f64 / 32.0).max(1.0), "{d}");
        }
        assert_eq!(bucket(-5), 0);
    }

    #[test]
    fn percentiles_come_from_merged_hours_and_survive_a_store() {
        let mut batch = ArrivalBatch::default();
        let hour = 1_764_460_800_000;
        // 98 samples a second late, 2 two hours late, over two hours.
        let live: Vec<i64> = (0..98).map(|i| hour + i * 60_000).collect();
        batch.add("y_te", "waiting", hour + 2 * HOUR_MS, [hour, hour + 1]);
        for &t in &live {
            batch.add("y_te", "waiting", t + 1000, [t]);
        }
        batch.add("y_te", "beds", hour, [hour]);
        let mut a = Arrivals::default();
        a.merge(batch);
        let check = |a: &Arrivals| {
            let f = a.figures("y_te", Some("waiting"), hour, hour + 2 * HOUR_MS);
            assert_eq!(f.len(), 1);
            assert_eq!(f[0].samples, 100);
            assert!((f[0].p50_ms - 1000).abs() <= 16, "{f:?}");
            let two_hours = 2 * HOUR_MS - 1;
            assert!(
                (f[0].p99_ms - two_hours).abs() as f64 <= two_hours as f64 / 32.0,
                "{f:?}"
            );
            assert!(a.figures("y_te", None, hour, hour + 1).len() == 2);
            assert!(
                a.figures("y_te", None, hour + 3 * HOUR_MS, hour + 4 * HOUR_MS)
                    .is_empty()
            );
        };
        check(&a);
        let dir = tempfile::tempdir().expect("dir");
        let vfs = crate::fs::OsFs;
        a.store(&vfs, dir.path()).expect("store");
        check(&Arrivals::load(&vfs, dir.path()).expect("load"));
    }
}
