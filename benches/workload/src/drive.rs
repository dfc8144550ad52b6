//! In-process ingest drivers: writers that time an engine on generated batches, by labels
//! and by series handle, with the batches built before the clock starts.

use std::path::Path;
use std::time::Instant;

use iocdb_engine::{Engine, Options, WriteRequest};

/// Midnight (UTC) of a fixed recent day, so runs are comparable.
pub fn day_start() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    now - now.rem_euclid(86_400_000) - 2 * 86_400_000
}

fn samples_in(reqs: &[WriteRequest]) -> usize {
    reqs.iter()
        .flat_map(|r| &r.series)
        .map(|s| s.samples.len())
        .sum()
}

/// How the writers divide the work (`SPLIT=series|queue`, default `series`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Split {
    /// Writer `i` writes the requests `make(i, threads)`, usually built from its
    /// [`crate::share`] of the series: each series has one writer, as each department's
    /// collector writes its own, and two writers of one series would wait on each other
    /// (a series' writes apply in WAL order). Each writer cuts its own share into requests,
    /// so two writers send more and smaller requests than one (7,690 against 5,770 for
    /// four hours of the province): more fsyncs for the same samples.
    Series,
    /// The requests of one writer (`make(0, 1)`), taken in turn by whichever writer is
    /// free, as the wire benches' senders take theirs: every writer count writes the same
    /// requests, and consecutive requests of a series may go to different writers.
    Queue,
}

impl Split {
    fn from_env() -> Split {
        match std::env::var("SPLIT").as_deref() {
            Ok("queue") => Split::Queue,
            _ => Split::Series,
        }
    }
}

/// Runs `threads` writers against a store opened in `dir`, the requests `make(lane,
/// lanes)` returns divided among them as [`Split`] says; each writer turns its requests
/// into batches with `prepare` and counts their samples before the clock starts, then
/// writes them with `write`. Returns samples/s.
///
/// The batches are what a front door holds once a request is read off the wire: `write`
/// borrows each and builds from it what the engine's call takes (as the door's decoder
/// does, into memory the allocator hands out again at once), and the batches are freed
/// only after the clock stops. Consuming them instead freed the whole pre-built input while
/// the clock ran, page after page that nothing would reuse, and mimalloc gave each back
/// to the kernel (`madvise`) — with two writers every such call also interrupts the other
/// core to flush its TLB: it cost two writers by label bytes a fifth of their rate
/// (BENCHMARKS.md, "Ingest by labels"), a cost of the bench, not of a server, whose
/// request memory is reused by the next request.
fn timed_writers<B: Send + Sync>(
    dir: &Path,
    opts: Options,
    threads: usize,
    make: impl Fn(usize, usize) -> Vec<WriteRequest> + Sync,
    prepare: impl Fn(&Engine, Vec<WriteRequest>) -> (Vec<B>, usize) + Sync,
    write: impl Fn(&Engine, &B) -> iocdb_engine::Result<iocdb_engine::WriteOutcome> + Sync,
) -> f64 {
    let engine = Engine::open(dir, opts).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()));
    let barrier = std::sync::Barrier::new(threads + 1);
    let total = std::sync::atomic::AtomicUsize::new(0);
    let split = Split::from_env();
    // Under `Split::Queue`: every request, and the number of the next one to write.
    let queue: std::sync::OnceLock<Vec<B>> = std::sync::OnceLock::new();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut cpu = 0.0;
    let (elapsed, spent) = std::thread::scope(|s| {
        let writers: Vec<_> = (0..threads)
            .map(|lane| {
                let (engine, barrier, make, prepare, write, total, queue, next) = (
                    &engine, &barrier, &make, &prepare, &write, &total, &queue, &next,
                );
                s.spawn(move || {
                    let (mut batches, samples) = match split {
                        Split::Series => prepare(engine, make(lane, threads)),
                        Split::Queue if lane == 0 => prepare(engine, make(0, 1)),
                        Split::Queue => (Vec::new(), 0),
                    };
                    if split == Split::Queue && lane == 0 {
                        let _ = queue.set(std::mem::take(&mut batches));
                    }
                    total.fetch_add(samples, std::sync::atomic::Ordering::Relaxed);
                    barrier.wait();
                    let queued = std::iter::from_fn(|| {
                        queue
                            .get()?
                            .get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                    });
                    for b in batches.iter().chain(queued) {
                        let out = write(engine, b).unwrap_or_else(|e| panic!("write: {e}"));
                        assert!(out.rejected.is_empty(), "{:?}", out.rejected.first());
                    }
                    (Instant::now(), batches)
                })
            })
            .collect();
        barrier.wait();
        // `PERF_CTL=<fifo>` with `perf record -D -1 --control fifo:<fifo>` profiles the
        // timed writes alone, not the generation of their batches nor the engine's close.
        if let Ok(ctl) = std::env::var("PERF_CTL") {
            let _ = std::fs::write(ctl, "enable\n");
        }
        let t0 = Instant::now();
        let cpu0 = cpu_seconds(std::process::id());
        let mut spent = Vec::with_capacity(threads);
        let mut last = t0;
        for w in writers {
            let (done, batches) = w.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            last = last.max(done);
            spent.push(batches);
        }
        cpu = cpu_seconds(std::process::id()) - cpu0;
        (last - t0, spent)
    });
    if let Ok(ctl) = std::env::var("PERF_CTL") {
        let _ = std::fs::write(ctl, "disable\n");
    }
    drop(spent);
    // WAL_TIMINGS=1: how the writes shared their fsyncs (group commits against writes, and
    // what each took on average).
    if std::env::var_os("WAL_TIMINGS").is_some() {
        let wal = engine.stats().wal;
        let mean_us =
            |l: &iocdb_engine::LatencySnapshot| l.sum_ns as f64 / l.count.max(1) as f64 / 1000.0;
        // Waits past 5 ms: a writer held up by more than its own sync.
        let over_5ms: u64 = iocdb_engine::LATENCY_BUCKETS
            .iter()
            .chain(&[f64::INFINITY])
            .zip(&wal.commit_waits.buckets)
            .filter(|&(&le, _)| le > 0.005)
            .map(|(_, n)| n)
            .sum();
        eprintln!(
            "{threads} writer(s): {} group commits of {:.0} µs for {} commit waits of {:.0} µs, {over_5ms} of them over 5 ms",
            wal.group_commits.count,
            mean_us(&wal.group_commits),
            wal.commit_waits.count,
            mean_us(&wal.commit_waits)
        );
    }
    let total = total.into_inner() as f64;
    // CPU_TIMES=1: the CPU the timed writes took (every thread of the process, the engine's
    // own included), steadier than the rate when the machine's speed drifts.
    if std::env::var_os("CPU_TIMES").is_some() {
        eprintln!(
            "{threads} writer(s): {cpu:.2} CPU-s, {:.2} M samples per CPU-s",
            total / cpu.max(0.01) / 1e6
        );
    }
    total / elapsed.as_secs_f64()
}

