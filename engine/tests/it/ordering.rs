//! What a query showed is what survives a crash: concurrent writers of the same slots, a
//! batch failing across a WAL file roll, and a failed fsync the engine recovers from.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iocdb_engine::internal::{Wal, record};
use iocdb_engine::{Engine, Error, FsyncPolicy, Label, Labels, Limits, Namespace, Sample};
use proptest::prelude::*;

use crate::common::{self, dump, request, series};
use crate::faults::{FaultyFs, Mode, options};

/// Writers that correct the same (series, timestamp) slots at once, each write with its
/// own value. Returns how many writes were acknowledged.
fn correct_concurrently(engine: &Engine, writers: usize, rounds: usize, seed: u64) -> usize {
    let acked = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for w in 0..writers {
            let (engine, acked) = (engine, &acked);
            s.spawn(move || {
                for r in 0..rounds {
                    // Each writer writes every slot of a few series, in a different series
                    // order, so writers meet on every slot.
                    let series_list = (0..4)
                        .map(|k| {
                            let i = (k + w + r) % 4;
                            let v = (seed * 1_000_000 + (w * 1000 + r) as u64) as f64;
                            series(
                                "slot",
                                i,
                                (0..8).map(|t| Sample::new(t * 1000, v)).collect(),
                            )
                        })
                        .collect();
                    if engine.write(request("ordering", series_list)).is_ok() {
                        acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    acked.into_inner()
}

#[test]
fn concurrent_corrections_read_the_same_after_a_reopen_and_after_a_flush() {
    for cycle in 0..10u64 {
        let dir = tempfile::tempdir().expect("dir");
        let engine = common::open(dir.path());
        correct_concurrently(&engine, 4, 30, cycle);
        let shown = dump(&engine, "ordering");
        assert_eq!(shown.values().map(Vec::len).sum::<usize>(), 32);
        if cycle % 2 == 1 {
            engine.flush().expect("flush");
            assert_eq!(
                dump(&engine, "ordering"),
                shown,
                "cycle {cycle}: after a flush"
            );
        }
        drop(engine);
        let engine = common::open(dir.path());
        assert_eq!(
            dump(&engine, "ordering"),
            shown,
            "cycle {cycle}: after reopening"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Concurrent writers with overlapping slots; a crash at a random file operation (every
    /// later operation fails, then unsynced bytes are dropped); the store recovered from
    /// disk equals the head as last observed, for every slot.
    #[test]
    fn a_crash_at_any_point_recovers_what_queries_last_showed(crash_at in 0usize..400, seed in 0u64..1000) {
        let dir = tempfile::tempdir().expect("dir");
        let fs = FaultyFs::failing(crash_at, io::ErrorKind::Other, Mode::Persistent);
        let Ok(engine) = common::open_with(dir.path(), options(&fs)) else {
            return Ok(());
        };
        correct_concurrently(&engine, 3, 12, seed);
        let shown = dump(&engine, "ordering");
        drop(engine);
        fs.power_cut();
        let engine = common::open_with(dir.path(), common::options()).expect("reopen");
        prop_assert_eq!(dump(&engine, "ordering"), shown);
    }
}

fn labels(site: &str) -> Labels {
    Labels::validate(
        vec![Label::new("__name__", "beds"), Label::new("site", site)],
        &Limits::default(),
    )
    .expect("labels")
}

/// One framed batch for the WAL: the definition of series `wal_ref` and one sample.
fn batch(wal_ref: u32, ns: &Namespace, labels: &Labels, sample: Sample) -> Vec<u8> {
    let mut out = record::series_defs_frame(&[record::SeriesDefRef {
        wal_ref,
        namespace: ns,
        labels,
    }]);
    out.extend(record::samples_frame(
        [(wal_ref, &[sample][..])].into_iter(),
    ));
    out
}

#[test]
fn a_batch_that_fails_across_a_wal_file_roll_leaves_nothing_for_replay() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::create_dir_all(dir.path().join("wal")).expect("wal dir");
    // Operations: create file 1, sync the folder, write (ops 0-2); for file 2, sync file 1,
    // create, sync the folder (ops 3-5), write (op 6); the fsync of file 2 (op 7) fails, so
    // the second batch's frames are in file 2 but were never acknowledged.
    let fs = FaultyFs::failing(7, io::ErrorKind::Other, Mode::Once);
    let ns = Namespace::new("health").expect("ns");
    let (first, second) = (labels("a"), labels("b"));
    // One byte per file: every append starts a new file, so one leader's group spans two.
    let wal = Wal::new(
        dir.path().to_path_buf(),
        Arc::new(fs.clone()),
        FsyncPolicy::Always,
        1,
        1,
    );
    let t1 = wal
        .append(&mut batch(0, &ns, &first, Sample::new(1_000, 1.0)), |_| {
            None
        })
        .expect("append");
    let t2 = wal
        .append(&mut batch(0, &ns, &second, Sample::new(1_000, 2.0)), |_| {
            None
        })
        .expect("append");
    assert!(
        wal.commit(t2).is_err(),
        "the batch in the failed file fails"
    );
    assert!(
        wal.commit(t1).is_ok(),
        "the batch in the synced earlier file is durable: acknowledged"
    );
    drop(wal);
    // A process restart, no power cut: what the failed batch wrote must not come back.
    let engine = common::open_with(dir.path(), common::options()).expect("reopen");
    let found = dump(&engine, "health");
    assert_eq!(found.keys().collect::<Vec<_>>(), ["a"], "{found:?}");
}

/// Writers hand their batches to the WAL (no copy under its lock); one leader's group
/// commit writes them all, joined per file, in ticket order, definitions before the frames
/// that need them, and every writer gets an empty buffer back to encode its next batch in.
#[test]
fn a_group_commit_writes_its_writers_batches_in_ticket_order_across_files() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::create_dir_all(dir.path().join("wal")).expect("wal dir");
    let ns = Namespace::new("health").expect("ns");
    let frames: Vec<Vec<u8>> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, site)| batch(i as u32, &ns, &labels(site), Sample::new(1_000, i as f64)))
        .collect();
    let defs = |i: u8| vec![0xd0 + i; 7];
    // Batches a and b fill file 1; c starts file 2.
    let limit = (frames[0].len() + 7 + frames[1].len()) as u64;
    let wal = Wal::new(
        dir.path().to_path_buf(),
        Arc::new(FaultyFs::default()),
        FsyncPolicy::Always,
        limit,
        1,
    );
    let mut handed: Vec<Vec<u8>> = frames.clone();
    let mut tickets = Vec::new();
    for (i, buf) in handed.iter_mut().enumerate() {
        let with_defs = i != 1;
        let ticket = wal
            .append(buf, |_| with_defs.then(|| defs(i as u8)))
            .expect("append");
        assert!(buf.is_empty(), "batch {i}: the writer's buffer was taken");
        tickets.push(ticket);
    }
    // The last writer leads: its commit writes all three.
    for ticket in tickets.into_iter().rev() {
        wal.commit(ticket).expect("commit");
    }
    wal.close().expect("close");
    let read = |n: u64| std::fs::read(dir.path().join(format!("wal/{n:016}.wal"))).expect("read");
    let file_1: Vec<u8> = [defs(0), frames[0].clone(), frames[1].clone()].concat();
    let file_2: Vec<u8> = [defs(2), frames[2].clone()].concat();
    assert_eq!(read(1), file_1);
    assert_eq!(read(2), file_2);
}

#[test]
fn after_a_failed_fsync_writes_are_refused_then_resume_by_themselves() {
    let dir = tempfile::tempdir().expect("dir");
    let fs = FaultyFs::default();
    let engine = common::open_with(dir.path(), options(&fs)).expect("open");
    let write = |i: usize, v: f64| {
        engine.write(request(
            "recovery",
            vec![series("m", i, vec![Sample::new(1_000, v)])],
        ))
    };
    write(0, 1.0).expect("acknowledged before the failure");
    fs.0.lock().fail_next_wal_sync = true;
    let failed = Instant::now();
    assert!(matches!(write(1, 2.0), Err(Error::WritesStopped { .. })));
    // Refused (WritesStopped: UNAVAILABLE over gRPC) until the engine has checked the WAL
    // on disk; then accepted again, with no operator.
    let deadline = failed + Duration::from_secs(10);
    let resumed = loop {
        match write(2, 3.0) {
            Ok(_) => break failed.elapsed(),
            Err(Error::WritesStopped { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("writes did not resume: {e}"),
        }
    };
    eprintln!("writes resumed {resumed:?} after the failed fsync");
    let stats = engine.stats();
    assert_eq!((stats.write_recoveries, stats.writes_stopped), (1, None));
    write(3, 4.0).expect("writes go on");
    let expected: BTreeMap<String, Vec<(i64, u64)>> = dump(&engine, "recovery");
    assert_eq!(
        expected.len(),
        3,
        "series 0, 2 and 3; never the failed write: {expected:?}"
    );
    drop(engine);
    fs.power_cut();
    let engine = common::open_with(dir.path(), common::options()).expect("reopen");
    assert_eq!(dump(&engine, "recovery"), expected);
}
