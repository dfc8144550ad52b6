//! Property tests: every column round-trips bit for bit, whatever the values and intervals.

use proptest::prelude::*;

use super::*;

fn special_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::from_bits(0x7ff8_0000_dead_beef)),
        Just(f64::from_bits(0xfff0_0000_0000_0001)),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(0.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(5e-324),
        Just(9_007_199_254_740_992.0),
        Just(-9_007_199_254_740_993.0),
        (-1000i64..1000).prop_map(|i| i as f64),
        any::<f64>(),
        (0u32..20).prop_map(|i| f64::from(i) * 0.1),
    ]
}

fn timestamps() -> impl Strategy<Value = Vec<i64>> {
    prop_oneof![
        // Regular intervals with jitter.
        (any::<i32>(), 1i64..100_000, 1usize..300, 0i64..50).prop_map(
            |(start, step, n, jitter)| {
                (0..n as i64)
                    .map(|i| i64::from(start) + i * step + (i * 7919) % (jitter + 1))
                    .collect()
            }
        ),
        // Anything: negative, out of order, extreme.
        prop::collection::vec(any::<i64>(), 1..50),
    ]
}

fn assert_round_trip(ts: &[i64], vs: &[f64], bytes: &[u8]) {
    let (mut dt, mut dv) = (Vec::new(), Vec::new());
    let n = decode(bytes, &mut dt, &mut dv).expect("decodes");
    assert_eq!(n, ts.len());
    assert_eq!(dt, ts);
    let bits: Vec<u64> = dv.iter().map(|v| v.to_bits()).collect();
    let want: Vec<u64> = vs.iter().map(|v| v.to_bits()).collect();
    assert_eq!(bits, want);
}

fn cycle(ts: &[i64], seed: &[f64]) -> Vec<f64> {
    seed.iter().copied().cycle().take(ts.len()).collect()
}

proptest! {
    #[test]
    fn encoded_chunks_round_trip_bit_for_bit(ts in timestamps(), seed in prop::collection::vec(special_value(), 1..300)) {
        let vs = cycle(&ts, &seed);
        assert_round_trip(&ts, &vs, &encode(&ts, &vs));
    }

    #[test]
    fn appended_chunks_round_trip_bit_for_bit(ts in timestamps(), seed in prop::collection::vec(special_value(), 1..300)) {
        let vs = cycle(&ts, &seed);
        let mut a = ChunkAppender::new();
        for (i, (&t, &v)) in ts.iter().zip(&vs).enumerate() {
            a.push(t, v);
            if i % 17 == 0 {
                assert_round_trip(&ts[..=i], &vs[..=i], &a.snapshot());
            }
        }
        assert_round_trip(&ts, &vs, &a.snapshot());
    }

    /// The head goes on in one appender after each seal: a cleared appender writes chunks
    /// exactly as a new one would, whichever value path the previous chunk ended on.
    #[test]
    fn a_cleared_appender_writes_what_a_new_one_writes(
        ts in timestamps(),
        first in prop::collection::vec(special_value(), 1..300),
        seed in prop::collection::vec(special_value(), 1..300),
    ) {
        let vs = cycle(&ts, &seed);
        let mut reused = ChunkAppender::new();
        for (i, &v) in first.iter().enumerate() {
            reused.push(i as i64, v);
        }
        reused.clear();
        let mut new = ChunkAppender::new();
        for (&t, &v) in ts.iter().zip(&vs) {
            reused.push(t, v);
            new.push(t, v);
        }
        let mut written = Vec::new();
        reused.write_to(&mut written);
        prop_assert_eq!(written.len(), reused.encoded_len());
        prop_assert_eq!(&written, &new.snapshot());
        assert_round_trip(&ts, &vs, &written);
    }

    #[test]
    fn decimal_columns_round_trip_bit_for_bit(
        ts in timestamps(),
        places in 0u32..=6,
        mantissas in prop::collection::vec(-2_000_000i64..2_000_000, 1..300),
        near_limit in any::<bool>(),
        exceptions in prop::collection::vec((any::<prop::sample::Index>(), special_value()), 0..6),
    ) {
        let scale = 10f64.powi(places as i32);
        let mut vs: Vec<f64> = ts
            .iter()
            .zip(mantissas.iter().cycle())
            .map(|(_, &m)| {
                // Mantissas near ±2^53 too, where exactness ends.
                let m = if near_limit { 9_007_199_254_740_992 - m.abs() } else { m };
                m as f64 / scale
            })
            .collect();
        for (at, v) in exceptions {
            let i = at.index(vs.len());
            vs[i] = v;
        }
        let bytes = encode(&ts, &vs);
        assert_round_trip(&ts, &vs, &bytes);
        // What format 2 promises: never larger than format 1 made the same chunk.
        let v1 = encode_format_1(&ts, &vs);
        prop_assert!(bytes.len() <= v1.len(), "{} > {}", bytes.len(), v1.len());
    }

    #[test]
    fn compressed_chunks_round_trip_bit_for_bit(ts in timestamps(), seed in prop::collection::vec(special_value(), 1..300)) {
        let vs = cycle(&ts, &seed);
        let plain = encode(&ts, &vs);
        let packed = compress(plain.clone());
        prop_assert!(packed.len() <= plain.len());
        assert_round_trip(&ts, &vs, &packed);
        prop_assert_eq!(sample_count(&packed).ok(), Some(ts.len()));
    }

    #[test]
    fn timestamp_blocks_round_trip(ts in timestamps(), jitter in prop::collection::vec(-20i64..20, 1..64)) {
        let ts: Vec<i64> = ts.iter().zip(jitter.iter().cycle()).map(|(t, j)| t.wrapping_add(*j)).collect();
        if let Some(bytes) = timestamp::encode_blocks(&ts) {
            let mut out = Vec::new();
            timestamp::decode_blocks(&bytes, ts.len(), &mut out).expect("decodes");
            prop_assert_eq!(out, ts.clone());
            for cut in 0..bytes.len().min(40) {
                let _ = timestamp::decode_blocks(&bytes[..cut], ts.len(), &mut Vec::new());
            }
        }
    }

    #[test]
    fn decoding_garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..200)) {
        let (mut t, mut v) = (Vec::new(), Vec::new());
        let _ = decode(&data, &mut t, &mut v);
    }
}

