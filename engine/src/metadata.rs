//! The indicator catalog: per namespace and metric, a unit, a description, the expected
//! reporting interval (what lets the engine say which series are no longer live), its kind,
//! the owning department and a contact, and the data-quality rules its samples must keep.
//!
//! Stored in the data directory's `METADATA` file, replaced atomically on each change:
//! ```text
//! iocdb-metadata 3
//! <namespace>\t<metric>\t<interval ms>\t<unit>\t<description>\t<kind>\t<department>\t
//!   <contact>\t<valid min>\t<valid max>\t<required labels, comma-separated>\t
//!   <revision window ms>\t<max change factor>\t<policy>       one line per metric
//! crc32c <8 hex digits>
//! ```
//! `-` stands for "not declared" in the numeric fields and the policy. Tabs, newlines and
//! backslashes in text fields are escaped as `\t`, `\n`, `\\`. Versions 1 (the first five
//! fields) and 2 (six) are still read.
//!
//! May use: `fs`, `textfile`, `model`, errors.

use std::collections::BTreeMap;
use std::path::Path;

use crate::fs::{Vfs, layout};
use crate::model::{QualityPolicy, QualityRules};
use crate::textfile::{self, escape, unescape};
use crate::{Error, Result};

/// The current format: version 2 added the metric's kind (counter, gauge, …) as a sixth
/// field, version 3 the department, contact and quality rules.
const HEADER: &str = "iocdb-metadata 3";
/// Older versions still read, with their field counts.
const OLDER: [(&str, usize); 2] = [("iocdb-metadata 1", 5), ("iocdb-metadata 2", 6)];
/// Fields per line in the current version.
const FIELDS: usize = 14;

/// What is known of a metric: its catalog entry.
#[derive(Debug, Clone, Default, PartialEq)]
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
    /// `summary`, or the catalog's `ratio`, `monthly`); empty when unknown.
    pub kind: String,
    /// The department that owns the indicator, e.g. "Sở Y tế".
    pub department: String,
    /// Whom to call about it.
    pub contact: String,
    /// The data-quality rules its samples must keep.
    pub rules: QualityRules,
}

/// All metadata, by (namespace, metric).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataStore(pub BTreeMap<(String, String), MetricMetadata>);

fn optional<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

impl MetadataStore {
    /// Serializes.
    pub fn encode(&self) -> String {
        let mut s = format!("{HEADER}\n");
        for ((ns, _), m) in &self.0 {
            let r = &m.rules;
            let fields = [
                escape(ns),
                escape(&m.metric),
                optional(m.expected_interval_ms),
                escape(&m.unit),
                escape(&m.description),
                escape(&m.kind),
                escape(&m.department),
                escape(&m.contact),
                optional(r.valid_min),
                optional(r.valid_max),
                escape(&r.required_labels.join(",")),
                optional(r.revision_window_ms),
                optional(r.max_change_factor),
                optional(r.policy.map(QualityPolicy::name)),
            ];
            s.push_str(&fields.join("\t"));
            s.push('\n');
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
        let mut width = FIELDS;
        for (i, line) in body.lines().enumerate() {
            if i == 0 {
                width = match OLDER.iter().find(|(header, _)| *header == line) {
                    Some(&(_, width)) => width,
                    None if line == HEADER => FIELDS,
                    None => {
                        return Err(corrupt(
                            0,
                            "not an iocdb metadata file (version 1, 2 or 3)".into(),
                        ));
                    }
                };
            } else {
                let fields: Vec<&str> = line.split('\t').collect();
                if fields.len() != width {
                    return Err(corrupt(
                        offset,
                        format!(
                            "line {} has {} fields, expected {width}",
                            i + 1,
                            fields.len()
                        ),
                    ));
                }
                let field = |n: usize| fields.get(n).copied().unwrap_or("-");
                let number = |n: usize, what: &str| -> Result<Option<f64>> {
                    match field(n) {
                        "-" => Ok(None),
                        v => v
                            .parse::<f64>()
                            .ok()
                            .filter(|v| v.is_finite())
                            .map(Some)
                            .ok_or_else(|| corrupt(offset, format!("bad {what} {v:?}"))),
                    }
                };
                let integer = |n: usize, what: &str| -> Result<Option<i64>> {
                    match field(n) {
                        "-" => Ok(None),
                        v => v
                            .parse()
                            .map(Some)
                            .map_err(|_| corrupt(offset, format!("bad {what} {v:?}"))),
                    }
                };
                let text = |n: usize| fields.get(n).map_or_else(String::new, |f| unescape(f));
                let policy = match field(13) {
                    "-" => None,
                    p => Some(
                        QualityPolicy::parse(p)
                            .ok_or_else(|| corrupt(offset, format!("bad policy {p:?}")))?,
                    ),
                };
                let required = text(10);
                let m = MetricMetadata {
                    metric: text(1),
                    unit: text(3),
                    description: text(4),
                    expected_interval_ms: integer(2, "interval")?,
                    kind: text(5),
                    department: text(6),
                    contact: text(7),
                    rules: QualityRules {
                        valid_min: number(8, "valid minimum")?,
                        valid_max: number(9, "valid maximum")?,
                        required_labels: required
                            .split(',')
                            .filter(|l| !l.is_empty())
                            .map(str::to_owned)
                            .collect(),
                        revision_window_ms: integer(11, "revision window")?,
                        max_change_factor: number(12, "change factor")?,
                        policy,
                    },
                };
                store.0.insert((text(0), m.metric.clone()), m);
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
            department: "Sở Tài chính\tphòng 2".into(),
            contact: "0296 3852 000".into(),
            rules: QualityRules {
                valid_min: Some(-0.5),
                valid_max: Some(1e12 / 3.0),
                required_labels: vec!["commune".into(), "quarter".into()],
                revision_window_ms: Some(0),
                max_change_factor: Some(2.5),
                policy: Some(QualityPolicy::Reject),
            },
        };
        store.0.insert(("economy".into(), m.metric.clone()), m);
        let text = store.encode();
        assert_eq!(
            MetadataStore::decode(Path::new("M"), text.as_bytes()).ok(),
            Some(store)
        );
    }

    #[test]
    fn undeclared_fields_round_trip_as_undeclared() {
        let mut store = MetadataStore::default();
        let m = MetricMetadata {
            metric: "m".into(),
            ..Default::default()
        };
        store.0.insert(("ns".into(), "m".into()), m);
        let text = store.encode();
        assert_eq!(
            MetadataStore::decode(Path::new("M"), text.as_bytes()).ok(),
            Some(store)
        );
    }

    #[test]
    fn version_2_files_are_still_read() {
        let v2 = textfile::seal("iocdb-metadata 2\nns\tbeds\t-\tgiường\tfree beds\tgauge\n".into());
        let store = MetadataStore::decode(Path::new("M"), v2.as_bytes()).expect("v2 decodes");
        let m = store.0.get(&("ns".into(), "beds".into())).expect("entry");
        assert_eq!((m.kind.as_str(), m.department.as_str()), ("gauge", ""));
        assert!(!m.rules.any());
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