/// CPU seconds (user and system, all threads) process `pid` has used, from
/// `/proc/PID/stat` (in clock ticks of 10 ms); 0 when it cannot be read.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Writes the requests `make(writer, threads)` returns with `threads` writers by labels
/// ([`Engine::write`]); returns samples/s.
pub fn ingest(
    dir: &Path,
    opts: Options,
    make: impl Fn(usize, usize) -> Vec<WriteRequest> + Sync,
    threads: usize,
) -> f64 {
    timed_writers(
        dir,
        opts,
        threads,
        make,
        |_, reqs| {
            let n = samples_in(&reqs);
            (reqs, n)
        },
        // As a decoder of owned labels builds them from the wire.
        |e, r| e.write(r.clone()),
    )
}

/// A request as a front door holds it once read off the wire: its labels' bytes in one
/// buffer (the request's), sorted by name as Prometheus sends them, each label two spans of
/// it, each series its label count and samples.
pub struct WireRequest {
    namespace: String,
    bytes: Vec<u8>,
    spans: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
    series: Vec<(usize, Vec<iocdb_engine::Sample>)>,
}

impl WireRequest {
    fn new(req: WriteRequest) -> Self {
        let mut bytes = Vec::new();
        let mut spans = Vec::new();
        let mut series = Vec::with_capacity(req.series.len());
        for mut s in req.series {
            // Sorted by name, as Prometheus sends them.
            s.labels.sort_by(|a, b| a.name.cmp(&b.name));
            for l in &s.labels {
                let name = bytes.len()..bytes.len() + l.name.len();
                bytes.extend_from_slice(l.name.as_bytes());
                let value = bytes.len()..bytes.len() + l.value.len();
                bytes.extend_from_slice(l.value.as_bytes());
                spans.push((name, value));
            }
            series.push((s.labels.len(), s.samples));
        }
        WireRequest {
            namespace: req.namespace,
            bytes,
            spans,
            series,
        }
    }