#[test]
fn one_sample_chunks_round_trip() {
    for v in [f64::NAN, -0.0, 42.0, 0.5] {
        assert_round_trip(&[-5], &[v], &encode(&[-5], &[v]));
    }
}

#[test]
fn regular_integer_series_cost_under_three_bits_a_sample() {
    let ts: Vec<i64> = (0..720).map(|i| 1_700_000_000_000 + i * 10_000).collect();
    let vs: Vec<f64> = (0..720).map(|i| (i / 7) as f64).collect();
    let bytes = encode(&ts, &vs);
    assert!(
        bytes.len() * 8 < 720 * 3,
        "{} bytes for 720 samples",
        bytes.len()
    );
    assert_eq!(
        bytes.first().map(|b| b & 0x3f),
        Some(ValueEncoding::IntDelta as u8)
    );
}

#[test]
fn two_decimal_places_cost_a_fraction_of_xor() {
    let ts: Vec<i64> = (0..2048).map(|i| 1_700_000_000_000 + i * 60_000).collect();
    // A waiting count averaged to two places, with a stale marker in the middle.
    let mut vs: Vec<f64> = (0..2048)
        .map(|i| f64::from(1_200 + (i * 37 % 101)) / 100.0)
        .collect();
    vs[1000] = f64::from_bits(0x7ff0_0000_0000_0002);
    let bytes = encode(&ts, &vs);
    assert_eq!(
        bytes.first().map(|b| b & 0x3f),
        Some(ValueEncoding::Decimal as u8)
    );
    assert_round_trip(&ts, &vs, &bytes);
    assert!(bytes.len() * 8 < 2048 * 10, "{} bytes", bytes.len());
}

#[test]
fn cold_chunks_of_regular_intervals_compress_and_damage_is_reported() {
    let ts: Vec<i64> = (0..2048).map(|i| 1_700_000_000_000 + i * 10_000).collect();
    let vs: Vec<f64> = (0..2048).map(|i| f64::from((i * 7) % 13)).collect();
    let plain = encode(&ts, &vs);
    let packed = compress(plain.clone());
    assert_eq!(packed[0] & 0x80, 0x80, "compressed");
    assert!(
        packed.len() * 2 < plain.len(),
        "{} of {}",
        packed.len(),
        plain.len()
    );
    assert_round_trip(&ts, &vs, &packed);
    for cut in 0..packed.len() {
        assert!(decode(&packed[..cut], &mut Vec::new(), &mut Vec::new()).is_err());
    }
    let mut bad = packed.clone();
    let last = bad.len() - 3;
    bad[last] ^= 0x55;
    if let Err(e) = decode(&bad, &mut Vec::new(), &mut Vec::new()) {
        assert!(
            e.reason.contains("zstd") || e.reason.contains("decompressed"),
            "{e}"
        );
    }
    // Random values gain nothing: left as they were.
    let noisy: Vec<f64> = (0..2048).map(|i| (f64::from(i) * 0.731).sin()).collect();
    let plain = encode(&ts, &noisy);
    assert_eq!(compress(plain.clone()), plain);
}

