//! Files the manifest does not account for: a missing manifest never costs a segment, a
//! segment no manifest lists is deleted only when it provably is a flush's leftover, and
//! `Engine::repair` rebuilds a lost or damaged manifest from the segments; a damaged
//! METADATA file is quarantined without keeping the store down.

use std::path::{Path, PathBuf};

use iocdb_engine::{Engine, Error, Options, Sample};

use crate::common::{self, dump, request, series};

/// What a store holds, as `dump` gives it.
type Held = std::collections::BTreeMap<String, Vec<(i64, u64)>>;

/// A store with two flushed segments and one series in the WAL; returns what it holds.
fn build(dir: &Path) -> Held {
    let engine = common::open(dir);
    for (i, flush) in [(0usize, true), (1, true), (2, false)] {
        let samples = (0..50).map(|t| Sample::new(t * 1000, t as f64)).collect();
        engine
            .write(request("ns", vec![series("m", i, samples)]))
            .expect("write");
        if flush {
            engine.flush().expect("flush");
        }
    }
    dump(&engine, "ns")
}

/// The files of the store's folder `sub`, sorted.
fn files_in(dir: &Path, sub: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join(sub))
        .expect(sub)
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    v
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    files_in(dir, "segments")
}

#[test]
fn a_missing_manifest_refuses_to_open_deletes_nothing_and_repair_rebuilds_it() {
    let dir = tempfile::tempdir().expect("dir");
    let before = build(dir.path());
    let files = segments(dir.path());
    assert!(files.len() >= 2, "{files:?}");
    std::fs::remove_file(dir.path().join("MANIFEST")).expect("remove");

    let refused = common::open_with(dir.path(), common::options()).expect_err("refused");
    assert!(
        matches!(&refused, Error::Corrupt { file, reason, .. }
            if file.ends_with("MANIFEST") && reason.contains("iocdb repair")),
        "{refused}"
    );
    assert_eq!(segments(dir.path()), files, "no segment was touched");

    let report = Engine::repair(dir.path(), &Options::default()).expect("repair");
    assert!(report.rebuilt);
    assert_eq!(report.segments.len(), files.len());
    let engine = common::open(dir.path());
    assert_eq!(dump(&engine, "ns"), before, "every sample is back");
    drop(engine);
    let again = Engine::repair(dir.path(), &Options::default()).expect("repair");
    assert!(!again.rebuilt, "a sound manifest is left alone");
}

#[test]
fn a_damaged_manifest_is_refused_and_repair_quarantines_it() {
    let dir = tempfile::tempdir().expect("dir");
    let before = build(dir.path());
    let manifest = dir.path().join("MANIFEST");
    let mut bytes = std::fs::read(&manifest).expect("read");
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&manifest, bytes).expect("write");
    assert!(matches!(
        common::open_with(dir.path(), common::options()),
        Err(Error::Corrupt { .. })
    ));
    let report = Engine::repair(dir.path(), &Options::default()).expect("repair");
    assert!(report.rebuilt);
    assert_eq!(report.quarantined.len(), 1, "{:?}", report.quarantined);
    assert!(report.quarantined[0].moved_to.exists());
    let engine = common::open(dir.path());
    assert_eq!(dump(&engine, "ns"), before);
}

#[test]
fn unlisted_segments_are_removed_only_when_they_are_a_flushs_leftovers() {
    let dir = tempfile::tempdir().expect("dir");
    let before = build(dir.path());
    let files = segments(dir.path());
    let seg = |name: &str| dir.path().join("segments").join(name);
    let source = files.first().expect("a segment");
    // Sequence 0 was published long ago (the manifest is past it) but is not listed now: a
    // file nobody can vouch for — quarantined, not deleted.
    std::fs::copy(source, seg("0000000000000000_0.seg")).expect("copy");
    // A sequence the manifest never reached, and a temporary file: an interrupted flush,
    // whose data is still in the WAL — deleted.
    std::fs::copy(source, seg("0000000000099999_0.seg")).expect("copy");
    std::fs::copy(source, seg("0000000000099999_0.seg.tmp")).expect("copy");

    let engine = common::open(dir.path());
    assert_eq!(dump(&engine, "ns"), before);
    assert_eq!(
        segments(dir.path()),
        files,
        "only the listed segments remain"
    );
    let stats = engine.stats();
    assert_eq!(stats.quarantined.len(), 1, "{:?}", stats.quarantined);
    let q = &stats.quarantined[0];
    assert!(q.file.ends_with("0000000000000000_0.seg"), "{q:?}");
    assert!(
        q.moved_to.exists() && q.reason.contains("no manifest lists"),
        "{q:?}"
    );
}

#[test]
fn a_damaged_metadata_file_is_quarantined_and_the_store_opens_unless_told_to_refuse() {
    let dir = tempfile::tempdir().expect("dir");
    let before = build(dir.path());
    {
        let engine = common::open(dir.path());
        engine
            .set_metadata(
                "ns",
                iocdb_engine::MetricMetadata {
                    metric: "m".into(),
                    unit: "giường".into(),
                    description: "Số giường trống".into(),
                    expected_interval_ms: Some(60_000),
                    kind: String::new(),
                    ..Default::default()
                },
            )
            .expect("metadata");
    }
    let metadata = dir.path().join("METADATA");
    let mut bytes = std::fs::read(&metadata).expect("read");
    bytes[20] ^= 0x20;
    std::fs::write(&metadata, bytes).expect("write");

    let refusing = Options {
        metadata_corruption: iocdb_engine::MetadataCorruption::Refuse,
        ..common::options()
    };
    assert!(matches!(
        common::open_with(dir.path(), refusing),
        Err(Error::Corrupt { file, .. }) if file.ends_with("METADATA")
    ));
    let engine = common::open(dir.path());
    assert_eq!(dump(&engine, "ns"), before, "every sample is served");
    assert!(engine.metadata("ns").expect("metadata").is_empty());
    let stats = engine.stats();
    assert_eq!(stats.quarantined.len(), 1, "{:?}", stats.quarantined);
    assert!(stats.quarantined[0].file.ends_with("METADATA"));
    assert!(stats.quarantined[0].moved_to.exists());
}

