//! The indicator catalog file (`catalog_file` in the config, `--catalog`): the province's
//! indicators with their owners and data-quality rules, and each namespace's quality policy,
//! in TOML. Loaded at start and on SIGHUP; its entries are stored in the engine's catalog
//! (which Admin.SetMetadata and remote write's metadata also fill), its namespace policies
//! are set on the engine (not stored: the file is their source).
//!
//! ```toml
//! [namespaces.y_te]
//! quality_policy = "reject"          # off | flag | reject; a namespace not named: flag
//!
//! [[indicator]]
//! namespace = "y_te"
//! metric = "hospital_waiting_patients"
//! unit = "người"
//! description = "Số người đang chờ khám"
//! kind = "gauge"                     # counter, gauge, ratio, monthly, …
//! department = "Sở Y tế"
//! contact = "0296 3852 000"
//! expected_interval = "5m"
//! valid_min = 0
//! valid_max = 5000
//! required_labels = ["facility", "commune"]
//! revision_window = "2h"             # "0s": revisions are not expected
//! max_change_factor = 10
//! quality_policy = "flag"            # this indicator's own policy
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use iocdb_engine::{Engine, MetricMetadata, QualityPolicy, QualityRules};
use serde::Deserialize;

/// A parsed catalog file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CatalogFile {
    /// Each named namespace's policy.
    pub policies: BTreeMap<String, QualityPolicy>,
    /// (namespace, entry) per indicator, in file order.
    pub indicators: Vec<(String, MetricMetadata)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileText {
    #[serde(default)]
    namespaces: BTreeMap<String, NamespaceText>,
    #[serde(default)]
    indicator: Vec<IndicatorText>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NamespaceText {
    quality_policy: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndicatorText {
    #[serde(default = "default_namespace")]
    namespace: String,
    metric: String,
    #[serde(default)]
    unit: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    department: String,
    #[serde(default)]
    contact: String,
    expected_interval: Option<String>,
    valid_min: Option<f64>,
    valid_max: Option<f64>,
    #[serde(default)]
    required_labels: Vec<String>,
    revision_window: Option<String>,
    max_change_factor: Option<f64>,
    quality_policy: Option<String>,
}

fn default_namespace() -> String {
    iocdb_engine::DEFAULT_NAMESPACE.to_owned()
}

fn policy(text: &str, at: &str) -> anyhow::Result<QualityPolicy> {
    QualityPolicy::parse(text).ok_or_else(|| {
        anyhow::anyhow!(
            "{at}: quality_policy {} is not one of {}",
            iocdb_engine::echo(text),
            QualityPolicy::NAMES.join(", ")
        )
    })
}

fn millis(text: &str, what: &str, at: &str) -> anyhow::Result<i64> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        anyhow::anyhow!(
            "{at}: {what} {} is not a duration such as \"5m\" or \"2h\": {e}",
            iocdb_engine::echo(text)
        )
    })?;
    i64::try_from(d.as_millis()).map_err(|_| anyhow::anyhow!("{at}: {what} is too long"))
}

impl CatalogFile {
    /// Parses catalog text; errors name the indicator (by its place and metric) and field.
    pub fn parse(text: &str) -> anyhow::Result<CatalogFile> {
        let file: FileText = toml::from_str(text)?;
        let mut out = CatalogFile::default();
        for (ns, n) in file.namespaces {
            let p = policy(&n.quality_policy, &format!("[namespaces.{ns}]"))?;
            out.policies.insert(ns, p);
        }
        for (i, t) in file.indicator.into_iter().enumerate() {
            let at = format!("indicator {} ({})", i + 1, iocdb_engine::echo(&t.metric));
            let entry = MetricMetadata {
                expected_interval_ms: t
                    .expected_interval
                    .as_deref()
                    .map(|d| millis(d, "expected_interval", &at))
                    .transpose()?,
                rules: QualityRules {
                    valid_min: t.valid_min,
                    valid_max: t.valid_max,
                    required_labels: t.required_labels,
                    revision_window_ms: t
                        .revision_window
                        .as_deref()
                        .map(|d| millis(d, "revision_window", &at))
                        .transpose()?,
                    max_change_factor: t.max_change_factor,
                    policy: t
                        .quality_policy
                        .as_deref()
                        .map(|p| policy(p, &at))
                        .transpose()?,
                },
                metric: t.metric,
                unit: t.unit,
                description: t.description,
                kind: t.kind,
                department: t.department,
                contact: t.contact,
            };
            out.indicators.push((t.namespace, entry));
        }
        Ok(out)
    }

    /// Reads and parses a catalog file.
    pub fn load(path: &Path) -> anyhow::Result<CatalogFile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("catalog {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("catalog {}: {e}", path.display()))
    }

    /// Puts the file in force: namespace policies, then each indicator whose entry changed.
    /// Entries the file no longer names stay (they may have come from the API or remote
    /// write). An entry the engine refuses stops here, naming it; those before it are in.
    pub fn apply(&self, engine: &Engine) -> anyhow::Result<usize> {
        engine.set_quality_policies(self.policies.clone());
        let mut changed = 0;
        for (ns, entry) in &self.indicators {
            let known = engine.metadata(ns)?;
            if known.iter().any(|k| k == entry) {
                continue;
            }
            engine.set_metadata(ns, entry.clone()).map_err(|e| {
                anyhow::anyhow!(
                    "catalog: indicator {} of namespace {}: {e}",
                    iocdb_engine::echo(&entry.metric),
                    iocdb_engine::echo(ns)
                )
            })?;
            changed += 1;
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_entry_parses_with_durations_and_vietnamese_text() {
        let c = CatalogFile::parse(
            r#"
            [namespaces.y_te]
            quality_policy = "reject"

            [[indicator]]
            namespace = "y_te"
            metric = "hospital_waiting_patients"
            unit = "người"
            description = "Số người đang chờ khám"
            kind = "gauge"
            department = "Sở Y tế"
            contact = "0296 3852 000"
            expected_interval = "5m"
            valid_min = 0
            valid_max = 5000
            required_labels = ["facility", "commune"]
            revision_window = "2h"
            max_change_factor = 10
            quality_policy = "flag"

            [[indicator]]
            metric = "bare"
            "#,
        )
        .expect("parses");
        assert_eq!(c.policies.get("y_te"), Some(&QualityPolicy::Reject));
        let (ns, e) = &c.indicators[0];
        assert_eq!((ns.as_str(), e.department.as_str()), ("y_te", "Sở Y tế"));
        assert_eq!(e.expected_interval_ms, Some(300_000));
        assert_eq!(e.rules.revision_window_ms, Some(7_200_000));
        assert_eq!(e.rules.valid_max, Some(5000.0));
        assert_eq!(e.rules.policy, Some(QualityPolicy::Flag));
        assert_eq!(e.rules.required_labels, vec!["facility", "commune"]);
        assert_eq!(c.indicators[1].0, "default");
        assert!(!c.indicators[1].1.rules.any());
    }

    #[test]
    fn mistakes_are_named() {
        for (text, expected) in [
            (
                "[[indicator]]\nmetric='m'\nquality_policy='strict'",
                "indicator 1 (\"m\")",
            ),
            (
                "[[indicator]]\nmetric='m'\nrevision_window='soon'",
                "revision_window",
            ),
            ("[[indicator]]\nmetric='m'\nvalid_maxx=3", "valid_maxx"),
            ("[namespaces.a]\nquality_policy='x'", "[namespaces.a]"),
        ] {
            let e = CatalogFile::parse(text).expect_err(text).to_string();
            assert!(e.contains(expected), "{text}: {e}");
        }
    }
}
