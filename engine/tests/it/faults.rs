//! Fault injection through the `Vfs` seam: for every k over a workload of a few hundred file
//! operations, fail the k-th one (EIO or ENOSPC, once or from then on). Writes after a failed
//! fsync must never be acknowledged before the engine has checked the WAL on disk and
//! resumed by itself, and after a simulated power cut (unsynced bytes dropped: zeros the WAL
//! wrote ahead of its frames and synced stay zeros) the store
//! reopens to exactly the acknowledged writes. [`FaultyFs`] also serves `ordering.rs`.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use iocdb_engine::fs::{Bytes, OsFs, Vfs, VfsFile};
use iocdb_engine::{Engine, Options, Sample};
use parking_lot::Mutex;

use crate::common::{self, Oracle, dump, request, series};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Once,
    Persistent,
}

#[derive(Debug, Default)]
pub struct State {
    pub ops: usize,
    fail_at: Option<(usize, io::ErrorKind, Mode)>,
    pub failed_sync: bool,
    /// Fail the next fsync of a WAL file, once.
    pub fail_next_wal_sync: bool,
    /// How long a WAL fsync takes (none: instant), so that concurrent writers meet in the
    /// group commit.
    pub wal_sync_time: std::time::Duration,
    /// WAL fsyncs begun and ended so far.
    pub wal_syncs: (usize, usize),
    /// What of each file is durable (a real fsync is skipped: this is the record).
    synced: HashMap<PathBuf, Durable>,
    /// Files whose fsync failed, with their durable data then: as the kernel may drop the
    /// pages it could not write (marking them clean), no later fsync or truncate makes
    /// more of that data durable, whatever the page cache still shows.
    poisoned: HashMap<PathBuf, u64>,
}

impl State {
    /// Records `durable` for `path`, capped where a failed fsync left the file.
    fn set_durable(&mut self, path: &Path, mut durable: Durable) {
        if let Some(&cap) = self.poisoned.get(path) {
            durable.data = durable.data.min(cap);
        }
        self.synced.insert(path.to_path_buf(), durable);
    }

    /// A WAL fsync of `path` failed: what was not durable before may never be.
    fn poison(&mut self, path: &Path) {
        let data = self.synced.get(path).map_or(0, |d| d.data);
        self.poisoned.entry(path.to_path_buf()).or_insert(data);
    }
}

/// The durable part of a file: its written bytes up to `data`, zeros from there to `len`.
#[derive(Debug, Clone, Copy)]
struct Durable {
    data: u64,
    len: u64,
}

impl Durable {
    fn whole(len: u64) -> Self {
        Durable { data: len, len }
    }
}

/// An `OsFs` that counts operations, fails the chosen one, and records durable lengths.
#[derive(Debug, Clone, Default)]
pub struct FaultyFs(pub Arc<Mutex<State>>);

impl FaultyFs {
    pub fn failing(at: usize, kind: io::ErrorKind, mode: Mode) -> Self {
        let fs = FaultyFs::default();
        fs.0.lock().fail_at = Some((at, kind, mode));
        fs
    }

    /// `wal_sync`: the operation makes WAL data durable (a WAL file or the WAL folder).
    fn op(&self, wal_sync: bool) -> io::Result<()> {
        let mut st = self.0.lock();
        let n = st.ops;
        st.ops += 1;
        match st.fail_at {
            Some((at, kind, mode)) if n == at || (mode == Mode::Persistent && n > at) => {
                st.failed_sync |= wal_sync;
                Err(io::Error::from(kind))
            }
            _ => Ok(()),
        }
    }

    /// Power cut: every file loses what was written after its last successful fsync.
    pub fn power_cut(&self) {
        for (path, durable) in self.0.lock().synced.iter() {
            if path.exists() {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .expect("open");
                f.set_len(durable.data).expect("truncate");
                f.set_len(durable.len).expect("zeros");
            }
        }
    }
}

#[derive(Debug)]
struct FaultyFile {
    fs: FaultyFs,
    path: PathBuf,
    inner: Box<dyn VfsFile>,
    /// (bytes written, the file's length with zeros written ahead of them).
    lens: Mutex<(u64, u64)>,
}

