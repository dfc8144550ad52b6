//! One series' samples in the head, until a flush moves them to a segment.
//!
//! Each series owns its data behind its own small lock, so writers of different series
//! never meet, and a reader holds a series' lock only long enough to clone chunk handles
//! and copy the open chunk's few bytes. In-order samples go into a compressed open chunk
//! ([`ChunkAppender`]) that is sealed into an immutable, shared chunk every
//! [`SEAL_SAMPLES`] samples; samples at or before the series' last timestamp (backfill,
//! corrections) go to an out-of-order list that wins over the chunks when read, in arrival
//! order, so the last write always wins.
//!
//! *Arrival* here is the WAL's order. Concurrent writers of one series may finish their
//! commits in any order, so each batch reserves its place in the series' apply order while
//! it is appended to the WAL ([`HeadSeries::reserve`], under the WAL's append lock), and
//! applies only when every earlier place was applied or skipped ([`HeadSeries::append_at`],
//! [`HeadSeries::skip_at`]). The head therefore applies the writes of a series in exactly
//! the order WAL replay will, and a query after a crash answers what it answered before.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::codec::chunk::{self, ChunkAppender};
use crate::model::Sample;

use super::arena::ChunkArena;
use super::layer::{SeriesLayer, chunks_in};

/// Samples per sealed head chunk.
pub const SEAL_SAMPLES: usize = 128;

/// Where a series seals its chunks: the head's arena, and the key (the series' reference)
/// that picks its block.
#[derive(Debug, Clone, Copy)]
pub struct Sealer<'a> {
    /// The head's blocks.
    pub arena: &'a ChunkArena,
    /// Picks the block.
    pub key: u32,
}

/// An immutable, compressed chunk with its time bounds.
#[derive(Debug, Clone)]
pub struct SealedChunk {
    /// Earliest timestamp in the chunk.
    pub min_t: i64,
    /// Latest timestamp in the chunk.
    pub max_t: i64,
    /// The chunk bytes (see [`crate::codec::chunk`]), in a block of the head's
    /// [`ChunkArena`] while the head holds them.
    pub bytes: Bytes,
}

/// A series' samples, inline in the series (their struct is accounted with the series),
/// but for the open chunk's encoder state, which [`ChunkAppender`] boxes at the first sample
/// after a flush: a series that holds nothing is ≈ 170 bytes smaller (a million series
/// written a hundred thousand at a time: 588 → 409 MiB, BENCHMARKS.md "Cardinality"). Boxing
/// the whole of it was tried before the chunk blocks: it cost no less for series with
/// samples and left about 10 MiB more resident after flushing a province day.
#[derive(Debug)]
struct SeriesData {
    sealed: Vec<SealedChunk>,
    open: ChunkAppender,
    /// The first timestamp of the open chunk; while the series holds nothing, the newest
    /// timestamp a flush took (`i64::MIN`: none).
    open_min_t: i64,
    ooo: Vec<Sample>,
    /// Bytes of the sealed chunks, kept so accounting is O(1) per append.
    sealed_bytes: usize,
    /// Places in the apply order applied (or skipped) so far.
    applied: u64,
    /// The value of the newest sample a flush took (its time is in `open_min_t` while the
    /// series holds nothing), so that the data-quality rules compare the first sample after
    /// a flush with the last one before it.
    taken_v: f64,
}

impl Default for SeriesData {
    fn default() -> Self {
        SeriesData {
            sealed: Vec::new(),
            open: ChunkAppender::default(),
            open_min_t: i64::MIN,
            ooo: Vec::new(),
            sealed_bytes: 0,
            applied: 0,
            taken_v: 0.0,
        }
    }
}

/// [`HeadSeries::snapshot`] on locked data.
fn snapshot_locked(d: &SeriesData, start: i64, end: i64) -> SeriesLayer {
    let mut chunks: Vec<SealedChunk> = chunks_in(&d.sealed, start, end).to_vec();
    if !d.open.is_empty() && d.open_min_t <= end && d.open.last_t().is_some_and(|t| t >= start) {
        let max_t = d.open.last_t().unwrap_or(d.open_min_t);
        chunks.push(SealedChunk {
            min_t: d.open_min_t,
            max_t,
            bytes: Bytes::from(d.open.snapshot()),
        });
    }
    let ooo = d
        .ooo
        .iter()
        .filter(|s| s.t >= start && s.t <= end)
        .copied()
        .collect();
    SeriesLayer { chunks, ooo }
}

