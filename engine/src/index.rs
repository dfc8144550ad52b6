//! The label index: postings (label pair → roaring bitmap of series references, and
//! namespace → references) and the selection of references by PromQL matchers. It knows
//! series only by reference; the head ([`crate::head::Head`]) owns the series and feeds the
//! index as it creates them.
//!
//! May use: `model`.

mod matcher;

use std::collections::HashMap;

use parking_lot::RwLock;
use roaring::RoaringBitmap;

pub use matcher::{MatchOp, Matcher};

use crate::model::{Labels, Namespace, RejectReason};

/// A series reference as the index knows it (see [`crate::head::SeriesRef`]).
type Ref = u32;

#[derive(Debug, Default)]
struct Postings {
    by_namespace: HashMap<Namespace, RoaringBitmap>,
    by_label: HashMap<String, HashMap<String, RoaringBitmap>>,
}

/// The postings.
#[derive(Debug, Default)]
pub struct Index {
    postings: RwLock<Postings>,
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
    ) -> Result<Ref, RejectReason> {
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
        let id = assign();
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
        Ok(id)
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
}

#[cfg(test)]
mod tests;
