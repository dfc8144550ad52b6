//! Server configuration: defaults, then the TOML file, then `IOCDB_*` variables, then flags
//! (clap reads flags and variables; this file adds the file and the defaults).

use std::path::{Path, PathBuf};
use std::time::Duration;

use iocdb_engine::{FsyncPolicy, Limits, MetadataCorruption, Options, QueryLimits};
use serde::Deserialize;

use crate::cli::ServeArgs;

/// How the WAL is made durable (`--fsync`, `fsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FsyncMode {
    /// fsync before acknowledging every write (group commit): acknowledged means durable.
    Always,
    /// fsync every `fsync_interval_ms`: a power loss can lose that much acknowledged data.
    Interval,
}

/// How the server logs (`--log-format`, `log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// What starting does with a damaged METADATA file (`damaged_metadata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DamagedMetadata {
    /// Quarantine it, start with no metadata, report it in the log and `Stats`.
    Quarantine,
    /// Refuse to start.
    Refuse,
}

/// The port the server listens on by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";

/// Everything the server can be told. Every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Listen address.
    pub listen: String,
    /// Listen address of the HTTP API; empty: no HTTP listener.
    pub http_listen: String,
    /// The principals, their token hashes and roles (see `auth.rs`); none: every call is
    /// allowed, and only loopback addresses may be listened on.
    pub auth_file: Option<PathBuf>,
    /// The indicator catalog (TOML, see `catalog.rs`): owners, data-quality rules, each
    /// namespace's quality policy. Loaded at start and on SIGHUP.
    pub catalog_file: Option<PathBuf>,
    /// Listen beyond loopback without TLS and authentication anyway.
    pub insecure: bool,
    /// TLS certificate chain (PEM) for both listeners; with `tls_key_file`. Reread on SIGHUP.
    pub tls_cert_file: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key_file: Option<PathBuf>,
    /// CA (PEM) whose client certificates are required: mutual TLS.
    pub tls_client_ca_file: Option<PathBuf>,
    /// The audit trail [default: `audit.log` in the data directory].
    pub audit_file: Option<PathBuf>,
    /// Size past which the audit trail is rotated, bytes.
    pub audit_max_bytes: u64,
    /// Per-namespace ingest rates and concurrent queries (`[limits_by_namespace.<ns>]`,
    /// see `limits.rs`); reread on SIGHUP.
    pub limits_by_namespace: std::collections::BTreeMap<String, crate::limits::NamespaceLimits>,
    /// The file this configuration was read from, if any (SIGHUP rereads its limits).
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// WAL durability.
    pub fsync: FsyncMode,
    /// Period of the interval policy, ms.
    pub fsync_interval_ms: u64,
    /// Head memory budget, MiB.
    pub head_memory_mb: usize,
    /// Memory the result cache of range queries may hold, MiB; 0 turns it off.
    pub query_cache_mb: usize,
    /// Rollup tiers (`["1h", "1d"]`, the default; `["5m", "1h"]`; `[]` for none): segments summarise each
    /// series per interval of each tier, and windows that are whole, aligned multiples of
    /// one are read from its summaries where that gives the same answer.
    #[serde(deserialize_with = "human::tiers")]
    pub rollup_tiers: Vec<Duration>,
    /// How long each tier is kept when longer than the samples (`"1h" = "2y"`); a tier not
    /// named is kept as long as the samples it summarises.
    #[serde(deserialize_with = "human::tier_retention")]
    pub rollup_retention: std::collections::BTreeMap<Duration, Duration>,
    /// The same per namespace (`[rollup_retention_by_namespace.security]`), tier by tier.
    #[serde(deserialize_with = "human::tier_retention_by_namespace")]
    pub rollup_retention_by_namespace:
        std::collections::BTreeMap<String, std::collections::BTreeMap<Duration, Duration>>,
    /// Period of background flushes, s.
    pub flush_interval_s: u64,
    /// Whether a series that wrote nothing for a whole flush interval leaves the head (its
    /// labels stay in the segments; queries and later writes find it): memory then follows
    /// the active series, not every series seen. Default true.
    pub evict_idle_series: bool,
    /// How often the completeness report is written as series (`"0s"`: never).
    #[serde(deserialize_with = "human::duration")]
    pub completeness_export_interval: Duration,
    /// The window each exported report covers.
    #[serde(deserialize_with = "human::duration")]
    pub completeness_export_window: Duration,
    /// The namespace the exported series go to.
    pub completeness_export_namespace: String,
    /// Feed the simulated province at this scale (`serve --demo`).
    pub demo_scale: Option<f64>,
    /// Log format.
    pub log_format: LogFormat,
    /// What starting does with a damaged METADATA file.
    pub damaged_metadata: DamagedMetadata,
    /// Largest ingest request, bytes (after decompression).
    pub max_ingest_message_bytes: usize,
    /// Largest query or admin request, bytes.
    pub max_query_message_bytes: usize,
    /// Most samples in one write request.
    pub max_samples_per_request: usize,
    /// Most series in one write request.
    pub max_series_per_request: usize,
    /// Most write streams open at once.
    pub max_concurrent_write_streams: usize,
    /// Most concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams_per_connection: u32,
    /// Most labels per series.
    pub max_labels_per_series: usize,
    /// Longest label name, bytes.
    pub max_label_name_bytes: usize,
    /// Longest label value, bytes.
    pub max_label_value_bytes: usize,
    /// How far in the future a sample may be, s.
    pub max_future_s: u64,
    /// Most series per namespace in the head (written since the flush before the last);
    /// a series coming back into the head is not refused.
    pub max_series_per_namespace: usize,
    /// Query timeout, s.
    pub query_timeout_s: u64,
    /// Most series one query may read.
    pub query_max_series: usize,
    /// Most samples one query may read.
    pub query_max_samples: u64,
    /// Most points per series in a range query.
    pub query_max_points_per_series: usize,
    /// Series per message of a streamed query answer.
    pub query_batch_series: usize,
    /// How long shutdown waits for calls in flight, s.
    pub shutdown_grace_s: u64,
    /// Most threads running engine calls at once (writes waiting on a shared fsync, queries
    /// handing work to the query pool); each costs a stack and an allocator heap. 0: four
    /// per core, at least 8.
    pub max_blocking_threads: usize,
    /// Most samples per second a background or requested compaction merges; 0: no limit.
    pub compaction_samples_per_sec: u64,
    /// The time window compaction merges into one segment (`"1d"`, `"7d"`): a whole number
    /// of 2-hour partitions. Longer windows mean fewer files and compact a window only once
    /// it is over (BENCHMARKS.md measures a year with both).
    #[serde(deserialize_with = "human::window")]
    pub compaction_window: Duration,
    /// Larger windows for data that has aged (`["8d", "32d"]`, the default; `[]`: none):
    /// once the whole of one has passed, its segments are merged into one, so a panel over
    /// last month reads one segment per series, not thirty. Each a whole number, two or
    /// more, of the window before it (the first of `compaction_window`). Not given: those of
    /// the defaults that are such multiples of `compaction_window`.
    #[serde(deserialize_with = "human::aged_windows")]
    pub compaction_aged_windows: Option<Vec<Duration>>,
    /// How long data is kept (`"90d"`, `"2y"`; empty or `"forever"`: everything): older
    /// samples are refused, hidden from queries at once and dropped by compaction.
    #[serde(deserialize_with = "human::retention")]
    pub retention: Option<Duration>,
    /// Retention per namespace, overriding `retention` (`security = "90d"`,
    /// `economy = "forever"`).
    #[serde(deserialize_with = "human::retention_by_namespace")]
    pub retention_by_namespace: std::collections::BTreeMap<String, Duration>,
}

