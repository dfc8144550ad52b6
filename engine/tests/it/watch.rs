//! Live subscriptions: under concurrent writers every subscriber receives every
//! acknowledged matching sample exactly once and in timestamp order per series; a stalled
//! one is told its gap and can read it back; dropping a subscription frees it.

use std::collections::BTreeMap;
use std::sync::Arc;

use iocdb_engine::{
    Engine, Label, MatchOp, Matcher, Options, Sample, SeriesWrite, Subscription, Wake, WatchEvent,
    WriteRequest,
};

const NS: &str = "an_ninh";

fn labels(site: &str) -> Vec<Label> {
    vec![
        Label::new("__name__", "camera_people_count"),
        Label::new("commune", "Châu Đốc"),
        Label::new("site", site),
    ]
}

fn no_wake() -> Wake {
    Arc::new(|| {})
}

/// Every event queued now.
fn drain(sub: &Subscription) -> Vec<WatchEvent> {
    std::iter::from_fn(|| sub.try_recv()).collect()
}

/// Timestamps received per site.
fn by_site(events: &[WatchEvent]) -> BTreeMap<String, Vec<i64>> {
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for e in events {
        match e {
            WatchEvent::Samples { labels, samples } => out
                .entry(labels.get("site").unwrap_or_default().to_owned())
                .or_default()
                .extend(samples.iter().map(|s| s.t)),
            WatchEvent::Gap { .. } => panic!("unexpected gap: {e:?}"),
        }
    }
    out
}

/// `writers` threads, each writing `writes` batches (`batch(writer, k)`), every sample
/// accepted.
fn write_concurrently(
    engine: &Engine,
    writers: i64,
    writes: i64,
    batch: impl Fn(i64, i64) -> Vec<SeriesWrite> + Sync,
) {
    std::thread::scope(|s| {
        for w in 0..writers {
            let batch = &batch;
            s.spawn(move || {
                for k in 0..writes {
                    let series = batch(w, k);
                    let samples: usize = series.iter().map(|s| s.samples.len()).sum();
                    let out = engine
                        .write(WriteRequest {
                            namespace: NS.into(),
                            series,
                        })
                        .expect("write");
                    assert_eq!(out.accepted, samples);
                }
            });
        }
    });
}

#[test]
fn every_subscriber_gets_every_acknowledged_matching_sample_once_in_order() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = Engine::open(dir.path(), Options::default()).expect("open");
    let t0 = 1_764_000_000_000;
    // Written before the subscriptions: never delivered.
    engine
        .write(WriteRequest {
            namespace: NS.into(),
            series: vec![SeriesWrite {
                labels: labels("w0-s0"),
                samples: vec![Sample::new(t0 - 1, 1.0)],
            }],
        })
        .expect("write");
    let all = engine
        .watch(
            NS,
            vec![Matcher::equal("__name__", "camera_people_count")],
            100_000,
            no_wake(),
        )
        .expect("watch");
    let some = engine
        .watch(
            NS,
            vec![Matcher::new("site", MatchOp::Regex, "w[01]-.*").expect("re")],
            100_000,
            no_wake(),
        )
        .expect("watch");
    let other_ns = engine
        .watch("y_te", vec![], 100_000, no_wake())
        .expect("watch");
    let (writers, series, writes) = (4i64, 25usize, 60i64);
    write_concurrently(&engine, writers, writes, |w, k| {
        (0..series)
            .map(|i| SeriesWrite {
                labels: labels(&format!("w{w}-s{i}")),
                samples: vec![
                    Sample::new(t0 + k * 2, k as f64),
                    Sample::new(t0 + k * 2 + 1, k as f64),
                ],
            })
            .collect()
    });
    let expected: Vec<i64> = (0..writes * 2).map(|k| t0 + k).collect();
    let got = by_site(&drain(&all));
    assert_eq!(got.len(), writers as usize * series);
    for (site, ts) in &got {
        assert_eq!(ts, &expected, "{site}: every sample once, in order");
    }
    let got = by_site(&drain(&some));
    assert_eq!(got.len(), 2 * series, "only w0 and w1");
    assert!(got.values().all(|ts| *ts == expected));
    assert!(drain(&other_ns).is_empty());
    assert_eq!(engine.stats().watchers, 3);
}

