//! Writing: validate, resolve series, append to the WAL, wait for durability, apply to the
//! head, acknowledge.
//!
//! Writers that send the same series again and again (a camera every 10 s) can resolve a
//! series once ([`Engine::resolve`], [`Engine::resolve_raw`]) and then name it by its
//! [`SeriesHandle`] ([`SeriesBy::Handle`]), skipping the look-up by labels, like a
//! Prometheus appender's series reference; the gRPC stream does so for its stream-scoped
//! series ids. Series by labels and by handle go through one path ([`Engine::write_raw`]).

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Engine;
use crate::head::{Delta, Head, NamespaceUsage, Series, SeriesHandle, Shaping, UsageTally};
use crate::model::{
    Label, Labels, Namespace, QualityAction, QualityEvent, QualityPolicy, RawLabel, RejectReason,
    Rejection, Sample, WriteOutcome, WriteRequest, raw_labels, shorten,
};
use crate::quality::{ArrivalBatch, Checker, Quality, Violation, WriteEvents};
use crate::scratch::recycle;
use crate::wal::record::{self, SeriesDefRef};
use crate::{Error, Limit, Result};

/// A batch whose labels are still the request's bytes ([`RawLabel`]): what the front doors
/// that read their messages in place hand the engine, so that a known series costs a lookup
/// by those bytes and nothing else (see `model/raw_labels.rs`).
#[derive(Debug, Clone, Default)]
pub struct RawWriteRequest<'a> {
    /// The namespace; empty means [`crate::DEFAULT_NAMESPACE`].
    pub namespace: &'a str,
    /// The series and their samples (a slice, so that a front door keeps its array for
    /// its next request).
    pub series: &'a [RawSeriesWrite<'a>],
}

/// The samples of one series in a [`RawWriteRequest`].
#[derive(Debug, Clone)]
pub struct RawSeriesWrite<'a> {
    /// Which series.
    pub by: SeriesBy<'a>,
    /// The samples, as in [`crate::SeriesWrite::samples`]: borrowed where the front door holds a
    /// request's samples in one array (no allocation per series), or owned.
    pub samples: Cow<'a, [Sample]>,
}

/// How a [`RawSeriesWrite`] names its series. One write mixes them freely: a stream's
/// message names some series by the ids the stream gave them and others by labels, and is
/// written as one batch either way.
#[derive(Debug, Clone)]
pub enum SeriesBy<'a> {
    /// By its labels as sent, in any order.
    Labels(&'a [RawLabel<'a>]),
    /// By the handle of a series the writer resolved before ([`Engine::resolve_raw`],
    /// a stream's series by its id): no look-up. Written in the series' own namespace,
    /// which may differ from the request's.
    Handle(&'a SeriesHandle),
    /// Refused by the front door before the engine (a stream id the stream never named):
    /// reported and counted with the write's other rejections, at its place.
    Refused(RejectReason),
}

/// A batch's samples by series, as [`Admitted`] keeps them.
type Batch<'a> = Vec<(Arc<Series>, Cow<'a, [Sample]>)>;

/// The arrays a write fills, kept for later writes (see `scratch.rs`).
#[derive(Debug, Default)]
pub(crate) struct WriteBuffers {
    /// The series found by their labels, one per entry (empty between writes).
    known: Vec<Option<Arc<Series>>>,
    /// [`Admitted::batch`]'s memory (empty between writes).
    batch: Batch<'static>,
    /// Each series' place in its apply order.
    places: Vec<u64>,
    /// The entries whose turn to apply had not come on the first pass.
    later: Vec<usize>,
    /// The samples record, framed.
    frames: Vec<u8>,
}

impl WriteBuffers {
    /// Whether these are worth keeping for the next write: not those of a huge one.
    pub(crate) fn worth_keeping(&self) -> bool {
        const MAX_SERIES: usize = 100_000;
        self.known.capacity() <= MAX_SERIES
            && self.batch.capacity() <= MAX_SERIES
            && self.places.capacity() <= MAX_SERIES
            && self.frames.capacity() <= 16 << 20
    }
}

/// The accepted timestamp window at the time of a write.
struct Window {
    min_t: i64,
    max_t: i64,
}

