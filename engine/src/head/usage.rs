//! Head memory per namespace: what each department's series hold in the head, and the
//! share of the head it may fill, so that one runaway sender cannot starve the others.
//!
//! Every series points at its namespace's [`NamespaceUsage`]; the write path adds what it
//! grew, a flush subtracts what it froze, so the figure costs an atomic add per namespace
//! per batch and the check an atomic load, never a map lookup.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::model::{Namespace, PerNamespace};

/// One namespace's head bytes and the most it may hold.
#[derive(Debug)]
pub struct NamespaceUsage {
    namespace: Namespace,
    bytes: AtomicI64,
    /// Samples its series hold in the head now: what writes and WAL replay appended, less
    /// what flushes took (every appended sample is held once until taken).
    samples: AtomicI64,
    /// Samples written since the engine was opened (not counting WAL replay).
    accepted: AtomicU64,
    /// `u64::MAX`: no share of its own (only the whole head's budget applies).
    limit: AtomicU64,
    /// Series known in the namespace, in the head or not.
    series: AtomicU64,
}

impl NamespaceUsage {
    /// The namespace.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// Bytes its series hold in the head now.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed).max(0) as u64
    }

    /// Samples its series hold in the head now.
    pub fn samples(&self) -> u64 {
        self.samples.load(Ordering::Relaxed).max(0) as u64
    }

    /// Records samples appended (positive) or taken by a flush (negative), as WAL replay
    /// does series by series.
    pub fn add_samples(&self, delta: i64) {
        self.samples.fetch_add(delta, Ordering::Relaxed);
    }

    /// Samples written to the namespace since the engine was opened.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Series known in the namespace, in the head or not.
    pub fn series(&self) -> u64 {
        self.series.load(Ordering::Relaxed)
    }

    /// Counts a series new to the namespace (`1`) or forgotten (`-1`).
    pub(super) fn add_series(&self, delta: i64) {
        self.series.fetch_add(delta as u64, Ordering::Relaxed);
    }

    /// The most it may hold, if it has a share.
    pub fn limit(&self) -> Option<u64> {
        Some(self.limit.load(Ordering::Relaxed)).filter(|l| *l != u64::MAX)
    }

    /// Records growth (positive) or release (negative).
    pub fn add(&self, delta: i64) {
        self.bytes.fetch_add(delta, Ordering::Relaxed);
    }

    /// `Some((bytes, limit))` when the namespace has filled its share.
    pub fn exhausted(&self) -> Option<(u64, u64)> {
        let limit = self.limit()?;
        let bytes = self.bytes();
        (bytes >= limit).then_some((bytes, limit))
    }
}

/// Every namespace's usage, and the shares in force.
#[derive(Debug, Default)]
pub struct Usages {
    by_namespace: RwLock<HashMap<Namespace, Arc<NamespaceUsage>>>,
    limits: RwLock<PerNamespace<u64>>,
}

impl Usages {
    /// The namespace's one shared copy, when it has series: comparing it with a series'
    /// namespace is then a pointer comparison.
    pub fn interned(&self, namespace: &Namespace) -> Option<Namespace> {
        let usages = self.by_namespace.read();
        usages.get(namespace).map(|u| u.namespace.clone())
    }

    /// The namespace's usage, created on first use with its share from the limits in force.
    pub fn of(&self, namespace: &Namespace) -> Arc<NamespaceUsage> {
        if let Some(u) = self.by_namespace.read().get(namespace) {
            return u.clone();
        }
        let limits = self.limits.read();
        self.by_namespace
            .write()
            .entry(namespace.clone())
            .or_insert_with(|| {
                Arc::new(NamespaceUsage {
                    namespace: namespace.clone(),
                    bytes: AtomicI64::new(0),
                    samples: AtomicI64::new(0),
                    accepted: AtomicU64::new(0),
                    limit: AtomicU64::new(limits.get(namespace.as_str()).unwrap_or(u64::MAX)),
                    series: AtomicU64::new(0),
                })
            })
            .clone()
    }

