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
//! under every shard's, the table's and the index's read locks, taken once per batch
//! ([`Head::finder`]), most of them without the hash table: each series remembers which
//! series followed it in the last write ([`Finder::find_raw`]).
//!
//! A series that wrote nothing for a whole flush interval leaves the head ([`Head::evict`],
//! after a flush): its struct, head data, lookup entry and label pairs go; what stays is its
//! reference in a bitmap and half its hash in a sorted array (`head/cold.rs`, four bytes),
//! so that memory follows the active series rather than every series seen. Its labels,
//! postings and newest sample live on in the segments: queries find it through their label
//! indexes ([`Head::select`] with the engine's pass over segments), and a later write whose
//! half hash is among those that left searches the segments' label indexes for its labels
//! and brings it back under the same reference ([`Head::get_or_create`], [`ColdLabels`],
//! which also reads back the newest sample for the data-quality rules). A store's open
//! registers its segments' series out of the head ([`Head::register`], with a [`Registrar`]
//! that lives as long as the open).
//!
//! Per series, [`HeadSeries`] holds the samples (`head/chunks.rs`), its sealed chunks'
//! bytes in the head's shared blocks ([`ChunkArena`], `head/arena.rs`); [`SeriesLayer`] is one
//! source's data for a series and the newest-write-wins merge of several (`head/layer.rs`).
//! [`Usages`] keeps each namespace's head bytes and its share (`head/usage.rs`).
//!
//! May use: `model`, `codec`, `index`.

mod arena;
mod chunks;
mod cold;
mod layer;
mod series;
mod slots;
mod usage;

use cold::ColdKeys;
use slots::Slots;

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use hashbrown::HashTable;
use parking_lot::{Condvar, Mutex, RwLock, RwLockReadGuard};
use roaring::RoaringBitmap;

pub use arena::ChunkArena;
pub use chunks::{HeadSeries, SealedChunk, Sealer};
pub use layer::{SeriesLayer, dedupe_newest_wins};
pub use series::{Series, SeriesHandle, SeriesRef};
pub use usage::{Delta, NamespaceUsage, UsageTally, Usages};

use crate::index::PairIds;
use crate::index::{Index, LabelReader, Matcher};
use crate::model::{Labels, Limits, Namespace, RawLabel, RejectReason, Sample, raw_labels};

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

/// The key of a series out of the head ([`ColdKeys`]): the high half of its hash.
fn cold_key(hash: u64) -> u32 {
    (hash >> 32) as u32
}

/// One shard of the registry: the head's series by the hash of their (namespace, labels).
/// The table holds the series themselves, so a series' labels are stored once, in the
/// index, not again as a lookup key.
#[derive(Debug, Default)]
struct Lookup {
    hot: HashTable<Arc<Series>>,
}

/// Every series known, by reference, and the references of those out of the head: one
/// lock, so that a reader sees each series in exactly one of the two places.
#[derive(Debug, Default)]
struct Registry {
    /// Each reference's series while it is in the head; `None` once it left (then `cold`
    /// holds the reference) or is gone (it left holding no data anywhere, or its last
    /// samples were dropped; the reference is not reused).
    slots: Slots,
    cold: RoaringBitmap,
    /// The half hashes of the series in `cold`: whether a series not in the head may be
    /// one of them, to be searched for in the segments.
    keys: ColdKeys,
}

/// What a store's open registers its segments' series with ([`Head::register`]): each
/// series registered so far by its half hash, so that a series found in several segments
/// is confirmed by one label read rather than searched for in the segments opened before.
/// Dropped once the segments are registered ([`Head::registered`]), which keeps only the
/// half hashes.
#[derive(Debug, Default)]
pub struct Registrar {
    table: HashTable<(u32, SeriesRef)>,
}