impl Engine {
    /// Stores a batch. Bad series and samples are rejected one by one, with reasons, and the
    /// good ones beside them are stored. When this returns `Ok`, the accepted samples are
    /// durable (under the configured fsync policy) and visible to every later query.
    ///
    /// Errors (nothing of the batch stored): [`Error::ResourceExhausted`] when the head's
    /// memory budget or the disk is full, [`Error::WritesStopped`] after a failed fsync,
    /// [`Error::Closed`].
    pub fn write(&self, req: WriteRequest) -> Result<WriteOutcome> {
        self.write_owned(req, true)
    }

    /// [`Engine::write`] for history being uploaded (an import, a backfill): the samples'
    /// arrival says nothing about their sources' liveness, so their delays are not recorded
    /// (the completeness report's delay percentiles stay those of live data).
    pub fn write_backfill(&self, req: WriteRequest) -> Result<WriteOutcome> {
        self.write_owned(req, false)
    }

    /// [`Engine::write`] of a batch whose labels are still the request's bytes: a series the
    /// head knows is found by them without decoding, validating or allocating anything; only
    /// a new (or malformed) one is decoded and validated. A label that is not UTF-8 rejects
    /// its series alone.
    pub fn write_raw(&self, req: RawWriteRequest<'_>) -> Result<WriteOutcome> {
        self.write_as(req, true)
    }

    /// [`Engine::write_raw`] for history being uploaded (see [`Engine::write_backfill`]).
    pub fn write_raw_backfill(&self, req: RawWriteRequest<'_>) -> Result<WriteOutcome> {
        self.write_as(req, false)
    }

    fn write_owned(&self, req: WriteRequest, live: bool) -> Result<WriteOutcome> {
        // Every series' labels in one array, each series a slice of it.
        let raw: Vec<RawLabel<'_>> = req
            .series
            .iter()
            .flat_map(|s| &s.labels)
            .map(|l| RawLabel::new(l.name.as_bytes(), l.value.as_bytes()))
            .collect();
        let mut rest = raw.as_slice();
        let series: Vec<RawSeriesWrite<'_>> = req
            .series
            .iter()
            .map(|s| {
                let (mine, others) = rest.split_at(s.labels.len().min(rest.len()));
                rest = others;
                RawSeriesWrite {
                    by: SeriesBy::Labels(mine),
                    samples: Cow::Borrowed(&s.samples),
                }
            })
            .collect();
        let req = RawWriteRequest {
            namespace: &req.namespace,
            series: &series,
        };
        self.write_as(req, live)
    }

    fn write_as(&self, req: RawWriteRequest<'_>, live: bool) -> Result<WriteOutcome> {
        self.inner
            .write_buffers
            .with(|buffers| self.write_raw_with(req, live, buffers))
    }