    /// Writes it with [`Engine::write_raw`], building its label views as the remote-write
    /// door's reader does: into the writer's arrays of the previous request (the door's
    /// come from a pool), not into new ones — a request's label views are hundreds of KiB,
    /// which the allocator would otherwise hand back to the kernel and fault in again.
    fn write(&self, engine: &Engine) -> iocdb_engine::Result<iocdb_engine::WriteOutcome> {
        use iocdb_engine::scratch::recycle;
        use iocdb_engine::{RawLabel, RawSeriesWrite, RawWriteRequest, SeriesBy};
        type Views = (Vec<RawLabel<'static>>, Vec<RawSeriesWrite<'static>>);
        thread_local! {
            static VIEWS: std::cell::Cell<Views> = const { std::cell::Cell::new((Vec::new(), Vec::new())) };
        }
        let (labels, series) = VIEWS.take();
        let mut labels: Vec<RawLabel<'_>> = recycle(labels);
        labels.extend(self.spans.iter().map(|(n, v)| {
            RawLabel::new(
                self.bytes.get(n.clone()).unwrap_or_default(),
                self.bytes.get(v.clone()).unwrap_or_default(),
            )
        }));
        let mut series: Vec<RawSeriesWrite<'_>> = recycle(series);
        let mut rest = labels.as_slice();
        series.extend(self.series.iter().map(|(count, samples)| {
            let (mine, others) = rest.split_at((*count).min(rest.len()));
            rest = others;
            RawSeriesWrite {
                by: SeriesBy::Labels(mine),
                samples: samples.into(),
            }
        }));
        let out = engine.write_raw(RawWriteRequest {
            namespace: &self.namespace,
            series: &series,
        });
        let series = recycle(series);
        VIEWS.set((recycle(labels), series));
        out
    }
}

/// Like [`ingest`], but the labels of each request are bytes in one buffer, written with
/// [`Engine::write_raw`]: the path of every front door (remote write, gRPC `Write`, line
/// protocol), without the owned `String`s of [`Engine::write`].
pub fn ingest_raw(
    dir: &Path,
    opts: Options,
    make: impl Fn(usize, usize) -> Vec<WriteRequest> + Sync,
    threads: usize,
) -> f64 {
    timed_writers(
        dir,
        opts,
        threads,
        make,
        |_, reqs| {
            let n = samples_in(&reqs);
            (reqs.into_iter().map(WireRequest::new).collect(), n)
        },
        |e, r: &WireRequest| r.write(e),
    )
}

/// Like [`ingest`], but each writer first resolves every series it will write (as a
/// long-running source keeps its series handle) and then writes by handle
/// ([`iocdb_engine::SeriesBy::Handle`]): the engine's ingest without label processing, as
/// `WriteStream` writes the series a stream named by id. Each write lists its series'
/// handles and samples in the writer's array of the previous write, as the stream's door
/// lists them in its pooled one.
pub fn ingest_resolved(
    dir: &Path,
    opts: Options,
    make: impl Fn(usize, usize) -> Vec<WriteRequest> + Sync,
    threads: usize,
) -> f64 {
    use iocdb_engine::scratch::recycle;
    use iocdb_engine::{RawSeriesWrite, RawWriteRequest, Sample, SeriesBy, SeriesHandle};
    use std::sync::Arc;
    type Batch = (String, Vec<(Arc<SeriesHandle>, Vec<Sample>)>);
    let prepare = |engine: &Engine, reqs: Vec<WriteRequest>| {
        let n = samples_in(&reqs);
        let mut handles = std::collections::HashMap::new();
        let batches: Vec<Batch> = reqs
            .into_iter()
            .map(|r| {
                let series = r
                    .series
                    .into_iter()
                    .map(|w| {
                        let key: Vec<(String, String)> = w
                            .labels
                            .iter()
                            .map(|l| (l.name.clone(), l.value.clone()))
                            .collect();
                        let handle = handles
                            .entry(key)
                            .or_insert_with(|| {
                                Arc::new(
                                    engine
                                        .resolve(&r.namespace, w.labels)
                                        .unwrap_or_else(|e| panic!("resolve: {e}")),
                                )
                            })
                            .clone();
                        (handle, w.samples)
                    })
                    .collect();
                (r.namespace, series)
            })
            .collect();
        (batches, n)
    };
    thread_local! {
        static LIST: std::cell::Cell<Vec<RawSeriesWrite<'static>>> =
            const { std::cell::Cell::new(Vec::new()) };
    }
    timed_writers(
        dir,
        opts,
        threads,
        make,
        prepare,
        |e, (namespace, b): &Batch| {
            let mut series: Vec<RawSeriesWrite<'_>> = recycle(LIST.take());
            series.extend(b.iter().map(|(h, samples)| RawSeriesWrite {
                by: SeriesBy::Handle(h),
                samples: samples.into(),
            }));
            let out = e.write_raw(RawWriteRequest {
                namespace,
                series: &series,
            });
            LIST.set(recycle(series));
            out
        },
    )
}