/// A store whose WAL spans several files (no flush), and what it holds.
fn wal_files(dir: &Path) -> (Vec<PathBuf>, Held) {
    let opts = Options {
        wal_file_bytes: 512,
        ..common::options()
    };
    let engine = common::open_with(dir, opts).expect("open");
    for b in 0..6i64 {
        let samples = (0..30)
            .map(|t| Sample::new(b * 100 + t, t as f64))
            .collect();
        engine
            .write(request("ns", vec![series("m", b as usize, samples)]))
            .expect("write");
    }
    let held = dump(&engine, "ns");
    (files_in(dir, "wal"), held)
}

#[test]
fn a_torn_tail_is_cut_only_in_the_newest_wal_file_and_older_damage_is_quarantined() {
    // The newest file cut short: a write that never finished — cut and counted, not damage.
    let dir = tempfile::tempdir().expect("dir");
    let (files, held) = wal_files(dir.path());
    assert!(files.len() >= 3, "{files:?}");
    let newest = files.last().expect("newest");
    let len = std::fs::metadata(newest).expect("meta").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(newest)
        .expect("open");
    f.set_len(len - 5).expect("cut");
    drop(f);
    let engine = common::open(dir.path());
    let stats = engine.stats();
    assert_eq!((stats.wal_files_cut, stats.quarantined.len()), (1, 0));
    assert!(stats.wal_bytes_cut > 0);
    assert_eq!(
        dump(&engine, "ns").len(),
        held.len() - 1,
        "only the torn batch is gone"
    );
    drop(engine);

    // The same bytes damaged at the end of an older file: corruption, quarantined.
    let dir = tempfile::tempdir().expect("dir");
    let (files, held) = wal_files(dir.path());
    let older = files.first().expect("oldest");
    let mut bytes = std::fs::read(older).expect("read");
    let last = bytes.len() - 3;
    bytes[last] ^= 0x10;
    std::fs::write(older, bytes).expect("write");
    let engine = common::open(dir.path());
    let stats = engine.stats();
    assert_eq!(stats.wal_files_cut, 1);
    assert_eq!(stats.quarantined.len(), 1, "{:?}", stats.quarantined);
    assert!(
        stats.quarantined[0].reason.contains("not the newest"),
        "{:?}",
        stats.quarantined
    );
    assert_eq!(
        dump(&engine, "ns").len(),
        held.len() - 1,
        "the later files are served"
    );
}

/// Whether a WAL file ends in zeros, the writer's space written ahead of its frames.
fn ends_in_zeros(path: &Path) -> bool {
    let bytes = std::fs::read(path).expect("read");
    bytes.len() >= 64 && bytes[bytes.len() - 64..].iter().all(|&b| b == 0)
}

#[test]
fn zeros_written_ahead_end_only_the_newest_wal_file_and_a_crash_leaves_no_cut_to_report() {
    let dir = tempfile::tempdir().expect("dir");
    let opts = Options {
        wal_file_bytes: 16 << 10,
        ..common::options()
    };
    let engine = common::open_with(dir.path(), opts.clone()).expect("open");
    for b in 0..40i64 {
        let samples = (0..60)
            .map(|t| Sample::new(b * 100 + t, (b * t) as f64))
            .collect();
        engine
            .write(request("ns", vec![series("m", b as usize % 7, samples)]))
            .expect("write");
    }
    let held = dump(&engine, "ns");
    let files = files_in(dir.path(), "wal");
    assert!(files.len() >= 3, "{files:?}");
    let (newest, older) = files.split_last().expect("files");
    assert!(ends_in_zeros(newest), "the newest file has zeros ahead");
    for file in older {
        assert!(
            !ends_in_zeros(file),
            "{} was cut to its frames",
            file.display()
        );
    }

    // A crash: the files as they are while the engine runs.
    let image = tempfile::tempdir().expect("image");
    copy_store(dir.path(), image.path());
    let reopened = common::open_with(image.path(), opts.clone()).expect("reopen");
    let stats = reopened.stats();
    assert_eq!(
        (
            stats.wal_files_cut,
            stats.wal_bytes_cut,
            stats.quarantined.len()
        ),
        (0, 0, 0),
        "unused zeros are neither a torn write nor damage"
    );
    assert_eq!(dump(&reopened, "ns"), held);
    drop(reopened);
    let replayed = files_in(image.path(), "wal");
    assert!(!replayed.iter().any(|f| ends_in_zeros(f)), "{replayed:?}");

    // A clean close cuts the newest file to its frames too.
    drop(engine);
    assert!(!ends_in_zeros(newest), "closing cut the zeros");
    let engine = common::open_with(dir.path(), opts).expect("open again");
    assert_eq!(engine.stats().wal_files_cut, 0);
    assert_eq!(dump(&engine, "ns"), held);
}

/// Copies a store's files (not its lock) as they are now.
fn copy_store(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("dir") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_store(&path, &target);
        } else if path.file_name().is_some_and(|n| n != "LOCK") {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}