impl VfsFile for FaultyFile {
    fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        self.fs.op(false)?;
        self.inner.write_all(buf)?;
        self.lens.lock().0 += buf.len() as u64;
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        // What a sync makes durable is what was written before it began: appends may go on
        // while it runs (the WAL's interval policy).
        let (written, zeroed) = *self.lens.lock();
        if let Err(e) = self.fs.op(is_wal(&self.path)) {
            if is_wal(&self.path) {
                self.fs.0.lock().poison(&self.path);
            }
            return Err(e);
        }
        let time = {
            let mut st = self.fs.0.lock();
            st.wal_syncs.0 += usize::from(is_wal(&self.path));
            st.wal_sync_time
        };
        if is_wal(&self.path) && !time.is_zero() {
            std::thread::sleep(time);
        }
        self.fs.0.lock().wal_syncs.1 += usize::from(is_wal(&self.path));
        {
            let mut st = self.fs.0.lock();
            if st.fail_next_wal_sync && is_wal(&self.path) {
                st.fail_next_wal_sync = false;
                st.failed_sync = true;
                st.poison(&self.path);
                return Err(io::Error::other("injected fsync failure"));
            }
        }
        self.fs.0.lock().set_durable(
            &self.path,
            Durable {
                data: written,
                len: written.max(zeroed),
            },
        );
        Ok(())
    }

    fn write_zeros(&self, from: u64, to: u64) -> io::Result<()> {
        self.fs.op(false)?;
        self.inner.write_zeros(from, to)?;
        let mut lens = self.lens.lock();
        lens.1 = lens.1.max(to);
        Ok(())
    }

    fn trim(&self, len: u64) -> io::Result<()> {
        self.fs.op(false)?;
        self.inner.trim(len)?;
        *self.lens.lock() = (len, len);
        self.fs
            .0
            .lock()
            .set_durable(&self.path, Durable::whole(len));
        Ok(())
    }
}

impl Vfs for FaultyFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        OsFs.create_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        self.op(false)?;
        OsFs.list_dir(path)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.op(false)?;
        OsFs.read(path)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        self.op(false)?;
        let inner = OsFs.create(path)?;
        self.0.lock().set_durable(path, Durable::whole(0));
        Ok(Box::new(FaultyFile {
            fs: self.clone(),
            path: path.to_path_buf(),
            inner,
            lens: Mutex::new((0, 0)),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.op(false)?;
        OsFs.rename(from, to)?;
        let mut st = self.0.lock();
        if let Some(len) = st.synced.remove(from) {
            st.synced.insert(to.to_path_buf(), len);
        }
        Ok(())
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.op(false)?;
        OsFs.remove(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.op(path.ends_with("wal"))
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        self.op(false)?;
        OsFs.truncate(path, len)?;
        self.0.lock().set_durable(path, Durable::whole(len));
        Ok(())
    }
    fn open_immutable(&self, path: &Path) -> io::Result<Bytes> {
        self.op(false)?;
        OsFs.open_immutable(path)
    }
}

/// Whether a path is a WAL file. A failed fsync of a segment or manifest fails that flush
/// (its data stays in the WAL, which is still sound); a failed WAL fsync stops writes.
fn is_wal(path: &Path) -> bool {
    path.parent().is_some_and(|p| p.ends_with("wal"))
}

/// The workload: writes with corrections and backfill, flushes between them. Returns the
/// oracle of acknowledged writes and whether any write was acknowledged after a failed
/// fsync without the engine having recovered in between.
fn workload(engine: &Engine, fs: &FaultyFs) -> (Oracle, bool) {
    let mut oracle = Oracle::default();
    let mut acked_after_failed_sync = false;
    for step in 0..36i64 {
        let req = request(
            "faults",
            (0..2)
                .map(|i| {
                    let t0 = (step % 9) * 4000 + i as i64;
                    series(
                        "m",
                        (step as usize + i) % 3,
                        (0..6)
                            .map(|k| Sample::new(t0 + k * 700, (step * 10 + k) as f64))
                            .collect(),
                    )
                })
                .collect(),
        );
        let failed_sync_before = fs.0.lock().failed_sync;
        if engine.write(req.clone()).is_ok() {
            acked_after_failed_sync |= failed_sync_before && engine.stats().write_recoveries == 0;
            oracle.apply(&req);
        }
        if step % 8 == 7 {
            let _ = engine.flush();
        }
    }
    (oracle, acked_after_failed_sync)
}

pub fn options(fs: &FaultyFs) -> Options {
    Options {
        vfs: Arc::new(fs.clone()),
        ..common::options()
    }
}

#[test]
fn every_failed_operation_leaves_exactly_the_acknowledged_writes() {
    let clean = FaultyFs::default();
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open_with(dir.path(), options(&clean)).expect("open");
    let (oracle, _) = workload(&engine, &clean);
    assert_eq!(dump(&engine, "faults"), oracle.expected());
    drop(engine);
    let total = clean.0.lock().ops;
    assert!(
        (150..1000).contains(&total),
        "the workload is a few hundred operations: {total}"
    );

    let mut runs = 0;
    for kind in [io::ErrorKind::Other, io::ErrorKind::StorageFull] {
        for mode in [Mode::Once, Mode::Persistent] {
            for k in 0..total {
                let dir = tempfile::tempdir().expect("dir");
                let fs = FaultyFs::failing(k, kind, mode);
                let (oracle, acked_after_failed_sync) =
                    match common::open_with(dir.path(), options(&fs)) {
                        Ok(engine) => workload(&engine, &fs),
                        Err(_) => (Oracle::default(), false),
                    };
                assert!(
                    !acked_after_failed_sync,
                    "k={k} {kind:?} {mode:?}: a write was acknowledged after a failed fsync"
                );
                fs.power_cut();
                let engine = common::open_with(dir.path(), common::options())
                    .unwrap_or_else(|e| panic!("k={k} {kind:?} {mode:?}: reopen failed: {e}"));
                assert_eq!(
                    dump(&engine, "faults"),
                    oracle.expected(),
                    "k={k} {kind:?} {mode:?}"
                );
                runs += 1;
            }
        }
    }
    assert_eq!(runs, total * 4);
}

/// Concurrent writers sharing group commits, WAL fsyncs failing among them and the engine
/// resuming by itself after each: a power cut leaves exactly the acknowledged writes — no
/// group commit acknowledges bytes a failure cut off, and no failed write comes back.
#[test]
fn concurrent_writers_with_failing_fsyncs_leave_exactly_the_acknowledged_writes() {
    const WRITERS: usize = 4;
    const WRITES: i64 = 30;
    let mut failed_writes = 0;
    for round in 0..8 {
        let dir = tempfile::tempdir().expect("dir");
        let fs = FaultyFs::default();
        fs.0.lock().wal_sync_time = std::time::Duration::from_micros(300);
        let engine = common::open_with(dir.path(), options(&fs)).expect("open");
        let oracle = Mutex::new(Oracle::default());
        let failed = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for writer in 0..WRITERS {
                let (engine, fs, oracle, failed) = (&engine, &fs, &oracle, &failed);
                s.spawn(move || {
                    for k in 0..WRITES {
                        // Writer 0 fails the next WAL fsync twice a round, at a different
                        // point each round, while the others write on.
                        if writer == 0 && (k == 5 + round || k == 20 + round) {
                            fs.0.lock().fail_next_wal_sync = true;
                        }
                        // Refused writes are sent again (each attempt its own sample, so
                        // that a failed attempt coming back would show) until the engine has
                        // resumed writing by itself.
                        for attempt in 0..500 {
                            let req = request(
                                "faults",
                                vec![series(
                                    "m",
                                    writer,
                                    vec![Sample::new(k * 10_000 + attempt * 10 + round, k as f64)],
                                )],
                            );
                            if engine.write(req.clone()).is_ok() {
                                oracle.lock().apply(&req);
                                break;
                            }
                            failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            std::thread::sleep(std::time::Duration::from_millis(1));
                        }
                    }
                });
            }
        });
        let oracle = oracle.into_inner();
        assert_eq!(dump(&engine, "faults"), oracle.expected(), "round {round}");
        drop(engine);
        fs.power_cut();
        let engine = common::open_with(dir.path(), common::options()).expect("reopen");
        assert_eq!(
            dump(&engine, "faults"),
            oracle.expected(),
            "round {round}: after a power cut"
        );
        failed_writes += failed.into_inner();
    }
    assert!(
        failed_writes > 0,
        "the injected fsync failures failed writes"
    );
}