/// The newest in-order sample of locked data, if it holds any.
fn newest(d: &SeriesData) -> Option<Sample> {
    if let Some((t, v)) = d.open.last() {
        return Some(Sample::new(t, v));
    }
    let chunk = d.sealed.last()?;
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    // Our own bytes: a failure would be a bug, and then there is nothing to compare with.
    chunk::decode(&chunk.bytes, &mut ts, &mut vs).ok()?;
    Some(Sample::new(*ts.last()?, *vs.last()?))
}

/// What an apply tells its caller under the series' lock: the samples being applied, and a
/// way to ask for the newest sample before them.
pub type OnApply<'a> = &'a mut dyn FnMut(&[Sample], &dyn Fn() -> Option<Sample>);

/// [`HeadSeries::latest`] on locked data.
fn latest_locked(d: &SeriesData) -> Option<Sample> {
    newest(d).or((d.ooo.is_empty() && d.open_min_t != i64::MIN)
        .then_some(Sample::new(d.open_min_t, d.taken_v)))
}

/// The head data of one series.
#[derive(Debug, Default)]
pub struct HeadSeries {
    data: Mutex<SeriesData>,
    /// Places in the apply order handed out so far.
    reserved: AtomicU64,
}

impl HeadSeries {
    /// Reserves the next place in this series' apply order. Called in WAL order.
    pub fn reserve(&self) -> u64 {
        self.reserved.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Applies `samples` at place `place` if every earlier place has been applied or
    /// skipped; returns the change in accounted bytes, or `None` when an earlier place is
    /// still outstanding (the caller waits and tries again).
    /// `on_apply` sees the samples under the series' lock, so that what it tells (live
    /// subscribers) follows the apply order, and can ask for the newest sample before them
    /// (what the data-quality rules compare with) without locking again.
    pub fn append_at(
        &self,
        place: u64,
        samples: &[Sample],
        sealer: Sealer<'_>,
        on_apply: OnApply<'_>,
    ) -> Option<isize> {
        let mut d = self.data.lock();
        if d.applied + 1 != place {
            return None;
        }
        d.applied = place;
        on_apply(samples, &|| latest_locked(&d));
        Some(append_locked(&mut d, samples.iter().copied(), sealer))
    }

    /// Marks place `place` done without data (its batch failed), under the same condition
    /// as [`HeadSeries::append_at`]; false while an earlier place is outstanding.
    pub fn skip_at(&self, place: u64) -> bool {
        let mut d = self.data.lock();
        if d.applied + 1 != place {
            return false;
        }
        d.applied = place;
        true
    }

    /// Appends samples at the next place of the apply order (single-threaded callers only:
    /// WAL replay and tests); returns the change in accounted bytes.
    pub fn append(&self, samples: impl IntoIterator<Item = Sample>, sealer: Sealer<'_>) -> isize {
        let mut d = self.data.lock();
        d.applied = self.reserve();
        append_locked(&mut d, samples, sealer)
    }

    /// A copy of the data overlapping `[start, end]`, cheap enough to take under the lock.
    pub fn snapshot(&self, start: i64, end: i64) -> SeriesLayer {
        snapshot_locked(&self.data.lock(), start, end)
    }

    /// A layer that gives the same newest sample in `[start, end]` as
    /// [`HeadSeries::snapshot`] does, for a reader that wants that sample alone (the
    /// value of an instant selector at one step), without copying or decoding a chunk when
    /// it can. In-order samples only grow, so when the newest one at or before `end` is
    /// among the few the open chunk keeps at hand and lies in the range, no in-order sample
    /// after it is in the range; a sample written at or before the newest in-order one goes
    /// to the out-of-order samples, so only those from its time to `end` can override it (a
    /// later time, or a correction of its own). The layer then holds it, followed by those,
    /// as out-of-order samples; otherwise it is the full snapshot.
    pub fn snapshot_newest(&self, start: i64, end: i64) -> SeriesLayer {
        let d = self.data.lock();
        match d.open.newest_at_or_before(end) {
            Some((t, v)) if t >= start => {
                let mut ooo = vec![Sample::new(t, v)];
                ooo.extend(d.ooo.iter().filter(|s| s.t >= t && s.t <= end));
                SeriesLayer {
                    chunks: Vec::new(),
                    ooo,
                }
            }
            _ => snapshot_locked(&d, start, end),
        }
    }

    /// Takes all data out (for a flush); returns it, the bytes freed and the samples it held.
    pub fn take(&self) -> Option<(SeriesLayer, usize, usize)> {
        let mut d = self.data.lock();
        if d.sealed.is_empty() && d.open.is_empty() && d.ooo.is_empty() {
            return None;
        }
        let (last, freed, held) = (newest(&d), accounted_bytes(&d), held(&d));
        let mut chunks = std::mem::take(&mut d.sealed);
        // The appender's buffers go too, even when empty: a series between flushes holds
        // nothing.
        let open = std::mem::take(&mut d.open);
        if !open.is_empty() {
            let max_t = open.last_t().unwrap_or(d.open_min_t);
            chunks.push(SealedChunk {
                min_t: d.open_min_t,
                max_t,
                bytes: Bytes::from(open.snapshot()),
            });
        }
        let ooo = std::mem::take(&mut d.ooo);
        d.sealed_bytes = 0;
        if let Some(last) = last {
            (d.open_min_t, d.taken_v) = (last.t, last.v);
        }
        Some((SeriesLayer { chunks, ooo }, freed, held))
    }

    /// The newest sample held (out-of-order samples are never newer) or, when a flush took
    /// them all, the newest it took: what the data-quality rules compare a new sample with.
    /// `None` when this process has seen no sample of the series.
    pub fn latest(&self) -> Option<Sample> {
        latest_locked(&self.data.lock())
    }

    /// Whether any held sample may lie in `[start, end]` (by chunk bounds).
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        let d = self.data.lock();
        !chunks_in(&d.sealed, start, end).is_empty()
            || (!d.open.is_empty()
                && d.open_min_t <= end
                && d.open.last_t().is_some_and(|t| t >= start))
            || d.ooo.iter().any(|s| s.t >= start && s.t <= end)
    }

