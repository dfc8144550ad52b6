//! Segment round trip, and damage at every offset reported as an error.

use super::reader::Segment;
use super::writer::{SegmentInput, encode_segment};
use crate::Error;
use crate::codec::rollup::Wanted;
use crate::codec::rollup::metric::MetricBucket;
use crate::fs::Bytes;
use crate::model::Limits;
use crate::model::{Label, Labels, Namespace, Sample};

fn input() -> Vec<SegmentInput> {
    (0..3)
        .map(|i| SegmentInput {
            namespace: Namespace::new("health").expect("ns"),
            labels: Labels::validate(
                vec![
                    Label::new("__name__", "hospital_patients_waiting"),
                    Label::new("facility", format!("BV Châu Đốc {i}")),
                ],
                &Limits::default(),
            )
            .expect("labels"),
            samples: (0..3000)
                .map(|t| Sample::new(t * 60_000, f64::from(i * 10 + (t % 7) as i32)))
                .collect(),
        })
        .collect()
}

#[test]
fn a_segment_reads_back_what_was_written() {
    let series = input();
    let bytes = encode_segment(9, &series);
    let seg = Segment::open(std::path::Path::new("x.seg"), Bytes::owned(bytes)).expect("opens");
    assert_eq!(seg.seq, 9);
    assert_eq!(seg.samples, 9000);
    let labels = seg.labels().expect("labels");
    for ((want, got), got_labels) in series.iter().zip(seg.all_series()).zip(&labels) {
        assert_eq!(got_labels, &want.labels);
        assert_eq!(got.chunks.len(), 2);
        let mut out = Vec::new();
        for c in got.chunks {
            seg.read_chunk(&c, i64::MIN, i64::MAX, &mut out)
                .expect("chunk");
        }
        assert_eq!(out, want.samples);
    }
    let postings = seg.postings().expect("postings");
    let ids = postings
        .get(&("facility".to_owned(), "BV Châu Đốc 1".to_owned()))
        .expect("posting");
    assert_eq!(ids.iter().collect::<Vec<_>>(), [1]);
}

#[test]
fn a_flipped_byte_anywhere_is_an_error_naming_the_file_never_a_panic_or_wrong_data() {
    let series = input();
    let good = encode_segment(1, &series);
    for at in (0..good.len()).step_by(7) {
        let mut bad = good.clone();
        bad[at] ^= 0x20;
        let opened = Segment::open(std::path::Path::new("bad.seg"), Bytes::owned(bad));
        let Ok(seg) = opened else {
            assert!(
                matches!(opened, Err(Error::Corrupt { ref file, .. }) if file.ends_with("bad.seg"))
            );
            continue;
        };
        // The header's reserved bytes carry no meaning; everything else is checked.
        for (want, got) in series.iter().zip(seg.all_series()) {
            let mut out = Vec::new();
            let read: Result<(), Error> = got
                .chunks
                .iter()
                .try_for_each(|c| seg.read_chunk(&c, i64::MIN, i64::MAX, &mut out));
            match read {
                Ok(()) => assert_eq!(out, want.samples, "flip at {at} changed data silently"),
                Err(Error::Corrupt { offset, .. }) => assert!(offset as usize <= good.len()),
                Err(e) => panic!("unexpected error {e}"),
            }
        }
    }
}

