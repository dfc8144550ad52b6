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
//! tombstone below=<seq> from=<ms> to=<ms> ns=<ns> match=<name><op><value> …
//!                                  version 3: a deletion (see below)
//! crc32c <8 hex digits>            of every byte before this line
//! ```
//! A manifest is written with the lowest version that can say what it holds (2 only while
//! it lists retired segments, 3 only while it holds tombstones), so that an older iocdb
//! still opens a store that needs nothing newer — and refuses one whose deletions it would
//! not honour. Every version is read.
//!
//! A tombstone hides, from the segments with a sequence number below `below`, the samples
//! in `[from, to]` of the namespace's series matching every matcher; later writes are not
//! hidden. Names, values and the namespace are percent-escaped where they hold `%`, spaces,
//! `=`, `!`, `~` (names only) or control characters, so a line stays one line and UTF-8 text
//! stays readable.
//! Text, so an operator can read it with `cat`; checksummed ([`crate::textfile`]), so a
//! damaged one is noticed.
//!
//! May use: `fs`, `textfile`, `index` (matcher operators), errors.

use std::path::Path;

use crate::fs::{Vfs, layout};
use crate::index::MatchOp;
use crate::textfile;
use crate::{Error, Result};

const HEADER: &str = "iocdb-manifest 1";
const HEADER_V2: &str = "iocdb-manifest 2";
const HEADER_V3: &str = "iocdb-manifest 3";

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
    /// Deletions not yet applied to every segment they reach, oldest first.
    pub tombstones: Vec<Tombstone>,
}

/// One deletion, as the manifest records it (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    /// Hides data of segments (and flushed generations) with a sequence number below this.
    pub below_seq: u64,
    /// First hidden timestamp, ms.
    pub min_t: i64,
    /// Last hidden timestamp, ms.
    pub max_t: i64,
    /// The namespace whose series it reaches.
    pub namespace: String,
    /// Label matchers as (name, operator, value), all of which a series must satisfy.
    pub matchers: Vec<(String, MatchOp, String)>,
}

impl Tombstone {
    fn encode(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = write!(
            out,
            "tombstone below={} from={} to={} ns={}",
            self.below_seq,
            self.min_t,
            self.max_t,
            escape(&self.namespace, false)
        );
        for (name, op, value) in &self.matchers {
            let _ = write!(
                out,
                " match={}{}{}",
                escape(name, true),
                op_text(*op),
                escape(value, false)
            );
        }
        out.push('\n');
    }

    fn decode(fields: &str) -> Option<Tombstone> {
        let mut t = Tombstone {
            below_seq: 0,
            min_t: 0,
            max_t: 0,
            namespace: String::new(),
            matchers: Vec::new(),
        };
        let mut seen = 0u8;
        for field in fields.split(' ') {
            let (key, value) = field.split_once('=')?;
            match key {
                "below" => (t.below_seq, seen) = (value.parse().ok()?, seen | 1),
                "from" => (t.min_t, seen) = (value.parse().ok()?, seen | 2),
                "to" => (t.max_t, seen) = (value.parse().ok()?, seen | 4),
                "ns" => (t.namespace, seen) = (unescape(value)?, seen | 8),
                "match" => {
                    // The name is escaped wherever it could hold an operator character, so
                    // the first `=`/`!` after it begins the operator.
                    let at = value.find(['=', '!'])?;
                    let (op, len) = [
                        ("=~", MatchOp::Regex),
                        ("!~", MatchOp::NotRegex),
                        ("!=", MatchOp::NotEqual),
                        ("=", MatchOp::Equal),
                    ]
                    .into_iter()
                    .find(|(text, _)| value[at..].starts_with(text))
                    .map(|(text, op)| (op, text.len()))?;
                    t.matchers
                        .push((unescape(&value[..at])?, op, unescape(&value[at + len..])?));
                }
                _ => return None,
            }
        }
        (seen == 15 && t.min_t <= t.max_t).then_some(t)
    }
}

fn op_text(op: MatchOp) -> &'static str {
    match op {
        MatchOp::Equal => "=",
        MatchOp::NotEqual => "!=",
        MatchOp::Regex => "=~",
        MatchOp::NotRegex => "!~",
    }
}

/// Percent-escapes what would break a tombstone line apart (see the module doc).
fn escape(text: &str, name: bool) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let special = c == '%' || c == ' ' || c.is_control() || (name && "=!~".contains(c));
        if special {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn unescape(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

impl Manifest {
    /// Serializes.
    pub fn encode(&self) -> String {
        let header = if !self.tombstones.is_empty() {
            HEADER_V3
        } else if !self.retired.is_empty() {
            HEADER_V2
        } else {
            HEADER
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
        for t in &self.tombstones {
            t.encode(&mut s);
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
                (0, _) if [HEADER, HEADER_V2, HEADER_V3].contains(&line) => {}
                (0, _) => return Err(corrupt(0, "not an iocdb manifest (version 1 to 3)")),
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
                (_, Some(("tombstone", fields))) => m
                    .tombstones
                    .push(Tombstone::decode(fields).ok_or_else(bad)?),
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
            ..Manifest::default()
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
    fn tombstones_round_trip_any_text_and_raise_the_version() {
        let awkward = "Châu Đốc =~ 100% \n\t\"x\" !~";
        let m = Manifest {
            next_seq: 9,
            tombstones: vec![
                Tombstone {
                    below_seq: 9,
                    min_t: -5,
                    max_t: i64::MAX,
                    namespace: "y_te".into(),
                    matchers: vec![
                        ("__name__".into(), MatchOp::Equal, "waiting".into()),
                        ("a=b!~c".into(), MatchOp::NotRegex, awkward.into()),
                        ("commune".into(), MatchOp::Regex, "".into()),
                        ("x".into(), MatchOp::NotEqual, "=".into()),
                    ],
                },
                Tombstone {
                    below_seq: 1,
                    min_t: 0,
                    max_t: 0,
                    namespace: awkward.into(),
                    matchers: vec![],
                },
            ],
            ..Manifest::default()
        };
        let text = m.encode();
        assert!(text.starts_with("iocdb-manifest 3\n"), "{text}");
        assert_eq!(text.lines().count(), 6, "one line per tombstone: {text}");
        assert!(text.contains("ns=y_te match=__name__=waiting"), "{text}");
        assert_eq!(
            Manifest::decode(Path::new("M"), text.as_bytes()).ok(),
            Some(m)
        );
    }

    #[test]
    fn a_malformed_tombstone_is_refused() {
        for line in [
            "tombstone below=1 from=0 to=5",
            "tombstone below=1 from=9 to=5 ns=a",
            "tombstone below=x from=0 to=5 ns=a",
            "tombstone below=1 from=0 to=5 ns=a match=name",
            "tombstone below=1 from=0 to=5 ns=a match=n=%G1",
            "tombstone below=1 from=0 to=5 ns=a size=3",
        ] {
            let text = textfile::seal(format!("iocdb-manifest 3\nnext-seq 2\n{line}\n"));
            assert!(
                Manifest::decode(Path::new("M"), text.as_bytes()).is_err(),
                "{line}"
            );
        }
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
