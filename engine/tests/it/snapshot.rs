//! Snapshots and backups: taken while writes go on, they open as data directories holding
//! every write acknowledged before they began and whole batches of the rest; a backup
//! brought up to date copies only what it lacks and answers like the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use iocdb_engine::{Engine, Sample};

use crate::common::{self, dump, request, series};

fn engine(dir: &std::path::Path) -> Engine {
    common::open_with(dir, common::options()).expect("open")
}

#[test]
fn a_snapshot_taken_under_writes_is_consistent_and_opens_as_a_store() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(engine(&dir.path().join("store")));
    // Before the snapshot: flushed and unflushed writes.
    for i in 0..20i64 {
        store
            .write(request(
                "ns",
                vec![series("m", 0, vec![Sample::new(i * 1000, i as f64)])],
            ))
            .expect("write");
        if i == 10 {
            store.flush().expect("flush");
        }
    }
    let before = dump(&store, "ns");
    // During it: batches of three samples (series 1, 2, 3) with the batch number as value.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut batch = 0i64;
            while !stop.load(Ordering::Relaxed) && batch < 100_000 {
                let series_of =
                    |k: usize| series("m", k, vec![Sample::new(batch * 10, batch as f64)]);
                store
                    .write(request("ns", (1..=3).map(series_of).collect()))
                    .expect("write");
                batch += 1;
            }
            batch
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(20));
    let snap = dir.path().join("snap");
    let report = store.snapshot(&snap).expect("snapshot");
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().expect("writer");
    assert!(report.segments_linked > 0, "{report:?}");
    assert!(written > 0);

    let copy = engine(&snap);
    let got = dump(&copy, "ns");
    assert_eq!(
        got.get("s0"),
        before.get("s0"),
        "every write acknowledged before is there"
    );
    // Whole batches: series 1, 2 and 3 hold the same batches.
    let batches = |site: &str| got.get(site).cloned().unwrap_or_default();
    assert_eq!(batches("s1"), batches("s2"));
    assert_eq!(batches("s2"), batches("s3"));
    assert!(batches("s1").len() as i64 <= written);
    assert!(
        store.snapshot(&snap).is_err(),
        "a non-empty target is refused"
    );
}

#[test]
fn a_backup_copies_what_it_lacks_and_answers_like_the_store() {
    let dir = tempfile::tempdir().expect("dir");
    let opts = compacting_options();
    let store = common::open_with(&dir.path().join("store"), opts.clone()).expect("open");
    let backup_dir = dir.path().join("backup");
    let write = |from: i64| {
        for p in 0..3i64 {
            let samples = (0..5)
                .map(|i| Sample::new(from + p * 10_000 + i * 1000, (p + i) as f64))
                .collect();
            store
                .write(request("ns", vec![series("m", 0, samples)]))
                .expect("write");
            store.flush().expect("flush");
        }
    };
    write(0);
    let first = store.backup(&backup_dir).expect("backup");
    assert!(first.segments_copied >= 3, "{first:?}");
    write(200_000);
    store.compact().expect("compact");
    let second = store.backup(&backup_dir).expect("backup again");
    assert!(
        second.segments_removed > 0,
        "compacted-away segments leave the backup: {second:?}"
    );
    let expected = dump(&store, "ns");
    drop(store);
    let restored = common::open_with(&backup_dir, opts).expect("open the backup");
    assert_eq!(dump(&restored, "ns"), expected);
    assert!(restored.stats().quarantined.is_empty());
}

fn compacting_options() -> iocdb_engine::Options {
    iocdb_engine::Options {
        partition_ms: 10_000,
        compaction_window_ms: 60_000,
        ..common::options()
    }
}
