//! `Engine::verify` reads everything and names the file and offset of whatever is wrong,
//! changing nothing.

use iocdb_engine::fs::OsFs;
use iocdb_engine::{Engine, Sample};

use crate::common::{self, request, series};

fn store(dir: &std::path::Path) {
    let engine = common::open(dir);
    for round in 0..3i64 {
        let samples = (0..100)
            .map(|i| Sample::new(round * 20_000 + i * 100, i as f64))
            .collect();
        engine
            .write(request("ns", vec![series("m", round as usize, samples)]))
            .expect("write");
        if round < 2 {
            engine.flush().expect("flush");
        }
    }
    engine.close().expect("close");
}

#[test]
fn a_clean_store_checks_and_a_flipped_byte_is_found_where_it_is() {
    let dir = tempfile::tempdir().expect("dir");
    store(dir.path());
    let clean = Engine::verify(dir.path(), &OsFs).expect("verify");
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);
    assert!(clean.segments >= 2 && clean.chunks >= 2, "{clean:?}");
    assert_eq!(clean.samples, 200);
    assert!(clean.wal_files >= 1 && clean.wal_frames >= 1, "{clean:?}");

    // A flipped byte in the middle of a segment.
    let seg_dir = dir.path().join("segments");
    let mut segs: Vec<_> = std::fs::read_dir(&seg_dir)
        .expect("segments")
        .map(|e| e.expect("entry").path())
        .collect();
    segs.sort();
    let target = segs[0].clone();
    let mut bytes = std::fs::read(&target).expect("read");
    let at = bytes.len() / 3;
    bytes[at] ^= 0x20;
    std::fs::write(&target, &bytes).expect("write");
    let before = std::fs::read(&target).expect("read");
    let damaged = Engine::verify(dir.path(), &OsFs).expect("verify");
    assert!(
        damaged.problems.iter().any(|p| p.file == target),
        "{:?}",
        damaged.problems
    );
    assert_eq!(
        std::fs::read(&target).expect("read"),
        before,
        "verify changes nothing"
    );

    // A damaged MANIFEST is named too.
    let manifest = dir.path().join("MANIFEST");
    let mut m = std::fs::read(&manifest).expect("read");
    m[5] ^= 1;
    std::fs::write(&manifest, &m).expect("write");
    let r = Engine::verify(dir.path(), &OsFs).expect("verify");
    assert!(
        r.problems.iter().any(|p| p.file == manifest),
        "{:?}",
        r.problems
    );
}
