//! Entry points for the fuzz targets in `fuzz/` and for the tests that replay their seed
//! corpora: each feeds untrusted bytes to one decoder. None may panic, whatever the input.

use crate::DecodeError;
use crate::fs::Bytes;
use crate::model::Sample;
use crate::segment::Segment;
use crate::wal::record::SeriesDef;
use crate::wal::replay::{ReplaySink, replay_file};

/// Decodes a chunk.
pub fn decode_chunk(data: &[u8]) {
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    let _ = crate::codec::chunk::decode(data, &mut ts, &mut vs);
}

/// Replays one WAL file's bytes into a sink that only counts.
pub fn replay_wal(data: &[u8]) {
    struct Count(usize);
    impl ReplaySink for Count {
        fn define(&mut self, defs: Vec<SeriesDef>) -> Result<(), DecodeError> {
            self.0 += defs.len();
            Ok(())
        }
        fn samples(
            &mut self,
            _: u32,
            samples: &mut dyn Iterator<Item = Sample>,
        ) -> Result<usize, DecodeError> {
            Ok(samples.count())
        }
    }
    let _ = replay_file(data, &mut Count(0));
}

/// Opens a segment from bytes and reads every chunk, every tier's rollups (whole and from the
/// middle of its time), every metric's rollups and the postings.
pub fn read_segment(data: &[u8]) {
    let Ok(segment) = Segment::open(
        std::path::Path::new("fuzz.seg"),
        Bytes::owned(data.to_vec()),
    ) else {
        return;
    };
    let mut out = Vec::new();
    for s in segment.all_series() {
        for c in s.chunks {
            let _ = segment.read_chunk(&c, i64::MIN, i64::MAX, &mut out);
        }
        let mut buckets = Vec::new();
        for &tier in segment.tiers.iter() {
            let _ = segment.read_rollup(s, tier, crate::codec::rollup::Wanted::ALL, &mut buckets);
            // And from the middle of the segment's time on, as a range's reads step over
            // the buckets before it.
            let middle = segment.min_t / 2 + segment.max_t / 2;
            let wanted = crate::codec::rollup::Wanted::MAX;
            let _ = segment.read_rollup_from(s, tier, wanted, middle, &mut buckets);
        }
    }
    let listed: Vec<(String, String)> = segment
        .metrics_listed()
        .map(|(n, m, _)| (n.to_owned(), m.to_owned()))
        .collect();
    for (namespace, metric) in listed {
        for &tier in segment.tiers.iter() {
            let _ = segment.read_metric_rollup(&namespace, &metric, tier, &mut Vec::new());
        }
    }
    let _ = segment.postings();
    let _ = segment.labels();
    if let Ok(index) = segment.label_index() {
        let matchers = [
            crate::index::Matcher::equal("__name__", "m"),
            crate::index::Matcher::new("site", crate::index::MatchOp::Regex, "a.*|")
                .unwrap_or_else(|_| crate::index::Matcher::equal("site", "a")),
        ];
        let all = index.select("default", &matchers[..0]).unwrap_or_default();
        let _ = index.select("default", &matchers);
        let _ = index.label_values("site", &all);
        let _ = index.label_names(&all);
        for local in 0..index.series_count().min(64) as u32 {
            let _ = index.labels(local);
        }
    }
}
