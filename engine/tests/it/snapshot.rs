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

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// The store on `fs` with an earlier backup of it in `target` — flushed data and a WAL tail
/// (`old`) — and newer writes, flushes and a compaction since (`new`).
fn earlier_backup(
    fs: &crate::faults::FaultyFs,
    dir: &std::path::Path,
    target: &std::path::Path,
) -> (Engine, common::Oracle, common::Oracle) {
    let opts = iocdb_engine::Options {
        vfs: Arc::new(fs.clone()),
        ..compacting_options()
    };
    let mut old = common::Oracle::default();
    let write = |store: &Engine, oracle: &mut common::Oracle, site: usize, from: i64| {
        let samples: Vec<Sample> = (0..4)
            .map(|i| Sample::new(from + i * 7_000, (from + i) as f64))
            .collect();
        let req = request("ns", vec![series("m", site, samples)]);
        oracle.apply(&req);
        store.write(req).expect("write");
    };
    let store = common::open_with(dir, opts.clone()).expect("open");
    write(&store, &mut old, 0, 0);
    store.flush().expect("flush");
    write(&store, &mut old, 1, 5_000);
    store.close().expect("close");
    drop(store);
    // The earlier backup: the store as it was, WAL tail included.
    copy_dir(dir, target);
    let store = common::open_with(dir, opts).expect("reopen");
    let mut new = old.clone();
    write(&store, &mut new, 2, 100_000);
    store.flush().expect("flush");
    write(&store, &mut new, 0, 130_000);
    store.flush().expect("flush");
    store.compact().expect("compact");
    write(&store, &mut new, 3, 200_000);
    (store, old, new)
}

/// A disk that fails at any one operation of a backup, from then on, then a power cut: the
/// target opens as the earlier backup, whole, or as the new one — never as less.
#[test]
fn a_backup_cut_short_at_any_step_leaves_the_earlier_backup_whole() {
    use crate::faults::{FaultyFs, Mode};
    let counting = FaultyFs::default();
    let dir = tempfile::tempdir().expect("dir");
    let target = dir.path().join("backup");
    let (store, old, new) = earlier_backup(&counting, &dir.path().join("store"), &target);
    let before = counting.0.lock().ops;
    store.backup(&target).expect("backup");
    let after = counting.0.lock().ops;
    assert!(
        after > before + 5,
        "a backup of {} operations?",
        after - before
    );
    drop(store);
    let restored = common::open_with(&target, compacting_options()).expect("open");
    assert_eq!(dump(&restored, "ns"), new.expected());
    drop(restored);
    let (mut whole_old, mut whole_new) = (0, 0);
    for k in before..after {
        let dir = tempfile::tempdir().expect("dir");
        let target = dir.path().join("backup");
        let fs = FaultyFs::failing(k, std::io::ErrorKind::Other, Mode::Persistent);
        let (store, _, _) = earlier_backup(&fs, &dir.path().join("store"), &target);
        assert_eq!(fs.0.lock().ops, before, "the setup is deterministic");
        let _ = store.backup(&target);
        drop(store);
        fs.power_cut();
        let restored = common::open_with(&target, compacting_options())
            .unwrap_or_else(|e| panic!("failure at operation {k}: the backup does not open: {e}"));
        let got = dump(&restored, "ns");
        if got == old.expected() {
            whole_old += 1;
        } else {
            assert_eq!(got, new.expected(), "failure at operation {k}");
            whole_new += 1;
        }
        assert!(
            restored.stats().quarantined.is_empty(),
            "failure at operation {k}: {:?}",
            restored.stats().quarantined
        );
    }
    assert!(whole_old > 0 && whole_new > 0, "{whole_old} / {whole_new}");
}
