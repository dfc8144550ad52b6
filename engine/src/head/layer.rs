//! A layer of one series' data (chunks in timestamp order plus out-of-order samples in
//! arrival order), and the merge that combines layers with the newest write winning.

use crate::DecodeError;
use crate::codec::chunk;
use crate::head::SealedChunk;
use crate::model::Sample;

/// One source's data for one series: head snapshot, frozen head, or segment.
#[derive(Debug, Clone, Default)]
pub struct SeriesLayer {
    /// Chunks in timestamp order, not overlapping.
    pub chunks: Vec<SealedChunk>,
    /// Samples written at or before the series' last timestamp, in arrival order.
    pub ooo: Vec<Sample>,
}

/// The chunks of `chunks` (in timestamp order, not overlapping) that may hold samples in
/// `[start, end]`, found by binary search: a flush asks once per partition, and a series
/// may hold thousands of chunks.
pub fn chunks_in(chunks: &[SealedChunk], start: i64, end: i64) -> &[SealedChunk] {
    let from = chunks.partition_point(|c| c.max_t < start);
    let rest = chunks.get(from..).unwrap_or_default();
    let to = rest.partition_point(|c| c.min_t <= end);
    rest.get(..to).unwrap_or_default()
}

impl SeriesLayer {
    /// Whether any sample may lie in `[start, end]` (by chunk bounds).
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        !chunks_in(&self.chunks, start, end).is_empty()
            || self.ooo.iter().any(|s| s.t >= start && s.t <= end)
    }

    /// Appends this layer's samples in `[start, end]` to `out`, chunks first, then the
    /// out-of-order samples in arrival order (so that later entries win).
    pub fn decode_into(
        &self,
        start: i64,
        end: i64,
        out: &mut Vec<Sample>,
    ) -> Result<(), DecodeError> {
        for c in chunks_in(&self.chunks, start, end) {
            chunk::decode_range(&c.bytes, start, end, out)?;
        }
        out.extend(self.ooo.iter().filter(|s| s.t >= start && s.t <= end));
        Ok(())
    }
}

/// Sorts `out[from..]` by timestamp, keeping the last-appended sample of each timestamp.
pub fn dedupe_newest_wins(out: &mut Vec<Sample>, from: usize) {
    let tail = out.get(from..).unwrap_or(&[]);
    if tail.windows(2).all(|w| matches!(w, [a, b] if a.t < b.t)) {
        return;
    }
    let mut merged: Vec<Sample> = out.drain(from..).collect();
    // Stable: among equal timestamps the arrival order stays, so the last one is the newest.
    merged.sort_by_key(|s| s.t);
    let mut kept: Vec<Sample> = Vec::with_capacity(merged.len());
    for s in merged {
        match kept.last_mut() {
            Some(last) if last.t == s.t => *last = s,
            _ => kept.push(s),
        }
    }
    out.extend(kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_in_a_range_are_found_by_their_bounds() {
        let chunk = |min_t, max_t| SealedChunk {
            min_t,
            max_t,
            bytes: bytes::Bytes::new(),
        };
        let chunks = [chunk(0, 9), chunk(10, 19), chunk(20, 29), chunk(40, 49)];
        let bounds = |start, end| -> Vec<(i64, i64)> {
            chunks_in(&chunks, start, end)
                .iter()
                .map(|c| (c.min_t, c.max_t))
                .collect()
        };
        assert_eq!(bounds(i64::MIN, i64::MAX).len(), 4);
        assert_eq!(bounds(9, 10), [(0, 9), (10, 19)]);
        assert_eq!(bounds(30, 39), []);
        assert_eq!(bounds(25, 45), [(20, 29), (40, 49)]);
        assert_eq!(bounds(50, 60), []);
        assert_eq!(bounds(-5, -1), []);
    }
}