/// Tier retentions keyed by the tier's interval in ms, as the engine takes them.
fn by_tier_ms(
    t: &std::collections::BTreeMap<Duration, Duration>,
) -> std::collections::BTreeMap<i64, Duration> {
    t.iter()
        .map(|(tier, keep)| (tier.as_millis() as i64, *keep))
        .collect()
}

/// Durations as people write them in the config file.
mod human {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer};

    fn parse(s: &str) -> Result<Option<Duration>, String> {
        match s.trim() {
            "" | "forever" => Ok(None),
            s => humantime::parse_duration(s).map(Some).map_err(|e| {
                format!("retention {s:?}: {e} (write e.g. \"90d\", \"1y\" or \"forever\")")
            }),
        }
    }

    /// A compaction window: a whole number of the engine's partitions, at least one.
    pub fn window<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        let partition = iocdb_engine::Options::default().partition_ms.unsigned_abs();
        let window = humantime::parse_duration(text.trim()).map_err(|e| {
            D::Error::custom(format!(
                "compaction_window {text:?}: {e} (write e.g. \"1d\")"
            ))
        })?;
        let ms = window.as_millis();
        if ms == 0 || ms % u128::from(partition) != 0 {
            return Err(D::Error::custom(format!(
                "compaction_window {text:?} must be a whole number of {} h partitions",
                partition / 3_600_000
            )));
        }
        Ok(window)
    }

    /// Aged compaction windows, as written (checked against the window before each by
    /// [`check_aged_windows`]).
    pub fn aged_windows<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<Duration>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|text| {
                humantime::parse_duration(text.trim()).map_err(|e| {
                    D::Error::custom(format!(
                        "compaction_aged_windows {text:?}: {e} (write e.g. \"8d\")"
                    ))
                })
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// Each aged window a whole number, two or more, of the one before it.
    pub fn check_aged_windows(first: Duration, aged: &[Duration]) -> Result<(), String> {
        let mut before = first;
        for &w in aged {
            if before.is_zero() || w <= before || w.as_millis() % before.as_millis() != 0 {
                return Err(format!(
                    "compaction_aged_windows: {} must be a whole number, two or more, of the window before it ({})",
                    humantime::format_duration(w),
                    humantime::format_duration(before)
                ));
            }
            before = w;
        }
        Ok(())
    }

    /// Rollup tiers: each a whole number of seconds dividing a day (so that buckets line
    /// up with hours, days and the compaction window), at most four, none repeated.
    pub fn tiers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        if texts.len() > 4 {
            return Err(D::Error::custom(format!(
                "rollup_tiers: {} tiers, at most 4",
                texts.len()
            )));
        }
        let mut tiers = Vec::new();
        for text in texts {
            let tier = humantime::parse_duration(text.trim()).map_err(|e| {
                D::Error::custom(format!("rollup_tiers {text:?}: {e} (write e.g. \"1h\")"))
            })?;
            let ms = tier.as_millis();
            if ms == 0 || ms % 1000 != 0 || 86_400_000 % ms != 0 || tiers.contains(&tier) {
                return Err(D::Error::custom(format!(
                    "rollup_tiers {text:?} must be a whole number of seconds dividing a day \
                     (\"5m\", \"1h\", \"1d\"), each once"
                )));
            }
            tiers.push(tier);
        }
        Ok(tiers)
    }

    /// Tier → retention (`"1h" = "2y"`, `"forever"` allowed).
    pub fn tier_retention<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Duration, Duration>, D::Error> {
        BTreeMap::<String, String>::deserialize(d)?
            .into_iter()
            .map(|(tier, keep)| {
                let tier = humantime::parse_duration(tier.trim()).map_err(|e| {
                    D::Error::custom(format!("rollup_retention: tier {tier:?}: {e}"))
                })?;
                let keep =
                    parse(&keep).map_err(|e| D::Error::custom(format!("rollup_retention: {e}")))?;
                Ok((tier, keep.unwrap_or(Duration::MAX)))
            })
            .collect()
    }

    pub fn tier_retention_by_namespace<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, BTreeMap<Duration, Duration>>, D::Error> {
        #[derive(Deserialize)]
        struct Tiers(#[serde(deserialize_with = "tier_retention")] BTreeMap<Duration, Duration>);
        Ok(BTreeMap::<String, Tiers>::deserialize(d)?
            .into_iter()
            .map(|(ns, t)| (ns, t.0))
            .collect())
    }

    /// Any duration ("1m", "1h", "0s").
    pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim())
            .map_err(|e| D::Error::custom(format!("{text:?}: {e} (write e.g. \"1m\" or \"1h\")")))
    }

    pub fn retention<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        parse(&String::deserialize(d)?).map_err(D::Error::custom)
    }

    /// "forever" under a global retention is the longest duration there is.
    pub fn retention_by_namespace<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Duration>, D::Error> {
        BTreeMap::<String, String>::deserialize(d)?
            .into_iter()
            .map(|(ns, v)| {
                parse(&v)
                    .map(|r| (ns, r.unwrap_or(Duration::MAX)))
                    .map_err(D::Error::custom)
            })
            .collect()
    }
}