    /// Puts new shares in force, for namespaces that exist and those to come.
    pub fn set_limits(&self, limits: PerNamespace<u64>) {
        let mut held = self.limits.write();
        for (ns, usage) in self.by_namespace.read().iter() {
            let limit = limits.get(ns.as_str()).unwrap_or(u64::MAX);
            usage.limit.store(limit, Ordering::Relaxed);
        }
        *held = limits;
    }

    /// Every namespace's usage, by name.
    pub fn all(&self) -> Vec<Arc<NamespaceUsage>> {
        let mut all: Vec<_> = self.by_namespace.read().values().cloned().collect();
        all.sort_by(|a, b| a.namespace.cmp(&b.namespace));
        all
    }
}

/// Adds up per-namespace deltas over a run of series and applies each namespace's sums
/// once: a batch's series mostly share a namespace, so this is one atomic add per batch.
#[derive(Default)]
pub struct UsageTally {
    current: Option<(Arc<NamespaceUsage>, Delta)>,
}

/// What a run of series changed in one namespace.
#[derive(Default, Clone, Copy)]
pub struct Delta {
    /// Head bytes grown (positive) or freed (negative).
    pub bytes: i64,
    /// Samples the head holds more (appended) or fewer (taken by a flush).
    pub held: i64,
    /// Samples accepted by writes.
    pub accepted: u64,
}

impl UsageTally {
    /// Counts `delta` for `usage`.
    pub fn add(&mut self, usage: &Arc<NamespaceUsage>, delta: Delta) {
        match &mut self.current {
            Some((u, sum)) if Arc::ptr_eq(u, usage) => {
                sum.bytes += delta.bytes;
                sum.held += delta.held;
                sum.accepted += delta.accepted;
            }
            _ => {
                self.settle();
                self.current = Some((usage.clone(), delta));
            }
        }
    }

    /// Applies what is counted so far.
    pub fn settle(&mut self) {
        if let Some((u, sum)) = self.current.take() {
            u.add(sum.bytes);
            u.add_samples(sum.held);
            if sum.accepted > 0 {
                u.accepted.fetch_add(sum.accepted, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for UsageTally {
    fn drop(&mut self) {
        self.settle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(name: &str) -> Namespace {
        Namespace::new(name).unwrap()
    }

    #[test]
    fn shares_apply_to_namespaces_now_and_later() {
        let usages = Usages::default();
        let health = usages.of(&ns("health"));
        assert_eq!(health.limit(), None);
        usages.set_limits(PerNamespace {
            default: Some(100),
            by_namespace: [("health".to_owned(), 50)].into(),
        });
        assert_eq!(health.limit(), Some(50));
        assert_eq!(usages.of(&ns("lodging")).limit(), Some(100));
        usages.set_limits(PerNamespace::default());
        assert_eq!(health.limit(), None);
        assert_eq!(usages.of(&ns("lodging")).limit(), None);
    }

    #[test]
    fn a_tally_applies_each_namespace_sum() {
        let usages = Usages::default();
        let (a, b) = (usages.of(&ns("a")), usages.of(&ns("b")));
        {
            let mut tally = UsageTally::default();
            let d = |bytes, held, accepted| Delta {
                bytes,
                held,
                accepted,
            };
            tally.add(&a, d(10, 2, 2));
            tally.add(&a, d(5, 1, 1));
            tally.add(&b, d(7, 4, 4));
            tally.add(&a, d(-3, -2, 0));
        }
        assert_eq!((a.bytes(), b.bytes()), (12, 7));
        assert_eq!((a.samples(), b.samples()), (1, 4));
        assert_eq!((a.accepted(), b.accepted()), (3, 4));
        usages.set_limits(PerNamespace {
            default: None,
            by_namespace: [("a".to_owned(), 12)].into(),
        });
        assert_eq!(a.exhausted(), Some((12, 12)));
        assert_eq!(b.exhausted(), None);
    }
}
