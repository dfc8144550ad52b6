//! Indicator metadata: per namespace and metric, a unit, a description and the expected
//! reporting interval (what lets the engine say which series are no longer live).
//!
//! Stored in the data directory's `METADATA` file, replaced atomically on each change:
//! ```text
//! iocdb-metadata 1
//! <namespace>\t<metric>\t<interval ms or ->\t<unit>\t<description>     one line per metric
//! crc32c <8 hex digits>
//! ```
//! Tabs, newlines and backslashes in text fields are escaped as `\t`, `\n`, `\\`.
//!
//! May use: `fs`, `textfile`, errors.

use std::collections::BTreeMap;
use std::path::Path;

use crate::fs::{Vfs, layout};
use crate::textfile;
use crate::{Error, Result};

/// The current format: version 2 adds the metric's kind (counter, gauge, …) as a sixth
/// field. Version 1 files (five fields) are still read.
const HEADER: &str = "iocdb-metadata 2";
const HEADER_V1: &str = "iocdb-metadata 1";

/// What is known of a metric.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricMetadata {
    /// Metric name.
    pub metric: String,
    /// Unit, e.g. "người", "%", "tỷ đồng".
    pub unit: String,
    /// What the metric means.
    pub description: String,
    /// How often sources report it, ms.
    pub expected_interval_ms: Option<i64>,
    /// The kind of metric as Prometheus names it (`counter`, `gauge`, `histogram`,
    /// `summary`, …); empty when unknown.
    pub kind: String,
}

/// All metadata, by (namespace, metric).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataStore(pub BTreeMap<(String, String), MetricMetadata>);

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            },
            (c, false) => out.push(c),
        }
    }
    out
}

impl MetadataStore {
    /// Serializes.
    pub fn encode(&self) -> String {
        let mut s = format!("{HEADER}\n");
        for ((ns, _), m) in &self.0 {
            let interval = m
                .expected_interval_ms
                .map_or("-".to_owned(), |i| i.to_string());
            s.push_str(&format!(
                "{}\t{}\t{interval}\t{}\t{}\t{}\n",
                escape(ns),
                escape(&m.metric),
                escape(&m.unit),
                escape(&m.description),
                escape(&m.kind)
            ));
        }
        textfile::seal(s)
    }

    /// Parses; `path` names the file in errors.
    pub fn decode(path: &Path, data: &[u8]) -> Result<Self> {
        let corrupt = |offset: usize, reason: String| Error::Corrupt {
            file: path.to_path_buf(),
            offset: offset as u64,
            reason,
        };
        let body = textfile::open(path, data)?;
        let mut store = MetadataStore::default();
        let mut offset = 0;
        let mut width = 6;
        for (i, line) in body.lines().enumerate() {
            if i == 0 {
                width = match line {
                    HEADER => 6,
                    HEADER_V1 => 5,
                    _ => {
                        return Err(corrupt(
                            0,
                            "not an iocdb metadata file (version 1 or 2)".into(),
                        ));
                    }
                };
            } else {
                let fields: Vec<&str> = line.split('\t').collect();
                let (ns, metric, interval, unit, description, kind) = match fields.as_slice() {
                    [ns, metric, interval, unit, description] if width == 5 => {
                        (ns, metric, interval, unit, description, &"")
                    }
                    [ns, metric, interval, unit, description, kind] if width == 6 => {
                        (ns, metric, interval, unit, description, kind)
                    }
                    _ => {
                        return Err(corrupt(
                            offset,
                            format!(
                                "line {} has {} fields, expected {width}",
                                i + 1,
                                fields.len()
                            ),
                        ));
                    }
                };
                let expected_interval_ms = match *interval {
                    "-" => None,
                    n => Some(
                        n.parse()
                            .map_err(|_| corrupt(offset, format!("bad interval {n:?}")))?,
                    ),
                };
                let m = MetricMetadata {
                    metric: unescape(metric),
                    unit: unescape(unit),
                    description: unescape(description),
                    expected_interval_ms,
                    kind: unescape(kind),
                };
                store.0.insert((unescape(ns), m.metric.clone()), m);
            }
            offset += line.len() + 1;
        }
        Ok(store)
    }

    /// Loads the store of `dir` (empty when there is none).
    pub fn load(vfs: &dyn Vfs, dir: &Path) -> Result<Self> {
        let path = dir.join(layout::METADATA);
        match textfile::read(vfs, dir, layout::METADATA)? {
            Some(data) => Self::decode(&path, &data),
            None => Ok(Self::default()),
        }
    }

    /// Replaces the store of `dir` atomically and durably.
    pub fn store(&self, vfs: &dyn Vfs, dir: &Path) -> Result<()> {
        textfile::replace(
            vfs,
            dir,
            layout::METADATA,
            layout::METADATA_TMP,
            &self.encode(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_with_vietnamese_tabs_and_newlines_round_trips() {
        let mut store = MetadataStore::default();
        let m = MetricMetadata {
            metric: "indicator_value".into(),
            unit: "tỷ đồng".into(),
            description: "GRDP\tquý\nđiều chỉnh \\ sau".into(),
            expected_interval_ms: Some(7_776_000_000),
            kind: "gauge".into(),
        };
        store.0.insert(("economy".into(), m.metric.clone()), m);
        let text = store.encode();
        assert_eq!(
            MetadataStore::decode(Path::new("M"), text.as_bytes()).ok(),
            Some(store)
        );
    }

    #[test]
    fn version_1_files_without_a_kind_are_still_read() {
        let v1 = textfile::seal("iocdb-metadata 1\nns\tbeds\t60000\tgiường\tfree beds\n".into());
        let store = MetadataStore::decode(Path::new("M"), v1.as_bytes()).expect("v1 decodes");
        let m = store.0.get(&("ns".into(), "beds".into())).expect("entry");
        assert_eq!((m.unit.as_str(), m.kind.as_str()), ("giường", ""));
        assert_eq!(m.expected_interval_ms, Some(60_000));
    }
}
