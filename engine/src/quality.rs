//! Data quality at ingest ("correct, clean"): the catalog's rules compiled per indicator and
//! checked on every sample of a write, the policy that decides (reject, flag, off), and the
//! record of what was rejected or flagged — counters per namespace, metric, rule and action,
//! and the latest events — kept durable in the `QUALITY` journal so that it survives a
//! restart.
//!
//! The check costs nothing for an indicator without declared rules (one flag, read once per
//! write) and one map lookup per series of a write otherwise.
//!
//! May use: `model`, `metadata`, `fs`, `textfile`, errors.

mod arrivals;
mod journal;
mod rules;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::fs::Vfs;
use crate::metadata::MetadataStore;
use crate::model::{QualityAction, QualityCount, QualityEvent, QualityPolicy, QualityRule};

pub use arrivals::DelayFigures;
pub(crate) use arrivals::{ArrivalBatch, Arrivals};
pub(crate) use rules::{Checker, Violation};

/// Events kept for listing (older ones survive only in the counters).
pub const MAX_EVENTS: usize = 10_000;

/// What a report lists.
#[derive(Debug, Clone, Default)]
pub struct QualityFilter {
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only this metric.
    pub metric: Option<String>,
    /// Only events that arrived at or after this time (ms).
    pub since_ms: Option<i64>,
    /// At most this many events, the newest (0: none).
    pub limit: usize,
}

/// Counters and the newest events that match a [`QualityFilter`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QualityReport {
    /// Samples by namespace, metric, rule and action, since the store was created.
    pub counts: Vec<QualityCount>,
    /// The newest matching events, oldest first.
    pub events: Vec<QualityEvent>,
}

/// The checkers in force, by namespace and metric.
type Checkers = HashMap<String, HashMap<String, Arc<Checker>>>;

/// Finds the checker of each series of a write, remembering the last one found: a request
/// usually carries many series of one metric in a row, and a string comparison is cheaper
/// than a hash.
pub(crate) struct Lookup {
    checkers: Option<Arc<Checkers>>,
    last: Option<(String, String, Option<Arc<Checker>>)>,
}

impl Lookup {
    /// The checker of `metric` in `namespace`, if its indicator has rules in force.
    pub fn get(&mut self, namespace: &str, metric: &str) -> Option<&Arc<Checker>> {
        let checkers = self.checkers.as_ref()?;
        let hit = self
            .last
            .as_ref()
            .is_some_and(|(n, m, _)| m == metric && n == namespace);
        if !hit {
            let found = checkers.get(namespace).and_then(|c| c.get(metric)).cloned();
            self.last = Some((namespace.to_owned(), metric.to_owned(), found));
        }
        self.last.as_ref().and_then(|(_, _, c)| c.as_ref())
    }
}

/// Events of one key (namespace, metric, rule, action) one write lists in full; the rest are
/// only counted, so that a flood of bad samples costs a counter, not a journal line each.
pub const LISTED_PER_WRITE: u64 = 10;

/// One write's data-quality events: the first [`LISTED_PER_WRITE`] of each key in full,
/// the others counted.
#[derive(Debug, Default)]
pub(crate) struct WriteEvents {
    listed: Vec<QualityEvent>,
    tally: Vec<Tally>,
}

/// One key's events in one write.
#[derive(Debug)]
struct Tally {
    key: CountKey,
    /// Events listed in full.
    listed: u64,
    /// Samples counted without an event.
    unlisted: u64,
}

impl WriteEvents {
    /// Counts `samples` samples of a key; true when the event is to be listed (the caller
    /// then builds it and calls [`WriteEvents::list`]).
    pub fn count(
        &mut self,
        namespace: &str,
        metric: &str,
        rule: QualityRule,
        action: QualityAction,
        samples: u64,
    ) -> bool {
        let found = self.tally.iter_mut().find(|t| {
            let (n, m, r, a) = &t.key;
            *r == rule && *a == action && m == metric && n == namespace
        });
        match found {
            Some(t) if t.listed >= LISTED_PER_WRITE => {
                t.unlisted += samples;
                false
            }
            Some(t) => {
                t.listed += 1;
                true
            }
            None => {
                self.tally.push(Tally {
                    key: (namespace.to_owned(), metric.to_owned(), rule, action),
                    listed: 1,
                    unlisted: 0,
                });
                true
            }
        }
    }