#[test]
fn a_flipped_byte_among_rollups_and_their_directories_is_an_error_or_changes_nothing() {
    let tiers = [300_000, 3_600_000];
    let series = input();
    let good = super::writer::encode_segment_with_rollups(1, &series, &tiers);
    // Every series' buckets, then the metric's.
    type Read = (
        Vec<Vec<crate::codec::rollup::Bucket>>,
        Vec<Vec<MetricBucket>>,
    );
    let read_all = |seg: &Segment| -> Result<Read, Error> {
        let (mut all, mut metric) = (Vec::new(), Vec::new());
        for s in seg.all_series() {
            for &tier in &tiers {
                let mut out = Vec::new();
                seg.read_rollup(s, tier, Wanted::ALL, &mut out)?;
                all.push(out);
            }
        }
        for &tier in &tiers {
            let mut out = Vec::new();
            seg.read_metric_rollup("health", "hospital_patients_waiting", tier, &mut out)?;
            metric.push(out);
        }
        Ok((all, metric))
    };
    let want = read_all(
        &Segment::open(std::path::Path::new("good.seg"), Bytes::owned(good.clone()))
            .expect("opens"),
    )
    .expect("reads");
    assert!(want.0.iter().all(|b| !b.is_empty()));
    assert!(want.1.iter().all(|b| !b.is_empty()));
    // From the first rollup block to the end of the directory.
    let seg =
        Segment::open(std::path::Path::new("good.seg"), Bytes::owned(good.clone())).expect("opens");
    let first = seg
        .all_series()
        .filter_map(|s| seg.rollup_offset(s).expect("listed"))
        .min()
        .expect("a block") as usize;
    let table = u64::from_le_bytes(good[good.len() - 68..][..8].try_into().expect("8")) as usize;
    for at in first..table {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        match Segment::open(std::path::Path::new("bad.seg"), Bytes::owned(bad)) {
            Err(e) => assert!(
                matches!(e, Error::Corrupt { ref file, .. } if file.ends_with("bad.seg")),
                "{e}"
            ),
            Ok(seg) => match read_all(&seg) {
                Ok((got, metric)) => assert!(
                    got.iter()
                        .flatten()
                        .zip(want.0.iter().flatten())
                        .all(|(a, b)| a.same_bits(b))
                        && got.iter().map(Vec::len).eq(want.0.iter().map(Vec::len))
                        && metric
                            .iter()
                            .flatten()
                            .zip(want.1.iter().flatten())
                            .all(|(a, b)| a.same_bits(b))
                        && metric.iter().map(Vec::len).eq(want.1.iter().map(Vec::len)),
                    "a flip at {at} changed buckets silently"
                ),
                Err(e) => assert!(matches!(e, Error::Corrupt { .. }), "{e}"),
            },
        }
    }
}

#[test]
fn every_truncation_is_refused() {
    let good = encode_segment(1, &input());
    for cut in (0..good.len()).step_by(11) {
        let r = Segment::open(
            std::path::Path::new("cut.seg"),
            Bytes::owned(good[..cut].to_vec()),
        );
        assert!(matches!(r, Err(Error::Corrupt { .. })), "cut at {cut}");
    }
}

#[test]
fn bytes_by_namespace_are_the_chunk_blocks_of_each_namespace() {
    let mut series = input();
    series[1].namespace = Namespace::new("tourism").expect("ns");
    let seg = Segment::open(
        std::path::Path::new("x.seg"),
        Bytes::owned(encode_segment(1, &series)),
    )
    .expect("opens");
    let mut want = std::collections::BTreeMap::<String, u64>::new();
    for s in seg.all_series() {
        let bytes: u64 = s
            .chunks
            .iter()
            .map(|c| seg.chunk_bytes(&c).expect("chunk").len() as u64 + 8)
            .sum();
        *want.entry(s.namespace.to_string()).or_default() += bytes;
    }
    assert_eq!(want.len(), 2);
    assert_eq!(seg.bytes_by_namespace(), want);
}