impl Registrar {
    /// The registrar's hash of a half hash: spread over 64 bits (the table takes its
    /// control bits from the top and its bucket from the bottom).
    fn hash(key: u32) -> u64 {
        u64::from(key).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

/// Where the labels of series out of the head are found: the segments (the engine's
/// published version, or the segments opened so far while a store opens).
pub trait ColdLabels {
    /// The reference of the series of `namespace` with exactly `labels` among `cold` (the
    /// series out of the head), if a segment holds it.
    fn find_labels(
        &self,
        namespace: &Namespace,
        labels: &Labels,
        cold: &RoaringBitmap,
    ) -> Option<SeriesRef>;

    /// The namespace and labels of series `id`, if a segment holds it.
    fn cold_labels(&self, id: SeriesRef) -> Option<(Namespace, Labels)>;

    /// The newest sample of series `id` the segments hold: what the data-quality rules
    /// compare its next sample with when it comes back into the head.
    fn last_sample(&self, _id: SeriesRef) -> Option<Sample> {
        None
    }
}

/// No segments (a new head, tests).
impl ColdLabels for () {
    fn find_labels(&self, _: &Namespace, _: &Labels, _: &RoaringBitmap) -> Option<SeriesRef> {
        None
    }

    fn cold_labels(&self, _: SeriesRef) -> Option<(Namespace, Labels)> {
        None
    }
}

/// What [`Head::evict`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evicted {
    /// Series that left the head.
    pub series: usize,
    /// Accounted bytes freed.
    pub bytes: i64,
}

/// The series registry and, beside it, their postings.
#[derive(Debug)]
pub struct Head {
    lookup: Box<[RwLock<Lookup>]>,
    series: RwLock<Registry>,
    /// Series in the head (the others are cold or gone).
    hot: AtomicUsize,
    /// References whose series are gone (see `head/slots.rs`).
    gone: AtomicUsize,
    /// Series that left the head, and that came back, since open.
    evictions: AtomicU64,
    revivals: AtomicU64,
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

/// What a write's look-ups by labels off the wire ([`Finder::find_raw`]) carry from one
/// series to the next: whether the last set came unshaped, and the memory a shaped copy of
/// a set is made in.
#[derive(Debug, Default)]
pub struct Shaping<'a> {
    unshaped: bool,
    copy: Vec<RawLabel<'a>>,
}

/// Known series by their labels' bytes, under read locks held for a batch (see
/// [`Head::finder`]).
pub struct Finder<'h> {
    head: &'h Head,
    shards: Vec<RwLockReadGuard<'h, Lookup>>,
    registry: RwLockReadGuard<'h, Registry>,
    pairs: LabelReader<'h>,
}