    fn write_raw_with<'a>(
        &self,
        req: RawWriteRequest<'a>,
        live: bool,
        buffers: &mut WriteBuffers,
    ) -> Result<WriteOutcome> {
        let _span = tracing::debug_span!(
            "write",
            namespace = %crate::model::echo(req.namespace),
            series = req.series.len()
        )
        .entered();
        self.check_writable()?;
        let mut outcome = WriteOutcome::default();
        let namespace = match Namespace::new(req.namespace) {
            Ok(ns) => self.inner.head.usages().interned(&ns).unwrap_or(ns),
            Err(detail) => {
                for (i, s) in req.series.iter().enumerate() {
                    let reason = RejectReason::InvalidNamespace {
                        detail: detail.clone(),
                    };
                    outcome.rejected.push(Rejection {
                        series_index: i,
                        sample_index: None,
                        samples: s.samples.len(),
                        reason,
                    });
                }
                self.count_rejections(&outcome);
                return Ok(outcome);
            }
        };
        let now = self.inner.opts.clock.now_ms();
        let window = self.window_at(namespace.as_str(), now);
        let mut checkers = self.inner.quality.lookup();
        let mut admitted = Admitted::new(buffers, req.series.len(), now, &self.inner.quality);
        admitted.record_arrivals &= live;
        let (limits, mut shaping) = (&self.inner.opts.limits, Shaping::default());
        // Known series first, under locks taken once for the whole batch (`Head::finder`);
        // the rest after, since creating a series takes them exclusively.
        let mut known = std::mem::take(&mut buffers.known);
        {
            let finder = self.inner.head.finder();
            for w in req.series {
                let found = match &w.by {
                    SeriesBy::Labels(labels) => {
                        let previous = known.last().and_then(Option::as_deref);
                        finder.find_raw(previous, &namespace, labels, limits, &mut shaping)
                    }
                    SeriesBy::Handle(handle) => Some(handle.series().clone()),
                    SeriesBy::Refused(_) => None,
                };
                known.push(found);
            }
        }
        for (i, (write, known)) in req.series.iter().zip(known.drain(..)).enumerate() {
            let resolved = match (known, &write.by) {
                (_, SeriesBy::Refused(reason)) => Err(reason.clone()),
                // A reader's handle of a series out of the head: writing brings the series
                // back (a known series, so no limit applies).
                (_, SeriesBy::Handle(handle)) if handle.series().detached => self
                    .inner
                    .head
                    .get_or_create(
                        &handle.series().namespace,
                        handle.labels(),
                        None,
                        &*self.inner,
                    )
                    .map(|series| (series, None)),
                (_, SeriesBy::Handle(handle)) => Ok((handle.series().clone(), None)),
                (Some(series), SeriesBy::Labels(_)) => Ok((series, None)),
                (None, SeriesBy::Labels(labels)) => raw_labels::to_labels(labels)
                    .and_then(|labels| self.resolve_in(&namespace, labels))
                    .map(|(series, labels)| (series, Some(labels))),
            };
            let (series, labels) = match resolved {
                Ok(resolved) => resolved,
                Err(reason) => {
                    outcome.rejected.push(Rejection {
                        series_index: i,
                        sample_index: None,
                        samples: write.samples.len(),
                        reason,
                    });
                    continue;
                }
            };
            let metric = match (&labels, &write.by) {
                (Some(labels), _) => labels.metric_name(),
                (None, SeriesBy::Handle(handle)) => handle.labels().metric_name(),
                (None, SeriesBy::Labels(labels)) => raw_labels::metric_name(labels),
                (None, SeriesBy::Refused(_)) => "",
            };
            let checker = checkers.get(series.namespace.as_str(), metric);
            // The quality rules read the labels in full: a series found by its bytes has
            // them rebuilt from the head, and only then.
            let rebuilt;
            let labels = match (&labels, &write.by, checker) {
                (Some(labels), _, _) => Some(labels),
                (None, SeriesBy::Handle(handle), Some(_)) => Some(handle.labels()),
                (None, _, Some(_)) => {
                    rebuilt = self.inner.head.labels(&series);
                    Some(&rebuilt)
                }
                (None, _, None) => None,
            };
            let rules = checker.zip(labels);
            // A series by handle keeps its own namespace's window.
            let elsewhere;
            let window = if series.namespace == namespace {
                &window
            } else {
                elsewhere = self.window_at(series.namespace.as_str(), now);
                &elsewhere
            };
            admitted.admit(
                window,
                metric,
                rules,
                i,
                series,
                Cow::Borrowed(write.samples.as_ref()),
                &mut outcome,
            );
        }
        buffers.known = known;
        self.commit(admitted, outcome, buffers)
    }

    /// [`Engine::resolve`] for labels off the wire (see [`Engine::write_raw`]).
    pub fn resolve_raw(
        &self,
        namespace: &str,
        labels: &[RawLabel<'_>],
    ) -> std::result::Result<SeriesHandle, RejectReason> {
        let namespace = Namespace::new(namespace)
            .map_err(|detail| RejectReason::InvalidNamespace { detail })?;
        let known = {
            let finder = self.inner.head.finder();
            let limits = &self.inner.opts.limits;
            finder
                .find_raw(None, &namespace, labels, limits, &mut Shaping::default())
                .map(|series| (finder.labels(&series), series))
        };
        let (labels, series) = match known {
            Some(found) => found,
            None => {
                let (series, labels) =
                    self.resolve_in(&namespace, raw_labels::to_labels(labels)?)?;
                (labels, series)
            }
        };
        Ok(SeriesHandle::new(series, labels))
    }

    /// Validates labels and finds or creates the series, to write by its handle
    /// ([`SeriesBy::Handle`]).
    pub fn resolve(
        &self,
        namespace: &str,
        labels: Vec<Label>,
    ) -> std::result::Result<SeriesHandle, RejectReason> {
        let namespace = Namespace::new(namespace)
            .map_err(|detail| RejectReason::InvalidNamespace { detail })?;
        let (series, labels) = self.resolve_in(&namespace, labels)?;
        Ok(SeriesHandle::new(series, labels))
    }

    /// Validates labels and finds or creates the series; returns it with its labels.
    fn resolve_in(
        &self,
        namespace: &Namespace,
        labels: Vec<Label>,
    ) -> std::result::Result<(Arc<Series>, Labels), RejectReason> {
        let limits = &self.inner.opts.limits;
        let labels = Labels::validate(labels, limits)?;
        let mut max = limits.max_series_per_namespace;
        if self.inner.has_series_limits.load(Ordering::Acquire)
            && let Some(m) = self.inner.series_limits.read().get(namespace.as_str())
        {
            max = m;
        }
        let series = self
            .inner
            .head
            .get_or_create(namespace, &labels, Some(max), &*self.inner)?;
        Ok((series, labels))
    }

    fn check_writable(&self) -> Result<()> {
        let inner = &*self.inner;
        inner.check_open()?;
        if let Some(e) = inner.wal.failure().filter(|e| !e.is_disk_full()) {
            return Err(e);
        }
        let budget = inner.opts.head_memory_budget;
        let used = inner.head_memory_bytes() as usize;
        if used >= budget {
            return Err(Error::ResourceExhausted {
                limit: Limit::HeadMemoryBudget,
                detail: format!(
                    "the head holds {used} bytes, its budget is {budget}; flush, or retry later"
                ),
            });
        }
        Ok(())
    }

    fn window_at(&self, namespace: &str, now: i64) -> Window {
        let opts = &self.inner.opts;
        Window {
            max_t: now.saturating_add(opts.limits.max_future.as_millis() as i64),
            min_t: opts.retention_cutoff(namespace, now),
        }
    }

    fn count_rejections(&self, outcome: &WriteOutcome) {
        for r in &outcome.rejected {
            if let Some(counter) = self.inner.rejections.get(r.reason.index()) {
                counter.fetch_add(r.samples as u64, Ordering::Relaxed);
            }
        }
    }

    /// WAL append, durability, head apply; then the write's data-quality events are
    /// recorded (only for a write that is acknowledged: a failed one is sent again).
    fn commit(
        &self,
        admitted: Admitted<'_>,
        mut outcome: WriteOutcome,
        buffers: &mut WriteBuffers,
    ) -> Result<WriteOutcome> {
        let inner = &*self.inner;
        let Admitted {
            batch,
            deferred,
            deferred_checkers,
            mut events,
            arrivals,
            arrival_ms,
            ..
        } = admitted;
        self.count_rejections(&outcome);
        if batch.is_empty() {
            inner.quality.record(events, arrivals);
            return Ok(outcome);
        }
        check_head_shares(&batch)?;
        let frames = &mut buffers.frames;
        record::samples_frame_into(frames, batch.iter().map(|(s, v)| (s.id, v.as_ref())));

        let _gate = inner.gate.read();
        inner.check_open()?;
        // Under the gate: a subscription starts between writes (it takes the gate), so it
        // sees the whole of every write acknowledged after it began.
        let mut targets = inner.watch.active().then(|| {
            inner
                .watch
                .targets(&inner.head, batch.iter().map(|(s, _)| s))
        });
        // Places in each series' apply order are reserved in WAL order (under the WAL's
        // append lock), so the head applies concurrent writes of a series in the order
        // replay will: what a query shows is what survives a crash.
        let places = &mut buffers.places;
        places.clear();
        let ticket = inner.wal.append(frames, |file| {
            places.extend(batch.iter().map(|(s, _)| s.head.reserve()));
            series_defs(&inner.head, file, &batch)
        })?;
        if let Err(e) = inner.wal.commit(ticket) {
            for ((series, _), &place) in batch.iter().zip(places.iter()) {
                inner.head.skip(series, place);
            }
            return Err(e);
        }
        // The earliest time this write touches in each of its namespaces (usually one), for
        // the result cache, recorded once the samples are visible.
        let mut changed: Vec<(crate::model::Namespace, i64)> = Vec::new();
        let (mut accepted, mut grown) = (0, 0);
        let mut tally = UsageTally::default();
        // Samples that broke a deferred rule, judged under their series' lock: (series,
        // sample, violation); their events are built after, outside the locks.
        let mut flagged: Vec<(Arc<Series>, Sample, Violation)> = Vec::new();
        let mut apply = |i: usize, wait: bool| -> bool {
            let (Some((series, samples)), Some(&place)) = (batch.get(i), places.get(i)) else {
                return true;
            };
            let checker = deferred
                .binary_search_by_key(&i, |&(entry, _)| entry)
                .ok()
                .and_then(|j| deferred.get(j))
                .and_then(|&(_, k)| deferred_checkers.get(k));
            let mut tell = |applied: &[Sample], latest: &dyn Fn() -> Option<Sample>| {
                if let Some(to) = targets.as_mut() {
                    inner.watch.deliver(to, i, series.id, applied);
                }
                if let Some(c) = checker {
                    let mut last = c.needs_latest().then(latest).flatten();
                    for &s in applied {
                        if let Some(v) = c.check_sample(last, s) {
                            flagged.push((series.clone(), s, v));
                        }
                        if last.is_none_or(|l| s.t > l.t) {
                            last = Some(s);
                        }
                    }
                }
            };
            let bytes = if wait {
                inner.head.apply(series, place, samples, &mut tell)
            } else {
                match inner.head.try_apply(series, place, samples, &mut tell) {
                    Some(bytes) => bytes,
                    None => return false,
                }
            };
            if inner.cache.is_some()
                && let Some(t) = samples.iter().map(|s| s.t).min()
            {
                match changed.iter_mut().find(|(ns, _)| *ns == series.namespace) {
                    Some((_, earliest)) => *earliest = (*earliest).min(t),
                    None => changed.push((series.namespace.clone(), t)),
                }
            }
            let n = samples.len() as u64;
            accepted += samples.len();
            let delta = Delta {
                bytes: bytes as i64,
                held: n as i64,
                accepted: n,
            };
            tally.add(&series.usage, delta);
            grown += bytes;
            true
        };
        // Series whose earlier places another write is still applying wait until the
        // rest are applied (see `Head::try_apply`); with one writer every turn has come.
        let later = &mut buffers.later;
        later.clear();
        for i in 0..batch.len() {
            if !apply(i, false) {
                later.push(i);
            }
        }
        for &i in later.iter() {
            apply(i, true);
        }
        tally.settle();
        buffers.batch = recycle(batch);
        for (ns, earliest) in changed {
            inner.changes.record(ns.as_str(), earliest);
        }
        inner.add_head_bytes(grown);
        inner.accepted.fetch_add(accepted as u64, Ordering::Relaxed);
        outcome.accepted = accepted;
        for (series, s, v) in flagged {
            let labels = inner.head.labels(&series);
            record_event(&series, &labels, arrival_ms, &v, false, s, 1, &mut events);
        }
        inner.quality.record(events, arrivals);
        Ok(outcome)
    }
}