    /// Whether the series holds nothing and no write is between its reservation and its
    /// apply: what a series must be to leave the head ([`super::Head::evict`]).
    pub fn is_idle(&self) -> bool {
        let d = self.data.lock();
        d.sealed.is_empty()
            && d.open.is_empty()
            && d.ooo.is_empty()
            && d.applied == self.reserved.load(Ordering::Acquire)
    }

    /// A series' head data that starts empty but remembers `last`, the newest sample it
    /// had before it left the head, for the data-quality rules (see [`HeadSeries::latest`]).
    pub fn resumed(last: Option<Sample>) -> Self {
        let head = HeadSeries::default();
        if let Some(last) = last {
            let mut d = head.data.lock();
            (d.open_min_t, d.taken_v) = (last.t, last.v);
        }
        head
    }

    /// Accounted bytes.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        accounted_bytes(&self.data.lock())
    }
}

/// Appends samples to a series' locked data; returns the change in accounted bytes.
/// The samples locked data holds: every sample appended since the last take counts once
/// (in order into the open chunk, later sealed; otherwise among the out-of-order ones), which
/// is why the write path can keep the head's count by adding what it appends.
fn held(d: &SeriesData) -> usize {
    let sealed: usize = d
        .sealed
        .iter()
        .map(|c| chunk::sample_count(&c.bytes).unwrap_or(0))
        .sum();
    sealed + d.open.len() + d.ooo.len()
}