impl Finder<'_> {
    /// The known series whose labels are `labels`, given as validation shapes them
    /// ([`crate::model::raw_labels::shape`]) but not otherwise checked.
    pub fn find(&self, namespace: &Namespace, labels: &[RawLabel<'_>]) -> Option<Arc<Series>> {
        let hash = self.head.hash(namespace, labels.iter().copied());
        self.shards
            .get((hash as usize) % SHARDS)?
            .hot
            .find(hash, |s| {
                s.is(hash, namespace, &self.pairs, labels.iter().copied())
            })
            .cloned()
    }

    /// The known series whose labels are `raw` off the wire once validation has shaped them
    /// (see [`crate::model::raw_labels`]); `None` when the head does not know it or only
    /// validation can tell (a limit is passed). `previous` is the series looked up before
    /// it in the same write, if any; `shaping` is carried from one series of a write to the
    /// next.
    ///
    /// A set equal label for label to a known series' labels is shaped, since every set the
    /// head holds is, so the bytes are looked up as they came, and checked for their shape
    /// only when they are not found. A sender shapes all its sets or none: after a set that
    /// was not shaped, the next one is shaped first (into a copy).
    pub fn find_raw<'a>(
        &self,
        previous: Option<&Series>,
        namespace: &Namespace,
        raw: &[RawLabel<'a>],
        limits: &Limits,
        shaping: &mut Shaping<'a>,
    ) -> Option<Arc<Series>> {
        let shaped = if shaping.unshaped {
            raw_labels::is_shaped(raw)
        } else {
            if raw_labels::within(raw, limits)
                && let Some(series) = self.find_after(previous, namespace, raw)
            {
                return Some(series);
            }
            if raw_labels::is_shaped(raw) {
                // Looked up as it came already.
                return None;
            }
            false
        };
        shaping.unshaped = !shaped;
        let labels = if shaped {
            raw
        } else {
            raw_labels::shape(raw, &mut shaping.copy)
        };
        if !raw_labels::within(labels, limits) {
            return None;
        }
        self.find_after(previous, namespace, labels)
    }

    /// The known series whose labels are `labels` (shaped, within the limits) and which
    /// comes after `previous` in a write: the one that followed `previous` last time is
    /// tried first, by its reference — a sender sends its series in the same order write
    /// after write, and the references of series created in that order lie next to each
    /// other, so the try costs a comparison of the labels and no look-up in the hash table,
    /// whose slots a hash scatters (each a cache miss: BENCHMARKS.md, "Ingest by labels").
    /// What the table finds otherwise becomes `previous`' follower.
    fn find_after(
        &self,
        previous: Option<&Series>,
        namespace: &Namespace,
        labels: &[RawLabel<'_>],
    ) -> Option<Arc<Series>> {
        let Some(previous) = previous else {
            return self.find(namespace, labels);
        };
        let follower = previous.follower.load(Ordering::Relaxed);
        if let Some(series) = self.registry.slots.get(follower as usize)
            && series.has_labels(namespace, &self.pairs, labels.iter().copied())
        {
            return Some(series.clone());
        }
        let found = self.find(namespace, labels);
        if let Some(series) = &found {
            previous.follower.store(series.id, Ordering::Relaxed);
        }
        found
    }

    /// The labels of `series`.
    pub fn labels(&self, series: &Series) -> Labels {
        self.pairs.labels(&series.pairs)
    }
}

impl Default for Head {
    fn default() -> Self {
        Head {
            lookup: (0..SHARDS)
                .map(|_| RwLock::new(Lookup::default()))
                .collect(),
            series: RwLock::new(Registry::default()),
            hot: AtomicUsize::new(0),
            gone: AtomicUsize::new(0),
            evictions: AtomicU64::new(0),
            revivals: AtomicU64::new(0),
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

    /// The series with these labels, created if new and brought back into the head if it
    /// had left it (under its old reference; `cold` confirms a match). `max_per_namespace`
    /// caps the namespace's series in the head when one is created (`None`: no cap, for
    /// WAL replay of series that were already accepted); a series coming back is known and
    /// not capped.
    pub fn get_or_create(
        &self,
        namespace: &Namespace,
        labels: &Labels,
        max_per_namespace: Option<usize>,
        cold: &dyn ColdLabels,
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
        // References are handed out under the registry's lock, so they stay dense and in
        // order.
        let mut registry = self.series.write();
        let found = find_cold(&registry, hash, namespace, labels, cold);
        let (id, last, limit) = match found {
            Some(id) => (id, cold.last_sample(id), None),
            None => (registry.slots.len() as SeriesRef, None, max_per_namespace),
        };
        let added = self.postings.add(namespace, labels, limit, || id)?;
        let usage = self.usages.of(namespace);
        let series = Arc::new(Series {
            id,
            hash,
            // The namespace's one copy, not the request's: every series of a namespace then
            // shares it, and comparing two series' namespaces is a pointer comparison.
            namespace: usage.namespace().clone(),
            head: HeadSeries::resumed(last),
            usage,
            wal_file: AtomicU64::new(0),
            pairs: added.pairs,
            follower: AtomicU32::new(SeriesRef::MAX),
            detached: false,
        });
        let mut cost = added.grown as i64;
        if found.is_some() {
            // Its half hash goes at the next merge (the next eviction).
            let keys = registry.keys.heap_bytes() as i64;
            registry.keys.remove_later(cold_key(hash));
            cost += registry.keys.heap_bytes() as i64 - keys;
            registry.cold.remove(id);
            let slots = registry.slots.heap_bytes();
            registry.slots.set(id as usize, Some(series.clone()));
            cost += registry.slots.heap_bytes() as i64 - slots as i64;
            self.revivals.fetch_add(1, Ordering::Relaxed);
        } else {
            let slots = registry.slots.heap_bytes();
            registry.slots.push(Some(series.clone()));
            cost += registry.slots.heap_bytes() as i64 - slots as i64;
            series.usage.add_series(1);
        }
        drop(registry);
        let slots = lookup.hot.capacity();
        lookup.hot.insert_unique(hash, series.clone(), |s| s.hash);
        self.hot.fetch_add(1, Ordering::Relaxed);
        cost +=
            ((lookup.hot.capacity() - slots) * SLOT_BYTES + hot_series_bytes(&series.pairs)) as i64;
        self.charge(&series.usage, cost);
        Ok(series)
    }

    /// A view for finding known series by their labels' bytes ([`Finder::find`]): the
    /// write path's way to a series without decoding, validating or allocating anything.
    /// It holds every shard's, the registry's and the label index's read locks, taken once
    /// for a whole batch — not once per series, where two writers would meet on the index's
    /// lock — in the order every other path takes them (a shard, the registry, the index),
    /// so it cannot deadlock with a creation; while it lives, series can be found but not
    /// created.
    pub fn finder(&self) -> Finder<'_> {
        let shards = self.lookup.iter().map(|s| s.read()).collect();
        Finder {
            head: self,
            shards,
            registry: self.series.read(),
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
            .hot
            .find(hash, |s| {
                s.hash == hash && s.is(hash, namespace, &self.postings.reader(), labels.clone())
            })
            .cloned()
    }

    /// Bytes the series cost besides their samples: structs, tables, the label index.
    pub fn registry_bytes(&self) -> u64 {
        self.registry_bytes.load(Ordering::Relaxed)
    }

    /// Adds `bytes` (negative: frees) to the registry's and the namespace's accounting.
    fn charge(&self, usage: &NamespaceUsage, bytes: i64) {
        // Two's complement: adding a negative amount as u64 subtracts it.
        self.registry_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        usage.add(bytes);
    }

    /// Sends the series of `candidates` that hold nothing and that nobody else holds out of
    /// the head; called after a flush with the series that wrote nothing since the flush
    /// before. A series is left in the head when a writer, a reader or a handle
    /// ([`SeriesHandle`], a stream's series) holds it: each such holder reached it through
    /// this registry, whose locks are held here, so the count of holders cannot grow while
    /// it is checked, and no write can go to a struct that left the registry. A series
    /// `in_segments` does not hold (it never had a sample stored) is forgotten whole.
    pub fn evict(&self, candidates: &[SeriesRef], in_segments: &RoaringBitmap) -> Evicted {
        let mut evicted = Evicted::default();
        let mut keys = Vec::new();
        let mut by_shard: Vec<Vec<SeriesRef>> = vec![Vec::new(); SHARDS];
        {
            let registry = self.series.read();
            for &id in candidates {
                if let Some(s) = registry.slots.get(id as usize)
                    && let Some(shard) = by_shard.get_mut((s.hash as usize) % SHARDS)
                {
                    shard.push(id);
                }
            }
        }
        for (shard, ids) in self.lookup.iter().zip(by_shard) {
            if ids.is_empty() {
                continue;
            }
            // The creation's lock order: the shard, the registry, the index.
            let mut lookup = shard.write();
            let mut registry = self.series.write();
            let hot_slots = lookup.hot.capacity();
            let registry_slots = registry.slots.heap_bytes();
            let mut freed: Vec<(Arc<NamespaceUsage>, i64)> = Vec::new();
            for id in ids {
                // Held by the registry and the shard, and by nobody else.
                let Some(series) = registry.slots.get(id as usize) else {
                    continue;
                };
                if Arc::strong_count(series) != 2 || !series.head.is_idle() {
                    continue;
                }
                let series = series.clone();
                let hash = series.hash;
                if let Ok(entry) = lookup.hot.find_entry(hash, |s| Arc::ptr_eq(s, &series)) {
                    entry.remove();
                }
                registry.slots.set(id as usize, None);
                if !in_segments.contains(id) {
                    self.gone.fetch_add(1, Ordering::Relaxed);
                    series.usage.add_series(-1);
                } else {
                    registry.cold.insert(id);
                    keys.push(cold_key(hash));
                }
                let bytes = hot_series_bytes(&series.pairs) as i64
                    + self.postings.remove(&series.namespace, id, &series.pairs) as i64;
                match freed
                    .iter_mut()
                    .find(|(u, _)| Arc::ptr_eq(u, &series.usage))
                {
                    Some((_, b)) => *b += bytes,
                    None => freed.push((series.usage.clone(), bytes)),
                }
                evicted.series += 1;
            }
            let registry_slots = registry_slots as i64 - registry.slots.heap_bytes() as i64;
            drop(registry);
            // A table that emptied gives its memory back.
            if lookup.hot.len() < lookup.hot.capacity() / 4 {
                lookup.hot.shrink_to_fit(|s| s.hash);
            }
            let slots = (hot_slots as i64 - lookup.hot.capacity() as i64) * SLOT_BYTES as i64
                + registry_slots;
            drop(lookup);
            if let Some((_, bytes)) = freed.first_mut() {
                *bytes += slots;
            }
            for (usage, bytes) in freed {
                self.charge(&usage, -bytes);
                evicted.bytes += bytes;
            }
        }
        // The series that left, in one merge.
        evicted.bytes -= self.merge_cold_keys(keys, Vec::new());
        self.hot.fetch_sub(evicted.series, Ordering::Relaxed);
        self.evictions
            .fetch_add(evicted.series as u64, Ordering::Relaxed);
        evicted
    }

    /// Forgets the series out of the head that no segment holds any more (`in_segments`:
    /// every reference the segments hold), once compaction or retention dropped their last
    /// samples (`before` still names their labels); returns how many. Their references are
    /// not reused.
    pub fn forget_absent(&self, in_segments: &RoaringBitmap, before: &dyn ColdLabels) -> usize {
        let absent = {
            let mut registry = self.series.write();
            let absent = &registry.cold - in_segments;
            registry.cold -= &absent;
            absent
        };
        if absent.is_empty() {
            return 0;
        }
        // Outside the lock: this reads the dropped segments' label indexes.
        let mut keys = Vec::with_capacity(absent.len() as usize);
        for id in &absent {
            if let Some((namespace, labels)) = before.cold_labels(id) {
                self.usages.of(&namespace).add_series(-1);
                keys.push(cold_key(self.hash(&namespace, labels.raw())));
            }
        }
        // A half hash whose labels could not be read stays: a write of it searches the
        // segments and finds nothing, as for a new series.
        self.merge_cold_keys(Vec::new(), keys);
        let forgotten = absent.len() as usize;
        self.gone.fetch_add(forgotten, Ordering::Relaxed);
        forgotten
    }

    /// The reference of the series of `namespace` with `labels`, registered out of the
    /// head if it is new: how a store's open takes in its segments' series (`cold` holds
    /// the segments registered before, `registrar` their series), which take head memory
    /// only once written again. [`Head::registered`] ends the registration.
    pub fn register(
        &self,
        namespace: &Namespace,
        labels: &Labels,
        cold: &dyn ColdLabels,
        registrar: &mut Registrar,
    ) -> SeriesRef {
        let hash = self.hash(namespace, labels.raw());
        let lookup = self.shard(hash).write();
        if let Some(series) = self.find_in(&lookup, hash, namespace, labels.raw()) {
            return series.id;
        }
        let mut registry = self.series.write();
        let key = cold_key(hash);
        let known = registrar
            .table
            .iter_hash(Registrar::hash(key))
            .filter(|&&(k, id)| k == key && registry.cold.contains(id))
            .find_map(|&(_, id)| {
                let (ns, found) = cold.cold_labels(id)?;
                (ns == *namespace && found == *labels).then_some(id)
            })
            // A series the head knew out of it before this registration.
            .or_else(|| find_cold(&registry, hash, namespace, labels, cold));
        if let Some(id) = known {
            return id;
        }
        let id = registry.slots.len() as SeriesRef;
        let slots = registry.slots.heap_bytes();
        registry.slots.push(None);
        registry.cold.insert(id);
        registrar
            .table
            .insert_unique(Registrar::hash(key), (key, id), |&(k, _)| {
                Registrar::hash(k)
            });
        let cost = registry.slots.heap_bytes() - slots;
        let usage = self.usages.of(namespace);
        usage.add_series(1);
        self.charge(&usage, cost as i64);
        id
    }

    /// Ends a store's registration of its segments' series: their half hashes go into the
    /// head's look-up of series out of it, and the registrar is dropped.
    pub fn registered(&self, registrar: Registrar) {
        let keys: Vec<u32> = registrar.table.iter().map(|&(k, _)| k).collect();
        drop(registrar);
        self.merge_cold_keys(keys, Vec::new());
    }

    /// Adds the half hashes of series that left the head (`added`) to the look-up and takes
    /// out those of series no longer out of it (`removed`), charging the registry what the
    /// look-up's size changed by; returns that change.
    fn merge_cold_keys(&self, added: Vec<u32>, removed: Vec<u32>) -> i64 {
        let mut registry = self.series.write();
        let before = registry.keys.heap_bytes() as i64;
        for key in removed {
            registry.keys.remove_later(key);
        }
        registry.keys.merge(added);
        let grown = registry.keys.heap_bytes() as i64 - before;
        drop(registry);
        // Two's complement: adding a negative change as u64 subtracts it.
        self.registry_bytes
            .fetch_add(grown as u64, Ordering::Relaxed);
        grown
    }

    /// Applies a committed batch's `samples` to `series` at the place it reserved
    /// ([`HeadSeries::reserve`]), waiting for earlier places of the series to be applied or
    /// skipped first; returns the change in accounted bytes. `on_apply` sees the samples
    /// under the series' lock (see [`HeadSeries::append_at`]).
    pub fn apply(
        &self,
        series: &Series,
        place: u64,
        samples: &[Sample],
        on_apply: chunks::OnApply<'_>,
    ) -> isize {
        if let Some(grown) = self.try_apply(series, place, samples, &mut *on_apply) {
            return grown;
        }
        let sealer = self.sealer(series);
        let grown = self.wait_turn(|| series.head.append_at(place, samples, sealer, on_apply));
        self.turn_done();
        grown
    }

    /// [`Head::apply`] if `place`'s turn has come; `None`, having done nothing, while an
    /// earlier place of the series is outstanding. A write applies the series whose turn has
    /// come first and waits only for the rest: two writes of the same series a moment apart
    /// then overlap, instead of the later one following the earlier series by series, woken
    /// for each.
    pub fn try_apply(
        &self,
        series: &Series,
        place: u64,
        samples: &[Sample],
        on_apply: chunks::OnApply<'_>,
    ) -> Option<isize> {
        let grown = series
            .head
            .append_at(place, samples, self.sealer(series), on_apply)?;
        self.turn_done();
        Some(grown)
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

    /// The series with reference `id`, if it is in the head.
    #[cfg(test)]
    pub fn get(&self, id: SeriesRef) -> Option<Arc<Series>> {
        self.series.read().slots.get(id as usize).cloned()
    }

    /// The namespace and labels of series `id` if it is in the head.
    pub fn identity(&self, id: SeriesRef) -> Option<(Namespace, Labels)> {
        let registry = self.series.read();
        let s = registry.slots.get(id as usize)?;
        Some((s.namespace.clone(), self.labels(s)))
    }

    /// The references of the series out of the head.
    pub fn cold_refs(&self) -> RoaringBitmap {
        self.series.read().cold.clone()
    }

    /// Every series in the head, in reference order.
    pub fn all(&self) -> Vec<Arc<Series>> {
        self.series.read().slots.iter().cloned().collect()
    }

    /// Number of series in the head.
    pub fn len(&self) -> usize {
        self.hot.load(Ordering::Relaxed)
    }

    /// Series that left the head and series that came back into it, since open.
    pub fn churn(&self) -> (u64, u64) {
        (
            self.evictions.load(Ordering::Relaxed),
            self.revivals.load(Ordering::Relaxed),
        )
    }

    /// Number of series known, in the head or not.
    pub fn known(&self) -> usize {
        self.series.read().slots.len() - self.gone.load(Ordering::Relaxed)
    }

    /// The series of `namespace` matching every matcher, in reference order: those in the
    /// head from its index, and those out of it from `cold`, which is handed the references
    /// out of the head and returns the matching ones among them with their labels (the
    /// engine's pass over the segments' label indexes); the registry stays locked between
    /// the two, so that no series moves in or out of the head unseen. A series out of the
    /// head is given as a detached struct (see [`Series::detached`]).
    pub fn select<E>(
        &self,
        namespace: &Namespace,
        matchers: &[Matcher],
        cold: impl FnOnce(&RoaringBitmap) -> Result<Vec<(SeriesRef, Labels)>, E>,
    ) -> Result<Vec<SeriesHandle>, E> {
        let registry = self.series.read();
        let ids = self.postings.select(namespace, matchers);
        let mut out: Vec<SeriesHandle> = {
            let reader = self.postings.reader();
            ids.iter()
                .filter_map(|id| {
                    let s = registry.slots.get(id as usize)?;
                    Some(SeriesHandle::new(s.clone(), reader.labels(&s.pairs)))
                })
                .collect()
        };
        if registry.cold.is_empty() {
            return Ok(out);
        }
        let found = cold(&registry.cold)?;
        let usage = self.usages.of(namespace);
        for (id, labels) in found {
            if !registry.cold.contains(id) {
                continue;
            }
            let series = Series::detached(id, usage.clone());
            out.push(SeriesHandle::new(Arc::new(series), labels));
        }
        out.sort_by_key(|h| h.series().id);
        Ok(out)
    }

    /// Handles on the series `ids` of `namespace` as they are now, in reference order: those
    /// in the head from the registry, those out of it with their labels from `cold`; a
    /// reference gone meanwhile, or whose labels no segment gives, is left out. A reader of
    /// millions of series selects their references alone ([`Head::with_selection`]) and
    /// takes their handles a batch at a time, so that it holds one batch's labels rather
    /// than every series'. The labels of series out of the head are read after the
    /// registry's lock is let go (they never change, and the segments that hold a series
    /// out of the head stay published until compaction or retention drops it, when it is
    /// left out), so that writers creating series do not wait on a batch's label reads.
    pub fn handles(
        &self,
        namespace: &Namespace,
        ids: &[SeriesRef],
        cold: &dyn ColdLabels,
    ) -> Vec<SeriesHandle> {
        let (mut out, out_of_head) = {
            let registry = self.series.read();
            let reader = self.postings.reader();
            let mut out = Vec::with_capacity(ids.len());
            let mut out_of_head = Vec::new();
            for &id in ids {
                match registry.slots.get(id as usize) {
                    Some(s) => out.push(SeriesHandle::new(s.clone(), reader.labels(&s.pairs))),
                    None if registry.cold.contains(id) => out_of_head.push(id),
                    None => {}
                }
            }
            (out, out_of_head)
        };
        if out_of_head.is_empty() {
            return out;
        }
        let usage = self.usages.of(namespace);
        for id in out_of_head {
            if let Some((ns, labels)) = cold.cold_labels(id)
                && ns == *namespace
            {
                let series = Series::detached(id, usage.clone());
                out.push(SeriesHandle::new(Arc::new(series), labels));
            }
        }
        out.sort_unstable_by_key(|h| h.series().id);
        out
    }

    /// Calls `f` with the series in the head of `namespace` matching every matcher and the
    /// references of the series out of the head, under the registry's lock (as
    /// [`Head::select`] does: no series moves in or out of the head meanwhile).
    pub fn with_selection<R>(
        &self,
        namespace: &Namespace,
        matchers: &[Matcher],
        f: impl FnOnce(&mut dyn Iterator<Item = &Series>, &RoaringBitmap) -> R,
    ) -> R {
        let registry = self.series.read();
        let ids = self.postings.select(namespace, matchers);
        let mut hot = ids
            .iter()
            .filter_map(|id| registry.slots.get(id as usize).map(|s| &**s));
        f(&mut hot, &registry.cold)
    }

    /// Series known per namespace, in the head or not.
    pub fn namespace_counts(&self) -> Vec<(String, u64)> {
        let mut counts: Vec<(String, u64)> = self
            .usages
            .all()
            .iter()
            .map(|u| (u.namespace().to_string(), u.series()))
            .filter(|(_, n)| *n > 0)
            .collect();
        counts.sort();
        counts
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
}

/// What a series in the head costs besides its samples and the index: its struct in its
/// `Arc`, and its pair ids.
fn hot_series_bytes(pairs: &PairIds) -> usize {
    // `allocated(0)` is 0: inline ids cost nothing beyond the struct.
    allocated(std::mem::size_of::<Series>() + ARC_COUNTS) + allocated(pairs.heap_bytes())
}

/// The reference of the series out of the head whose hash is `hash` and whose labels are
/// `namespace` and `labels`, as `cold` (the segments) finds it: searched for only when a
/// series out of the head has that half hash.
fn find_cold(
    registry: &Registry,
    hash: u64,
    namespace: &Namespace,
    labels: &Labels,
    cold: &dyn ColdLabels,
) -> Option<SeriesRef> {
    if !registry.keys.contains(cold_key(hash)) {
        return None;
    }
    cold.find_labels(namespace, labels, &registry.cold)
}

#[cfg(test)]
mod tests;