/// What a write keeps: the samples to store, by series, the data-quality events, and the
/// arrival delays of the samples it keeps.
struct Admitted<'a> {
    batch: Batch<'a>,
    /// (entry of `batch`, checker in `deferred_checkers`), in entry order: the entries whose
    /// sample rules are judged at apply time, under the series' lock the apply takes anyway
    /// — for the policy `flag`, which refuses nothing, so nothing need be decided before
    /// the WAL. Empty for a write without such rules.
    deferred: Vec<(usize, usize)>,
    deferred_checkers: Vec<Arc<Checker>>,
    events: WriteEvents,
    arrivals: ArrivalBatch,
    record_arrivals: bool,
    arrival_ms: i64,
}

impl<'a> Admitted<'a> {
    /// Admits into `buffers`' batch memory.
    fn new(buffers: &mut WriteBuffers, series: usize, arrival_ms: i64, quality: &Quality) -> Self {
        let mut batch = recycle(std::mem::take(&mut buffers.batch));
        batch.reserve(series);
        Admitted {
            batch,
            deferred: Vec::new(),
            deferred_checkers: Vec::new(),
            events: WriteEvents::default(),
            arrivals: ArrivalBatch::default(),
            record_arrivals: quality.records_arrivals(),
            arrival_ms,
        }
    }

