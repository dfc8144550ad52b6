//! A chunk: the timestamp and value columns of consecutive samples of one series.
//!
//! ```text
//! offset  size      field
//! 0       1         value encoding (0 XOR, 1 integer delta, 2 integer delta-of-delta,
//!                   3 integer delta blocks, 4 decimal, 5 Chimp, 6 Chimp128), | 0x40 when the timestamp
//!                   column is in blocks (format 2), | 0x80 when compressed (below)
//! 1       varint    n, the number of samples (1 ..= MAX_CHUNK_SAMPLES)
//! ..      varint    length of the timestamp column in bytes
//! ..      ts_len    timestamp column (see `timestamp`)
//! ..      rest      value column (see `value`)
//! ```
//! The chunk carries no checksum of its own: the block that holds it (a segment block, or
//! memory in the head) does.
//!
//! A **compressed** chunk (segment format 2, written by compaction into cold segments when
//! it is an eighth smaller than the smallest plain layout) sets the top bit of the first
//! byte, keeps `n`, and stores the rest zstd-compressed:
//!
//! ```text
//! 0       1         value encoding | 0x80
//! 1       varint    n
//! ..      varint    length of the rest before compression (≤ MAX_RAW_BYTES)
//! ..      rest      one zstd frame of: varint ts_len | timestamp column | value column
//! ```
//! The bit-packed columns leave what an entropy coder still finds: runs of zero bits where
//! intervals are regular, and uneven value distributions.

use super::bits::BitWriter;
use super::bytes::ByteReader;
use super::timestamp::{self, TimestampEncoder};
use super::value::{self, IntEncoder, ValueEncoding, XorEncoder, as_exact_int};
use super::varint::{len_u64, put_u64};
use super::{chimp, chimp128, decimal};
use crate::DecodeError;

/// Most samples one chunk may hold; larger counts in a file are corruption.
pub const MAX_CHUNK_SAMPLES: usize = 1 << 20;

/// The flag of a compressed chunk, in its first byte.
const COMPRESSED: u8 = 0x80;
/// The flag of a timestamp column in blocks ([`timestamp::encode_blocks`]), in the first
/// byte; the low six bits are the value encoding.
const TS_BLOCKS: u8 = 0x40;
const ENCODING_BITS: u8 = 0x3f;

/// Largest decompressed rest a compressed chunk may claim (a chunk of the most samples at
/// 64-bit timestamps and values, and its headers, fits).
const MAX_RAW_BYTES: usize = MAX_CHUNK_SAMPLES * 18 + 64;

/// The zstd level cold chunks are compressed at (decoding speed barely depends on it).
const ZSTD_LEVEL: i32 = 3;

/// `chunk` compressed with zstd if that saves at least an eighth, else `chunk` itself.
pub fn compress(chunk: Vec<u8>) -> Vec<u8> {
    let Some(header) = Header::read(&chunk) else {
        return chunk;
    };
    let Some(rest) = chunk.get(header.rest_at..) else {
        return chunk;
    };
    let Ok(packed) = zstd::bulk::compress(rest, ZSTD_LEVEL) else {
        return chunk;
    };
    let mut out = Vec::with_capacity(packed.len() + 12);
    out.push(header.tag | COMPRESSED);
    put_u64(&mut out, header.n as u64);
    put_u64(&mut out, rest.len() as u64);
    out.extend_from_slice(&packed);
    if out.len() * 8 <= chunk.len() * 7 {
        out
    } else {
        chunk
    }
}

/// A chunk's first byte and sample count, and where the rest starts.
struct Header {
    tag: u8,
    n: usize,
    rest_at: usize,
}

impl Header {
    fn read(data: &[u8]) -> Option<Header> {
        let mut r = ByteReader::new(data);
        let tag = r.u8().ok()?;
        let n = r.len(MAX_CHUNK_SAMPLES, "chunk sample count").ok()?;
        Some(Header {
            tag,
            n,
            rest_at: r.position(),
        })
    }
}

