//! The province as it arrives, for the demo: each series keeps its own reporting grid from a
//! fixed origin (so counters keep counting from one call to the next), and the province
//! misbehaves the way the IOC's sources do — a few sources go silent for a quarter of every
//! hour, one department holds its samples back and sends them in a late batch every ten
//! minutes, and now and then a camera reports a value no camera can count.

use iocdb_engine::{Sample, SeriesWrite, WriteRequest};

use crate::province::{SeriesSpec, Shape, phase, splitmix, value};

/// The namespace whose samples arrive late, in batches.
pub const LATE_NAMESPACE: &str = "documents";
/// How long it holds its samples back.
pub const LATE_EVERY_MS: i64 = 10 * 60_000;
/// Sources whose seed is a multiple of this go silent from minute 10 to 25 of every hour.
const SILENT_ONE_IN: u64 = 97;

/// A live feed of the province from `origin`.
#[derive(Debug, Clone)]
pub struct Live {
    specs: Vec<SeriesSpec>,
    origin: i64,
    /// Next sample number of each series.
    next: Vec<i64>,
    /// Samples held back by the late namespace, and when they were last sent.
    held: Vec<SeriesWrite>,
    held_since: i64,
}

/// Whether `spec` is in one of its outages at `t`.
pub fn silent(spec: &SeriesSpec, t: i64) -> bool {
    let minute = (t / 60_000).rem_euclid(60);
    spec.seed.is_multiple_of(SILENT_ONE_IN) && (10..25).contains(&minute)
}

impl Live {
    /// A feed whose series' grids start at `origin`; nothing before `from` is produced.
    pub fn new(specs: Vec<SeriesSpec>, origin: i64, from: i64) -> Live {
        let next = specs
            .iter()
            .map(|s| {
                let first = origin + phase(s);
                ((from - first).max(0) + s.interval_ms - 1) / s.interval_ms.max(1)
            })
            .collect();
        Live {
            specs,
            origin,
            next,
            held: Vec::new(),
            held_since: from,
        }
    }

    /// Every sample due before `until`, as one request per namespace (the late namespace's
    /// only every [`LATE_EVERY_MS`]).
    pub fn due(&mut self, until: i64) -> Vec<WriteRequest> {
        let mut by_ns: std::collections::BTreeMap<&'static str, Vec<SeriesWrite>> =
            Default::default();
        for (spec, k) in self.specs.iter().zip(self.next.iter_mut()) {
            let first = self.origin + phase(spec);
            let mut samples = Vec::new();
            while first + *k * spec.interval_ms < until {
                let t = first + *k * spec.interval_ms;
                if !silent(spec, t)
                    && let Some(v) = value(spec, *k, t)
                {
                    samples.push(Sample::new(t, odd(spec, *k, v)));
                }
                *k += 1;
            }
            if samples.is_empty() {
                continue;
            }
            let write = SeriesWrite {
                labels: spec.labels.clone(),
                samples,
            };
            if spec.namespace == LATE_NAMESPACE {
                self.held.push(write);
            } else {
                by_ns.entry(spec.namespace).or_default().push(write);
            }
        }
        let mut out: Vec<WriteRequest> = by_ns
            .into_iter()
            .map(|(ns, series)| WriteRequest {
                namespace: ns.to_owned(),
                series,
            })
            .collect();
        if until - self.held_since >= LATE_EVERY_MS && !self.held.is_empty() {
            out.push(WriteRequest {
                namespace: LATE_NAMESPACE.to_owned(),
                series: std::mem::take(&mut self.held),
            });
            self.held_since = until;
        }
        out
    }
}

/// Now and then a camera reports a count no camera makes (a value the catalog's range
/// refuses or flags).
fn odd(spec: &SeriesSpec, k: i64, v: f64) -> f64 {
    let r = splitmix(spec.seed ^ 0x0dd ^ (k as u64));
    if spec.shape == Shape::CameraCount && r.is_multiple_of(5_000) {
        -1.0
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::province::series;

    #[test]
    fn calls_in_pieces_produce_what_one_call_does_with_counters_continuing() {
        let specs = series(0.01);
        let origin = 1_700_000_000_000 - 1_700_000_000_000 % 86_400_000;
        let (from, until) = (origin + 3_600_000, origin + 3 * 3_600_000);
        let count = |reqs: &[WriteRequest]| -> usize {
            reqs.iter()
                .flat_map(|r| &r.series)
                .map(|s| s.samples.len())
                .sum()
        };
        let mut whole = Live::new(specs.clone(), origin, from);
        let all = count(&whole.due(until));
        let mut pieces = Live::new(specs, origin, from);
        let mut n = 0;
        let mut t = from;
        while t < until {
            t += 7_000;
            n += count(&pieces.due(t.min(until)));
        }
        // The late namespace's last batch may still be held in one of them.
        let held = |l: &Live| l.held.iter().map(|s| s.samples.len()).sum::<usize>();
        assert_eq!(all + held(&whole), n + held(&pieces));
        assert!(all > 0);
    }

    #[test]
    fn a_silent_source_sends_nothing_in_its_outage() {
        let specs: Vec<SeriesSpec> = series(0.1)
            .into_iter()
            .filter(|s| s.seed.is_multiple_of(SILENT_ONE_IN))
            .collect();
        assert!(!specs.is_empty());
        let origin = 1_700_000_000_000 - 1_700_000_000_000 % 86_400_000;
        let mut live = Live::new(specs, origin, origin);
        let reqs = live.due(origin + 3_600_000);
        for s in reqs.iter().flat_map(|r| &r.series) {
            for x in &s.samples {
                let minute = (x.t / 60_000) % 60;
                assert!(!(10..25).contains(&minute), "{minute}");
            }
        }
    }
}
