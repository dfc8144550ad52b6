//! The `QUALITY` journal: the data-quality counters and events, durable across restarts.
//!
//! ```text
//! iocdb-quality 1
//! <crc32c, 8 hex digits> <record>          one line per record; the checksum covers <record>
//! records (fields tab-separated, text escaped as in METADATA):
//!   C  namespace metric rule action samples               a counter's total at the last rewrite
//!   L  arrival namespace metric series rule action samples timestamp value detail
//!                                                         an event already in a C total
//!   E  (the fields of L)                                  an event since: counted and listed
//!   D  (the fields of C)                                  samples counted since, not listed
//! ```
//! Each write appends `E` lines; at open, and when the file passes [`REWRITE_BYTES`], it is
//! rewritten (temporary file, fsync, rename, directory fsync) as the totals and the newest
//! events. The rewritten file's handle keeps appending after the rename, as POSIX files do.
//! A line that fails its checksum is skipped — a torn last line silently, any other with a
//! warning that names the file and offset: the journal is a report, never a reason to refuse
//! to start.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use crate::error::IoContext;
use crate::fs::{Vfs, VfsFile, layout};
use crate::model::{QualityAction, QualityCount, QualityEvent, QualityRule};
use crate::textfile::{escape, unescape};

const HEADER: &str = "iocdb-quality 1\n";

/// Past this size the journal is rewritten as totals and the newest events.
pub const REWRITE_BYTES: u64 = 8 << 20;

/// What a journal held.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Counter totals, `E` lines included (entries of one key add up).
    pub counts: Vec<QualityCount>,
    /// Events, oldest first.
    pub events: Vec<QualityEvent>,
    /// Lines skipped as damaged (a torn last line is not counted).
    pub damaged_lines: usize,
}

/// Reads the journal of `dir` (none: empty).
pub fn load(vfs: &dyn Vfs, dir: &Path) -> crate::Result<Loaded> {
    let path = dir.join(layout::QUALITY);
    let data = match vfs.read(&path) {
        Ok(data) => data,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(e) => return Err(crate::Error::io(&path, e)),
    };
    let mut loaded = Loaded::default();
    let mut offset = 0usize;
    let text = String::from_utf8_lossy(&data);
    let torn_tail = !text.ends_with('\n');
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let here = offset;
        offset += line.len() + 1;
        if i == 0 && here == 0 && line.starts_with("iocdb-quality") {
            if format!("{line}\n") != HEADER {
                tracing::warn!(file = %path.display(), "unknown data-quality journal version {line:?}; its records are read as version 1");
            }
            continue;
        }
        match decode_line(line) {
            Some(Record::Count(c) | Record::Counted(c)) => loaded.counts.push(c),
            Some(Record::Listed(e)) => loaded.events.push(e),
            Some(Record::Event(e)) => {
                loaded.counts.push(QualityCount {
                    namespace: e.namespace.clone(),
                    metric: e.metric.clone(),
                    rule: e.rule,
                    action: e.action,
                    samples: e.samples,
                });
                loaded.events.push(e);
            }
            None if torn_tail && i + 1 == lines.len() => {
                tracing::info!(file = %path.display(), offset = here, "dropped a torn last line of the data-quality journal");
            }
            None => {
                loaded.damaged_lines += 1;
                tracing::warn!(file = %path.display(), offset = here, "skipped a damaged line of the data-quality journal");
            }
        }
    }
    Ok(loaded)
}

/// The journal open for appending.
#[derive(Debug)]
pub struct Journal {
    vfs: Arc<dyn Vfs>,
    dir: std::path::PathBuf,
    file: Box<dyn VfsFile>,
    bytes: u64,
    sync: bool,
}

impl Journal {
    /// Writes a new journal of `dir` holding `counts` and `events` and opens it for
    /// appending; `sync`: fsync each append (the engine's `always` fsync policy).
    pub fn rewrite(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        sync: bool,
        counts: &Counts,
        events: &VecDeque<QualityEvent>,
    ) -> crate::Result<Journal> {
        let (file, bytes) = write_new(&*vfs, dir, counts, events)?;
        Ok(Journal {
            vfs,
            dir: dir.to_path_buf(),
            file,
            bytes,
            sync,
        })
    }

    /// Appends events, and the samples counted without an event of their own.
    pub fn append(
        &mut self,
        events: &[QualityEvent],
        unlisted: &[QualityCount],
    ) -> crate::Result<()> {
        let path = self.dir.join(layout::QUALITY);
        let mut text = String::new();
        for e in events {
            text.push_str(&encode_line(&Record::Event(e.clone())));
        }
        for c in unlisted {
            text.push_str(&encode_line(&Record::Counted(c.clone())));
        }
        self.file.write_all(text.as_bytes()).at(&path)?;
        if self.sync {
            self.file.sync().at(&path)?;
        }
        self.bytes += text.len() as u64;
        Ok(())
    }

    /// Whether the journal has grown past [`REWRITE_BYTES`].
    pub fn too_long(&self) -> bool {
        self.bytes > REWRITE_BYTES
    }

    /// Rewrites this journal as `counts` and `events`.
    pub fn rewrite_in_place(
        &mut self,
        counts: &Counts,
        events: &VecDeque<QualityEvent>,
    ) -> crate::Result<()> {
        *self = Journal::rewrite(
            self.vfs.clone(),
            &self.dir.clone(),
            self.sync,
            counts,
            events,
        )?;
        Ok(())
    }
}

/// Counter totals as the journal keeps them.
pub type Counts = BTreeMap<super::CountKey, u64>;

