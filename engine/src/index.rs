//! The label index: the head's label pairs, each interned once with the postings of the
//! series that carry it (`index/pairs.rs`), namespace → references, and the selection of
//! references by PromQL matchers. It knows series only by reference and by the pair ids it
//! handed out for them; the head ([`crate::head::Head`]) owns the series and feeds the
//! index as series enter and leave it.
//!
//! May use: `model`.

mod matcher;
mod pair_ids;
mod pairs;

use std::collections::HashMap;

use parking_lot::{RwLock, RwLockReadGuard};
use roaring::RoaringBitmap;

pub use matcher::{MatchOp, Matcher};
pub use pair_ids::PairIds;
pub use pairs::PairId;

use crate::model::{Label, Labels, Namespace, RawLabel, RejectReason};
use pairs::Pairs;

/// A series reference as the index knows it (see [`crate::head::SeriesRef`]).
type Ref = u32;

#[derive(Debug, Default)]
struct State {
    by_namespace: HashMap<Namespace, RoaringBitmap>,
    pairs: Pairs,
}

impl State {
    fn heap_bytes(&self) -> usize {
        let namespaces: usize = self
            .by_namespace
            .values()
            .map(|b| b.serialized_size() + 64)
            .sum();
        namespaces + self.pairs.heap_bytes()
    }
}

/// A series the index has taken in.
#[derive(Debug)]
pub struct Added {
    /// Its pair ids, in label order.
    pub pairs: PairIds,
    /// Bytes the index grew by.
    pub grown: usize,
}

/// The postings and the interned label pairs.
#[derive(Debug, Default)]
pub struct Index {
    state: RwLock<State>,
}

/// A read view of the interned pairs, to compare and rebuild many series' labels under one
/// lock acquisition.
pub struct LabelReader<'a>(RwLockReadGuard<'a, State>);

impl LabelReader<'_> {
    /// The labels made of `pairs`.
    pub fn labels(&self, pairs: &[PairId]) -> Labels {
        Labels::from_trusted(
            pairs
                .iter()
                .map(|&id| {
                    let (name, value) = self.0.pairs.get(id);
                    Label::new(name, value)
                })
                .collect(),
        )
    }

    /// Whether `pairs` are exactly `labels`, byte for byte (both in label order).
    pub fn matches<'l>(
        &self,
        pairs: &[PairId],
        labels: impl ExactSizeIterator<Item = RawLabel<'l>>,
    ) -> bool {
        pairs.len() == labels.len()
            && pairs
                .iter()
                .zip(labels)
                .all(|(&id, l)| self.0.pairs.is(id, l.name, l.value))
    }
}

impl Index {
    /// Adds a new series of `namespace` with `labels` under the reference `assign` returns,
    /// called while the postings are locked (so that references are handed out in order).
    /// Refused, without calling `assign`, when the namespace already has
    /// `max_per_namespace` series.
    pub fn add(
        &self,
        namespace: &Namespace,
        labels: &Labels,
        max_per_namespace: Option<usize>,
        assign: impl FnOnce() -> Ref,
    ) -> Result<Added, RejectReason> {
        let mut state = self.state.write();
        let before = state.heap_bytes();
        if let Some(max) = max_per_namespace {
            let count = state
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
        let id = assign();
        let pairs = labels
            .iter()
            .map(|l| state.pairs.add(&l.name, &l.value, id))
            .collect();
        state
            .by_namespace
            .entry(namespace.clone())
            .or_default()
            .insert(id);
        let grown = state.heap_bytes().saturating_sub(before);
        Ok(Added { pairs, grown })
    }

    /// Takes series `id` of `namespace`, whose pairs are `pairs`, out of the index (it left
    /// the head); returns the bytes the index shrank by.
    pub fn remove(&self, namespace: &Namespace, id: Ref, pairs: &[PairId]) -> usize {
        let mut state = self.state.write();
        let before = state.heap_bytes();
        for &pair in pairs {
            state.pairs.remove(pair, id);
        }
        if let Some(members) = state.by_namespace.get_mut(namespace) {
            members.remove(id);
        }
        before.saturating_sub(state.heap_bytes())
    }

    /// A read view of the pairs.
    pub fn reader(&self) -> LabelReader<'_> {
        LabelReader(self.state.read())
    }

    /// The values of label `name` carried by any of the series `within`, sorted.
    pub fn label_values(&self, name: &str, within: &RoaringBitmap) -> Vec<String> {
        let state = self.state.read();
        let mut values: Vec<&str> = state
            .pairs
            .values(name)
            .filter(|(_, postings)| postings.intersects(within))
            .map(|(value, _)| value)
            .collect();
        values.sort_unstable();
        values.into_iter().map(str::to_owned).collect()
    }

    /// The label names carried by any of the series `within`, sorted.
    pub fn label_names(&self, within: &RoaringBitmap) -> Vec<String> {
        let state = self.state.read();
        let mut names: Vec<String> = state
            .pairs
            .names()
            .filter(|&name| {
                state
                    .pairs
                    .values(name)
                    .any(|(_, postings)| postings.intersects(within))
            })
            .map(str::to_owned)
            .collect();
        names.sort_unstable();
        names
    }

    /// Heap bytes of the postings and the interned pairs.
    pub fn heap_bytes(&self) -> usize {
        self.state.read().heap_bytes()
    }

    /// The references of `namespace`'s series matching every matcher (PromQL semantics:
    /// a matcher that matches the empty string also matches series without the label).
    pub fn select(&self, namespace: &Namespace, matchers: &[Matcher]) -> RoaringBitmap {
        let state = self.state.read();
        let Some(mut result) = state.by_namespace.get(namespace).cloned() else {
            return RoaringBitmap::new();
        };
        for m in matchers {
            if m.matches("") {
                let mut excluded = RoaringBitmap::new();
                for (value, postings) in state.pairs.values(&m.name) {
                    if !m.matches(value) {
                        postings.union_into(&mut excluded);
                    }
                }
                result -= excluded;
            } else if m.op == MatchOp::Equal {
                match state.pairs.postings(&m.name, &m.value) {
                    Some(postings) => postings.intersect(&mut result),
                    None => return RoaringBitmap::new(),
                }
            } else {
                let mut included = RoaringBitmap::new();
                for (value, postings) in state.pairs.values(&m.name) {
                    if m.matches(value) {
                        postings.union_into(&mut included);
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
}

#[cfg(test)]
mod tests;
