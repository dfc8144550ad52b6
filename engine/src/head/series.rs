//! One series of the head: its identity (reference, namespace, the ids of its interned
//! label pairs), its in-memory samples, and the write path's note of the WAL file that last
//! defined it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64};

use super::{HeadSeries, NamespaceUsage};
use crate::index::{LabelReader, PairIds};
use crate::model::{Labels, Namespace, RawLabel};

/// A series reference, valid for the life of one open engine.
pub type SeriesRef = u32;

/// One series: its identity, head data, and the WAL file that last defined it.
///
/// Laid out in declaration order (`repr(C)`) so that what a look-up by labels reads of a
/// series lies together at the front: its namespace and pair ids, which the comparison with
/// a request's labels reads, and its follower, which the look-up of the request's next
/// series reads right after ([`super::Finder::find_raw`]). Left to the compiler, the
/// follower sat at the struct's end, a cache line of its own: the load of the previous
/// series' follower was 28 % of `find_after`'s samples (BENCHMARKS.md, "Ingest by labels").
#[derive(Debug)]
#[repr(C)]
pub struct Series {
    /// Its namespace.
    pub namespace: Namespace,
    /// Its reference.
    pub id: SeriesRef,
    /// The reference of the series that followed this one in the last write that looked it
    /// up by its labels (see [`super::Finder::find_raw`]); `SeriesRef::MAX`: none yet.
    pub follower: AtomicU32,
    /// Its labels, as the ids of their interned pairs (in label order): the labels
    /// themselves live once in the index ([`super::Head::labels`] rebuilds them).
    pub pairs: PairIds,
    /// The hash of its namespace and labels (the registry's key, kept so that the registry
    /// can grow without rebuilding labels).
    pub hash: u64,
    /// Its namespace's head memory (shared by the namespace's series).
    pub usage: Arc<NamespaceUsage>,
    /// Number of the WAL file that holds this series' definition (0: none yet).
    pub wal_file: AtomicU64,
    /// Its in-memory samples.
    pub head: HeadSeries,
    /// Not in the registry: a series that left the head, rebuilt from its cold entry for a
    /// reader ([`super::Head::select`]). Its head data is empty and stays so: a write must
    /// resolve the series again, which brings it back into the head.
    pub detached: bool,
}

impl Series {
    /// A struct for series `id`, which is out of the head, to hand to a reader (see
    /// [`Series::detached`]).
    pub fn detached(id: SeriesRef, usage: Arc<NamespaceUsage>) -> Series {
        Series {
            id,
            hash: 0,
            namespace: usage.namespace().clone(),
            pairs: PairIds::default(),
            head: HeadSeries::default(),
            usage,
            wal_file: AtomicU64::new(0),
            follower: AtomicU32::new(SeriesRef::MAX),
            detached: true,
        }
    }

    /// Whether this is the series of `namespace` with these labels (in label order), whose
    /// registry hash is `hash`; `pairs` reads the interned labels.
    pub fn is<'l>(
        &self,
        hash: u64,
        namespace: &Namespace,
        pairs: &LabelReader<'_>,
        labels: impl ExactSizeIterator<Item = RawLabel<'l>>,
    ) -> bool {
        self.hash == hash && self.has_labels(namespace, pairs, labels)
    }

    /// Whether this is the series of `namespace` with these labels (in label order), its
    /// hash not compared (a follower tried by its reference, [`super::Finder::find_raw`]);
    /// `pairs` reads the interned labels.
    pub fn has_labels<'l>(
        &self,
        namespace: &Namespace,
        pairs: &LabelReader<'_>,
        labels: impl ExactSizeIterator<Item = RawLabel<'l>>,
    ) -> bool {
        self.namespace == *namespace && pairs.matches(&self.pairs, labels)
    }
}

/// A resolved series with its labels, valid for as long as the engine is open: what writers
/// keep to write by series (like a Prometheus appender's series reference) and what the
/// read view hands to queries. Its insides stay in the head.
#[derive(Debug, Clone)]
pub struct SeriesHandle {
    series: Arc<Series>,
    labels: Labels,
}

impl SeriesHandle {
    pub(crate) fn new(series: Arc<Series>, labels: Labels) -> Self {
        SeriesHandle { series, labels }
    }

    /// The series' labels.
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// The series' labels, the handle given up.
    pub fn into_labels(self) -> Labels {
        self.labels
    }

    pub(crate) fn series(&self) -> &Arc<Series> {
        &self.series
    }
}