/// Writers of the same series: a write applies the series whose turn has come first and
/// the others after (`Head::try_apply`), so its series reach the subscribers out of the
/// write's order; each sample still arrives once, and a series' samples in the order the
/// head applied them (here, the order of the values each writer counts up).
#[test]
fn writers_of_the_same_series_deliver_every_sample_once() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = Engine::open(dir.path(), Options::default()).expect("open");
    let all = engine
        .watch(NS, vec![], 1_000_000, no_wake())
        .expect("watch");
    let t0 = 1_764_000_000_000;
    let (writers, series, writes) = (4i64, 40, 50i64);
    write_concurrently(&engine, writers, writes, |w, k| {
        // Every writer writes every series, starting at a different one.
        (0..series)
            .map(|i| SeriesWrite {
                labels: labels(&format!("s{}", (i + w as usize * 10) % series)),
                samples: vec![Sample::new(t0 + k * writers + w, w as f64)],
            })
            .collect()
    });
    let mut values: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for e in drain(&all) {
        if let WatchEvent::Samples { labels, samples } = e {
            let site = labels.get("site").unwrap_or_default().to_owned();
            values
                .entry(site)
                .or_default()
                .extend(samples.iter().map(|s| (s.t, s.v)));
        } else {
            panic!("unexpected gap: {e:?}");
        }
    }
    assert_eq!(values.len(), series);
    let expected: Vec<i64> = (0..writes * writers).map(|k| t0 + k).collect();
    for (site, got) in &values {
        let mut ts: Vec<i64> = got.iter().map(|&(t, _)| t).collect();
        // Each writer's samples of a series arrive in its own order.
        for w in 0..writers {
            let own: Vec<i64> = got
                .iter()
                .filter(|&&(_, v)| v == w as f64)
                .map(|&(t, _)| t)
                .collect();
            assert!(own.windows(2).all(|p| p[0] < p[1]), "{site}, writer {w}");
        }
        ts.sort_unstable();
        assert_eq!(ts, expected, "{site}: every sample once");
    }
}

#[test]
fn a_stalled_subscriber_is_told_its_gap_and_reads_it_back_while_others_get_everything() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = Engine::open(dir.path(), Options::default()).expect("open");
    let stalled = engine.watch(NS, vec![], 5, no_wake()).expect("watch");
    let healthy = engine.watch(NS, vec![], 1000, no_wake()).expect("watch");
    let t0 = 1_764_000_000_000;
    let write = |k: i64| {
        engine
            .write(WriteRequest {
                namespace: NS.into(),
                series: vec![SeriesWrite {
                    labels: labels("cam-1"),
                    samples: vec![Sample::new(t0 + k, k as f64)],
                }],
            })
            .expect("write");
    };
    (0..20).for_each(write);
    let events = drain(&stalled);
    assert_eq!(events.len(), 6, "{events:?}");
    assert_eq!(
        events.last(),
        Some(&WatchEvent::Gap {
            lost: 15,
            from: t0 + 5,
            to: t0 + 19
        })
    );
    // Read the gap back, then go on live.
    let back = engine
        .select(NS, &[Matcher::equal("site", "cam-1")], t0 + 5, t0 + 19)
        .expect("select");
    assert_eq!(back[0].samples.len(), 15);
    (20..22).for_each(write);
    let after: Vec<i64> = drain(&stalled)
        .iter()
        .flat_map(|e| match e {
            WatchEvent::Samples { samples, .. } => samples.iter().map(|s| s.t).collect(),
            WatchEvent::Gap { .. } => vec![-1],
        })
        .collect();
    assert_eq!(after, vec![t0 + 20, t0 + 21]);
    let healthy: Vec<i64> = by_site(&drain(&healthy))
        .remove("cam-1")
        .unwrap_or_default();
    assert_eq!(healthy, (0..22).map(|k| t0 + k).collect::<Vec<_>>());
    assert_eq!(engine.stats().watch_gaps, 1);
}

#[test]
fn dropping_a_subscription_frees_it_and_a_wake_is_called_per_delivery() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = Engine::open(dir.path(), Options::default()).expect("open");
    let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let w = woken.clone();
    let sub = engine
        .watch(
            NS,
            vec![],
            10,
            Arc::new(move || {
                w.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }),
        )
        .expect("watch");
    let write = || {
        engine
            .write(WriteRequest {
                namespace: NS.into(),
                series: vec![SeriesWrite {
                    labels: labels("cam-2"),
                    samples: vec![Sample::new(1_764_000_000_000, 1.0)],
                }],
            })
            .expect("write")
    };
    write();
    assert_eq!(woken.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(engine.stats().watchers, 1);
    drop(sub);
    assert_eq!(engine.stats().watchers, 0);
    write();
    assert_eq!(woken.load(std::sync::atomic::Ordering::SeqCst), 1);
}
