//! Damaged files: truncations and bit flips of WAL and segment files at many offsets. Opening
//! and reading return errors that name the file and offset, or quarantine the file and say
//! so; untouched segments stay readable; nothing panics.

use std::path::{Path, PathBuf};

use iocdb_engine::{Engine, Error, Matcher, Options, Sample, WalCorruption};

use crate::common::{self, request, series};

/// A store with two segments of disjoint series ("a" flushed first, then "b") and a WAL
/// holding series "c".
fn build() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    let engine = common::open_with(
        dir.path(),
        Options {
            partition_ms: 1 << 40,
            ..Options::default()
        },
    )
    .expect("open");
    for (i, flush) in [(0usize, true), (1, true), (2, false)] {
        let samples = (0..500)
            .map(|t| Sample::new(t * 1000, (t % 13) as f64 * 1.5))
            .collect();
        engine
            .write(request("ns", vec![series("m", i, samples)]))
            .expect("write");
        if flush {
            engine.flush().expect("flush");
        }
    }
    dir
}

fn files(dir: &Path, sub: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join(sub))
        .expect("dir")
        .map(|e| e.expect("e").path())
        .collect();
    v.sort();
    v
}

fn copy_dir(from: &Path, to: &Path) {
    for sub in ["", "wal", "segments", "quarantine"] {
        std::fs::create_dir_all(to.join(sub)).expect("mkdir");
        for f in files(from, sub).into_iter().filter(|p| p.is_file()) {
            std::fs::copy(&f, to.join(sub).join(f.file_name().expect("name"))).expect("copy");
        }
    }
}

fn read_site(engine: &Engine, site: &str) -> Result<usize, Error> {
    let got = engine.select("ns", &[Matcher::equal("site", site)], i64::MIN, i64::MAX)?;
    Ok(got.first().map_or(0, |s| s.samples.len()))
}

fn names(path: &Path) -> impl Fn(&Error) -> bool + '_ {
    move |e| matches!(e, Error::Corrupt { file, .. } if file.file_name() == path.file_name())
}

#[test]
fn a_damaged_segment_is_reported_by_name_and_the_other_segments_stay_readable() {
    let base = build();
    let segments = files(base.path(), "segments");
    assert_eq!(segments.len(), 2);
    let victim_name = segments[0].file_name().expect("name").to_owned();
    let len = std::fs::metadata(&segments[0]).expect("meta").len() as usize;
    let mut quarantined = 0;
    let mut read_errors = 0;
    for (k, offset) in (0..len).step_by(len / 60 + 1).enumerate() {
        let dir = tempfile::tempdir().expect("dir");
        copy_dir(base.path(), dir.path());
        let victim = dir.path().join("segments").join(&victim_name);
        let mut bytes = std::fs::read(&victim).expect("read");
        if k % 2 == 0 {
            bytes[offset] ^= 0x41;
        } else {
            bytes.truncate(offset);
        }
        std::fs::write(&victim, &bytes).expect("write");

        let engine =
            common::open_with(dir.path(), Options::default()).expect("opens despite a bad segment");
        assert_eq!(read_site(&engine, "s1").expect("untouched segment"), 500);
        assert_eq!(read_site(&engine, "s2").expect("WAL data"), 500);
        let stats = engine.stats();
        if let Some(q) = stats.quarantined.first() {
            quarantined += 1;
            assert_eq!(q.file.file_name(), Some(victim_name.as_os_str()));
            assert!(q.reason.contains("offset"), "{}", q.reason);
            assert!(
                q.moved_to.exists(),
                "the damaged file is kept in quarantine"
            );
            assert_eq!(read_site(&engine, "s0").expect("gone, not an error"), 0);
        } else {
            match read_site(&engine, "s0") {
                Ok(n) => assert_eq!(n, 500, "offset {offset}: a flip went unnoticed"),
                Err(e) => {
                    assert!(names(&victim)(&e), "offset {offset}: {e}");
                    read_errors += 1;
                }
            }
        }
    }
    assert!(
        quarantined > 0 && read_errors > 0,
        "both paths exercised: {quarantined} {read_errors}"
    );
}

#[test]
fn a_damaged_wal_keeps_what_precedes_the_damage_or_refuses_when_asked() {
    let base = build();
    let wal = files(base.path(), "wal");
    let wal_file = wal.last().expect("a WAL file").clone();
    let wal_name = wal_file.file_name().expect("name").to_owned();
    let len = std::fs::metadata(&wal_file).expect("meta").len() as usize;
    for (k, offset) in (0..len).step_by(len / 50 + 1).enumerate() {
        let dir = tempfile::tempdir().expect("dir");
        copy_dir(base.path(), dir.path());
        let victim = dir.path().join("wal").join(&wal_name);
        let mut bytes = std::fs::read(&victim).expect("read");
        let truncated = k % 2 == 1;
        if truncated {
            bytes.truncate(offset);
        } else {
            bytes[offset] ^= 0x10;
        }
        std::fs::write(&victim, &bytes).expect("write");

        let refuse = Options {
            wal_corruption: WalCorruption::Refuse,
            ..Options::default()
        };
        match common::open_with(dir.path(), refuse) {
            Ok(engine) => drop(engine),
            Err(e) => assert!(names(&victim)(&e) && !truncated, "offset {offset}: {e}"),
        }
        let engine = common::open_with(dir.path(), Options::default()).expect("salvage opens");
        assert_eq!(read_site(&engine, "s0").expect("segment"), 500);
        assert_eq!(read_site(&engine, "s1").expect("segment"), 500);
        let n = read_site(&engine, "s2").expect("WAL prefix");
        assert!(
            n == 0 || n == 500,
            "a WAL record is applied whole or not at all: {n}"
        );
    }
}

#[test]
fn a_damaged_manifest_refuses_to_open_with_its_name() {
    let base = build();
    let manifest = base.path().join("MANIFEST");
    let mut bytes = std::fs::read(&manifest).expect("read");
    bytes[5] ^= 1;
    std::fs::write(&manifest, bytes).expect("write");
    let err = common::open_with(base.path(), Options::default()).expect_err("refused");
    assert!(names(&manifest)(&err), "{err}");
}

#[test]
fn opening_and_reading_uses_the_common_fixture_layout() {
    // Guards the fixture itself: the store has two segments and WAL data.
    let base = build();
    let engine = common::open(base.path());
    assert_eq!(engine.stats().segments, 2);
    assert_eq!(read_site(&engine, "s2").expect("wal"), 500);
}