    /// Lists an event [`WriteEvents::count`] said to list.
    pub fn list(&mut self, event: QualityEvent) {
        self.listed.push(event);
    }

    fn is_empty(&self) -> bool {
        self.tally.is_empty()
    }
}

/// Key of a counter: namespace, metric, rule, action.
pub(crate) type CountKey = (String, String, QualityRule, QualityAction);

/// The engine's data-quality state.
#[derive(Debug)]
pub(crate) struct Quality {
    /// False while no indicator has a rule in force: the write path then skips everything.
    active: AtomicBool,
    checkers: RwLock<Arc<Checkers>>,
    /// Each namespace's policy for indicators that declare none.
    policies: Mutex<BTreeMap<String, QualityPolicy>>,
    log: Mutex<Log>,
    arrivals: Mutex<Arrivals>,
    /// Whether writes record their arrival delays (`Options::record_arrivals`).
    record_arrivals: bool,
}

#[derive(Debug)]
struct Log {
    counts: BTreeMap<CountKey, u64>,
    events: VecDeque<QualityEvent>,
    journal: journal::Journal,
}

impl Quality {
    /// Opens the journal of `dir` (a damaged line is reported and skipped: the journal is a
    /// report, never a reason to refuse to start), takes the arrival delays the engine
    /// loaded ([`Arrivals::load`]), and compiles the catalog's rules.
    pub fn open(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        sync: bool,
        record_arrivals: bool,
        arrivals: Arrivals,
        catalog: &MetadataStore,
    ) -> crate::Result<Quality> {
        let loaded = journal::load(&*vfs, dir)?;
        let mut counts = BTreeMap::new();
        for c in loaded.counts {
            *counts
                .entry((c.namespace, c.metric, c.rule, c.action))
                .or_insert(0) += c.samples;
        }
        let mut events: VecDeque<QualityEvent> = loaded.events.into();
        while events.len() > MAX_EVENTS {
            events.pop_front();
        }
        let journal = journal::Journal::rewrite(vfs, dir, sync, &counts, &events)?;
        let quality = Quality {
            active: AtomicBool::new(false),
            checkers: RwLock::new(Arc::default()),
            policies: Mutex::new(BTreeMap::new()),
            log: Mutex::new(Log {
                counts,
                events,
                journal,
            }),
            arrivals: Mutex::new(arrivals),
            record_arrivals,
        };
        quality.compile(catalog);
        Ok(quality)
    }

    /// Compiles the catalog's rules under the namespaces' policies; called whenever either
    /// changes.
    pub fn compile(&self, catalog: &MetadataStore) {
        let policies = self.policies.lock();
        let mut checkers: Checkers = HashMap::new();
        for ((namespace, metric), entry) in &catalog.0 {
            let policy = entry
                .rules
                .policy
                .or_else(|| policies.get(namespace).copied())
                .unwrap_or_default();
            if let Some(checker) = Checker::compile(entry, policy) {
                checkers
                    .entry(namespace.clone())
                    .or_default()
                    .insert(metric.clone(), Arc::new(checker));
            }
        }
        self.active.store(!checkers.is_empty(), Ordering::Release);
        *self.checkers.write() = Arc::new(checkers);
    }

    /// Replaces the namespaces' policies (then [`Quality::compile`] must run).
    pub fn set_policies(&self, policies: BTreeMap<String, QualityPolicy>) {
        *self.policies.lock() = policies;
    }

    /// The checkers in force for one write (nothing to look up when no indicator has rules,
    /// the common case).
    pub fn lookup(&self) -> Lookup {
        Lookup {
            checkers: self
                .active
                .load(Ordering::Acquire)
                .then(|| self.checkers.read().clone()),
            last: None,
        }
    }

    /// Whether writes record arrival delays.
    pub fn records_arrivals(&self) -> bool {
        self.record_arrivals
    }

