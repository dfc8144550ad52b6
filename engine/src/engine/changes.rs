//! What writes and deletions changed, by namespace and time — what the query result cache
//! asks before it reuses a point.
//!
//! Every acknowledged write and every deletion, once it is visible to queries, records the
//! earliest timestamp it touched in its namespace under a new sequence number. A cached
//! result remembers the sequence it was computed after; "the earliest time changed in this
//! namespace since then" tells which of its steps may have moved (those whose window reaches
//! that time or later), the rest are still exact. Recording after the change is visible and
//! reading the sequence before a query takes its snapshot makes the answer safe: a change
//! either is in the snapshot, or has a later sequence and is seen next time.
//!
//! Each namespace keeps a few hundred marks: (sequence, earliest time), kept so that times
//! grow with sequences — a mark with a later or equal time than a newer one says nothing
//! the newer does not — and merged at the old end when there are too many, which can only
//! make an answer earlier (more recomputation, never a stale point).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

/// Marks kept per namespace.
const MARKS: usize = 512;

/// The change log of every namespace.
#[derive(Debug, Default)]
pub struct Changes {
    seq: AtomicU64,
    by_namespace: RwLock<HashMap<String, Mutex<Marks>>>,
}

/// One namespace's marks: sequences increasing, times strictly increasing.
#[derive(Debug, Default)]
struct Marks(VecDeque<(u64, i64)>);

impl Marks {
    fn push(&mut self, seq: u64, t: i64) {
        while self.0.back().is_some_and(|&(_, last)| last >= t) {
            self.0.pop_back();
        }
        self.0.push_back((seq, t));
        if self.0.len() > MARKS
            && let Some((_, oldest)) = self.0.pop_front()
            && let Some(next) = self.0.front_mut()
        {
            // The merged mark answers for both: its time is the earlier one.
            next.1 = oldest;
        }
    }

    fn earliest_since(&self, since: u64) -> Option<i64> {
        let first_after = self.0.partition_point(|&(seq, _)| seq <= since);
        self.0.get(first_after).map(|&(_, t)| t)
    }
}

impl Changes {
    /// The sequence of the latest change recorded: read it before taking a snapshot.
    pub fn current(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// Records that samples at `earliest` or later changed in `namespace` (call it once the
    /// change is visible to queries).
    pub fn record(&self, namespace: &str, earliest: i64) {
        {
            let map = self.by_namespace.read();
            if let Some(marks) = map.get(namespace) {
                let mut marks = marks.lock();
                // Under the namespace's lock, so that its marks are in sequence order.
                let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
                marks.push(seq, earliest);
                return;
            }
        }
        let mut map = self.by_namespace.write();
        let mut marks = map.entry(namespace.to_owned()).or_default().lock();
        let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        marks.push(seq, earliest);
    }

    /// The earliest time changed in `namespace` by anything recorded after sequence
    /// `since`, or `None` if nothing was.
    pub fn earliest_since(&self, namespace: &str, since: u64) -> Option<i64> {
        self.by_namespace
            .read()
            .get(namespace)
            .and_then(|m| m.lock().earliest_since(since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_change_since_a_sequence_is_never_missed() {
        let c = Changes::default();
        assert_eq!(c.earliest_since("a", 0), None);
        c.record("a", 100);
        let after_first = c.current();
        c.record("a", 200);
        c.record("b", 5);
        c.record("a", 150);
        assert_eq!(c.earliest_since("a", 0), Some(100));
        assert_eq!(c.earliest_since("a", after_first), Some(150));
        assert_eq!(c.earliest_since("b", after_first), Some(5));
        assert_eq!(c.earliest_since("a", c.current()), None);
    }

    #[test]
    fn merged_marks_answer_earlier_never_later() {
        let c = Changes::default();
        let mut seqs = Vec::new();
        for t in 0..(3 * MARKS as i64) {
            c.record("a", 1_000 + t);
            seqs.push((c.current(), 1_000 + t));
        }
        for (i, &(seq, _)) in seqs.iter().enumerate() {
            let truth = seqs.get(i + 1).map(|&(_, t)| t);
            let answer = c.earliest_since("a", seq);
            match truth {
                None => assert_eq!(answer, None),
                Some(t) => assert!(answer.is_some_and(|a| a <= t), "{answer:?} > {t}"),
            }
        }
        assert_eq!(
            c.earliest_since("a", seqs[3 * MARKS - 2].0),
            Some(1_000 + 3 * MARKS as i64 - 1)
        );
    }
}
