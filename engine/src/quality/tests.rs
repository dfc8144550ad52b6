//! The quality log on its own: counts and events across a journal rewrite.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::fs::OsFs;
use crate::metadata::MetadataStore;

fn event(i: i64) -> QualityEvent {
    QualityEvent {
        arrival_ms: i,
        namespace: if i % 2 == 0 { "a" } else { "b" }.into(),
        metric: "m".into(),
        series: "m{}".into(),
        rule: QualityRule::OutOfRange,
        action: QualityAction::Flagged,
        samples: 2,
        timestamp: i,
        value: i as f64,
        detail: "x".into(),
    }
}

fn open_in(dir: &std::path::Path) -> Quality {
    let catalog = MetadataStore::default();
    Quality::open(
        Arc::new(OsFs),
        dir,
        false,
        true,
        Arrivals::default(),
        &catalog,
    )
    .expect("open")
}

fn write_events(events: impl IntoIterator<Item = QualityEvent>) -> WriteEvents {
    let mut w = WriteEvents::default();
    for e in events {
        if w.count(&e.namespace, &e.metric, e.rule, e.action, e.samples) {
            w.list(e);
        }
    }
    w
}

#[test]
fn a_flood_lists_a_few_events_a_write_and_counts_them_all_across_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let open = || open_in(dir.path());
    let q = open();
    let flood = (0..5000).map(|i| QualityEvent {
        namespace: "a".into(),
        samples: 1,
        ..event(i)
    });
    q.record(write_events(flood), ArrivalBatch::default());
    let check = |q: &Quality| {
        let r = q.report(&QualityFilter {
            limit: usize::MAX,
            ..Default::default()
        });
        assert_eq!(r.events.len() as u64, LISTED_PER_WRITE);
        assert_eq!(r.counts[0].samples, 5000);
    };
    check(&q);
    drop(q);
    check(&open());
    let journal = std::fs::read_to_string(dir.path().join("QUALITY")).expect("journal");
    assert!(journal.lines().count() < 20, "{journal}");
}

#[test]
fn the_newest_events_are_kept_and_every_one_is_counted_across_rewrites() {
    let dir = tempfile::tempdir().expect("dir");
    let open = || open_in(dir.path());
    let q = open();
    let n = MAX_EVENTS as i64 + 50;
    // Ten events a write: each key (two namespaces) stays within what a write lists.
    for chunk in (0..n).collect::<Vec<_>>().chunks(10) {
        q.record(
            write_events(chunk.iter().map(|&i| event(i))),
            ArrivalBatch::default(),
        );
    }
    let check = |q: &Quality| {
        let all = q.report(&QualityFilter {
            limit: usize::MAX,
            ..Default::default()
        });
        assert_eq!(all.events.len(), MAX_EVENTS);
        assert_eq!(all.events.first().map(|e| e.arrival_ms), Some(50));
        let by_ns: BTreeMap<&str, u64> = all
            .counts
            .iter()
            .map(|c| (c.namespace.as_str(), c.samples))
            .collect();
        assert_eq!(by_ns, [("a", n as u64), ("b", n as u64)].into());
        let b = q.report(&QualityFilter {
            namespace: Some("b".into()),
            since_ms: Some(n - 10),
            limit: 3,
            ..Default::default()
        });
        let arrivals: Vec<i64> = b.events.iter().map(|e| e.arrival_ms).collect();
        assert_eq!(arrivals, vec![n - 5, n - 3, n - 1]);
        assert_eq!(b.counts.len(), 1);
    };
    check(&q);
    drop(q);
    check(&open());
    check(&open());
}