/// Encodes samples (given as columns of equal length) choosing the smallest value encoding
/// and the smaller timestamp column.
pub fn encode(ts: &[i64], vs: &[f64]) -> Vec<u8> {
    let c = Columns::new(ts, vs);
    let (encoding, values) = c.kept();
    // On a tie the bucketed column.
    match &c.blocks {
        Some(blocks) if blocks.len() < c.bucketed.len() => {
            assemble(*encoding as u8 | TS_BLOCKS, c.n, blocks, values)
        }
        _ => assemble(*encoding as u8, c.n, &c.bucketed, values),
    }
}

/// [`encode`] for cold segments: each timestamp layout also compressed with zstd, and a
/// compressed one kept only when it is an eighth smaller than the smallest plain one (zstd
/// takes the bucketed column's runs of zero bits further than the blocks layout, so the
/// layout that is smaller plain is not always smaller packed; and a compressed chunk
/// decodes at about half the speed, which a few percent of bytes do not pay for). The
/// value column that lost narrowly plain is tried compressed too: zstd finds more in
/// Chimp's bits than in Chimp128's on some series.
pub fn encode_cold(ts: &[i64], vs: &[f64]) -> Vec<u8> {
    let c = Columns::new(ts, vs);
    let plain = c.layouts(c.kept()).into_iter().min_by_key(Vec::len);
    let packed = c
        .values
        .iter()
        .flat_map(|column| c.layouts(column))
        .map(compress)
        .filter(|l| l.first().is_some_and(|tag| tag & COMPRESSED != 0))
        .min_by_key(Vec::len);
    match (plain, packed) {
        (Some(plain), Some(packed)) if packed.len() * 8 <= plain.len() * 7 => packed,
        (plain, packed) => plain.or(packed).unwrap_or_default(),
    }
}

/// A chunk's columns before assembly: the value encodings worth keeping — the smallest
/// first, then the other of Chimp's two codings when one of them is kept — and both
/// timestamp layouts (the blocks one when it applies).
struct Columns {
    n: usize,
    values: Vec<(ValueEncoding, Vec<u8>)>,
    bucketed: Vec<u8>,
    blocks: Option<Vec<u8>>,
}

impl Columns {
    fn new(ts: &[i64], vs: &[f64]) -> Columns {
        debug_assert_eq!(ts.len(), vs.len());
        let mut t_enc = TimestampEncoder::new();
        for &t in ts {
            t_enc.push(t);
        }
        // Every applicable encoding, and the smallest kept: the integer path for exact
        // integers, the decimal path for decimals, and XOR, which takes anything.
        let xor = xor_bytes(vs);
        let other = match value::encode_int(vs, 0) {
            Some(int) => Some(int),
            None => decimal::split(vs)
                .and_then(|d| decimal::encode(&d))
                .map(|bytes| (ValueEncoding::Decimal, bytes)),
        };
        let values = match other {
            Some((encoding, bytes)) if bytes.len() <= xor.len() => vec![(encoding, bytes)],
            // Floats that are neither: the smaller of Chimp's two XOR codings when it saves
            // an eighth (they decode more slowly than Gorilla's), else Gorilla's.
            _ => {
                let chimp = (ValueEncoding::Chimp, chimp::encode(vs));
                let window = (ValueEncoding::Chimp128, chimp128::encode(vs));
                let (kept, other) = if window.1.len() < chimp.1.len() {
                    (window, chimp)
                } else {
                    (chimp, window)
                };
                if kept.1.len() * 8 <= xor.len() * 7 {
                    vec![kept, other]
                } else {
                    vec![(ValueEncoding::Xor, xor)]
                }
            }
        };
        Columns {
            n: ts.len(),
            values,
            bucketed: t_enc.finish(),
            blocks: timestamp::encode_blocks(ts),
        }
    }

    /// The smallest value column.
    fn kept(&self) -> &(ValueEncoding, Vec<u8>) {
        self.values
            .first()
            .unwrap_or_else(|| unreachable!("every chunk has a value column"))
    }