    /// Keeps a series' admitted samples (with the checker to judge them at apply time).
    fn keep(
        &mut self,
        series: Arc<Series>,
        metric: &str,
        samples: Cow<'a, [Sample]>,
        deferred: Option<&Arc<Checker>>,
    ) {
        if samples.is_empty() {
            return;
        }
        if let Some(c) = deferred {
            let known = self
                .deferred_checkers
                .iter()
                .position(|k| Arc::ptr_eq(k, c));
            let k = known.unwrap_or_else(|| {
                self.deferred_checkers.push(c.clone());
                self.deferred_checkers.len() - 1
            });
            self.deferred.push((self.batch.len(), k));
        }
        if self.record_arrivals {
            let ts = samples.iter().map(|s| s.t);
            let ns = series.namespace.as_str();
            self.arrivals.add(ns, metric, self.arrival_ms, ts);
        }
        self.batch.push((series, samples));
    }

    /// Keeps the samples of one series inside the window and, where its indicator has rules
    /// in force (`rules`: the checker, with the series' labels it reads), those the policy
    /// lets through; rejects the others one by one.
    #[allow(clippy::too_many_arguments)]
    fn admit(
        &mut self,
        w: &Window,
        metric: &str,
        rules: Option<(&Arc<Checker>, &Labels)>,
        series_index: usize,
        series: Arc<Series>,
        mut samples: Cow<'a, [Sample]>,
        outcome: &mut WriteOutcome,
    ) {
        let outside = |s: &Sample| s.t > w.max_t || s.t < w.min_t;
        if rules.is_none() && !samples.iter().any(outside) {
            self.keep(series, metric, samples, None);
            return;
        }
        // `flag` refuses nothing: its sample rules are judged at apply time.
        let deferred = rules
            .map(|(checker, _)| checker)
            .filter(|c| c.policy() == QualityPolicy::Flag);
        let mut judge = rules.map(|(checker, labels)| Judge {
            checker: checker.as_ref(),
            labels,
            series: &series,
            latest: (checker.needs_latest() && deferred.is_none())
                .then(|| series.head.latest())
                .flatten(),
            arrival_ms: self.arrival_ms,
        });
        if let Some(judge) = &judge
            && let Some(v) = judge.checker.check_series(judge.labels)
        {
            let rejected = judge.checker.policy() == QualityPolicy::Reject;
            if let Some(first) = samples.first() {
                judge.record(&v, rejected, *first, samples.len(), &mut self.events);
            }
            if rejected {
                outcome.rejected.push(Rejection {
                    series_index,
                    sample_index: None,
                    samples: samples.len(),
                    reason: RejectReason::Quality {
                        rule: v.rule,
                        detail: v.detail,
                    },
                });
                return;
            }
        }
        // Judge first, and move samples only when one is refused: retain's cost per call
        // showed for the one-sample series of live writes.
        let mut refused: Vec<usize> = Vec::new();
        for (index, s) in samples.iter().enumerate() {
            let reason = if s.t > w.max_t {
                RejectReason::TooFarInFuture {
                    timestamp: s.t,
                    max: w.max_t,
                }
            } else if s.t < w.min_t {
                RejectReason::TooOld {
                    timestamp: s.t,
                    min: w.min_t,
                }
            } else if deferred.is_some() {
                continue;
            } else {
                match judge.as_mut().and_then(|j| j.sample(*s, &mut self.events)) {
                    Some(reason) => reason,
                    None => continue,
                }
            };
            outcome.rejected.push(Rejection {
                series_index,
                sample_index: Some(index),
                samples: 1,
                reason,
            });
            refused.push(index);
        }
        if !refused.is_empty() {
            let (mut index, mut next) = (0, refused.iter().peekable());
            samples.to_mut().retain(|_| {
                let keep = next.peek() != Some(&&index);
                if !keep {
                    next.next();
                }
                index += 1;
                keep
            });
        }
        self.keep(series, metric, samples, deferred);
    }
}

