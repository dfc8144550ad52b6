//! **Not a stable API.** The engine's insides that its own tests, benches and fuzz targets
//! reach: codecs, the segment and WAL record formats, and the fuzzing entry points. Anything
//! an application needs is re-exported at the crate root instead; this module may change in
//! any release.

pub use crate::codec::bytes::ByteReader;
pub use crate::codec::{chunk, decimal, rollup, varint};
pub use crate::fuzzing::{decode_chunk, read_segment, replay_wal};
pub use crate::query::aggregate_values as aggregate;
pub use crate::segment::{
    Segment, SegmentInput, VERSION as SEGMENT_VERSION, encode_segment, encode_segment_with_rollups,
};
pub use crate::wal::{Wal, record};
