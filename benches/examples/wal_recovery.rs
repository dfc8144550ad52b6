//! How long writes are refused after a failed WAL fsync before the engine resumes by
//! itself. `cargo run --release -p iocdb-benches --example wal_recovery -- [repeats]`
//!
//! A file system wrapper fails one WAL fsync on demand; the example then writes in a loop
//! and measures from the failed write's error to the first acknowledged write.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use iocdb_engine::fs::{Bytes, OsFs, Vfs, VfsFile};
use iocdb_engine::{Engine, Label, Options, Sample, SeriesWrite, WriteRequest};

#[derive(Debug, Default)]
struct FailOnce(Arc<AtomicBool>);

#[derive(Debug)]
struct File(Box<dyn VfsFile>, Arc<AtomicBool>, bool);

impl VfsFile for File {
    fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }
    fn sync(&self) -> io::Result<()> {
        if self.2 && self.1.swap(false, Ordering::SeqCst) {
            return Err(io::Error::other("injected fsync failure"));
        }
        self.0.sync()
    }
    fn write_zeros(&self, from: u64, to: u64) -> io::Result<()> {
        self.0.write_zeros(from, to)
    }
    fn trim(&self, len: u64) -> io::Result<()> {
        self.0.trim(len)
    }
}

impl Vfs for FailOnce {
    fn create_dir_all(&self, p: &Path) -> io::Result<()> {
        OsFs.create_dir_all(p)
    }
    fn list_dir(&self, p: &Path) -> io::Result<Vec<PathBuf>> {
        OsFs.list_dir(p)
    }
    fn read(&self, p: &Path) -> io::Result<Vec<u8>> {
        OsFs.read(p)
    }
    fn create(&self, p: &Path) -> io::Result<Box<dyn VfsFile>> {
        let wal = p.parent().is_some_and(|d| d.ends_with("wal"));
        Ok(Box::new(File(OsFs.create(p)?, self.0.clone(), wal)))
    }
    fn rename(&self, a: &Path, b: &Path) -> io::Result<()> {
        OsFs.rename(a, b)
    }
    fn remove(&self, p: &Path) -> io::Result<()> {
        OsFs.remove(p)
    }
    fn sync_dir(&self, p: &Path) -> io::Result<()> {
        OsFs.sync_dir(p)
    }
    fn truncate(&self, p: &Path, len: u64) -> io::Result<()> {
        OsFs.truncate(p, len)
    }
    fn open_immutable(&self, p: &Path) -> io::Result<Bytes> {
        OsFs.open_immutable(p)
    }
}

fn main() {
    let repeats: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().expect("dir");
    let arm = Arc::new(AtomicBool::new(false));
    let opts = Options {
        vfs: Arc::new(FailOnce(arm.clone())),
        ..Options::default()
    };
    let engine = Engine::open(dir.path(), opts).expect("open");
    let write = |i: i64| {
        engine.write(WriteRequest {
            namespace: "health".into(),
            series: vec![SeriesWrite {
                labels: vec![
                    Label::new("__name__", "beds"),
                    Label::new("site", "Châu Đốc"),
                ],
                samples: vec![Sample::new(1_700_000_000_000 + i, i as f64)],
            }],
        })
    };
    let mut waits = Vec::new();
    for r in 0..repeats as i64 {
        write(r * 1000).expect("a healthy write");
        arm.store(true, Ordering::SeqCst);
        assert!(
            write(r * 1000 + 1).is_err(),
            "the failed fsync fails the write"
        );
        let failed = Instant::now();
        let mut i = 2;
        while write(r * 1000 + i).is_err() {
            assert!(
                failed.elapsed() < Duration::from_secs(30),
                "writes never resumed"
            );
            std::thread::sleep(Duration::from_micros(200));
            i += 1;
        }
        waits.push(failed.elapsed());
    }
    waits.sort();
    let ms = |d: Option<&Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    println!(
        "failed fsync → writes resume, {repeats} times: p50 {:.1} ms, max {:.1} ms (recoveries: {})",
        ms(waits.get(waits.len() / 2)),
        ms(waits.last()),
        engine.stats().write_recoveries
    );
}