/// How much of a series' labels a data-quality event keeps.
const SERIES_TEXT_BYTES: usize = 512;

/// The data-quality check of one series' samples in a write.
struct Judge<'a> {
    checker: &'a Checker,
    labels: &'a Labels,
    series: &'a Series,
    /// The newest sample before the one being judged (held or accepted earlier in this
    /// write).
    latest: Option<Sample>,
    arrival_ms: i64,
}

impl Judge<'_> {
    /// Judges one sample: records an event when it breaks a rule, and returns the reason
    /// when the policy rejects it.
    fn sample(&mut self, s: Sample, events: &mut WriteEvents) -> Option<RejectReason> {
        let violation = self.checker.check_sample(self.latest, s);
        let rejected = violation.is_some() && self.checker.policy() == QualityPolicy::Reject;
        if !rejected && self.latest.is_none_or(|l| s.t > l.t) {
            self.latest = Some(s);
        }
        let v = violation?;
        self.record(&v, rejected, s, 1, events);
        rejected.then_some(RejectReason::Quality {
            rule: v.rule,
            detail: v.detail,
        })
    }

    fn record(
        &self,
        v: &Violation,
        rejected: bool,
        first: Sample,
        samples: usize,
        events: &mut WriteEvents,
    ) {
        let (series, labels) = (self.series, self.labels);
        record_event(
            series,
            labels,
            self.arrival_ms,
            v,
            rejected,
            first,
            samples,
            events,
        );
    }
}

