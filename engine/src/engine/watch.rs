//! Live subscriptions ("live"): a subscriber names a namespace and matchers and receives
//! every newly acknowledged sample of the matching series, in the order the head applies
//! them (per series, the WAL's order — timestamp order for a source that writes forward).
//!
//! Delivery never waits: each subscriber has a bounded queue, filled by the writer inside
//! the series' apply (so that two writes of one series reach it in their apply order), and
//! a subscriber that does not keep up loses what does not fit. What it lost is told in
//! place, as a gap (how many samples, their time span), so it can read that span back with
//! a query and go on; ingest and the other subscribers never slow down for it: once its
//! queue is full, writers only add to its loss counters (atomics, no lock) until it drains.
//! Which series a subscriber wants is decided once per series (bitmaps of the series checked
//! and of those that match), not per write.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};
use roaring::RoaringBitmap;

use crate::head::{Head, Series, SeriesRef};
use crate::index::Matcher;
use crate::model::{Labels, Namespace, Sample};

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// Newly acknowledged samples of one series.
    Samples {
        /// The series.
        labels: Labels,
        /// Its samples, in apply order.
        samples: Vec<Sample>,
    },
    /// Samples this subscriber lost because it did not keep up: read `[from, to]` back with
    /// a query to resynchronise.
    Gap {
        /// Samples lost.
        lost: u64,
        /// The earliest timestamp among them.
        from: i64,
        /// The latest.
        to: i64,
    },
}

/// Called when a subscriber's queue has something new (the server wakes its stream with it).
pub type Wake = Arc<dyn Fn() + Send + Sync>;

enum Item {
    Samples(SeriesRef, Vec<Sample>),
    Gap(Lost),
}

#[derive(Debug, Clone, Copy)]
struct Lost {
    samples: u64,
    from: i64,
    to: i64,
}

struct Queue {
    items: VecDeque<Item>,
}

/// What a full queue lost, counted without its lock.
struct Losses {
    /// Set when the queue is full; cleared by the reader once there is room again.
    full: AtomicBool,
    samples: AtomicU64,
    from: AtomicI64,
    to: AtomicI64,
}

impl Lost {
    fn add(&mut self, samples: &[Sample]) {
        self.samples += samples.len() as u64;
        for s in samples {
            self.from = self.from.min(s.t);
            self.to = self.to.max(s.t);
        }
    }
}

impl Losses {
    /// Adds one write's losses (writers gather them and add once per write: these atomics
    /// are shared by every writer).
    fn add(&self, lost: &Lost) {
        self.from.fetch_min(lost.from, Ordering::Relaxed);
        self.to.fetch_max(lost.to, Ordering::Relaxed);
        self.samples.fetch_add(lost.samples, Ordering::Release);
    }

    /// What was lost since the last call, if anything.
    fn take(&self) -> Option<Lost> {
        let samples = self.samples.swap(0, Ordering::Acquire);
        let from = self.from.swap(i64::MAX, Ordering::Relaxed);
        let to = self.to.swap(i64::MIN, Ordering::Relaxed);
        (samples > 0).then_some(Lost { samples, from, to })
    }
}

/// Which series a subscriber wants, decided once per series.
#[derive(Default)]
struct Wanted {
    checked: RoaringBitmap,
    matching: RoaringBitmap,
    labels: HashMap<SeriesRef, Labels>,
}

/// One subscriber.
pub(crate) struct Watcher {
    id: u64,
    namespace: Namespace,
    matchers: Vec<Matcher>,
    capacity: usize,
    wanted: Mutex<Wanted>,
    queue: Mutex<Queue>,
    losses: Losses,
    wake: Wake,
}

impl Watcher {
    /// Queues one series' samples, or counts them in `lost` (this write's losses for this
    /// subscriber) when the queue is full; never waits.
    fn deliver(&self, series: SeriesRef, samples: &[Sample], hub: &Hub, lost: &mut Lost) {
        if self.losses.full.load(Ordering::Acquire) {
            lost.add(samples);
            return;
        }
        {
            let mut q = self.queue.lock();
            if q.items.len() >= self.capacity {
                self.losses.full.store(true, Ordering::Release);
                lost.add(samples);
                return;
            }
            q.items.push_back(Item::Samples(series, samples.to_vec()));
        }
        hub.delivered
            .fetch_add(samples.len() as u64, Ordering::Relaxed);
        (self.wake)();
    }
}

/// Every subscriber of the engine.
#[derive(Default)]
pub(crate) struct Hub {
    watchers: RwLock<Vec<Arc<Watcher>>>,
    count: AtomicUsize,
    next_id: AtomicU64,
    gaps: AtomicU64,
    delivered: AtomicU64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hub({} subscribers)", self.count.load(Ordering::Relaxed))
    }
}

/// Who wants which series of a write: the subscribers, and (series index in the write,
/// subscriber index) pairs in series order.
pub(crate) struct Targets {
    watchers: Vec<Arc<Watcher>>,
    /// (series of the write, subscriber), sorted.
    pairs: Vec<(u32, u32)>,
    /// This write's losses, per subscriber, added to theirs at the end.
    lost: Vec<Lost>,
}

