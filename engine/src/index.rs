//! The series registry and label index: labels → series reference, reference → series, and
//! postings (label pair → roaring bitmap of references) for matcher selection.
//!
//! References are dense `u32`s handed out in creation order within a process; they are not
//! persisted (WAL files define their own, segments carry labels), so they can stay dense.
//! The registry is sharded by label hash; creating a series takes one shard's write lock and
//! the postings' write lock, which happens once per series, never per sample.

mod matcher;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use parking_lot::RwLock;
use roaring::RoaringBitmap;

pub use matcher::{MatchOp, Matcher};

use crate::head::HeadSeries;
use crate::model::{Labels, Namespace, RejectReason};

/// A series reference, valid for the life of one open engine.
pub type SeriesRef = u32;

const SHARDS: usize = 16;

/// One series: its identity, head data, and the WAL file that last defined it.
#[derive(Debug)]
pub struct Series {
    /// Its reference.
    pub id: SeriesRef,
    /// Its namespace.
    pub namespace: Namespace,
    /// Its labels.
    pub labels: Labels,
    /// Its in-memory samples.
    pub head: HeadSeries,
    /// Number of the WAL file that holds this series' definition (0: none yet).
    pub wal_file: AtomicU64,
}

type Key = (Namespace, Labels);
type Lookup = HashMap<Key, Arc<Series>, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
struct Postings {
    by_namespace: HashMap<Namespace, RoaringBitmap>,
    by_label: HashMap<String, HashMap<String, RoaringBitmap>>,
}

/// The registry and postings.
#[derive(Debug)]
pub struct Index {
    lookup: Box<[RwLock<Lookup>]>,
    series: RwLock<Vec<Arc<Series>>>,
    postings: RwLock<Postings>,
    hasher: foldhash::fast::RandomState,
    label_bytes: AtomicU64,
    next: AtomicU32,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            lookup: (0..SHARDS)
                .map(|_| RwLock::new(HashMap::default()))
                .collect(),
            series: RwLock::new(Vec::new()),
            postings: RwLock::new(Postings::default()),
            hasher: Default::default(),
            label_bytes: AtomicU64::new(0),
            next: AtomicU32::new(0),
        }
    }
}

impl Index {
    fn shard(&self, key: &Key) -> &RwLock<Lookup> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        // `i < SHARDS == lookup.len()`.
        self.lookup
            .get(i)
            .unwrap_or_else(|| unreachable!("shard {i} of {SHARDS}"))
    }

    /// The series with these labels, created if new. `max_per_namespace` caps creation
    /// (`None`: no cap, for WAL replay of series that were already accepted).
    pub fn get_or_create(
        &self,
        namespace: &Namespace,
        labels: Labels,
        max_per_namespace: Option<usize>,
    ) -> Result<Arc<Series>, RejectReason> {
        let key = (namespace.clone(), labels);
        let shard = self.shard(&key);
        if let Some(series) = shard.read().get(&key) {
            return Ok(series.clone());
        }
        let mut lookup = shard.write();
        if let Some(series) = lookup.get(&key) {
            return Ok(series.clone());
        }
        let mut postings = self.postings.write();
        if let Some(max) = max_per_namespace {
            let count = postings
                .by_namespace
                .get(namespace)
                .map_or(0, |b| b.len() as usize);
            if count >= max {
                return Err(RejectReason::SeriesLimit {
                    namespace: namespace.to_string(),
                    max,
                });
            }
        }
        let mut table = self.series.write();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (namespace, labels) = key;
        for label in labels.iter() {
            postings
                .by_label
                .entry(label.name.clone())
                .or_default()
                .entry(label.value.clone())
                .or_default()
                .insert(id);
        }
        postings
            .by_namespace
            .entry(namespace.clone())
            .or_default()
            .insert(id);
        self.label_bytes
            .fetch_add(labels.heap_bytes() as u64 * 2, Ordering::Relaxed);
        let series = Arc::new(Series {
            id,
            namespace: namespace.clone(),
            labels: labels.clone(),
            head: HeadSeries::default(),
            wal_file: AtomicU64::new(0),
        });
        debug_assert_eq!(table.len(), id as usize);
        table.push(series.clone());
        lookup.insert((namespace, labels), series.clone());
        Ok(series)
    }

    /// The series with reference `id`.
    pub fn get(&self, id: SeriesRef) -> Option<Arc<Series>> {
        self.series.read().get(id as usize).cloned()
    }

    /// Every series, in reference order.
    pub fn all(&self) -> Vec<Arc<Series>> {
        self.series.read().clone()
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.series.read().len()
    }

    /// True when no series exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Series count per namespace.
    pub fn namespace_counts(&self) -> Vec<(String, u64)> {
        let p = self.postings.read();
        let mut v: Vec<_> = p
            .by_namespace
            .iter()
            .map(|(n, b)| (n.to_string(), b.len()))
            .collect();
        v.sort();
        v
    }

    /// Approximate bytes the registry holds for labels (table and lookup copies).
    pub fn label_bytes(&self) -> u64 {
        self.label_bytes.load(Ordering::Relaxed)
    }

    /// The references of `namespace`'s series matching every matcher (PromQL semantics:
    /// a matcher that matches the empty string also matches series without the label).
    pub fn select(&self, namespace: &Namespace, matchers: &[Matcher]) -> RoaringBitmap {
        let p = self.postings.read();
        let Some(mut result) = p.by_namespace.get(namespace).cloned() else {
            return RoaringBitmap::new();
        };
        for m in matchers {
            let values = p.by_label.get(&m.name);
            if m.matches("") {
                let mut excluded = RoaringBitmap::new();
                for (value, bitmap) in values.into_iter().flatten() {
                    if !m.matches(value) {
                        excluded |= bitmap;
                    }
                }
                result -= excluded;
            } else if m.op == MatchOp::Equal {
                match values.and_then(|v| v.get(&m.value)) {
                    Some(bitmap) => result &= bitmap,
                    None => return RoaringBitmap::new(),
                }
            } else {
                let mut included = RoaringBitmap::new();
                for (value, bitmap) in values.into_iter().flatten() {
                    if m.matches(value) {
                        included |= bitmap;
                    }
                }
                result &= included;
            }
            if result.is_empty() {
                break;
            }
        }
        result
    }

    /// Values of label `name` among the given series.
    pub fn label_values(&self, name: &str, among: &RoaringBitmap) -> Vec<String> {
        let p = self.postings.read();
        let mut out: Vec<String> = p
            .by_label
            .get(name)
            .into_iter()
            .flatten()
            .filter(|(_, b)| !b.is_disjoint(among))
            .map(|(v, _)| v.clone())
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests;