/// Counts a violation, and lists it in full unless this write has listed enough of its kind
/// ([`crate::quality::LISTED_PER_WRITE`]).
#[allow(clippy::too_many_arguments)]
fn record_event(
    series: &Series,
    labels: &Labels,
    arrival_ms: i64,
    v: &Violation,
    rejected: bool,
    first: Sample,
    samples: usize,
    events: &mut WriteEvents,
) {
    let action = if rejected {
        QualityAction::Rejected
    } else {
        QualityAction::Flagged
    };
    let (ns, metric) = (series.namespace.as_str(), labels.metric_name());
    if !events.count(ns, metric, v.rule, action, samples as u64) {
        return;
    }
    events.list(QualityEvent {
        arrival_ms,
        namespace: ns.to_owned(),
        metric: metric.to_owned(),
        series: shorten(&labels.to_string(), SERIES_TEXT_BYTES),
        rule: v.rule,
        action,
        samples: samples as u64,
        timestamp: first.t,
        value: first.v,
        detail: v.detail.clone(),
    });
}

/// Refuses the whole batch when one of its namespaces has filled its share of the head
/// (a retryable error: the next flush makes room), so that one department's backlog does
/// not take the memory the others write into.
fn check_head_shares(batch: &[(Arc<Series>, Cow<'_, [Sample]>)]) -> Result<()> {
    let mut checked: Option<&Arc<NamespaceUsage>> = None;
    for (series, _) in batch {
        if checked.is_some_and(|u| Arc::ptr_eq(u, &series.usage)) {
            continue;
        }
        checked = Some(&series.usage);
        if let Some((used, share)) = series.usage.exhausted() {
            return Err(Error::ResourceExhausted {
                limit: Limit::HeadMemoryShare,
                detail: format!(
                    "namespace {} holds {used} bytes of head memory, its share is {share}; \
                     retry after the next flush",
                    series.usage.namespace()
                ),
            });
        }
    }
    Ok(())
}

/// The definitions frame for the batch's series not yet defined in WAL file `file`.
fn series_defs(
    head: &Head,
    file: u64,
    batch: &[(Arc<Series>, Cow<'_, [Sample]>)],
) -> Option<Vec<u8>> {
    let new: Vec<&Series> = batch
        .iter()
        // A load first: most series are defined in the file already, and a swap would
        // write (and own) their cache line for every write.
        .filter(|(series, _)| {
            series.wal_file.load(Ordering::Relaxed) != file
                && series.wal_file.swap(file, Ordering::Relaxed) != file
        })
        .map(|(series, _)| series.as_ref())
        .collect();
    if new.is_empty() {
        return None;
    }
    let reader = head.label_reader();
    let labels: Vec<Labels> = new.iter().map(|s| reader.labels(&s.pairs)).collect();
    let defs: Vec<SeriesDefRef<'_>> = new
        .iter()
        .zip(&labels)
        .map(|(series, labels)| SeriesDefRef {
            wal_ref: series.id,
            namespace: &series.namespace,
            labels,
        })
        .collect();
    (!defs.is_empty()).then(|| record::series_defs_frame(&defs))
}