impl Drop for Targets {
    fn drop(&mut self) {
        for (w, lost) in self.watchers.iter().zip(&self.lost) {
            if lost.samples > 0 {
                w.losses.add(lost);
            }
        }
    }
}

impl Hub {
    /// Whether anyone subscribes (the write path skips everything when not).
    pub fn active(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    /// Subscribers, gap notices queued, samples queued — for `Stats`.
    pub fn figures(&self) -> (u64, u64, u64) {
        (
            self.count.load(Ordering::Relaxed) as u64,
            self.gaps.load(Ordering::Relaxed),
            self.delivered.load(Ordering::Relaxed),
        )
    }

    fn add(&self, watcher: Arc<Watcher>) {
        self.watchers.write().push(watcher);
        self.count.fetch_add(1, Ordering::Release);
    }

    fn remove(&self, id: u64) {
        let mut w = self.watchers.write();
        let before = w.len();
        w.retain(|x| x.id != id);
        if w.len() < before {
            self.count.fetch_sub(1, Ordering::Release);
        }
    }

    /// Who wants each series of `batch` (decided once per series and subscriber, with the
    /// series' labels kept for the subscriber).
    pub fn targets<'a>(
        &self,
        head: &Head,
        batch: impl Iterator<Item = &'a Arc<Series>>,
    ) -> Targets {
        let watchers = self.watchers.read().clone();
        let series: Vec<&Arc<Series>> = batch.collect();
        let mut pairs = Vec::new();
        for (wi, w) in watchers.iter().enumerate() {
            let mut wanted = w.wanted.lock();
            for (i, s) in series.iter().enumerate() {
                if s.namespace != w.namespace {
                    continue;
                }
                if wanted.matching.contains(s.id) {
                    pairs.push((i as u32, wi as u32));
                    continue;
                }
                if wanted.checked.insert(s.id) {
                    let labels = head.labels(s);
                    let matches = w
                        .matchers
                        .iter()
                        .all(|m| m.matches(labels.get(&m.name).unwrap_or_default()));
                    if matches {
                        wanted.matching.insert(s.id);
                        wanted.labels.insert(s.id, labels);
                        pairs.push((i as u32, wi as u32));
                    }
                }
            }
        }
        pairs.sort_unstable();
        let none = Lost {
            samples: 0,
            from: i64::MAX,
            to: i64::MIN,
        };
        Targets {
            lost: vec![none; watchers.len()],
            watchers,
            pairs,
        }
    }

    /// Delivers the applied samples of series `index` of the write to the subscribers that
    /// want it (series may come in any order: a write applies first those whose turn has
    /// come).
    pub fn deliver(&self, to: &mut Targets, index: usize, series: SeriesRef, samples: &[Sample]) {
        let first = to.pairs.partition_point(|&(i, _)| (i as usize) < index);
        for &(i, w) in to.pairs.get(first..).unwrap_or_default() {
            if i as usize != index {
                break;
            }
            if let (Some(watcher), Some(lost)) =
                (to.watchers.get(w as usize), to.lost.get_mut(w as usize))
            {
                watcher.deliver(series, samples, self, lost);
            }
        }
    }
}

/// A live subscription; dropping it ends it and frees its queue.
pub struct Subscription {
    hub: Arc<Hub>,
    watcher: Arc<Watcher>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Subscription({})", self.watcher.id)
    }
}

impl Subscription {
    pub(crate) fn new(
        hub: Arc<Hub>,
        namespace: Namespace,
        matchers: Vec<Matcher>,
        capacity: usize,
        wake: Wake,
    ) -> Subscription {
        let watcher = Arc::new(Watcher {
            id: hub.next_id.fetch_add(1, Ordering::Relaxed),
            namespace,
            matchers,
            capacity: capacity.max(1),
            wanted: Mutex::new(Wanted::default()),
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
            }),
            losses: Losses {
                full: AtomicBool::new(false),
                samples: AtomicU64::new(0),
                from: AtomicI64::new(i64::MAX),
                to: AtomicI64::new(i64::MIN),
            },
            wake,
        });
        hub.add(watcher.clone());
        Subscription { hub, watcher }
    }

    /// The next event, if one is queued. Once a full queue is read empty, what it lost
    /// meanwhile is told, and delivery resumes.
    pub fn try_recv(&self) -> Option<WatchEvent> {
        let item = {
            let mut q = self.watcher.queue.lock();
            match q.items.pop_front() {
                Some(item) => item,
                None => {
                    // Delivery resumes; a writer that saw the queue full a moment ago may
                    // still add to the losses after this take: the next empty read tells
                    // it (a gap names a span to read back, not a position in the stream).
                    let losses = &self.watcher.losses;
                    losses.full.store(false, Ordering::Release);
                    let lost = losses.take()?;
                    self.hub.gaps.fetch_add(1, Ordering::Relaxed);
                    Item::Gap(lost)
                }
            }
        };
        Some(match item {
            Item::Gap(l) => WatchEvent::Gap {
                lost: l.samples,
                from: l.from,
                to: l.to,
            },
            Item::Samples(id, samples) => WatchEvent::Samples {
                labels: self
                    .watcher
                    .wanted
                    .lock()
                    .labels
                    .get(&id)
                    .cloned()
                    .unwrap_or_default(),
                samples,
            },
        })
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(self.watcher.id);
    }
}
