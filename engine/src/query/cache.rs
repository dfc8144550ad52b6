//! The result cache of range queries: a wall of panels refreshing every few seconds asks the
//! same question with its window moved a little, and most of the answer is already known.
//!
//! An entry is keyed by namespace, expression text, step, the steps' grid (start modulo
//! step) and lookback, and holds the points it computed for the steps `[first, last]`,
//! with the change sequence it was computed after. A refresh reuses the steps still exact
//! and computes only the rest: a step is exact unless something written or deleted since
//! (the engine's change log gives the earliest such time in the namespace) lies inside its
//! window — for a step `t`, the samples the plan can read reach back `back` and forward
//! `fwd` from `t` ([`reach`]: lookback, ranges, offsets, subqueries), so steps with
//! `t + fwd` at or past the earliest change are computed again. Each step of a PromQL range
//! query is evaluated on its own, so the points computed for a suffix of the steps are the
//! points a whole evaluation gives them; the property test in `tests/it/query_cache.rs`
//! checks answers with and without the cache bit for bit.
//!
//! Not cached: instant queries, expressions with `@` (their steps read at the query's own
//! start or end), and any answer larger than an eighth of the cache. A query that fails or
//! runs out of time stores nothing. Identical computations in flight are done once: eight
//! screens refreshing the same panel at the same moment wait for the first to finish its
//! new steps ([`ResultCache::lead_or_wait`]) and then take them from the cache — but never
//! longer than [`MAX_WAIT`] or their own deadline, after which they compute on their own: a
//! slow query can neither poison the cache nor hold others up for long. Entries are evicted
//! least recently used first when the cache holds more than its bytes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::plan::Plan;
use super::{PromqlQuery, ResultSeries};
use crate::model::Sample;

/// How far from a step's time the samples an expression reads can lie: `[t − back, t + fwd]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reach {
    /// Back from the step, ms.
    pub back: i64,
    /// Forward from the step (negative `offset`), ms; may be negative.
    pub fwd: i64,
}

impl Reach {
    fn widen(self, other: Reach) -> Reach {
        Reach {
            back: self.back.max(other.back),
            fwd: self.fwd.max(other.fwd),
        }
    }
}

/// How far a plan reads around each step, or `None` when a step's answer depends on more
/// than its own time (`@`), so that its points cannot be reused.
pub fn reach(plan: &Plan, lookback: i64) -> Option<Reach> {
    let none = Reach {
        back: i64::MIN,
        fwd: i64::MIN,
    };
    let shifted = |offset: i64, window: i64, inner: Reach| Reach {
        back: offset
            .saturating_add(window)
            .saturating_add(inner.back.max(0)),
        fwd: inner.fwd.max(0).saturating_sub(offset),
    };
    let zero = Reach { back: 0, fwd: 0 };
    Some(match plan {
        Plan::Number(_) | Plan::String(_) => none,
        Plan::Selector(s) => {
            if s.at.is_some() {
                return None;
            }
            shifted(s.offset_ms, lookback, zero)
        }
        Plan::Range(r) => {
            if r.selector.at.is_some() {
                return None;
            }
            shifted(r.selector.offset_ms, r.range_ms, zero)
        }
        Plan::Subquery(q) => {
            if q.at.is_some() {
                return None;
            }
            shifted(q.offset_ms, q.range_ms, reach(&q.expr, lookback)?)
        }
        Plan::Call(c) => {
            let mut r = none;
            for a in &c.args {
                r = r.widen(reach(a, lookback)?);
            }
            r
        }
        Plan::Aggregate(a) => {
            let mut r = reach(&a.expr, lookback)?;
            if let Some(p) = &a.param {
                r = r.widen(reach(p, lookback)?);
            }
            r
        }
        Plan::Binary(b) => reach(&b.lhs, lookback)?.widen(reach(&b.rhs, lookback)?),
        Plan::Negate(p) => reach(p, lookback)?,
    })
}

/// What identifies a cached answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    namespace: String,
    expr: String,
    step: i64,
    grid: i64,
    lookback: i64,
}

impl Key {
    /// The key of a range query in `namespace` (its name as validated: the empty name is
    /// the default namespace's) with `lookback` resolved.
    pub fn of(q: &PromqlQuery, namespace: &str, lookback: i64) -> Key {
        Key {
            namespace: namespace.to_owned(),
            expr: q.expr.trim().to_owned(),
            step: q.step,
            grid: q.start.rem_euclid(q.step.max(1)),
            lookback,
        }
    }
}

#[derive(Debug)]
struct Entry {
    /// The change sequence it was computed after.
    seq: u64,
    /// The namespace's retention cutoff then.
    cutoff: i64,
    first: i64,
    last: i64,
    series: Vec<ResultSeries>,
    bytes: usize,
    used: u64,
}

