//! Format freeze: the chunk, WAL and segment formats, as committed golden files. Encoding
//! the same input must give the same bytes, and the golden bytes must decode to the same
//! samples. A failure here means the on-disk format changed: bump its version and keep
//! reading the old one. `IOCDB_BLESS=1` rewrites the golden files of the current version
//! (only with a version bump). Golden files of older versions are never rewritten: they
//! must keep opening and answering as they did.

use std::path::PathBuf;

use iocdb_engine::fs::Bytes;
use iocdb_engine::internal::chunk;
use iocdb_engine::internal::record;
use iocdb_engine::internal::rollup;
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
    assert!(golden == bytes, "{name}: the encoding changed");
}

/// Two-place decimals with a stale marker: what segment version 2 codes as mantissas.
fn decimal_samples() -> Vec<Sample> {
    (0..300)
        .map(|i| {
            let v = if i == 150 {
                f64::from_bits(0x7ff0_0000_0000_0002)
            } else {
                ((i * 37) % 1000) as f64 / 100.0
            };
            Sample::new(1_764_547_200_000 + i * 60_000, v)
        })
        .collect()
}

fn same_bits(a: &[Sample], b: &[Sample]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.t == y.t && x.v.to_bits() == y.v.to_bits())
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

/// Decodes a golden chunk into samples.
fn golden_samples(name: &str) -> Vec<Sample> {
    let (ts, vs) = decode_golden(name);
    ts.into_iter()
        .zip(vs)
        .map(|(t, v)| Sample::new(t, v))
        .collect()
}

/// Decodes a golden chunk into columns.
fn decode_golden(name: &str) -> (Vec<i64>, Vec<f64>) {
    let (mut t, mut v) = (Vec::new(), Vec::new());
    chunk::decode(
        &std::fs::read(fixture(name)).expect("golden"),
        &mut t,
        &mut v,
    )
    .expect("decodes");
    (t, v)
}

#[test]
fn chunks_of_version_1_still_decode_as_they_did() {
    let s = samples();
    let ts: Vec<i64> = s.iter().map(|x| x.t).collect();
    let ints: Vec<f64> = s.iter().map(|x| x.v).collect();
    let floats: Vec<f64> = s.iter().map(|x| x.v * 0.37).collect();
    assert_eq!(decode_golden("chunk_int_v1.bin"), (ts.clone(), ints));
    assert_eq!(decode_golden("chunk_xor_v1.bin"), (ts, floats));
}

#[test]
fn chunk_format_version_2_is_frozen() {
    let s = samples();
    let ts: Vec<i64> = s.iter().map(|x| x.t).collect();
    let ints: Vec<f64> = s.iter().map(|x| x.v).collect();
    let floats: Vec<f64> = s.iter().map(|x| x.v * 0.37).collect();
    check("chunk_int_v2.bin", &chunk::encode(&ts, &ints));
    let float_chunk = chunk::encode(&ts, &floats);
    assert_eq!(float_chunk[0] & 0x3f, 6, "Chimp128");
    check("chunk_chimp128_v2.bin", &float_chunk);
    assert_eq!(
        decode_golden("chunk_int_v2.bin"),
        (ts.clone(), ints.clone())
    );
    assert_eq!(
        decode_golden("chunk_chimp128_v2.bin"),
        (ts.clone(), floats.clone())
    );
    // The same floats in Chimp (encoding 5), written before Chimp128 took them: still read.
    let chimp = std::fs::read(fixture("chunk_float_v2.bin")).expect("golden");
    assert_eq!(chimp[0] & 0x3f, 5, "Chimp");
    assert_eq!(decode_golden("chunk_float_v2.bin"), (ts.clone(), floats));
    // Scrape jitter: timestamps in blocks of differences from the step.
    let jittered: Vec<i64> = ts
        .iter()
        .enumerate()
        .map(|(i, t)| t + ((i as i64 * 2_654_435_761) >> 11) % 9 - 4)
        .collect();
    let bytes = chunk::encode(&jittered, &ints);
    assert_eq!(bytes[0] & 0x40, 0x40, "timestamps in blocks");
    check("chunk_jitter_v2.bin", &bytes);
    assert_eq!(decode_golden("chunk_jitter_v2.bin"), (jittered, ints));
}

#[test]
fn chunk_decimal_encoding_of_version_2_is_frozen() {
    let s = decimal_samples();
    let ts: Vec<i64> = s.iter().map(|x| x.t).collect();
    let vs: Vec<f64> = s.iter().map(|x| x.v).collect();
    let bytes = chunk::encode(&ts, &vs);
    assert_eq!(bytes[0] & 0x3f, 4, "decimal encoding");
    check("chunk_decimal_v2.bin", &bytes);
    assert!(same_bits(&golden_samples("chunk_decimal_v2.bin"), &s));
}