impl Default for Config {
    fn default() -> Self {
        let limits = Limits::default();
        let query = QueryLimits::default();
        Config {
            data_dir: PathBuf::from("./iocdb-data"),
            listen: DEFAULT_LISTEN.into(),
            http_listen: crate::http::DEFAULT_HTTP_LISTEN.into(),
            fsync: FsyncMode::Always,
            fsync_interval_ms: 100,
            head_memory_mb: 1024,
            query_cache_mb: 64,
            rollup_tiers: vec![Duration::from_secs(3600), Duration::from_secs(86_400)],
            rollup_retention: Default::default(),
            rollup_retention_by_namespace: Default::default(),
            flush_interval_s: 900,
            evict_idle_series: true,
            completeness_export_interval: Duration::from_secs(60),
            completeness_export_window: Duration::from_secs(3600),
            completeness_export_namespace: "iocdb".into(),
            demo_scale: None,
            log_format: LogFormat::Text,
            damaged_metadata: DamagedMetadata::Quarantine,
            max_ingest_message_bytes: 64 << 20,
            max_query_message_bytes: 4 << 20,
            max_samples_per_request: 1_000_000,
            max_series_per_request: 200_000,
            max_concurrent_write_streams: 64,
            max_concurrent_streams_per_connection: 256,
            max_labels_per_series: limits.max_labels_per_series,
            max_label_name_bytes: limits.max_label_name_bytes,
            max_label_value_bytes: limits.max_label_value_bytes,
            max_future_s: limits.max_future.as_secs(),
            max_series_per_namespace: limits.max_series_per_namespace,
            query_timeout_s: query.timeout.as_secs(),
            query_max_series: query.max_series,
            query_max_samples: query.max_samples,
            query_max_points_per_series: query.max_points_per_series,
            query_batch_series: 500,
            shutdown_grace_s: 10,
            max_blocking_threads: 0,
            compaction_samples_per_sec: Options::default().compaction_samples_per_sec,
            compaction_window: Duration::from_millis(
                Options::default().compaction_window_ms.unsigned_abs(),
            ),
            compaction_aged_windows: None,
            retention: None,
            retention_by_namespace: std::collections::BTreeMap::new(),
            auth_file: None,
            catalog_file: None,
            insecure: false,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            audit_file: None,
            audit_max_bytes: 64 << 20,
            limits_by_namespace: std::collections::BTreeMap::new(),
            source: None,
        }
    }
}