/// Points of a query's first steps that are still exact.
#[derive(Debug)]
pub struct Reuse {
    /// The series with their points in `[start, last]`, sorted by labels.
    pub series: Vec<ResultSeries>,
    /// The last step reused.
    pub last: i64,
}

/// The longest a query waits for an identical one in flight before computing on its own.
pub const MAX_WAIT: Duration = Duration::from_secs(5);

/// A computation in flight, which identical queries wait for.
#[derive(Debug, Default)]
struct Flight {
    done: Mutex<bool>,
    finished: Condvar,
}

/// The one query computing a key; those that waited for it look again when it is dropped
/// (after it stored its answer, or failed).
#[derive(Debug)]
pub struct Leader<'a> {
    cache: &'a ResultCache,
    key: Key,
    flight: Arc<Flight>,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.cache.flights.lock().remove(&self.key);
        *self.flight.done.lock() = true;
        self.flight.finished.notify_all();
    }
}

/// What the cache did since the engine opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Range queries that looked for an entry.
    pub lookups: u64,
    /// Lookups that reused at least one step.
    pub hits: u64,
    /// Steps answered from the cache.
    pub steps_reused: u64,
    /// Steps computed by queries that could use the cache (all steps of a miss).
    pub steps_computed: u64,
    /// Lookups where writes or deletions since made cached steps inexact.
    pub invalidations: u64,
    /// Entries evicted to stay within the bytes.
    pub evictions: u64,
    /// Queries that waited for an identical one in flight instead of computing it again.
    pub coalesced: u64,
    /// Entries now.
    pub entries: u64,
    /// Bytes the entries hold now (estimated: points and labels).
    pub bytes: u64,
    /// The bound on `bytes`.
    pub limit_bytes: u64,
}

/// The cache, shared by every query of an engine.
#[derive(Debug)]
pub struct ResultCache {
    limit: usize,
    state: Mutex<State>,
    lookups: AtomicU64,
    hits: AtomicU64,
    steps_reused: AtomicU64,
    steps_computed: AtomicU64,
    invalidations: AtomicU64,
    evictions: AtomicU64,
    coalesced: AtomicU64,
    flights: Mutex<HashMap<Key, Arc<Flight>>>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<Key, Entry>,
    bytes: usize,
    tick: u64,
}

fn size_of(series: &[ResultSeries]) -> usize {
    series
        .iter()
        .map(|s| {
            64 + s.points.len() * std::mem::size_of::<Sample>()
                + s.labels
                    .iter()
                    .map(|l| 48 + l.name.len() + l.value.len())
                    .sum::<usize>()
        })
        .sum()
}

/// The first step of the grid through `start` at or after `t`.
fn step_at_or_after(start: i64, step: i64, t: i64) -> i64 {
    if t <= start {
        return start;
    }
    let k = (i128::from(t) - i128::from(start) + i128::from(step) - 1) / i128::from(step);
    i64::try_from(i128::from(start) + k * i128::from(step)).unwrap_or(i64::MAX)
}