#[test]
fn compressed_chunks_of_version_2_keep_decoding() {
    // zstd's bytes may change with the library, so this golden file is only read back.
    let s = samples();
    let ts: Vec<i64> = s.iter().map(|x| x.t).collect();
    let vs: Vec<f64> = s.iter().map(|x| x.v).collect();
    let path = fixture("chunk_compressed_v2.bin");
    if std::env::var_os("IOCDB_BLESS").is_some() {
        let packed = chunk::compress(chunk::encode(&ts, &vs));
        assert_eq!(packed[0] & 0x80, 0x80, "compressed");
        std::fs::write(&path, packed).expect("bless");
    }
    assert!(same_bits(&golden_samples("chunk_compressed_v2.bin"), &s));
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

fn segment_input(samples: Vec<Sample>) -> Vec<SegmentInput> {
    vec![SegmentInput {
        namespace: Namespace::new("security").expect("ns"),
        labels: labels(),
        samples,
    }]
}

/// Opens a golden segment and returns its samples.
fn read_segment(name: &str) -> Vec<Sample> {
    let golden = std::fs::read(fixture(name)).expect("golden");
    let seg = Segment::open(&fixture(name), Bytes::owned(golden)).expect("opens");
    assert_eq!(seg.seq, 7);
    let labels = seg.labels().expect("labels");
    assert_eq!(labels[0].get("commune"), Some("Phường Châu Đốc"));
    let mut out = Vec::new();
    for c in seg.series(0).expect("a series").chunks {
        seg.read_chunk(&c, i64::MIN, i64::MAX, &mut out)
            .expect("chunk");
    }
    out
}

#[test]
fn segments_of_version_1_still_open_and_answer_as_they_did() {
    assert_eq!(read_segment("segment_v1.seg"), samples());
}

#[test]
fn segments_of_version_2_still_open_and_answer_as_they_did() {
    let mut all = samples();
    all.extend(
        decimal_samples()
            .into_iter()
            .map(|s| Sample::new(s.t + 86_400_000, s.v)),
    );
    let golden = std::fs::read(fixture("segment_v2.seg")).expect("golden");
    assert_eq!(
        golden.get(8..12),
        Some(&2u32.to_le_bytes()[..]),
        "version 2"
    );
    assert!(same_bits(&read_segment("segment_v2.seg"), &all));
    let seg = Segment::open(&fixture("segment_v2.seg"), Bytes::owned(golden)).expect("opens");
    let series = seg.series(0).expect("a series");
    assert!(seg.tiers.is_empty() && seg.rollup_offset(series).expect("where").is_none());
}

/// Five-minute and hourly tiers, as a flush writes them.
const TIERS: [i64; 2] = [300_000, 3_600_000];

/// The samples every golden segment since version 2 holds.
fn segment_samples() -> Vec<Sample> {
    let mut all = samples();
    all.extend(
        decimal_samples()
            .into_iter()
            .map(|s| Sample::new(s.t + 86_400_000, s.v)),
    );
    all
}

/// Opens a golden segment of `version` with rollups and checks its samples and rollups.
fn check_segment_with_rollups(name: &str, version: u32) {
    let all = segment_samples();
    let golden = std::fs::read(fixture(name)).expect("golden");
    assert_eq!(
        golden.get(8..12),
        Some(&version.to_le_bytes()[..]),
        "version {version}"
    );
    assert!(same_bits(&read_segment(name), &all));
    // The rollups read back are the summaries of the samples.
    let seg = Segment::open(&fixture(name), Bytes::owned(golden)).expect("opens");
    assert_eq!(&*seg.tiers, &TIERS);
    for tier in TIERS {
        let (mut stored, mut expected) = (Vec::new(), Vec::new());
        assert!(
            seg.read_rollup(
                seg.series(0).expect("a series"),
                tier,
                rollup::Wanted::ALL,
                &mut stored
            )
            .expect("rollup")
        );
        rollup::summarize(&all, tier, &mut expected);
        assert_eq!(format!("{stored:?}"), format!("{expected:?}"));
        // Since version 7, the metric's rollups: of its one series, that series' extremes.
        let mut metric = Vec::new();
        let covered = seg
            .read_metric_rollup("security", "camera_people_count", tier, &mut metric)
            .expect("metric rollup");
        if version >= 7 {
            let mut one = rollup::metric::MetricRollup::new(tier);
            one.add(&expected);
            assert_eq!(format!("{metric:?}"), format!("{:?}", one.buckets()));
            let (from, to) = covered.expect("the metric is listed");
            assert!(from <= seg.min_t && to >= seg.max_t, "{from}..{to}");
        } else {
            assert_eq!((covered, metric.len()), (None, 0));
        }
    }
    // Its label index answers, built at open for a file that has none.
    let index = seg.label_index().expect("index");
    let matchers = [iocdb_engine::Matcher::equal("commune", "Phường Châu Đốc")];
    let found = index.select("security", &matchers).expect("select");
    assert_eq!(found.iter().collect::<Vec<_>>(), [0]);
}

#[test]
fn segments_of_version_3_still_open_and_answer_as_they_did() {
    check_segment_with_rollups("segment_v3.seg", 3);
}

#[test]
fn segments_of_version_4_still_open_and_answer_as_they_did() {
    check_segment_with_rollups("segment_v4.seg", 4);
}

#[test]
fn segments_of_version_5_still_open_and_answer_as_they_did() {
    check_segment_with_rollups("segment_v5.seg", 5);
}

#[test]
fn segments_of_version_6_still_open_and_answer_as_they_did() {
    check_segment_with_rollups("segment_v6.seg", 6);
}

#[test]
fn segments_of_version_7_still_open_and_answer_as_they_did() {
    check_segment_with_rollups("segment_v7.seg", 7);
}

/// Since version 8 the series table is packed, not a zstd frame: every byte of the file is
/// this build's own and must not change.
#[test]
fn segment_format_version_8_is_frozen() {
    let bytes = iocdb_engine::internal::encode_segment_with_rollups(
        7,
        &segment_input(segment_samples()),
        &TIERS,
    );
    check("segment_v8.seg", &bytes);
    check_segment_with_rollups("segment_v8.seg", 8);
}

/// A store whose segments an older build wrote (the golden version 5 file, listed by a
/// manifest as that build would have written it) opens and answers from the older file's
/// rollups; a late write into its time and a compaction then leave one segment of the
/// current version, answering the same with rollups as without, the late sample included.
#[test]
fn a_store_of_older_segments_answers_and_compacts_into_the_current_version() {
    use iocdb_engine::{Engine, Options, PromqlQuery, SeriesWrite, WriteRequest};
    let dir = tempfile::tempdir().expect("dir");
    let segments = dir.path().join("segments");
    std::fs::create_dir(&segments).expect("segments");
    let name = "0000000000000007_1764547200000.seg";
    std::fs::copy(fixture("segment_v5.seg"), segments.join(name)).expect("copy");
    let body = format!("iocdb-manifest 1\nnext-seq 8\nwal-flushed-below 0\nsegment {name}\n");
    crate::common::write_manifest(dir.path(), &body);
    let opts = Options {
        rollup_tiers_ms: TIERS.to_vec(),
        // A window holding the file's two days whole.
        compaction_window_ms: 16 * 86_400_000,
        compaction_aged_windows_ms: Vec::new(),
        query_cache_bytes: 0,
        ..Options::default()
    };
    let engine = Engine::open(dir.path(), opts).expect("opens");
    let (start, end) = (
        1_764_547_200_000 + 3_600_000,
        1_764_547_200_000 + 2 * 86_400_000,
    );
    let ask = |engine: &Engine, rollups: bool| {
        let q = PromqlQuery {
            use_rollups: rollups,
            ..PromqlQuery::range(
                "security",
                "max_over_time(camera_people_count[1h])",
                start,
                end,
                3_600_000,
            )
        };
        let answer = engine.query(&q).expect("query");
        (
            crate::common::matrix_bits(&answer).expect("matrix"),
            answer.rollup_buckets,
        )
    };
    let (with, buckets) = ask(&engine, true);
    let (without, _) = ask(&engine, false);
    assert!(buckets > 0, "the version 5 file's rollups answered nothing");
    assert_eq!(with, without);
    let first_hour = |bits: &crate::common::MatrixBits| {
        bits.first()
            .and_then(|(_, points)| points.first())
            .map(|&(_, v)| f64::from_bits(v))
    };
    assert_eq!(first_hour(&with), Some(10.0));

    // A late sample in the first hour, then a compaction of the old file with the flush.
    let late = WriteRequest {
        namespace: "security".into(),
        series: vec![SeriesWrite {
            labels: labels().iter().cloned().collect(),
            samples: vec![Sample::new(1_764_547_200_000 + 5_000, 100.0)],
        }],
    };
    let outcome = engine.write(late).expect("write");
    assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
    engine.flush().expect("flush");
    engine.compact().expect("compact");
    let files: Vec<_> = std::fs::read_dir(&segments)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let bytes = std::fs::read(&files[0]).expect("read");
    let seg = Segment::open(&files[0], Bytes::owned(bytes)).expect("opens");
    assert_eq!(
        seg.format_version(),
        iocdb_engine::internal::SEGMENT_VERSION
    );
    let (with, buckets) = ask(&engine, true);
    let (without, _) = ask(&engine, false);
    assert!(buckets > 0);
    assert_eq!(with, without);
    assert_eq!(first_hour(&with), Some(100.0));
}
