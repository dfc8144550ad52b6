//! The head: every series the engine knows, and their recent samples in memory until a
//! flush moves them to a segment.
//!
//! [`Head`] owns the series registry — labels → series (sharded by label hash) and
//! reference → series — and keeps the label [`Index`] (postings and the interned label
//! pairs) beside it, as Prometheus' `Head{series, postings}` does: the head uses the index,
//! the index knows nothing of series. A series holds its labels as pair ids; the strings
//! live once in the index. References are dense `u32`s handed out in creation order within
//! a process; they are not persisted (WAL files define their own, segments carry labels), so
//! they stay dense. Creating a series takes one shard's write lock, the table's and the
//! postings' write locks, once per series, never per sample; a write finds its known series
//! under every shard's and the index's read locks, taken once per batch ([`Head::finder`]).
//!
//! Per series, [`HeadSeries`] holds the samples (`head/chunks.rs`), its sealed chunks'
//! bytes in the head's shared blocks ([`ChunkArena`], `head/arena.rs`); [`SeriesLayer`] is one
//! source's data for a series and the newest-write-wins merge of several (`head/layer.rs`).
//! [`Usages`] keeps each namespace's head bytes and its share (`head/usage.rs`).
//!
//! May use: `model`, `codec`, `index`.

mod arena;
mod chunks;
mod layer;
mod series;
mod usage;

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use hashbrown::HashTable;
use parking_lot::{Condvar, Mutex, RwLock, RwLockReadGuard};
use roaring::RoaringBitmap;

pub use arena::ChunkArena;
pub use chunks::{HeadSeries, SealedChunk, Sealer};
pub use layer::{SeriesLayer, dedupe_newest_wins};
pub use series::{Series, SeriesHandle, SeriesRef};
pub use usage::{Delta, NamespaceUsage, UsageTally, Usages};

use crate::index::{Index, LabelReader, Matcher};
use crate::model::{Labels, Namespace, RawLabel, RejectReason, Sample};

const SHARDS: usize = 16;

/// A table slot holding an `Arc<Series>` (the pointer and, for the lookup, a control byte).
const SLOT_BYTES: usize = std::mem::size_of::<Arc<Series>>() + 1;

/// An `Arc`'s two reference counts.
const ARC_COUNTS: usize = 16;

/// What the allocator hands out for a request of `bytes` (its size classes round up to a
/// multiple of 16 at these sizes; measured once against RSS, see BENCHMARKS.md).
pub(crate) fn allocated(bytes: usize) -> usize {
    bytes.div_ceil(16) * 16
}

/// Series by the hash of their (namespace, labels). The table holds the series themselves,
/// so a series' labels are stored once, in the index, not again as a lookup key.
type Lookup = HashTable<Arc<Series>>;

/// The series registry and, beside it, their postings.
#[derive(Debug)]
pub struct Head {
    lookup: Box<[RwLock<Lookup>]>,
    series: RwLock<Vec<Arc<Series>>>,
    postings: Index,
    /// Where the series' sealed chunks keep their bytes.
    arena: ChunkArena,
    hasher: foldhash::fast::RandomState,
    /// `u64::MAX`; tests clear it to make every label set collide, so that the registry's
    /// equality check, not the hash, is what tells series apart.
    hash_mask: u64,
    usages: Usages,
    /// What the series themselves cost: their structs, the registry's tables and the index
    /// (samples are accounted by the engine, per write).
    registry_bytes: AtomicU64,
    /// Where writers wait for an earlier writer of the same series to apply (rare: only
    /// concurrent writes of one series meet here).
    turns: Mutex<()>,
    turn_taken: Condvar,
    waiting: AtomicUsize,
}

/// Known series by their labels' bytes, under read locks held for a batch (see
/// [`Head::finder`]).
pub struct Finder<'h> {
    head: &'h Head,
    shards: Vec<RwLockReadGuard<'h, Lookup>>,
    pairs: LabelReader<'h>,
}

impl Finder<'_> {
    /// The known series whose labels are `labels`, given as validation shapes them
    /// ([`crate::model::raw_labels::canonical`]) but not otherwise checked.
    pub fn find(&self, namespace: &Namespace, labels: &[RawLabel<'_>]) -> Option<Arc<Series>> {
        let hash = self.head.hash(namespace, labels.iter().copied());
        self.shards
            .get((hash as usize) % SHARDS)?
            .find(hash, |s| {
                s.is(hash, namespace, &self.pairs, labels.iter().copied())
            })
            .cloned()
    }

    /// The labels of `series`.
    pub fn labels(&self, series: &Series) -> Labels {
        self.pairs.labels(&series.pairs)
    }
}

