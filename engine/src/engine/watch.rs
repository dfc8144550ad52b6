//! Live subscriptions ("live"): a subscriber names a namespace and matchers and receives
//! every newly acknowledged sample of the matching series, in the order the head applies
//! them (per series, the WAL's order — timestamp order for a source that writes forward).
//!
//! Delivery never waits: each subscriber has a bounded queue, filled by the writer inside
//! the series' apply (so that two writes of one series reach it in their apply order), and
//! a subscriber that does not keep up loses what does not fit. What it lost is told in
//! place, as a gap (how many samples, their time span), so it can read that span back with
//! a query and go on; ingest and the other subscribers never slow down for it. Which series
//! a subscriber wants is decided once per series (a bitmap of series checked and the labels
//! of those that match), not per write.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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

impl Lost {
    fn of(samples: &[Sample]) -> Lost {
        let mut lost = Lost {
            samples: 0,
            from: i64::MAX,
            to: i64::MIN,
        };
        lost.add(samples);
        lost
    }

    fn add(&mut self, samples: &[Sample]) {
        self.samples += samples.len() as u64;
        for s in samples {
            self.from = self.from.min(s.t);
            self.to = self.to.max(s.t);
        }
    }
}

struct Queue {
    items: VecDeque<Item>,
    /// Lost since the queue was last full, not yet told.
    lost: Option<Lost>,
}

/// Which series a subscriber wants, decided once per series.
#[derive(Default)]
struct Wanted {
    checked: RoaringBitmap,
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
    wake: Wake,
}

impl Watcher {
    /// Queues one series' samples, or counts them lost when the queue is full; never waits.
    fn deliver(&self, series: SeriesRef, samples: &[Sample], hub: &Hub) {
        {
            let mut q = self.queue.lock();
            if let Some(lost) = q.lost {
                if q.items.len() >= self.capacity {
                    if let Some(l) = q.lost.as_mut() {
                        l.add(samples);
                    }
                    return;
                }
                q.items.push_back(Item::Gap(lost));
                q.lost = None;
                hub.gaps.fetch_add(1, Ordering::Relaxed);
            }
            if q.items.len() >= self.capacity {
                q.lost = Some(Lost::of(samples));
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

/// For each series of a write, the subscribers that want it.
pub(crate) type Targets = Vec<Vec<Arc<Watcher>>>;

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
        let mut out: Targets = vec![Vec::new(); series.len()];
        for w in &watchers {
            let mut wanted = w.wanted.lock();
            for (i, s) in series.iter().enumerate() {
                if s.namespace != w.namespace {
                    continue;
                }
                if wanted.checked.insert(s.id) {
                    let labels = head.labels(s);
                    let matches = w
                        .matchers
                        .iter()
                        .all(|m| m.matches(labels.get(&m.name).unwrap_or_default()));
                    if matches {
                        wanted.labels.insert(s.id, labels);
                    }
                }
                if wanted.labels.contains_key(&s.id)
                    && let Some(t) = out.get_mut(i)
                {
                    t.push(w.clone());
                }
            }
        }
        out
    }

    /// Delivers one series' applied samples to the subscribers that want it.
    pub fn deliver(&self, to: &[Arc<Watcher>], series: SeriesRef, samples: &[Sample]) {
        for w in to {
            w.deliver(series, samples, self);
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
                lost: None,
            }),
            wake,
        });
        hub.add(watcher.clone());
        Subscription { hub, watcher }
    }

    /// The next event, if one is queued. A loss still untold when the queue runs empty is
    /// told now.
    pub fn try_recv(&self) -> Option<WatchEvent> {
        let item = {
            let mut q = self.watcher.queue.lock();
            match q.items.pop_front() {
                Some(item) => item,
                None => {
                    let lost = q.lost.take()?;
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
