//! Format freeze: version 1 of the chunk, WAL and segment formats, as committed golden files.
//! Encoding the same input must give the same bytes, and the golden bytes must decode to the
//! same samples. A failure here means the on-disk format changed: bump its version and keep
//! reading the old one. `IOCDB_BLESS=1` rewrites the golden files (only with a version bump).
//! The golden segment must also keep opening: old files stay readable.

use std::path::PathBuf;

use iocdb_engine::fs::Bytes;
use iocdb_engine::internal::chunk;
use iocdb_engine::internal::record;
use iocdb_engine::internal::{Segment, SegmentInput};
use iocdb_engine::{Label, Labels, Namespace, Sample};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/fixtures")
        .join(name)
}

fn check(name: &str, bytes: &[u8]) {
    let path = fixture(name);
    if std::env::var_os("IOCDB_BLESS").is_some() {
        std::fs::write(&path, bytes).expect("bless");
    }
    let golden =
        std::fs::read(&path).unwrap_or_else(|e| panic!("golden file {}: {e}", path.display()));
    assert!(
        golden == bytes,
        "{name}: the encoding of format version 1 changed"
    );
}

fn samples() -> Vec<Sample> {
    (0..300)
        .map(|i| Sample::new(1_764_547_200_000 + i * 10_000, f64::from((i % 11) as i32)))
        .collect()
}

fn labels() -> Labels {
    Labels::validate(
        vec![
            Label::new("__name__", "camera_people_count"),
            Label::new("commune", "Phường Châu Đốc"),
        ],
        &Default::default(),
    )
    .expect("labels")
}

#[test]
fn chunk_format_version_1_is_frozen() {
    let s = samples();
    let ts: Vec<i64> = s.iter().map(|x| x.t).collect();
    let ints: Vec<f64> = s.iter().map(|x| x.v).collect();
    let floats: Vec<f64> = s.iter().map(|x| x.v * 0.37).collect();
    check("chunk_int_v1.bin", &chunk::encode(&ts, &ints));
    check("chunk_xor_v1.bin", &chunk::encode(&ts, &floats));
    let (mut t, mut v) = (Vec::new(), Vec::new());
    chunk::decode(
        &std::fs::read(fixture("chunk_xor_v1.bin")).expect("golden"),
        &mut t,
        &mut v,
    )
    .expect("decodes");
    assert_eq!((t, v), (ts, floats));
}

#[test]
fn wal_format_version_1_is_frozen() {
    let namespace = Namespace::new("security").expect("ns");
    let labels = labels();
    let mut file = record::series_defs_frame(&[record::SeriesDefRef {
        wal_ref: 3,
        namespace: &namespace,
        labels: &labels,
    }]);
    file.extend(record::samples_frame([(3, &samples()[..5])].into_iter()));
    check("wal_v1.wal", &file);
}

#[test]
fn segment_format_version_1_is_frozen() {
    let input = vec![SegmentInput {
        namespace: Namespace::new("security").expect("ns"),
        labels: labels(),
        samples: samples(),
    }];
    let bytes = iocdb_engine::internal::encode_segment(7, &input);
    if std::env::var_os("IOCDB_BLESS").is_some() {
        std::fs::write(fixture("segment_v1.seg"), &bytes).expect("bless");
    }
    // The metadata blocks are zstd frames, whose bytes may change with the zstd library
    // while staying readable; the chunk region before them must not change.
    let golden = std::fs::read(fixture("segment_v1.seg")).expect("golden");
    let chunks_end = 16
        + 8
        + chunk::encode(
            &samples().iter().map(|x| x.t).collect::<Vec<_>>(),
            &samples().iter().map(|x| x.v).collect::<Vec<_>>(),
        )
        .len();
    assert!(
        golden.get(..chunks_end) == bytes.get(..chunks_end),
        "the segment's header or chunk blocks changed"
    );
    let seg = Segment::open(&fixture("segment_v1.seg"), Bytes::owned(golden)).expect("opens");
    assert_eq!(seg.seq, 7);
    let mut out = Vec::new();
    for c in &seg.series[0].chunks {
        seg.read_chunk(c, i64::MIN, i64::MAX, &mut out)
            .expect("chunk");
    }
    assert_eq!(out, samples());
    let labels = seg.labels().expect("labels");
    assert_eq!(labels[0].get("commune"), Some("Phường Châu Đốc"));
}