    /// Counts and journals the events of one acknowledged write, and adds its arrival
    /// delays. A journal that cannot be written is logged, not raised: the samples are
    /// stored, and the counters in memory stay right until the next start.
    pub fn record(&self, events: WriteEvents, arrivals: ArrivalBatch) {
        if !arrivals.is_empty() {
            self.arrivals.lock().merge(arrivals);
        }
        if events.is_empty() {
            return;
        }
        let unlisted: Vec<QualityCount> = events
            .tally
            .into_iter()
            .filter(|t| t.unlisted > 0)
            .map(|t| {
                let (namespace, metric, rule, action) = t.key;
                QualityCount {
                    namespace,
                    metric,
                    rule,
                    action,
                    samples: t.unlisted,
                }
            })
            .collect();
        let events = events.listed;
        let mut log = self.log.lock();
        let Log {
            counts,
            events: kept,
            journal,
        } = &mut *log;
        if let Err(e) = journal.append(&events, &unlisted) {
            tracing::error!(error = %e, "the data-quality journal could not be written; its counters will be short after a restart");
        }
        for c in unlisted {
            *counts
                .entry((c.namespace, c.metric, c.rule, c.action))
                .or_insert(0) += c.samples;
        }
        for e in events {
            *counts
                .entry((e.namespace.clone(), e.metric.clone(), e.rule, e.action))
                .or_insert(0) += e.samples;
            kept.push_back(e);
        }
        while kept.len() > MAX_EVENTS {
            kept.pop_front();
        }
        if journal.too_long() {
            let rewritten = journal.rewrite_in_place(counts, kept);
            if let Err(e) = rewritten {
                tracing::error!(error = %e, "the data-quality journal could not be compacted");
            }
        }
    }

    /// Delay percentiles per metric of a namespace over the hours `[start, end)` touches.
    pub fn delays(
        &self,
        namespace: &str,
        metric: Option<&str>,
        start: i64,
        end: i64,
    ) -> Vec<DelayFigures> {
        self.arrivals.lock().figures(namespace, metric, start, end)
    }

    /// Stores the arrival delays (at a flush and at close), first dropping the hours
    /// `cutoff` says are past retention.
    pub fn store_arrivals(
        &self,
        vfs: &dyn Vfs,
        dir: &Path,
        cutoff: impl Fn(&str) -> i64,
    ) -> crate::Result<()> {
        let mut arrivals = self.arrivals.lock();
        arrivals.prune(cutoff);
        arrivals.store(vfs, dir)
    }

    /// Writes the journal and the arrival delays into `dir` as they stand (a snapshot).
    pub fn copy_to(&self, vfs: &dyn Vfs, dir: &Path) -> crate::Result<()> {
        {
            let log = self.log.lock();
            journal::write_new(vfs, dir, &log.counts, &log.events)?;
        }
        self.arrivals.lock().write_to(vfs, dir)
    }

    /// The counters and newest events that match `filter`.
    pub fn report(&self, filter: &QualityFilter) -> QualityReport {
        let log = self.log.lock();
        let wanted = |ns: &str, metric: &str| {
            filter.namespace.as_deref().is_none_or(|n| n == ns)
                && filter.metric.as_deref().is_none_or(|m| m == metric)
        };
        let counts = log
            .counts
            .iter()
            .filter(|((ns, metric, _, _), _)| wanted(ns, metric))
            .map(
                |((namespace, metric, rule, action), &samples)| QualityCount {
                    namespace: namespace.clone(),
                    metric: metric.clone(),
                    rule: *rule,
                    action: *action,
                    samples,
                },
            )
            .collect();
        let mut events: Vec<QualityEvent> = log
            .events
            .iter()
            .rev()
            .filter(|e| wanted(&e.namespace, &e.metric))
            .filter(|e| filter.since_ms.is_none_or(|s| e.arrival_ms >= s))
            .take(filter.limit)
            .cloned()
            .collect();
        events.reverse();
        QualityReport { counts, events }
    }
}

#[cfg(test)]
mod tests;