    /// The chunk with value column `column`, in each timestamp layout.
    fn layouts(&self, (encoding, values): &(ValueEncoding, Vec<u8>)) -> Vec<Vec<u8>> {
        let mut out = vec![assemble(*encoding as u8, self.n, &self.bucketed, values)];
        if let Some(blocks) = &self.blocks {
            out.push(assemble(
                *encoding as u8 | TS_BLOCKS,
                self.n,
                blocks,
                values,
            ));
        }
        out
    }
}

/// The chunk as segment format 1 wrote it — bucketed timestamps, and the integer path for
/// all-integer values (XOR only when they are constant), else XOR: the baseline the
/// format-2 encodings are measured and tested against.
pub fn encode_format_1(ts: &[i64], vs: &[f64]) -> Vec<u8> {
    let mut t_enc = TimestampEncoder::new();
    ts.iter().for_each(|&t| t_enc.push(t));
    let constant = vs
        .windows(2)
        .all(|w| matches!(w, [a, b] if a.to_bits() == b.to_bits()));
    let (encoding, values) = match value::encode_int(vs, 0) {
        Some(int) if !constant || vs.len() < 2 => int,
        _ => (ValueEncoding::Xor, xor_bytes(vs)),
    };
    assemble(encoding as u8, ts.len(), &t_enc.finish(), &values)
}

fn xor_bytes(vs: &[f64]) -> Vec<u8> {
    let mut e = XorEncoder::new();
    vs.iter().for_each(|&v| e.push(v));
    e.finish()
}

fn assemble(tag: u8, n: usize, ts: &[u8], values: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + ts.len() + values.len());
    out.push(tag);
    put_u64(&mut out, n as u64);
    put_u64(&mut out, ts.len() as u64);
    out.extend_from_slice(ts);
    out.extend_from_slice(values);
    out
}

/// Number of samples in a chunk, read from its header.
pub fn sample_count(data: &[u8]) -> Result<usize, DecodeError> {
    let mut r = ByteReader::new(data);
    r.u8()?;
    r.len(MAX_CHUNK_SAMPLES, "chunk sample count")
}

/// A thread's zstd context and buffer for compressed chunks, made once and reused.
#[derive(Default)]
struct Unpacker {
    context: Option<zstd::bulk::Decompressor<'static>>,
    raw: Vec<u8>,
}

thread_local! {
    static UNPACKER: std::cell::RefCell<Unpacker> = std::cell::RefCell::new(Unpacker::default());
}