/// Writes a journal of `dir` holding `counts` and `events` (temporary file, fsync, rename,
/// directory fsync); returns its handle, open for appending, and its size.
pub fn write_new(
    vfs: &dyn Vfs,
    dir: &Path,
    counts: &Counts,
    events: &VecDeque<QualityEvent>,
) -> crate::Result<(Box<dyn VfsFile>, u64)> {
    let (tmp, path) = (dir.join(layout::QUALITY_TMP), dir.join(layout::QUALITY));
    let mut text = String::from(HEADER);
    for ((namespace, metric, rule, action), &samples) in counts {
        let count = QualityCount {
            namespace: namespace.clone(),
            metric: metric.clone(),
            rule: *rule,
            action: *action,
            samples,
        };
        text.push_str(&encode_line(&Record::Count(count)));
    }
    for e in events {
        text.push_str(&encode_line(&Record::Listed(e.clone())));
    }
    let file = vfs.create(&tmp).at(&tmp)?;
    file.write_all(text.as_bytes()).at(&tmp)?;
    file.sync().at(&tmp)?;
    vfs.rename(&tmp, &path).at(&path)?;
    vfs.sync_dir(dir).at(dir)?;
    Ok((file, text.len() as u64))
}

/// One line's record.
#[derive(Debug, Clone, PartialEq)]
enum Record {
    Count(QualityCount),
    Counted(QualityCount),
    Listed(QualityEvent),
    Event(QualityEvent),
}

fn encode_line(record: &Record) -> String {
    let body = match record {
        Record::Count(c) | Record::Counted(c) => [
            if matches!(record, Record::Count(_)) {
                "C"
            } else {
                "D"
            },
            &escape(&c.namespace),
            &escape(&c.metric),
            c.rule.kind(),
            c.action.name(),
            &c.samples.to_string(),
        ]
        .join("\t"),
        Record::Listed(e) | Record::Event(e) => [
            if matches!(record, Record::Listed(_)) {
                "L"
            } else {
                "E"
            },
            &e.arrival_ms.to_string(),
            &escape(&e.namespace),
            &escape(&e.metric),
            &escape(&e.series),
            e.rule.kind(),
            e.action.name(),
            &e.samples.to_string(),
            &e.timestamp.to_string(),
            &e.value.to_string(),
            &escape(&e.detail),
        ]
        .join("\t"),
    };
    format!("{:08x} {body}\n", crc32c::crc32c(body.as_bytes()))
}

fn decode_line(line: &str) -> Option<Record> {
    let (crc, body) = line.split_once(' ')?;
    if u32::from_str_radix(crc, 16).ok()? != crc32c::crc32c(body.as_bytes()) {
        return None;
    }
    let f: Vec<&str> = body.split('\t').collect();
    match f.as_slice() {
        [kind @ ("C" | "D"), namespace, metric, rule, action, samples] => {
            let c = QualityCount {
                namespace: unescape(namespace),
                metric: unescape(metric),
                rule: QualityRule::parse(rule)?,
                action: QualityAction::parse(action)?,
                samples: samples.parse().ok()?,
            };
            Some(if *kind == "C" {
                Record::Count(c)
            } else {
                Record::Counted(c)
            })
        }
        [
            kind @ ("L" | "E"),
            arrival,
            namespace,
            metric,
            series,
            rule,
            action,
            samples,
            timestamp,
            value,
            detail,
        ] => {
            let e = QualityEvent {
                arrival_ms: arrival.parse().ok()?,
                namespace: unescape(namespace),
                metric: unescape(metric),
                series: unescape(series),
                rule: QualityRule::parse(rule)?,
                action: QualityAction::parse(action)?,
                samples: samples.parse().ok()?,
                timestamp: timestamp.parse().ok()?,
                value: value.parse().ok()?,
                detail: unescape(detail),
            };
            Some(if *kind == "L" {
                Record::Listed(e)
            } else {
                Record::Event(e)
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(detail: &str) -> QualityEvent {
        QualityEvent {
            arrival_ms: 1_700_000_000_123,
            namespace: "health".into(),
            metric: "hospital_waiting".into(),
            series: "{commune=\"Châu Đốc\"}".into(),
            rule: QualityRule::OutOfRange,
            action: QualityAction::Rejected,
            samples: 1,
            timestamp: 1_700_000_000_000,
            value: -5.0,
            detail: detail.into(),
        }
    }

    #[test]
    fn records_round_trip_with_tabs_and_vietnamese() {
        for record in [
            Record::Event(event("giá trị\t-5\nngoài khoảng")),
            Record::Listed(event("x")),
            Record::Counted(QualityCount {
                namespace: "y tế".into(),
                metric: "m".into(),
                rule: QualityRule::OutOfRange,
                action: QualityAction::Rejected,
                samples: 7,
            }),
            Record::Count(QualityCount {
                namespace: "y tế".into(),
                metric: "m".into(),
                rule: QualityRule::ExcessiveChange,
                action: QualityAction::Flagged,
                samples: 42,
            }),
        ] {
            let line = encode_line(&record);
            assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
            assert_eq!(decode_line(line.trim_end_matches('\n')), Some(record));
        }
    }

    #[test]
    fn a_flipped_byte_fails_the_line_checksum() {
        let line = encode_line(&Record::Event(event("x")));
        let mut bytes = line.trim_end().as_bytes().to_vec();
        let at = bytes.len() - 3;
        bytes[at] ^= 1;
        assert_eq!(decode_line(&String::from_utf8_lossy(&bytes)), None);
    }
}