#[test]
fn rollups_are_gathered_after_the_chunks_and_listed_where_a_series_has_some() {
    use super::writer::SegmentBuilder;
    use crate::codec::rollup;
    let tiers = [300_000, 3_600_000];
    let series = input();
    let mut builder = SegmentBuilder::new(4).with_rollups(&tiers);
    // A series with samples, one whose samples have expired (only its buckets are left),
    // one without either, then one with samples again.
    builder.add(&series[0].namespace, &series[0].labels, &series[0].samples);
    let kept: Vec<Vec<rollup::Bucket>> = tiers
        .iter()
        .map(|&t| {
            let mut out = Vec::new();
            rollup::summarize(&series[1].samples, t, &mut out);
            out
        })
        .collect();
    builder.add_with_rollups(&series[1].namespace, &series[1].labels, &[], &kept);
    builder.add(&series[2].namespace, &series[2].labels, &[]);
    builder.add(&series[2].namespace, &series[2].labels, &series[2].samples);
    let seg = Segment::open(
        std::path::Path::new("x.seg"),
        Bytes::owned(builder.finish()),
    )
    .expect("opens");
    let rollups: Vec<Option<u64>> = seg
        .all_series()
        .map(|s| seg.rollup_offset(s).expect("listed"))
        .collect();
    assert_eq!(rollups[2], None);
    // One group, after every chunk, the blocks one after another in series order.
    let chunks_end = seg
        .all_series()
        .flat_map(|s| s.chunks.iter())
        .map(|c| c.offset + 8 + seg.chunk_bytes(&c).expect("chunk").len() as u64)
        .max()
        .expect("chunks");
    let blocks: Vec<u64> = rollups.iter().flatten().copied().collect();
    assert_eq!(blocks.len(), 3);
    assert_eq!(blocks[0], chunks_end, "{rollups:?}");
    assert!(blocks.windows(2).all(|w| w[0] < w[1]), "{rollups:?}");
    let sources = [&series[0].samples, &series[1].samples, &series[2].samples];
    for (s, samples) in [0, 1, 3].into_iter().zip(sources) {
        let found = seg.series(s).expect("series");
        for &tier in &tiers {
            let (mut read, mut want) = (Vec::new(), Vec::new());
            assert!(
                seg.read_rollup(found, tier, Wanted::ALL, &mut read)
                    .expect("reads")
            );
            rollup::summarize(samples, tier, &mut want);
            assert_eq!(read, want, "series {s}, tier {tier}");
        }
    }
    let mut none = Vec::new();
    assert!(
        !seg.read_rollup(
            seg.series(2).expect("series"),
            300_000,
            Wanted::ALL,
            &mut none
        )
        .expect("reads")
    );
}

#[test]
fn buckets_of_stale_markers_alone_at_the_edges_are_read_back_when_their_samples_are_gone() {
    use super::writer::SegmentBuilder;
    use crate::codec::rollup;
    use crate::model::STALE_NAN_BITS;
    let tier = 60_000;
    let stale = f64::from_bits(STALE_NAN_BITS);
    // A stale marker alone in the first and the last interval, live samples between: with
    // the samples expired, only the buckets bound the segment, and a reader allows as many
    // buckets as intervals the bounds meet.
    let samples = [
        Sample::new(30_000, stale),
        Sample::new(120_000, 4.0),
        Sample::new(150_000, 5.0),
        Sample::new(250_000, stale),
    ];
    let mut kept = Vec::new();
    rollup::summarize(&samples, tier, &mut kept);
    assert_eq!(kept.len(), 3);
    let series = input();
    let mut builder = SegmentBuilder::new(4).with_rollups(&[tier]);
    builder.add_with_rollups(
        &series[0].namespace,
        &series[0].labels,
        &[],
        &[kept.clone()],
    );
    let seg = Segment::open(
        std::path::Path::new("x.seg"),
        Bytes::owned(builder.finish()),
    )
    .expect("opens");
    let mut read = Vec::new();
    assert!(
        seg.read_rollup(seg.series(0).expect("series"), tier, Wanted::ALL, &mut read)
            .expect("reads")
    );
    assert_eq!(read, kept);
}

mod label_index {
    //! The label index read in place answers as the engine's in-memory index does.

    use proptest::prelude::*;