impl Default for Head {
    fn default() -> Self {
        Head {
            lookup: (0..SHARDS).map(|_| RwLock::new(HashTable::new())).collect(),
            series: RwLock::new(Vec::new()),
            postings: Index::default(),
            arena: ChunkArena::default(),
            hasher: Default::default(),
            hash_mask: u64::MAX,
            registry_bytes: AtomicU64::new(0),
            usages: Usages::default(),
            turns: Mutex::new(()),
            turn_taken: Condvar::new(),
            waiting: AtomicUsize::new(0),
        }
    }
}

impl Head {
    /// The registry's key: a hash of the namespace and the labels' bytes, the same whether
    /// the labels are validated or still the request's bytes ([`Head::finder`]).
    fn hash<'a>(&self, namespace: &Namespace, labels: impl Iterator<Item = RawLabel<'a>>) -> u64 {
        let mut h = self.hasher.build_hasher();
        // 0xff never occurs in UTF-8, so it ends each part unambiguously.
        h.write(namespace.as_str().as_bytes());
        h.write_u8(0xff);
        for l in labels {
            h.write(l.name);
            h.write_u8(0xff);
            h.write(l.value);
            h.write_u8(0xff);
        }
        h.finish() & self.hash_mask
    }

    /// A head in which every label set has the same hash.
    #[cfg(test)]
    pub(crate) fn with_colliding_hashes() -> Head {
        Head {
            hash_mask: 0,
            ..Head::default()
        }
    }

    fn shard(&self, hash: u64) -> &RwLock<Lookup> {
        let i = (hash as usize) % SHARDS;
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
        labels: &Labels,
        max_per_namespace: Option<usize>,
    ) -> Result<Arc<Series>, RejectReason> {
        let hash = self.hash(namespace, labels.raw());
        let shard = self.shard(hash);
        if let Some(series) = self.find_in(&shard.read(), hash, namespace, labels.raw()) {
            return Ok(series);
        }
        let mut lookup = shard.write();
        if let Some(series) = self.find_in(&lookup, hash, namespace, labels.raw()) {
            return Ok(series);
        }
        // References are handed out under the postings' lock, so they stay dense and in
        // order; the table below grows in the same order because the shard lock is held.
        let mut table = self.series.write();
        let added = self
            .postings
            .add(namespace, labels, max_per_namespace, || {
                table.len() as SeriesRef
            })?;
        let series = Arc::new(Series {
            id: added.id,
            hash,
            namespace: namespace.clone(),
            head: HeadSeries::default(),
            usage: self.usages.of(namespace),
            wal_file: AtomicU64::new(0),
            pairs: added.pairs,
        });
        // Table slots gained, counted under each table's own lock.
        let (table_slots, lookup_slots) = (table.capacity(), lookup.capacity());
        table.push(series.clone());
        let table_slots = table.capacity() - table_slots;
        drop(table);
        lookup.insert_unique(hash, series.clone(), |s| s.hash);
        let new_slots = table_slots + (lookup.capacity() - lookup_slots);
        let cost = allocated(std::mem::size_of::<Series>() + ARC_COUNTS)
            + allocated(std::mem::size_of_val::<[crate::index::PairId]>(
                &series.pairs,
            ))
            + added.grown
            + new_slots * SLOT_BYTES;
        self.registry_bytes
            .fetch_add(cost as u64, Ordering::Relaxed);
        series.usage.add(cost as i64);
        Ok(series)
    }

    /// A view for finding known series by their labels' bytes ([`Finder::find`]): the
    /// write path's way to a series without decoding, validating or allocating anything.
    /// It holds every shard's and the label index's read locks, taken once for a whole
    /// batch — not once per series, where two writers would meet on the index's lock — in
    /// the order every other path takes them (a shard, then the index), so it cannot
    /// deadlock with a creation; while it lives, series can be found but not created.
    pub fn finder(&self) -> Finder<'_> {
        let shards = self.lookup.iter().map(|s| s.read()).collect();
        Finder {
            head: self,
            shards,
            pairs: self.postings.reader(),
        }
    }

    fn find_in<'a>(
        &self,
        lookup: &Lookup,
        hash: u64,
        namespace: &Namespace,
        labels: impl ExactSizeIterator<Item = RawLabel<'a>> + Clone,
    ) -> Option<Arc<Series>> {
        // The hash first: the index's lock only for a candidate that shares it (none for a
        // new series).
        lookup
            .find(hash, |s| {
                s.hash == hash && s.is(hash, namespace, &self.postings.reader(), labels.clone())
            })
            .cloned()
    }

    /// Bytes the series cost besides their samples: structs, tables, the label index.
    pub fn registry_bytes(&self) -> u64 {
        self.registry_bytes.load(Ordering::Relaxed)
    }

    /// Applies a committed batch's `samples` to `series` at the place it reserved
    /// ([`HeadSeries::reserve`]), waiting for earlier places of the series to be applied or
    /// skipped first; returns the change in accounted bytes. `on_apply` sees the samples
    /// under the series' lock (see [`HeadSeries::append_at`]).
    pub fn apply(
        &self,
        series: &Series,
        place: u64,
        samples: Vec<Sample>,
        on_apply: chunks::OnApply<'_>,
    ) -> isize {
        let sealer = self.sealer(series);
        let grown = match series.head.append_at(place, samples, sealer, on_apply) {
            Ok(grown) => grown,
            Err(samples) => {
                let mut samples = Some(samples);
                self.wait_turn(|| {
                    match samples
                        .take()
                        .map(|s| series.head.append_at(place, s, sealer, on_apply))
                    {
                        Some(Ok(grown)) => Some(grown),
                        Some(Err(back)) => {
                            samples = Some(back);
                            None
                        }
                        None => Some(0),
                    }
                })
            }
        };
        self.turn_done();
        grown
    }

    /// Where `series` seals its chunks.
    pub fn sealer(&self, series: &Series) -> Sealer<'_> {
        Sealer {
            arena: &self.arena,
            key: series.id,
        }
    }

    /// Lets go of the chunk blocks being filled: called when a flush has taken the head's
    /// samples, so that the blocks they were sealed into are freed with them.
    pub fn retire_chunk_blocks(&self) {
        self.arena.retire();
    }

    /// Gives up `series`' place `place` without data: its batch failed.
    pub fn skip(&self, series: &Series, place: u64) {
        if !series.head.skip_at(place) {
            self.wait_turn(|| series.head.skip_at(place).then_some(0));
        }
        self.turn_done();
    }

    /// Retries `attempt` until it succeeds. Writers only wait for batches appended to the
    /// WAL before theirs, which are committed or failed already and only have to apply or
    /// skip, so waits are short and cannot form a cycle.
    fn wait_turn(&self, mut attempt: impl FnMut() -> Option<isize>) -> isize {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut turns = self.turns.lock();
        let done = loop {
            if let Some(done) = attempt() {
                break done;
            }
            // The timeout is a safety net only: every apply and skip notifies waiters.
            self.turn_taken
                .wait_for(&mut turns, Duration::from_millis(5));
        };
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        done
    }

    fn turn_done(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            let _turns = self.turns.lock();
            self.turn_taken.notify_all();
        }
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

    /// The series of `namespace` matching every matcher, in reference order.
    pub fn select(&self, namespace: &Namespace, matchers: &[Matcher]) -> Vec<Arc<Series>> {
        let ids = self.select_refs(namespace, matchers);
        let table = self.series.read();
        ids.iter()
            .filter_map(|id| table.get(id as usize).cloned())
            .collect()
    }

    /// The references of the series [`Head::select`] selects.
    pub fn select_refs(&self, namespace: &Namespace, matchers: &[Matcher]) -> RoaringBitmap {
        self.postings.select(namespace, matchers)
    }

    /// Calls `f` with each series of `ids`, in reference order, without taking handles.
    pub fn for_each_in(&self, ids: &RoaringBitmap, mut f: impl FnMut(&Series)) {
        let table = self.series.read();
        for series in ids.iter().filter_map(|id| table.get(id as usize)) {
            f(series);
        }
    }

    /// Series count per namespace.
    pub fn namespace_counts(&self) -> Vec<(String, u64)> {
        self.postings.namespace_counts()
    }

    /// Head memory per namespace, and the shares in force.
    pub fn usages(&self) -> &Usages {
        &self.usages
    }

    /// Bytes the label index holds (interned pairs and postings).
    pub fn label_bytes(&self) -> u64 {
        self.postings.heap_bytes() as u64
    }

    /// The values of label `name` among the series `within`, sorted.
    pub fn label_values(&self, name: &str, within: &RoaringBitmap) -> Vec<String> {
        self.postings.label_values(name, within)
    }

    /// The label names among the series `within`, sorted.
    pub fn label_names(&self, within: &RoaringBitmap) -> Vec<String> {
        self.postings.label_names(within)
    }

    /// A read view of the interned labels, for rebuilding or comparing many series' labels.
    pub fn label_reader(&self) -> LabelReader<'_> {
        self.postings.reader()
    }

    /// The labels of `series`.
    pub fn labels(&self, series: &Series) -> Labels {
        self.postings.reader().labels(&series.pairs)
    }

    /// Handles (series with their labels) for `series`.
    pub fn handles(&self, series: Vec<Arc<Series>>) -> Vec<SeriesHandle> {
        let reader = self.postings.reader();
        series
            .into_iter()
            .map(|s| {
                let labels = reader.labels(&s.pairs);
                SeriesHandle::new(s, labels)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