/// Decodes a chunk, appending its samples to `ts` and `vs`; returns how many.
pub fn decode(data: &[u8], ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> Result<usize, DecodeError> {
    let mut r = ByteReader::new(data);
    let tag = r.u8()?;
    let n = r.len(MAX_CHUNK_SAMPLES, "chunk sample count")?;
    if n == 0 {
        return Err(r.error("chunk holds no samples"));
    }
    let encoding = ValueEncoding::try_from(tag & ENCODING_BITS)?;
    let ts_blocks = tag & TS_BLOCKS != 0;
    if tag & COMPRESSED == 0 {
        let at = r.position();
        return decode_rest(encoding, ts_blocks, n, r.bytes(r.remaining())?, ts, vs)
            .map_err(|e| e.shifted(at as u64));
    }
    let raw_len = r.len(MAX_RAW_BYTES, "decompressed chunk length")?;
    let at = r.position() as u64;
    let packed = r.bytes(r.remaining())?;
    UNPACKER.with(|unpacker| {
        let unpacker = &mut *unpacker.borrow_mut();
        let context = match &mut unpacker.context {
            Some(c) => c,
            empty => empty.insert(
                zstd::bulk::Decompressor::new()
                    .map_err(|e| DecodeError::new(at, format!("zstd: {e}")))?,
            ),
        };
        let raw = &mut unpacker.raw;
        raw.clear();
        raw.reserve(raw_len);
        let got = context
            .decompress_to_buffer(packed, raw)
            .map_err(|e| DecodeError::new(at, format!("zstd: {e}")))?;
        if got != raw_len {
            return Err(DecodeError::new(
                at,
                format!("chunk decompressed to {got} bytes, its header says {raw_len}"),
            ));
        }
        decode_rest(encoding, ts_blocks, n, raw, ts, vs).map_err(|e| {
            DecodeError::new(
                at,
                format!(
                    "in the decompressed chunk at offset {}: {}",
                    e.offset, e.reason
                ),
            )
        })
    })
}

/// Decodes what follows a chunk's encoding and count: the timestamp column's length, the
/// timestamp column, the value column. Offsets in errors are relative to `data`.
fn decode_rest(
    encoding: ValueEncoding,
    ts_blocks: bool,
    n: usize,
    data: &[u8],
    ts: &mut Vec<i64>,
    vs: &mut Vec<f64>,
) -> Result<usize, DecodeError> {
    let mut r = ByteReader::new(data);
    let ts_len = r.len(r.remaining(), "timestamp column length")?;
    let ts_start = r.position();
    let ts_bytes = r.bytes(ts_len)?;
    let v_start = r.position();
    let v_bytes = r.bytes(r.remaining())?;
    // Each sample needs at least one bit after the first 64: bounds what we allocate.
    let min_value_bits = match encoding {
        ValueEncoding::Xor => 63 + n,
        // Two flag bits a value after the first.
        ValueEncoding::Chimp | ValueEncoding::Chimp128 => 64 + 2 * (n - 1),
        // A block of up to BLOCK values costs at least its 6-bit width.
        ValueEncoding::IntDeltaBlocks => 1 + (n - 1).div_ceil(value::BLOCK) * 6,
        // Exponent, exception count, mantissa encoding; the mantissas are checked inside.
        ValueEncoding::Decimal => 24,
        _ => n,
    };
    let min_ts_bits = if ts_blocks {
        64 + (n - 1).div_ceil(timestamp::BLOCK) * 6
    } else {
        63 + n
    };
    if ts_bytes.len() * 8 < min_ts_bits || v_bytes.len() * 8 < min_value_bits {
        return Err(DecodeError::new(
            0,
            format!("{n} samples cannot fit in the chunk's columns"),
        ));
    }
    let before = ts.len();
    let decoded = if ts_blocks {
        timestamp::decode_blocks(ts_bytes, n, ts)
    } else {
        timestamp::decode(ts_bytes, n, ts)
    };
    decoded.map_err(|e| e.shifted(ts_start as u64))?;
    let decoded = match encoding {
        ValueEncoding::Xor => value::decode_xor(v_bytes, n, vs),
        ValueEncoding::IntDeltaBlocks => value::decode_blocks(v_bytes, n, vs),
        ValueEncoding::Decimal => decimal::decode(v_bytes, n, vs),
        ValueEncoding::Chimp => chimp::decode(v_bytes, n, vs),
        ValueEncoding::Chimp128 => chimp128::decode(v_bytes, n, vs),
        int => value::decode_int(v_bytes, n, int, vs),
    };
    if let Err(e) = decoded {
        ts.truncate(before);
        return Err(e.shifted(v_start as u64));
    }
    Ok(n)
}

thread_local! {
    /// Column buffers reused by [`decode_range`], so reading a chunk allocates nothing.
    static SCRATCH: std::cell::RefCell<(Vec<i64>, Vec<f64>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Decodes a chunk and appends its samples in `[start, end]` to `out`.
pub fn decode_range(
    data: &[u8],
    start: i64,
    end: i64,
    out: &mut Vec<crate::model::Sample>,
) -> Result<(), DecodeError> {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let (ts, vs) = &mut *scratch;
        ts.clear();
        vs.clear();
        decode(data, ts, vs)?;
        let from = ts.partition_point(|&t| t < start);
        let to = ts.partition_point(|&t| t <= end);
        if ts.is_sorted() {
            let (ts, vs) = (
                ts.get(from..to).unwrap_or(&[]),
                vs.get(from..to).unwrap_or(&[]),
            );
            out.extend(
                ts.iter()
                    .zip(vs)
                    .map(|(&t, &v)| crate::model::Sample { t, v }),
            );
        } else {
            out.extend(
                ts.iter()
                    .zip(vs.iter())
                    .filter(|(t, _)| **t >= start && **t <= end)
                    .map(|(&t, &v)| crate::model::Sample { t, v }),
            );
        }
        Ok(())
    })
}

/// The head's open chunk: samples are appended one at a time, in timestamp order.
/// Values start on the integer-delta path and move to XOR (re-encoding what is there) at
/// the first value that is not an exact integer.
///
/// Its state lives in a box made at the first sample, so an empty appender — what every
/// series holds between a flush and its next sample, and what a series that stopped
/// reporting holds for good — is one pointer, not the ≈ 170 bytes of encoder state.
#[derive(Debug, Clone, Default)]
pub struct ChunkAppender(Option<Box<OpenChunk>>);

/// A [`ChunkAppender`]'s state.
#[derive(Debug, Clone, Default)]
struct OpenChunk {
    ts: TimestampEncoder,
    values: ValueAppender,
    /// The newest samples as appended (sample `i` at `i % RECENT`), so that the newest
    /// sample at or before a time a little in the past — a dashboard's step just before
    /// now — is found without decoding the chunk.
    recent: [(i64, f64); RECENT],
}

/// Samples an open chunk keeps at hand besides its columns (16 bytes each, in every
/// series written since the last flush): a dashboard refreshed every few seconds computes
/// a new step a few seconds behind its series' last samples, which come every ten seconds
/// or slower — at most one sample behind the last.
const RECENT: usize = 2;

#[derive(Debug, Clone)]
enum ValueAppender {
    Int(IntEncoder, Vec<i64>),
    Xor(XorEncoder),
}

impl Default for ValueAppender {
    fn default() -> Self {
        ValueAppender::Int(IntEncoder::new(ValueEncoding::IntDelta), Vec::new())
    }
}

impl ChunkAppender {
    /// An empty appender.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a sample.
    #[inline]
    pub fn push(&mut self, t: i64, v: f64) {
        self.0.get_or_insert_with(Box::default).push(t, v);
    }

    /// The newest sample at or before `end`, when the samples kept at hand show it: `None`
    /// when the chunk is empty or every sample kept at hand is after `end` (the one wanted
    /// is older, or in an earlier chunk).
    pub fn newest_at_or_before(&self, end: i64) -> Option<(i64, f64)> {
        let open = self.0.as_ref()?;
        let n = open.ts.len();
        (0..n.min(RECENT))
            .filter_map(|back| open.recent.get((n - 1 - back) % RECENT))
            .find(|&&(t, _)| t <= end)
            .copied()
    }

    /// Samples appended.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |o| o.ts.len())
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|o| o.ts.is_empty())
    }

    /// The last timestamp appended.
    pub fn last_t(&self) -> Option<i64> {
        self.0.as_ref()?.ts.last()
    }

    /// The last sample appended.
    pub fn last(&self) -> Option<(i64, f64)> {
        self.0.as_ref()?.last()
    }

    /// The chunk as it stands, in the format above (the appender goes on).
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write_to(&mut out);
        out
    }

    /// Bytes [`ChunkAppender::snapshot`] would return.
    pub fn encoded_len(&self) -> usize {
        match &self.0 {
            Some(open) => open.encoded_len(),
            None => OpenChunk::default().encoded_len(),
        }
    }

    /// Appends what [`ChunkAppender::snapshot`] would return to `out` (as [`assemble`]
    /// lays it out), without copying the columns first.
    pub fn write_to(&self, out: &mut impl bytes::BufMut) {
        match &self.0 {
            Some(open) => open.write_to(out),
            None => OpenChunk::default().write_to(out),
        }
    }

    /// Starts a new, empty chunk, keeping the buffers (the head seals a chunk every few
    /// minutes of a series' samples and goes on in the same appender).
    pub fn clear(&mut self) {
        if let Some(open) = &mut self.0 {
            open.clear();
        }
    }

    /// Heap bytes held, the box included.
    pub fn heap_bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |open| {
            std::mem::size_of::<OpenChunk>() + open.heap_bytes()
        })
    }
}

