//! The fuzz targets' committed seed corpora (`fuzz/corpus/<target>/`) replay here as
//! ordinary tests, so a crash found by fuzzing stays fixed.

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} is missing: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files
        .into_iter()
        .map(|p| {
            let d = std::fs::read(&p).expect("read");
            (p, d)
        })
        .collect()
}

#[test]
fn chunk_decoding_survives_its_corpus() {
    for (_, data) in corpus("chunk_decode") {
        iocdb_engine::internal::decode_chunk(&data);
    }
}

#[test]
fn wal_replay_survives_its_corpus() {
    for (_, data) in corpus("wal_replay") {
        iocdb_engine::internal::replay_wal(&data);
    }
}

#[test]
fn segment_reading_survives_its_corpus() {
    for (_, data) in corpus("segment_read") {
        iocdb_engine::internal::read_segment(&data);
    }
}

/// Regenerates the seeds from real files: `cargo test --test it write_seed_corpora -- --ignored`.
#[test]
#[ignore = "writes the committed seed corpora"]
fn write_seed_corpora() {
    use iocdb_engine::internal::chunk;
    use iocdb_engine::{Engine, Options, Sample};

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let put = |target: &str, name: &str, data: &[u8]| {
        std::fs::create_dir_all(root.join(target)).expect("mkdir");
        std::fs::write(root.join(target).join(name), data).expect("write");
    };
    let ts: Vec<i64> = (0..200).map(|i| 1_700_000_000_000 + i * 10_000).collect();
    put(
        "chunk_decode",
        "int_gauge",
        &chunk::encode(&ts, &ts.iter().map(|t| (t % 17) as f64).collect::<Vec<_>>()),
    );
    put(
        "chunk_decode",
        "float_ratio",
        &chunk::encode(
            &ts,
            &ts.iter()
                .map(|t| (t % 97) as f64 / 97.0)
                .collect::<Vec<_>>(),
        ),
    );
    put(
        "chunk_decode",
        "counter",
        &chunk::encode(
            &ts,
            &ts.iter().map(|t| (t / 3000) as f64).collect::<Vec<_>>(),
        ),
    );
    put("chunk_decode", "one_nan", &chunk::encode(&[5], &[f64::NAN]));

    let dir = tempfile::tempdir().expect("dir");
    let engine = Engine::open(dir.path(), Options::default()).expect("open");
    let samples: Vec<Sample> = ts
        .iter()
        .map(|&t| Sample::new(t, (t % 31) as f64))
        .collect();
    engine
        .write(crate::common::request(
            "seed",
            (0..3)
                .map(|i| crate::common::series("m", i, samples.clone()))
                .collect(),
        ))
        .expect("w");
    engine.flush().expect("flush");
    engine
        .write(crate::common::request(
            "seed",
            vec![crate::common::series("m", 1, samples[..20].to_vec())],
        ))
        .expect("w");
    drop(engine);
    for sub in ["wal", "segments"] {
        for (i, entry) in std::fs::read_dir(dir.path().join(sub))
            .expect("dir")
            .enumerate()
        {
            let data = std::fs::read(entry.expect("e").path()).expect("read");
            let target = if sub == "wal" {
                "wal_replay"
            } else {
                "segment_read"
            };
            put(target, &format!("{sub}_{i}"), &data);
        }
    }
}

mod mutated {
    //! A stand-in for libFuzzer where no nightly toolchain is at hand: every decoder gets
    //! the seed files with random bytes changed, and random bytes alone.
    use proptest::prelude::*;

    fn seeds() -> Vec<(&'static str, Vec<u8>)> {
        ["chunk_decode", "wal_replay", "segment_read"]
            .into_iter()
            .flat_map(|t| super::corpus(t).into_iter().map(move |(_, d)| (t, d)))
            .collect()
    }

    fn feed(target: &str, data: &[u8]) {
        match target {
            "chunk_decode" => iocdb_engine::internal::decode_chunk(data),
            "wal_replay" => iocdb_engine::internal::replay_wal(data),
            _ => iocdb_engine::internal::read_segment(data),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn mutated_seeds_never_panic(pick in any::<prop::sample::Index>(), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
            let seeds = seeds();
            let (target, seed) = &seeds[pick.index(seeds.len())];
            let mut data = seed.clone();
            for (at, byte) in &edits {
                let i = at.index(data.len());
                data[i] = *byte;
            }
            feed(target, &data);
            data.truncate(cut.index(data.len() + 1));
            feed(target, &data);
        }

        #[test]
        fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
            for target in ["chunk_decode", "wal_replay", "segment_read"] {
                feed(target, &data);
            }
        }
    }
}