    use super::*;
    use crate::index::{Index, MatchOp, Matcher};

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            prop::sample::select(vec!["Châu Đốc", "Long Xuyên", "Tân Châu", "a", "b"])
                .prop_map(str::to_owned),
            "[a-c]{1,3}",
        ]
    }

    fn labels() -> impl Strategy<Value = Vec<Label>> {
        (
            "[a-c]",
            prop::collection::btree_map(
                prop::sample::select(vec!["commune", "site", "x"]),
                value(),
                0..3,
            ),
        )
            .prop_map(|(metric, rest)| {
                std::iter::once(Label::new("__name__", metric))
                    .chain(rest.into_iter().map(|(n, v)| Label::new(n, v)))
                    .collect()
            })
    }

    fn matcher() -> impl Strategy<Value = Matcher> {
        (
            prop::sample::select(vec!["__name__", "commune", "site", "x", "absent"]),
            prop::sample::select(vec![
                MatchOp::Equal,
                MatchOp::NotEqual,
                MatchOp::Regex,
                MatchOp::NotRegex,
            ]),
            prop_oneof![value(), Just(".*".to_owned()), Just("a|Châu.*".to_owned())],
        )
            .prop_map(|(name, op, value)| {
                Matcher::new(name, op, value).unwrap_or_else(|_| Matcher::equal("x", "a"))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn answers_equal_the_in_memory_index(
            sets in prop::collection::vec((labels(), 0..2usize), 1..40),
            queries in prop::collection::vec(prop::collection::vec(matcher(), 0..3), 1..8),
        ) {
            let namespaces = [Namespace::new("health").expect("ns"), Namespace::new("tourism").expect("ns")];
            let memory = Index::default();
            let mut inputs = Vec::new();
            for (raw, ns) in sets {
                let Ok(labels) = Labels::validate(raw, &Limits::default()) else { continue };
                if inputs.iter().any(|i: &SegmentInput| i.namespace == namespaces[ns] && i.labels == labels) {
                    continue;
                }
                let local = inputs.len() as u32;
                memory.add(&namespaces[ns], &labels, None, || local).expect("added");
                inputs.push(SegmentInput {
                    namespace: namespaces[ns].clone(),
                    labels,
                    samples: vec![Sample::new(1, 1.0)],
                });
            }
            let seg = Segment::open(std::path::Path::new("i.seg"), Bytes::owned(encode_segment(1, &inputs)))
                .expect("opens");
            let index = seg.label_index().expect("index");
            for (local, input) in inputs.iter().enumerate() {
                let (ns, labels) = index.labels(local as u32).expect("labels");
                prop_assert_eq!(ns, input.namespace.as_str());
                let want: Vec<(&str, &str)> = input.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
                prop_assert_eq!(labels, want);
            }
            // A label set is found exactly: not a series with more labels, nor one of the
            // other namespace.
            let exact = |ns: &Namespace, want: &[(&str, &str)]| {
                inputs
                    .iter()
                    .position(|i| {
                        i.namespace == *ns
                            && i.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).eq(want.iter().copied())
                    })
                    .map(|p| p as u32)
            };
            for input in &inputs {
                let want: Vec<(&str, &str)> = input.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
                for ns in &namespaces {
                    prop_assert_eq!(index.find(ns.as_str(), &want).expect("find"), exact(ns, &want));
                    let fewer = want.get(..want.len().saturating_sub(1)).unwrap_or_default();
                    prop_assert_eq!(index.find(ns.as_str(), fewer).expect("find"), exact(ns, fewer));
                }
            }
            for ns in &namespaces {
                for q in &queries {
                    let on_disk = index.select(ns.as_str(), q).expect("select");
                    prop_assert_eq!(&on_disk, &memory.select(ns, q), "{:?} in {}", q, ns.as_str());
                    for name in ["commune", "site", "__name__"] {
                        let want = memory.label_values(name, &on_disk);
                        let got: Vec<String> = index.label_values(name, &on_disk).expect("values")
                            .into_iter().map(str::to_owned).collect();
                        prop_assert_eq!(got, want);
                    }
                    let got: Vec<String> = index.label_names(&on_disk).expect("names")
                        .into_iter().map(str::to_owned).collect();
                    prop_assert_eq!(got, memory.label_names(&on_disk));
                }
            }
        }
    }
}

