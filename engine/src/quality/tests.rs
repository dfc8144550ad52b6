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

#[test]
fn the_newest_events_are_kept_and_every_one_is_counted_across_rewrites() {
    let dir = tempfile::tempdir().expect("dir");
    let open = || {
        Quality::open(
            Arc::new(OsFs),
            dir.path(),
            false,
            true,
            Arrivals::default(),
            &MetadataStore::default(),
        )
        .expect("open")
    };
    let q = open();
    let n = MAX_EVENTS as i64 + 50;
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        q.record(
            chunk.iter().map(|&i| event(i)).collect(),
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