impl ResultCache {
    /// A cache holding at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        ResultCache {
            limit,
            state: Mutex::new(State::default()),
            lookups: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            steps_reused: AtomicU64::new(0),
            steps_computed: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            flights: Mutex::new(HashMap::new()),
        }
    }

    /// Before computing steps of `key`: the leader's guard if no identical computation is in
    /// flight; otherwise waits until it ends (or `until`, at most [`MAX_WAIT`] from now) and
    /// returns `None` — look again, then compute what is still missing without leading.
    pub fn lead_or_wait(&self, key: &Key, until: Option<Instant>) -> Option<Leader<'_>> {
        let flight = {
            let mut flights = self.flights.lock();
            match flights.get(key) {
                Some(f) => f.clone(),
                None => {
                    let flight = Arc::new(Flight::default());
                    flights.insert(key.clone(), flight.clone());
                    return Some(Leader {
                        cache: self,
                        key: key.clone(),
                        flight,
                    });
                }
            }
        };
        self.coalesced.fetch_add(1, Ordering::Relaxed);
        let limit = Instant::now() + MAX_WAIT;
        let until = until.map_or(limit, |u| u.min(limit));
        let mut done = flight.done.lock();
        while !*done {
            if flight.finished.wait_until(&mut done, until).timed_out() {
                break;
            }
        }
        None
    }

    /// The cached points of the steps from `start` (on the key's grid) up to `end` that are
    /// still exact. `earliest_change(seq)` is the earliest time written or deleted in the
    /// namespace after change sequence `seq`; `cutoff` the namespace's retention cutoff now.
    pub fn lookup(
        &self,
        key: &Key,
        start: i64,
        end: i64,
        cutoff: i64,
        reach: Reach,
        earliest_change: impl FnOnce(u64) -> Option<i64>,
    ) -> Option<Reuse> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let mut state = self.state.lock();
        state.tick += 1;
        let tick = state.tick;
        let entry = state.entries.get_mut(key)?;
        if start < entry.first || start > entry.last {
            return None;
        }
        // Data the retention hides since stays hidden in the cached points only if no step
        // from `start` reached it.
        if cutoff > entry.cutoff && start.saturating_sub(reach.back) < cutoff {
            return None;
        }
        let mut last = entry.last.min(end);
        if let Some(changed) = earliest_change(entry.seq) {
            let first_inexact =
                step_at_or_after(start, key.step, changed.saturating_sub(reach.fwd));
            if first_inexact <= last {
                self.invalidations.fetch_add(1, Ordering::Relaxed);
                last = first_inexact - key.step;
            }
        }
        if last < start {
            return None;
        }
        entry.used = tick;
        let series: Vec<ResultSeries> = entry
            .series
            .iter()
            .filter_map(|s| {
                let from = s.points.partition_point(|p| p.t < start);
                let to = s.points.partition_point(|p| p.t <= last);
                (from < to).then(|| ResultSeries {
                    labels: s.labels.clone(),
                    points: s.points.get(from..to).unwrap_or_default().to_vec(),
                })
            })
            .collect();
        self.hits.fetch_add(1, Ordering::Relaxed);
        self.steps_reused
            .fetch_add(((last - start) / key.step + 1) as u64, Ordering::Relaxed);
        Some(Reuse { series, last })
    }

    /// Counts the steps a query computed.
    pub fn computed(&self, steps: u64) {
        self.steps_computed.fetch_add(steps, Ordering::Relaxed);
    }

    /// Keeps the answer `series` of the steps `[first, last]` of `key`, computed after change
    /// sequence `seq` with the retention cutoff `cutoff`.
    pub fn store(
        &self,
        key: Key,
        seq: u64,
        cutoff: i64,
        first: i64,
        last: i64,
        series: Vec<ResultSeries>,
    ) {
        // An entry costs its key and bookkeeping too, so that empty answers are bounded.
        let bytes = size_of(&series) + 256 + key.expr.len() + key.namespace.len();
        let mut state = self.state.lock();
        if let Some(old) = state.entries.remove(&key) {
            state.bytes -= old.bytes;
        }
        if bytes > self.limit / 8 {
            return;
        }
        state.tick += 1;
        let used = state.tick;
        state.bytes += bytes;
        state.entries.insert(
            key,
            Entry {
                seq,
                cutoff,
                first,
                last,
                series,
                bytes,
                used,
            },
        );
        while state.bytes > self.limit {
            let Some(oldest) = state
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = state.entries.remove(&oldest) {
                state.bytes -= e.bytes;
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// What the cache did and holds.
    pub fn stats(&self) -> CacheStats {
        let state = self.state.lock();
        CacheStats {
            lookups: self.lookups.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
            steps_reused: self.steps_reused.load(Ordering::Relaxed),
            steps_computed: self.steps_computed.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            coalesced: self.coalesced.load(Ordering::Relaxed),
            entries: state.entries.len() as u64,
            bytes: state.bytes as u64,
            limit_bytes: self.limit as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    fn series(points: &[(i64, f64)]) -> Vec<ResultSeries> {
        vec![ResultSeries {
            labels: Labels::default(),
            points: points.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
        }]
    }

    fn key() -> Key {
        Key::of(&PromqlQuery::range("ns", "up", 0, 100, 10), "ns", 300)
    }

    const REACH: Reach = Reach { back: 25, fwd: 0 };

    #[test]
    fn steps_after_a_change_are_left_to_compute() {
        let c = ResultCache::new(1 << 20);
        let pts: Vec<(i64, f64)> = (0..=10).map(|k| (k * 10, k as f64)).collect();
        c.store(key(), 7, i64::MIN, 0, 100, series(&pts));
        // Nothing changed: everything from 20 on is reused.
        let r = c
            .lookup(&key(), 20, 120, i64::MIN, REACH, |_| None)
            .expect("hit");
        assert_eq!((r.last, r.series[0].points.len()), (100, 9));
        // A sample at 55 changed: the steps whose window holds it (60 on) are not.
        let r = c
            .lookup(&key(), 20, 120, i64::MIN, REACH, |seq| {
                assert_eq!(seq, 7);
                Some(55)
            })
            .expect("hit");
        assert_eq!(r.last, 50);
        assert_eq!(r.series[0].points.last().map(|p| p.t), Some(50));
        // A change before the window of the first step asked: nothing to reuse.
        assert!(
            c.lookup(&key(), 20, 120, i64::MIN, REACH, |_| Some(5))
                .is_none()
        );
        // The retention moving into a step's window: nothing either.
        assert!(c.lookup(&key(), 20, 120, 0, REACH, |_| None).is_none());
        let s = c.stats();
        assert_eq!((s.lookups, s.hits, s.invalidations), (4, 2, 2));
    }

    #[test]
    fn the_cache_stays_within_its_bytes_least_recently_used_first() {
        let c = ResultCache::new(64 * 1024);
        let pts: Vec<(i64, f64)> = (0..=100).map(|k| (k * 10, 1.0)).collect();
        for i in 0..200 {
            let q = PromqlQuery::range("ns", format!("m{i}"), 0, 1000, 10);
            c.store(Key::of(&q, "ns", 300), 0, i64::MIN, 0, 1000, series(&pts));
            assert!(c.stats().bytes <= 64 * 1024);
        }
        let s = c.stats();
        assert!(s.evictions > 100 && s.entries > 10, "{s:?}");
        // The newest is there, the oldest gone.
        let newest = Key::of(&PromqlQuery::range("ns", "m199", 0, 1000, 10), "ns", 300);
        assert!(
            c.lookup(&newest, 0, 1000, i64::MIN, REACH, |_| None)
                .is_some()
        );
        let oldest = Key::of(&PromqlQuery::range("ns", "m0", 0, 1000, 10), "ns", 300);
        assert!(
            c.lookup(&oldest, 0, 1000, i64::MIN, REACH, |_| None)
                .is_none()
        );
        // An answer larger than an eighth of the cache is not kept.
        let big: Vec<(i64, f64)> = (0..=1000).map(|k| (k, 1.0)).collect();
        c.store(key(), 0, i64::MIN, 0, 1000, series(&big));
        assert!(
            c.lookup(&key(), 0, 1000, i64::MIN, REACH, |_| None)
                .is_none()
        );
    }

    #[test]
    fn identical_computations_in_flight_are_done_once() {
        let c = ResultCache::new(1 << 20);
        let leader = c.lead_or_wait(&key(), None).expect("the first leads");
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let t = Instant::now();
                // Waits for the leader, then looks again and finds its answer.
                assert!(c.lead_or_wait(&key(), None).is_none());
                let found = c.lookup(&key(), 0, 100, i64::MIN, REACH, |_| None);
                (t.elapsed(), found.map(|r| r.last))
            });
            std::thread::sleep(Duration::from_millis(50));
            c.store(key(), 0, i64::MIN, 0, 100, series(&[(0, 1.0), (100, 2.0)]));
            drop(leader);
            let (waited, last) = waiter.join().expect("waiter");
            assert!(waited >= Duration::from_millis(40), "{waited:?}");
            assert_eq!(last, Some(100));
        });
        // Nothing in flight now: the next one leads; a deadline bounds any wait.
        let again = c.lead_or_wait(&key(), None).expect("leads");
        let t = Instant::now();
        assert!(
            c.lead_or_wait(&key(), Some(Instant::now() + Duration::from_millis(30)))
                .is_none()
        );
        assert!(t.elapsed() < Duration::from_secs(1));
        drop(again);
        assert_eq!(c.stats().coalesced, 2);
    }

    #[test]
    fn the_reach_of_an_expression_covers_every_window_it_reads() {
        let plan = |e: &str| crate::query::parse(e).expect("parses");
        let r = |e: &str| reach(&plan(e), 300_000);
        assert_eq!(
            r("up"),
            Some(Reach {
                back: 300_000,
                fwd: 0
            })
        );
        assert_eq!(
            r("rate(up[10m])"),
            Some(Reach {
                back: 600_000,
                fwd: 0
            })
        );
        assert_eq!(
            r("up offset 1h"),
            Some(Reach {
                back: 3_900_000,
                fwd: -3_600_000
            })
        );
        assert_eq!(
            r("up offset -1m"),
            Some(Reach {
                back: 240_000,
                fwd: 60_000
            })
        );
        assert_eq!(
            r("max_over_time(rate(up[5m])[1h:1m])"),
            Some(Reach {
                back: 3_900_000,
                fwd: 0
            })
        );
        assert_eq!(
            r("sum(up) / on() count(rate(x[2h]))"),
            Some(Reach {
                back: 7_200_000,
                fwd: 0
            })
        );
        assert_eq!(r("up @ 100"), None);
        assert_eq!(r("rate(up[5m] @ end())"), None);
        assert_eq!(
            r("vector(1)"),
            Some(Reach {
                back: i64::MIN,
                fwd: i64::MIN
            })
        );
    }
}