impl OpenChunk {
    #[inline]
    fn push(&mut self, t: i64, v: f64) {
        if let Some(slot) = self.recent.get_mut(self.ts.len() % RECENT) {
            *slot = (t, v);
        }
        self.ts.push(t);
        match &mut self.values {
            ValueAppender::Xor(e) => e.push(v),
            ValueAppender::Int(e, _) if self.ts.len() > INT_RECHECK => {
                // Past a few samples we stop keeping the integers aside for a transcode.
                match as_exact_int(v) {
                    Some(i) => e.push(i),
                    None => self.switch_to_xor_then_push(v),
                }
            }
            ValueAppender::Int(e, kept) => match as_exact_int(v) {
                Some(i) => {
                    e.push(i);
                    kept.push(i);
                }
                None => self.switch_to_xor_then_push(v),
            },
        }
    }

    #[cold]
    fn switch_to_xor_then_push(&mut self, v: f64) {
        let mut xor = XorEncoder::new();
        let ValueAppender::Int(enc, kept) = &self.values else {
            return;
        };
        let n = self.ts.len() - 1;
        if kept.len() == n {
            kept.iter().for_each(|&i| xor.push(i as f64));
        } else {
            let mut vs = Vec::with_capacity(n);
            let bytes = enc.snapshot();
            // Our own bytes, just written: decoding cannot fail short of a bug.
            if value::decode_int(&bytes, n, ValueEncoding::IntDelta, &mut vs).is_ok() {
                vs.iter().for_each(|&x| xor.push(x));
            }
        }
        xor.push(v);
        self.values = ValueAppender::Xor(xor);
    }

