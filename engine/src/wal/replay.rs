//! Reading WAL files back at open. Each file is decoded on its own (its series references
//! are its own); the caller maps definitions to series and applies samples.

use crate::DecodeError;
use crate::model::Sample;
use crate::wal::frame::{End, FrameReader};
use crate::wal::record::{self, SeriesDef};

/// What replaying one file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReplay {
    /// Frames applied.
    pub frames: u64,
    /// Samples applied.
    pub samples: u64,
    /// Bytes of good frames from the start of the file.
    pub good_len: u64,
    /// How the file ended.
    pub end: End,
}

/// Receives the records of one WAL file, in order.
pub trait ReplaySink {
    /// Series definitions.
    fn define(&mut self, defs: Vec<SeriesDef>) -> Result<(), DecodeError>;
    /// Samples of the series defined as `wal_ref` in this file.
    fn samples(
        &mut self,
        wal_ref: u32,
        samples: &mut dyn Iterator<Item = Sample>,
    ) -> Result<usize, DecodeError>;
}

/// Replays one file's bytes into `sink`. A record that fails to decode is reported as
/// corruption at its frame's offset; nothing after it is applied.
pub fn replay_file(data: &[u8], sink: &mut dyn ReplaySink) -> FileReplay {
    let mut frames = FrameReader::new(data);
    let mut report = FileReplay {
        frames: 0,
        samples: 0,
        good_len: 0,
        end: End::Clean,
    };
    for frame in frames.by_ref() {
        let payload_at = frame.offset + super::frame::HEADER_LEN as u64;
        let applied = match frame.kind {
            record::KIND_SERIES => {
                record::decode_series_defs(frame.payload).and_then(|defs| sink.define(defs))
            }
            record::KIND_SAMPLES => record::decode_samples(frame.payload, |wal_ref, samples| {
                report.samples += sink.samples(wal_ref, samples)? as u64;
                Ok(())
            }),
            other => Err(DecodeError::new(
                0,
                format!("unknown WAL record kind {other}"),
            )),
        };
        if let Err(e) = applied {
            report.end = End::Corrupt(e.shifted(payload_at));
            return report;
        }
        report.frames += 1;
        report.good_len = frame.offset + (super::frame::HEADER_LEN + frame.payload.len()) as u64;
    }
    report.end = frames.end().cloned().unwrap_or(End::Clean);
    report
}