fn append_locked(
    d: &mut SeriesData,
    samples: impl IntoIterator<Item = Sample>,
    sealer: Sealer<'_>,
) -> isize {
    let before = accounted_bytes(d);
    for s in samples {
        let last = d.open.last_t().or_else(|| d.sealed.last().map(|c| c.max_t));
        if last.is_some_and(|last| s.t <= last) {
            d.ooo.push(s);
            continue;
        }
        if d.open.is_empty() {
            d.open_min_t = s.t;
        }
        d.open.push(s.t, s.v);
        if d.open.len() >= SEAL_SAMPLES {
            let max_t = s.t;
            let min_t = d.open_min_t;
            let open = &d.open;
            let bytes = sealer
                .arena
                .store(sealer.key, open.encoded_len(), |b| open.write_to(b));
            // The appender's buffers go on into the next chunk: allocated once per series
            // between flushes, not once per chunk.
            d.open.clear();
            d.sealed_bytes += bytes.len();
            d.sealed.push(SealedChunk {
                min_t,
                max_t,
                bytes,
            });
        }
    }
    accounted_bytes(d) as isize - before as isize
}

/// The heap the samples hold (the struct itself is part of the series' own cost).
fn accounted_bytes(d: &SeriesData) -> usize {
    d.sealed.capacity() * std::mem::size_of::<SealedChunk>()
        + d.sealed_bytes
        + d.open.heap_bytes()
        + d.ooo.capacity() * std::mem::size_of::<Sample>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::dedupe_newest_wins;

    fn sealer() -> Sealer<'static> {
        static ARENA: std::sync::LazyLock<ChunkArena> = std::sync::LazyLock::new(Default::default);
        Sealer {
            arena: &ARENA,
            key: 0,
        }
    }

    fn read_all(series: &HeadSeries) -> Vec<(i64, f64)> {
        let mut out = Vec::new();
        series
            .snapshot(i64::MIN, i64::MAX)
            .decode_into(i64::MIN, i64::MAX, &mut out)
            .expect("own chunks decode");
        dedupe_newest_wins(&mut out, 0);
        out.iter().map(|s| (s.t, s.v)).collect()
    }

    #[test]
    fn in_order_and_out_of_order_samples_read_back_sorted_with_the_last_write_winning() {
        let s = HeadSeries::default();
        s.append((0..300).map(|i| Sample::new(i * 10, i as f64)), sealer());
        s.append(
            [
                Sample::new(55, 1.5),
                Sample::new(50, 7.0),
                Sample::new(50, 8.0),
            ],
            sealer(),
        );
        let got = read_all(&s);
        assert_eq!(got.len(), 301);
        assert!(got.contains(&(50, 8.0)));
        assert!(got.contains(&(55, 1.5)));
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn the_latest_sample_comes_from_the_open_or_the_last_sealed_chunk() {
        let series = HeadSeries::default();
        assert_eq!(series.latest(), None);
        series.append(
            (0..SEAL_SAMPLES as i64).map(|t| Sample::new(t * 10, t as f64 + 0.5)),
            sealer(),
        );
        let last = SEAL_SAMPLES as i64 - 1;
        assert_eq!(
            series.latest(),
            Some(Sample::new(last * 10, last as f64 + 0.5))
        );
        series.append([Sample::new(5, 1.0)], sealer());
        assert_eq!(
            series.latest(),
            Some(Sample::new(last * 10, last as f64 + 0.5)),
            "late"
        );
        series.append([Sample::new(100_000, 7.0)], sealer());
        assert_eq!(series.latest(), Some(Sample::new(100_000, 7.0)));
        series.take();
        assert_eq!(
            series.latest(),
            Some(Sample::new(100_000, 7.0)),
            "a flush keeps the newest for the rules"
        );
        series.append([Sample::new(100_010, 8.0)], sealer());
        assert_eq!(series.latest(), Some(Sample::new(100_010, 8.0)));
    }

    #[test]
    fn taking_the_data_leaves_an_empty_series_and_frees_its_bytes() {
        let s = HeadSeries::default();
        let grown = s.append((0..10).map(|i| Sample::new(i, 1.0)), sealer())
            + s.append([Sample::new(3, 2.0)], sealer());
        let (layer, freed, held) = s.take().expect("has data");
        assert_eq!(freed as isize, grown);
        assert_eq!(held, 11, "ten in order and one correction, each held once");
        assert_eq!(layer.chunks.len(), 1);
        assert!(s.take().is_none());
        assert_eq!(s.bytes(), 0);
    }
}