fn interval(fs: &FaultyFs, every_ms: u64) -> Options {
    Options {
        fsync: iocdb_engine::FsyncPolicy::Interval(std::time::Duration::from_millis(every_ms)),
        ..options(fs)
    }
}

/// Waits (boundedly) until `done` holds of the file system's state.
fn wait_for(fs: &FaultyFs, what: &str, done: impl Fn(&State) -> bool) {
    for _ in 0..2_000 {
        if done(&fs.0.lock()) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("gave up waiting for {what}");
}

/// The engine holds exactly the oracle's writes, and still does once closed and reopened.
fn holds_across_a_clean_close(engine: Engine, dir: &Path, oracle: &Oracle) {
    assert_eq!(dump(&engine, "faults"), oracle.expected());
    drop(engine);
    let engine = common::open_with(dir, common::options()).expect("reopen");
    assert_eq!(
        dump(&engine, "faults"),
        oracle.expected(),
        "after a clean close"
    );
}

/// Under the interval policy the periodic fsync covers up to an interval of writes and
/// may take long; writers must not wait for it (they waited for the WAL's I/O lock while it
/// synced). Here a WAL fsync takes a second and writes finish while one is running.
#[test]
fn under_the_interval_policy_writes_go_on_while_the_periodic_fsync_runs() {
    let dir = tempfile::tempdir().expect("dir");
    let fs = FaultyFs::default();
    fs.0.lock().wal_sync_time = std::time::Duration::from_secs(1);
    let engine = common::open_with(dir.path(), interval(&fs, 10)).expect("open");
    let mut oracle = Oracle::default();
    let mut write = |k: i64| {
        let req = request(
            "faults",
            vec![series("m", 0, vec![Sample::new(k, k as f64)])],
        );
        engine.write(req.clone()).expect("write");
        oracle.apply(&req);
    };
    // The first write creates the WAL file that the periodic fsync then syncs.
    write(0);
    wait_for(&fs, "a periodic WAL fsync to begin", |st| {
        st.wal_syncs.0 > st.wal_syncs.1
    });
    let running = fs.0.lock().wal_syncs;
    for k in 1..=20 {
        write(k);
    }
    let after = fs.0.lock().wal_syncs;
    assert_eq!(
        after.1, running.1,
        "20 writes finished while one fsync ran (fsyncs begun and ended: {running:?} then {after:?})"
    );
    holds_across_a_clean_close(engine, dir.path(), &oracle);
}

/// A failed periodic fsync stops writes (the kernel may have dropped the pages it could not
/// write) until the engine recovers by itself, and no acknowledged write is lost.
#[test]
fn a_failed_periodic_fsync_stops_writes_until_the_wal_recovers_and_keeps_the_acknowledged_ones() {
    let dir = tempfile::tempdir().expect("dir");
    let fs = FaultyFs::default();
    let engine = common::open_with(dir.path(), interval(&fs, 5)).expect("open");
    let mut oracle = Oracle::default();
    for k in 0..40i64 {
        if k == 10 {
            fs.0.lock().fail_next_wal_sync = true;
            wait_for(&fs, "the injected fsync failure", |st| st.failed_sync);
        }
        for attempt in 0..1_000 {
            let t = k * 10_000 + attempt;
            let req = request(
                "faults",
                vec![series("m", 0, vec![Sample::new(t, k as f64)])],
            );
            match engine.write(req.clone()) {
                Ok(_) => {
                    oracle.apply(&req);
                    break;
                }
                // Refused from the failure until the background thread's recovery, which may
                // come before the next write.
                Err(iocdb_engine::Error::WritesStopped { .. }) => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => panic!("write {k}: {e}"),
            }
        }
    }
    assert_eq!(
        engine.stats().write_recoveries,
        1,
        "the engine recovered by itself"
    );
    assert_eq!(oracle.expected().len(), 1, "one series");
    holds_across_a_clean_close(engine, dir.path(), &oracle);
}

/// A failed periodic fsync under the interval policy may have lost acknowledged writes
/// from the WAL file for good: the kernel can drop the pages it could not write, and the
/// WAL's check on recovery reads them back from the page cache, which may still hold them.
/// So the engine flushes the head once it has recovered: every acknowledged sample is then
/// in a segment, whatever the damaged WAL file holds. A power cut afterwards keeps them all.
#[test]
fn acknowledged_writes_a_failed_periodic_fsync_may_have_lost_survive_a_later_power_cut() {
    let dir = tempfile::tempdir().expect("dir");
    let fs = FaultyFs::default();
    let engine = common::open_with(dir.path(), interval(&fs, 200)).expect("open");
    let mut oracle = Oracle::default();
    let mut write = |k: i64| {
        let req = request(
            "faults",
            vec![series("m", 0, vec![Sample::new(k * 1000, k as f64)])],
        );
        match engine.write(req.clone()) {
            Ok(_) => oracle.apply(&req),
            Err(iocdb_engine::Error::WritesStopped { .. }) => {}
            Err(e) => panic!("write {k}: {e}"),
        }
    };
    for k in 0..10 {
        write(k);
    }
    let synced = fs.0.lock().wal_syncs.1;
    wait_for(&fs, "a periodic WAL fsync", |st| st.wal_syncs.1 > synced);
    // Acknowledged after that fsync, before the next, which fails.
    for k in 10..20 {
        write(k);
    }
    fs.0.lock().fail_next_wal_sync = true;
    wait_for(&fs, "the injected fsync failure", |st| st.failed_sync);
    for _ in 0..2_000 {
        if engine.stats().write_recoveries > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(engine.stats().write_recoveries, 1, "the engine recovered");
    // A write after the recovery, and a periodic fsync after it: everything acknowledged
    // is older than an interval and was covered by a successful fsync, or by the flush.
    write(20);
    let synced = fs.0.lock().wal_syncs.1;
    wait_for(&fs, "a periodic WAL fsync after the recovery", |st| {
        st.wal_syncs.1 > synced
    });
    assert!(
        oracle.expected().values().any(|s| s.len() > 11),
        "writes acknowledged between the last good fsync and the failed one: {:?}",
        oracle.expected()
    );
    // A clean close syncs the current WAL file, not the damaged one before it.
    drop(engine);
    fs.power_cut();
    let engine = common::open_with(dir.path(), common::options()).expect("reopen");
    assert_eq!(dump(&engine, "faults"), oracle.expected());
}
