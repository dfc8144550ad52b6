//! The manifest: which segments are live, the next flush sequence number, and the WAL
//! files whose records are all in segments. Replaced atomically (write a temporary file,
//! fsync, rename, fsync the directory), so a crash leaves either the old or the new one.
//!
//! ```text
//! iocdb-manifest 1
//! next-seq <u64>
//! wal-flushed-below <u64>          WAL files numbered below this are in segments
//! segment <file name>              one line per live segment
//! retired <file name>              version 2: a segment compaction replaced, to delete
//! crc32c <8 hex digits>            of every byte before this line
//! ```
//! A manifest is written as version 2 only while it lists retired segments, so that an
//! older iocdb still opens a store that has none; both versions are read.
//! Text, so an operator can read it with `cat`; checksummed ([`crate::textfile`]), so a
//! damaged one is noticed.
//!
//! May use: `fs`, `textfile`, errors.

use std::path::Path;

use crate::fs::{Vfs, layout};
use crate::textfile;
use crate::{Error, Result};

const HEADER: &str = "iocdb-manifest 1";
const HEADER_V2: &str = "iocdb-manifest 2";

/// The manifest's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Sequence number for the next flush.
    pub next_seq: u64,
    /// WAL files numbered below this hold nothing that is not in a segment.
    pub wal_flushed_below: u64,
    /// Live segment file names, in the order they were added.
    pub segments: Vec<String>,
    /// Segments a compaction replaced: no longer live, proven garbage, deleted at the next
    /// chance (after the compaction, or when the store opens after a crash).
    pub retired: Vec<String>,
}

impl Manifest {
    /// Serializes.
    pub fn encode(&self) -> String {
        let header = if self.retired.is_empty() {
            HEADER
        } else {
            HEADER_V2
        };
        let mut s = format!(
            "{header}\nnext-seq {}\nwal-flushed-below {}\n",
            self.next_seq, self.wal_flushed_below
        );
        for seg in &self.segments {
            s.push_str("segment ");
            s.push_str(seg);
            s.push('\n');
        }
        for seg in &self.retired {
            s.push_str("retired ");
            s.push_str(seg);
            s.push('\n');
        }
        textfile::seal(s)
    }

    /// Parses; `path` is only used in errors.
    pub fn decode(path: &Path, data: &[u8]) -> Result<Manifest> {
        let corrupt = |offset: usize, reason: &str| Error::Corrupt {
            file: path.to_path_buf(),
            offset: offset as u64,
            reason: reason.to_owned(),
        };
        let body = textfile::open(path, data)?;
        let mut m = Manifest::default();
        let mut offset = 0;
        for (i, line) in body.lines().enumerate() {
            let bad = || corrupt(offset, &format!("unreadable line {:?}", line));
            match (i, line.split_once(' ')) {
                (0, _) if line == HEADER || line == HEADER_V2 => {}
                (0, _) => return Err(corrupt(0, "not an iocdb manifest (version 1 or 2)")),
                (_, Some(("next-seq", n))) => m.next_seq = n.parse().map_err(|_| bad())?,
                (_, Some(("wal-flushed-below", n))) => {
                    m.wal_flushed_below = n.parse().map_err(|_| bad())?
                }
                (_, Some(("segment", name))) if is_plain_file_name(name) => {
                    m.segments.push(name.to_owned())
                }
                (_, Some(("retired", name))) if is_plain_file_name(name) => {
                    m.retired.push(name.to_owned())
                }
                _ => return Err(bad()),
            }
            offset += line.len() + 1;
        }
        Ok(m)
    }

    /// Reads the manifest of `dir`; `None` when there is none yet.
    pub fn load(vfs: &dyn Vfs, dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(layout::MANIFEST);
        match textfile::read(vfs, dir, layout::MANIFEST)? {
            Some(data) => Manifest::decode(&path, &data).map(Some),
            None => Ok(None),
        }
    }

    /// Replaces the manifest of `dir` atomically and durably.
    pub fn store(&self, vfs: &dyn Vfs, dir: &Path) -> Result<()> {
        textfile::replace(
            vfs,
            dir,
            layout::MANIFEST,
            layout::MANIFEST_TMP,
            &self.encode(),
        )
    }
}

/// A segment name must stay inside the segment folder.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['/', '\\']) && name != "." && name != ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_round_trip_and_a_changed_byte_is_caught() {
        let m = Manifest {
            next_seq: 7,
            wal_flushed_below: 3,
            segments: vec!["a.seg".into(), "b.seg".into()],
            retired: vec![],
        };
        assert!(m.encode().starts_with("iocdb-manifest 1\n"));
        let with_retired = Manifest {
            retired: vec!["old.seg".into()],
            ..m.clone()
        };
        assert!(with_retired.encode().starts_with("iocdb-manifest 2\n"));
        assert_eq!(
            Manifest::decode(Path::new("M"), with_retired.encode().as_bytes()).ok(),
            Some(with_retired)
        );
        let text = m.encode();
        assert_eq!(
            Manifest::decode(Path::new("M"), text.as_bytes()).ok(),
            Some(m)
        );
        let mut bad = text.into_bytes();
        bad[20] ^= 1;
        assert!(matches!(
            Manifest::decode(Path::new("M"), &bad),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn segment_names_cannot_escape_the_folder() {
        let m = Manifest {
            segments: vec!["../../etc/passwd".into()],
            ..Manifest::default()
        };
        assert!(Manifest::decode(Path::new("M"), m.encode().as_bytes()).is_err());
    }
}