#[test]
fn gaps_in_a_regular_series_are_exceptions_not_wide_blocks() {
    // Every 10 s, with a camera offline now and then (a gap of minutes).
    let mut t = 1_700_000_000_000i64;
    let ts: Vec<i64> = (0..2048)
        .map(|i| {
            t += if i % 150 == 149 { 370_000 } else { 10_000 };
            t
        })
        .collect();
    let vs = vec![3.0; 2048];
    let bytes = encode(&ts, &vs);
    assert_eq!(bytes[0] & 0x40, 0x40, "timestamps in blocks");
    // Bucketed, the timestamps alone would take a bit a sample (256 bytes) and more.
    assert!(
        bytes.len() < 2048 / 8,
        "{} bytes for the whole chunk",
        bytes.len()
    );
    assert_round_trip(&ts, &vs, &bytes);
}

#[test]
fn scrape_jitter_costs_a_few_bits_a_timestamp() {
    // Every second, give or take a few milliseconds, as a scraper stamps samples.
    let ts: Vec<i64> = (0..2048)
        .map(|i: i64| 1_700_000_000_000 + i * 1000 + ((i * 2_654_435_761) >> 11) % 9 - 4)
        .collect();
    let vs = vec![1.0; 2048];
    let bytes = encode(&ts, &vs);
    assert_eq!(bytes[0] & 0x40, 0x40, "timestamps in blocks");
    assert!(bytes.len() * 8 < 2048 * 6, "{} bytes", bytes.len());
    assert_round_trip(&ts, &vs, &bytes);
}

#[test]
fn a_truncated_chunk_is_an_error_not_a_panic() {
    let ts: Vec<i64> = (0..100).collect();
    let vs: Vec<f64> = (0..100).map(|i| f64::from(i) * 1.5).collect();
    let bytes = encode(&ts, &vs);
    for cut in 0..bytes.len() {
        let (mut t, mut v) = (Vec::new(), Vec::new());
        assert!(
            decode(&bytes[..cut], &mut t, &mut v).is_err(),
            "cut at {cut}"
        );
    }
}

/// Every series holds an appender; between a flush and its next sample it must cost one
/// pointer, and its accounting must count the box once it exists.
#[test]
fn an_empty_appender_is_a_pointer_and_a_used_one_counts_its_box() {
    let mut a = ChunkAppender::new();
    assert_eq!(
        std::mem::size_of::<ChunkAppender>(),
        std::mem::size_of::<usize>()
    );
    assert_eq!(a.heap_bytes(), 0);
    assert_eq!(a.snapshot(), ChunkAppender::new().snapshot());
    a.push(1, 2.0);
    assert!(a.heap_bytes() > 100, "{}", a.heap_bytes());
    a.clear();
    assert!(
        a.is_empty() && a.heap_bytes() > 100,
        "cleared, the box stays for the next chunk"
    );
    assert_eq!(a.snapshot(), ChunkAppender::new().snapshot());
}

#[test]
fn the_open_chunk_finds_its_newest_samples_before_a_time_without_decoding() {
    let mut a = ChunkAppender::new();
    assert_eq!(a.newest_at_or_before(i64::MAX), None);
    for i in 0..10 {
        a.push(i * 10, i as f64 + 0.5);
    }
    assert_eq!(a.newest_at_or_before(1_000), Some((90, 9.5)));
    assert_eq!(a.newest_at_or_before(89), Some((80, 8.5)));
    assert_eq!(a.newest_at_or_before(80), Some((80, 8.5)));
    // Older than the samples kept at hand: the caller decodes.
    assert_eq!(a.newest_at_or_before(79), None);
    // A new chunk knows only its own samples.
    a.clear();
    a.push(100, 1.0);
    a.push(110, 2.0);
    assert_eq!(a.newest_at_or_before(105), Some((100, 1.0)));
    assert_eq!(a.newest_at_or_before(99), None);
}