/// A segment written to its file while it is built (as compaction writes a month) is the
/// same file, byte for byte, as the one built whole in memory, across many spills.
#[test]
fn a_segment_streamed_to_its_file_is_the_one_built_in_memory() {
    use super::writer::{SegmentBuilder, SegmentFile};
    let tiers = [3_600_000];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        f64::from_bits((state >> 12) | 0x3ff0_0000_0000_0000)
    };
    // Noisy values compress poorly: about 10 MB of chunks, two spills and a tail.
    let series: Vec<SegmentInput> = (0..24)
        .map(|i| SegmentInput {
            namespace: Namespace::new("security").expect("ns"),
            labels: Labels::validate(
                vec![
                    Label::new("__name__", "camera_people_count"),
                    Label::new("camera", format!("Long Xuyên {i}")),
                ],
                &Limits::default(),
            )
            .expect("labels"),
            samples: (0..60_000)
                .map(|t| Sample::new(t * 15_000, noise()))
                .collect(),
        })
        .collect();
    let mut whole = SegmentBuilder::cold(9).with_rollups(&tiers);
    for s in &series {
        whole.add(&s.namespace, &s.labels, &s.samples);
    }
    let whole = whole.finish();
    assert!(whole.len() > 2 * (4 << 20), "{} bytes", whole.len());
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("streamed.seg");
    let vfs = crate::fs::OsFs;
    let mut file = SegmentFile::create(&vfs, &path, SegmentBuilder::cold(9).with_rollups(&tiers))
        .expect("create");
    for s in &series {
        let mut buckets = Vec::new();
        crate::codec::rollup::summarize(&s.samples, tiers[0], &mut buckets);
        file.add_with_rollups(&s.namespace, &s.labels, &s.samples, &[buckets])
            .expect("add");
    }
    let written = file.finish(&vfs).expect("finish");
    let streamed = std::fs::read(&path).expect("read");
    assert_eq!(written, streamed.len() as u64);
    assert!(
        streamed == whole,
        "the streamed file differs from the one built whole"
    );
    // The rollups are gathered in more than one group (a chunk lies between two blocks),
    // and every series' read back is the summary of its samples.
    let seg = Segment::open(&path, Bytes::owned(streamed)).expect("opens");
    let mut blocks = Vec::new();
    for (s, input) in seg.all_series().zip(&series) {
        blocks.push(seg.rollup_offset(s).expect("listed").expect("a block"));
        let (mut read, mut want) = (Vec::new(), Vec::new());
        assert!(
            seg.read_rollup(s, tiers[0], Wanted::ALL, &mut read)
                .expect("reads")
        );
        crate::codec::rollup::summarize(&input.samples, tiers[0], &mut want);
        assert!(read.len() == want.len() && read.iter().zip(&want).all(|(a, b)| a.same_bits(b)));
    }
    let chunk_between = |w: &[u64]| {
        seg.all_series()
            .flat_map(|s| s.chunks.iter())
            .any(|c| c.offset > w[0] && c.offset < w[1])
    };
    assert!(
        blocks.windows(2).any(chunk_between),
        "one group: {blocks:?}"
    );
}

#[test]
fn a_series_whose_chunks_overlap_in_time_is_refused() {
    // Readers find a time range's chunks by binary search: chunks out of time order (what
    // the writer never makes of sorted samples) would hide some, so the file is refused.
    let mut series = input();
    let n = super::CHUNK_SAMPLES;
    series[1].samples = (0..n as i64)
        .chain(n as i64 / 2..n as i64 * 2)
        .map(|t| Sample::new(t * 1000, 1.0))
        .collect();
    let r = Segment::open(
        std::path::Path::new("overlap.seg"),
        Bytes::owned(encode_segment(1, &series)),
    );
    let Err(Error::Corrupt { reason, .. }) = r else {
        panic!("opened: {:?}", r.map(|_| ()));
    };
    assert!(reason.contains("starts before"), "{reason}");
}

#[test]
fn a_metric_whose_series_bring_nothing_is_not_listed_and_the_segment_opens() {
    let tiers = [300_000, 3_600_000];
    let mut builder = super::writer::SegmentBuilder::new(1).with_rollups(&tiers);
    let series = input();
    let empty = Labels::validate(
        vec![Label::new("__name__", "nothing_yet")],
        &Limits::default(),
    )
    .expect("labels");
    builder.add_with_rollups(&series[0].namespace, &empty, &[], &[Vec::new(), Vec::new()]);
    builder.add(&series[0].namespace, &series[0].labels, &series[0].samples);
    let seg = Segment::open(
        std::path::Path::new("s.seg"),
        Bytes::owned(builder.finish()),
    )
    .expect("opens");
    let listed: Vec<&str> = seg.metrics_listed().map(|(_, m, _)| m).collect();
    assert_eq!(listed, ["hospital_patients_waiting"]);
    assert!(seg.has_metric_rollups(3_600_000));
}
