//! Which queries may run inline on the request's thread.
//!
//! Every engine call runs under `block_in_place` (`service::run_engine`), which hands the
//! runtime worker's place to a blocking-pool thread so that a long call does not hold one
//! of the few workers that serve every connection. For a small query that hand-off is a
//! third to a half of its whole cost (BENCHMARKS.md, "Where a small query's time goes
//! now"). A dashboard asks the same queries again every few seconds, and the result cache
//! makes most refreshes small, so the cost of a query's last run says well what its next
//! will cost: a query (namespace, expression, range length, step) whose last run took less
//! than [`SMALL`] runs inline next time — and at most one query at a time runs inline, so a
//! query that turns out long after all (its cache emptied by a correction) holds one worker,
//! never all of them.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use iocdb_engine::PromqlQuery;

/// A query whose last run took less than this runs inline next time.
pub const SMALL: Duration = Duration::from_millis(1);

/// Queries remembered at most (a set of hashes; cleared when full).
const REMEMBERED: usize = 4096;

/// The queries that ran small last time, and whether one runs inline now.
#[derive(Debug, Default)]
pub struct SmallQueries {
    small: Mutex<HashSet<u64>>,
    hasher: std::collections::hash_map::RandomState,
    inline_now: AtomicBool,
}

impl SmallQueries {
    /// What identifies a query across refreshes: its window moves, its length does not.
    pub fn key(&self, q: &PromqlQuery) -> u64 {
        let mut h = self.hasher.build_hasher();
        (
            &q.namespace,
            &q.expr,
            q.end - q.start,
            q.step,
            q.lookback_ms,
        )
            .hash(&mut h);
        std::hash::Hasher::finish(&h)
    }

    /// The place to run query `key` inline, held until dropped: when its last run was
    /// small and no other query runs inline.
    pub fn inline(&self, key: u64) -> Option<Inline<'_>> {
        let was_small = self.small.lock().is_ok_and(|s| s.contains(&key));
        let free = was_small
            && self
                .inline_now
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok();
        free.then_some(Inline(&self.inline_now))
    }

    /// Remembers how long query `key` took.
    pub fn record(&self, key: u64, took: Duration) {
        let Ok(mut set) = self.small.lock() else {
            return;
        };
        if took < SMALL {
            if set.len() >= REMEMBERED {
                set.clear();
            }
            set.insert(key);
        } else {
            set.remove(&key);
        }
    }
}

/// The place of the one query running inline (see [`SmallQueries::inline`]).
pub struct Inline<'a>(&'a AtomicBool);

impl Drop for Inline<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(expr: &str, start: i64) -> PromqlQuery {
        PromqlQuery::range("ns", expr, start, start + 3_600_000, 60_000)
    }

    #[test]
    fn a_query_runs_inline_after_a_small_run_and_guarded_after_a_long_one() {
        let small = SmallQueries::default();
        let q = query("up", 0);
        let key = small.key(&q);
        assert!(small.inline(key).is_none(), "a first run is guarded");
        small.record(key, Duration::ZERO);
        // The same query with its window moved: inline.
        assert!(small.inline(small.key(&query("up", 60_000))).is_some());
        // A long run: guarded next time, until it runs small again.
        small.record(key, SMALL);
        assert!(small.inline(key).is_none());
        small.record(key, Duration::ZERO);
        assert!(small.inline(key).is_some());
        // Another expression, or another range length, is another query.
        assert!(small.inline(small.key(&query("down", 0))).is_none());
        let longer = PromqlQuery::range("ns", "up", 0, 7_200_000, 60_000);
        assert!(small.inline(small.key(&longer)).is_none());
    }

    #[test]
    fn one_query_at_a_time_runs_inline() {
        let small = SmallQueries::default();
        let key = small.key(&query("up", 0));
        small.record(key, Duration::ZERO);
        let first = small.inline(key);
        assert!(first.is_some());
        assert!(small.inline(key).is_none(), "a second while the first runs");
        drop(first);
        assert!(small.inline(key).is_some());
    }

    #[test]
    fn what_is_remembered_is_bounded() {
        let small = SmallQueries::default();
        for i in 0..REMEMBERED * 3 {
            small.record(small.key(&query(&format!("q{i}"), 0)), Duration::ZERO);
        }
        assert!(small.small.lock().map(|s| s.len()).unwrap_or(0) <= REMEMBERED);
    }
}