impl Config {
    /// Where the audit trail goes.
    pub fn audit_path(&self) -> PathBuf {
        self.audit_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit.log"))
    }

    /// The TLS files, when TLS is configured; an error when only half of it is.
    pub fn tls_files(&self) -> anyhow::Result<Option<crate::tls::TlsFiles>> {
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => Ok(Some(crate::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.tls_client_ca_file.clone(),
            })),
            (None, None) if self.tls_client_ca_file.is_none() => Ok(None),
            _ => anyhow::bail!(
                "TLS needs both tls_cert_file and tls_key_file (tls_client_ca_file adds client certificates)"
            ),
        }
    }

    /// Defaults, overlaid with the file (if any), overlaid with flags and variables.
    pub fn load(args: &ServeArgs) -> anyhow::Result<Config> {
        let mut config = match &args.config {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        config.source.clone_from(&args.config);
        if let Some(v) = &args.data_dir {
            config.data_dir = v.clone();
        }
        if let Some(v) = &args.listen {
            config.listen = v.clone();
        }
        if let Some(v) = &args.http_listen {
            config.http_listen = v.clone();
        }
        if let Some(v) = &args.auth_file {
            config.auth_file = Some(v.clone());
        }
        if let Some(v) = &args.catalog {
            config.catalog_file = Some(v.clone());
        }
        if args.demo {
            config.demo_scale = Some(args.demo_scale);
            // Its own directory, unless one was named: a demo never writes into real data.
            if args.data_dir.is_none() && config.data_dir == Config::default().data_dir {
                config.data_dir = PathBuf::from("iocdb-demo-data");
            }
        }
        config.insecure |= args.insecure;
        for (field, flag) in [
            (&mut config.tls_cert_file, &args.tls_cert_file),
            (&mut config.tls_key_file, &args.tls_key_file),
            (&mut config.tls_client_ca_file, &args.tls_client_ca_file),
        ] {
            if flag.is_some() {
                field.clone_from(flag);
            }
        }
        if let Some(v) = args.fsync {
            config.fsync = v;
        }
        if let Some(v) = args.fsync_interval_ms {
            config.fsync_interval_ms = v;
        }
        if let Some(v) = args.head_memory_mb {
            config.head_memory_mb = v;
        }
        if let Some(v) = args.flush_interval_s {
            config.flush_interval_s = v;
        }
        if let Some(v) = args.log_format {
            config.log_format = v;
        }
        Ok(config)
    }

    pub fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        let config: Config =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        crate::limits::validate(&config.limits_by_namespace)
            .map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        human::check_aged_windows(config.compaction_window, &config.aged_windows())
            .map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        Ok(config)
    }

    /// The aged compaction windows: as configured, or those of the engine's defaults that
    /// are whole multiples (two or more) of the configured window and of each other.
    pub fn aged_windows(&self) -> Vec<Duration> {
        if let Some(given) = &self.compaction_aged_windows {
            return given.clone();
        }
        let mut before = self.compaction_window;
        let mut out = Vec::new();
        for w in Options::default().compaction_aged_windows_ms {
            let w = Duration::from_millis(w.unsigned_abs());
            if human::check_aged_windows(before, &[w]).is_ok() {
                out.push(w);
                before = w;
            }
        }
        out
    }

    /// Threads for engine calls: [`Config::max_blocking_threads`], or four per core.
    pub fn blocking_threads(&self) -> usize {
        match self.max_blocking_threads {
            0 => std::thread::available_parallelism().map_or(8, |n| (4 * n.get()).max(8)),
            n => n,
        }
    }

    /// The engine's options.
    pub fn engine_options(&self) -> Options {
        let fsync = match self.fsync {
            FsyncMode::Always => FsyncPolicy::Always,
            FsyncMode::Interval => {
                FsyncPolicy::Interval(Duration::from_millis(self.fsync_interval_ms.max(1)))
            }
        };
        Options {
            fsync,
            metadata_corruption: match self.damaged_metadata {
                DamagedMetadata::Quarantine => MetadataCorruption::Quarantine,
                DamagedMetadata::Refuse => MetadataCorruption::Refuse,
            },
            head_memory_budget: self.head_memory_mb.saturating_mul(1 << 20),
            evict_idle_series: self.evict_idle_series,
            query_cache_bytes: self.query_cache_mb.saturating_mul(1 << 20),
            rollup_tiers_ms: self
                .rollup_tiers
                .iter()
                .map(|t| t.as_millis() as i64)
                .collect(),
            rollup_retention: by_tier_ms(&self.rollup_retention),
            rollup_retention_by_namespace: self
                .rollup_retention_by_namespace
                .iter()
                .map(|(ns, t)| (ns.clone(), by_tier_ms(t)))
                .collect(),
            limits: Limits {
                max_labels_per_series: self.max_labels_per_series,
                max_label_name_bytes: self.max_label_name_bytes,
                max_label_value_bytes: self.max_label_value_bytes,
                max_future: Duration::from_secs(self.max_future_s),
                max_series_per_namespace: self.max_series_per_namespace,
            },
            query_limits: QueryLimits {
                max_series: self.query_max_series,
                max_samples: self.query_max_samples,
                max_points_per_series: self.query_max_points_per_series,
                timeout: Duration::from_secs(self.query_timeout_s),
            },
            compaction_samples_per_sec: self.compaction_samples_per_sec,
            compaction_window_ms: i64::try_from(self.compaction_window.as_millis())
                .unwrap_or(i64::MAX),
            compaction_aged_windows_ms: self
                .aged_windows()
                .iter()
                .map(|w| i64::try_from(w.as_millis()).unwrap_or(i64::MAX))
                .collect(),
            retention: self.retention,
            retention_by_namespace: self.retention_by_namespace.clone(),
            ..Options::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compaction_window_is_whole_partitions() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("w.toml");
        let load = |text: &str| {
            std::fs::write(&file, text).expect("write");
            Config::load(&ServeArgs {
                config: Some(file.clone()),
                ..ServeArgs::default()
            })
        };
        let c = load("compaction_window = \"7d\"\n").expect("7 days");
        assert_eq!(c.engine_options().compaction_window_ms, 7 * 86_400_000);
        assert_eq!(
            load("")
                .expect("default")
                .engine_options()
                .compaction_window_ms,
            86_400_000
        );
        for bad in ["3h", "0s", "a week"] {
            let e = load(&format!("compaction_window = \"{bad}\"\n")).expect_err(bad);
            assert!(format!("{e:#}").contains("compaction_window"), "{e:#}");
        }
        let day = 86_400_000;
        assert_eq!(
            load("")
                .expect("default")
                .engine_options()
                .compaction_aged_windows_ms,
            [8 * day, 32 * day]
        );
        let c = load("compaction_aged_windows = [\"7d\", \"28d\"]\n").expect("weeks");
        assert_eq!(
            c.engine_options().compaction_aged_windows_ms,
            [7 * day, 28 * day]
        );
        let none = load("compaction_aged_windows = []\n").expect("none");
        assert!(none.engine_options().compaction_aged_windows_ms.is_empty());
        // A window of a week keeps no default that is not a multiple of it.
        let week = load("compaction_window = \"7d\"\n").expect("week");
        assert!(week.engine_options().compaction_aged_windows_ms.is_empty());
        let four = load("compaction_window = \"4d\"\n").expect("4 days");
        assert_eq!(
            four.engine_options().compaction_aged_windows_ms,
            [8 * day, 32 * day]
        );
        for bad in ["[\"36h\"]", "[\"8d\", \"12d\"]", "[\"1d\"]", "[\"soon\"]"] {
            let e = load(&format!("compaction_aged_windows = {bad}\n")).expect_err(bad);
            assert!(
                format!("{e:#}").contains("compaction_aged_windows"),
                "{bad}: {e:#}"
            );
        }
    }

    #[test]
    fn rollup_tiers_divide_a_day() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("t.toml");
        let load = |text: &str| {
            std::fs::write(&file, text).expect("write");
            Config::load(&ServeArgs {
                config: Some(file.clone()),
                ..ServeArgs::default()
            })
        };
        let tiers = |text: &str| load(text).expect(text).engine_options().rollup_tiers_ms;
        assert_eq!(tiers(""), [3_600_000, 86_400_000]);
        assert_eq!(
            tiers("rollup_tiers = [\"5m\", \"1h\"]\n"),
            [300_000, 3_600_000]
        );
        assert!(tiers("rollup_tiers = []\n").is_empty());
        let kept = load(
            "rollup_tiers = [\"5m\", \"1h\"]\n\
             rollup_retention = { \"5m\" = \"2y\", \"1h\" = \"forever\" }\n\
             [rollup_retention_by_namespace.security]\n\"1h\" = \"1y\"\n",
        )
        .expect("retentions")
        .engine_options();
        let year = Duration::from_secs(31_557_600);
        assert_eq!(kept.rollup_retention[&300_000], 2 * year);
        assert_eq!(kept.rollup_retention[&3_600_000], Duration::MAX);
        assert_eq!(
            kept.rollup_retention_by_namespace["security"][&3_600_000],
            year
        );
        assert!(load("rollup_retention = { \"1h\" = \"soon\" }\n").is_err());
        for bad in [
            "\"7m\"",
            "\"0s\"",
            "\"1500ms\"",
            "\"1h\", \"1h\"",
            "\"an hour\"",
        ] {
            let e = load(&format!("rollup_tiers = [{bad}]\n")).expect_err(bad);
            assert!(format!("{e:#}").contains("rollup_tiers"), "{e:#}");
        }
    }

    #[test]
    fn flags_override_the_file_and_the_file_overrides_defaults() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("iocdb.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nhead_memory_mb = 64\nquery_max_series = 7\n",
        )
        .expect("write");
        let args = ServeArgs {
            config: Some(file),
            listen: Some("127.0.0.1:0".into()),
            ..ServeArgs::default()
        };
        let c = Config::load(&args).expect("load");
        assert_eq!(c.listen, "127.0.0.1:0");
        assert_eq!(c.head_memory_mb, 64);
        assert_eq!(c.engine_options().query_limits.max_series, 7);
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("r.toml");
        std::fs::write(
            &file,
            "retention = \"1y\"\n[retention_by_namespace]\nsecurity = \"90d\"\neconomy = \"forever\"\n",
        )
        .expect("write");
        let r = Config::load(&ServeArgs {
            config: Some(file.clone()),
            ..ServeArgs::default()
        })
        .expect("load")
        .engine_options();
        assert_eq!(r.retention, Some(Duration::from_secs(31_557_600)));
        assert_eq!(
            r.retention_by_namespace.get("security"),
            Some(&Duration::from_secs(90 * 86_400))
        );
        assert_eq!(r.retention_cutoff("economy", 1_000), i64::MIN);
        std::fs::write(&file, "retention = \"ninety days\"\n").expect("write");
        let e = Config::load(&ServeArgs {
            config: Some(file),
            ..ServeArgs::default()
        })
        .expect_err("a bad duration");
        assert!(e.to_string().contains("retention"), "{e}");
        assert_eq!(c.data_dir, PathBuf::from("./iocdb-data"));
    }

    #[test]
    fn unknown_keys_and_bad_policies_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("iocdb.toml");
        std::fs::write(&file, "listen_adress = \"x\"\n").expect("write");
        assert!(
            Config::load(&ServeArgs {
                config: Some(file),
                ..ServeArgs::default()
            })
            .is_err()
        );
        std::fs::write(dir.path().join("bad.toml"), "fsync = \"sometimes\"\n").expect("write");
        let refused = Config::load(&ServeArgs {
            config: Some(dir.path().join("bad.toml")),
            ..ServeArgs::default()
        })
        .expect_err("a bad policy is refused at load");
        assert!(refused.to_string().contains("fsync"), "{refused}");
        use clap::Parser as _;
        assert!(
            crate::cli::Cli::try_parse_from(["iocdb", "serve", "--fsync", "sometimes"]).is_err()
        );
    }
}