    fn last(&self) -> Option<(i64, f64)> {
        let v = match &self.values {
            ValueAppender::Int(e, _) => e.last().map(|i| i as f64),
            ValueAppender::Xor(e) => e.last(),
        };
        Some((self.ts.last()?, v?))
    }

    fn value_bits(&self) -> (ValueEncoding, &BitWriter) {
        match &self.values {
            ValueAppender::Int(e, _) => (ValueEncoding::IntDelta, e.bits()),
            ValueAppender::Xor(e) => (ValueEncoding::Xor, e.bits()),
        }
    }

    fn encoded_len(&self) -> usize {
        let ts = self.ts.bits().byte_len();
        1 + len_u64(self.ts.len() as u64) + len_u64(ts as u64) + ts + self.value_bits().1.byte_len()
    }

    fn write_to(&self, out: &mut impl bytes::BufMut) {
        let (encoding, values) = self.value_bits();
        out.put_u8(encoding as u8);
        put_u64(out, self.ts.len() as u64);
        put_u64(out, self.ts.bits().byte_len() as u64);
        self.ts.bits().write_to(out);
        values.write_to(out);
    }

    fn clear(&mut self) {
        self.ts.clear();
        match &mut self.values {
            ValueAppender::Int(e, kept) => {
                e.clear();
                kept.clear();
            }
            ValueAppender::Xor(_) => {
                let xor = std::mem::take(&mut self.values);
                if let ValueAppender::Xor(e) = xor {
                    let w = e.into_cleared_bits();
                    self.values = ValueAppender::Int(
                        IntEncoder::writing_into(ValueEncoding::IntDelta, w),
                        Vec::new(),
                    );
                }
            }
        }
    }

    fn heap_bytes(&self) -> usize {
        self.ts.heap_bytes()
            + match &self.values {
                ValueAppender::Int(e, kept) => e.heap_bytes() + kept.capacity() * 8,
                ValueAppender::Xor(e) => e.heap_bytes(),
            }
    }
}

/// How many leading integers the appender keeps aside so that a switch to XOR is cheap.
const INT_RECHECK: usize = 8;

#[cfg(test)]
mod tests;
