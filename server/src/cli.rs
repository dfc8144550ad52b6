//! The command line: `iocdb serve | write | query | latest | stale | stats | flush | compact |
//! snapshot | backup | bench | repair | verify | inspect`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{FsyncMode, LogFormat};

/// iocdb: the time-series metrics store of the province's Intelligent Operations Center.
#[derive(Debug, Parser)]
#[command(name = "iocdb", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (defaults just work: ./iocdb-data, 127.0.0.1:7070).
    Serve(ServeArgs),
    /// Write samples from a CSV file or stdin.
    Write(WriteArgs),
    /// Run a range query and print a table or JSON.
    Query(QueryArgs),
    /// Print the latest value of each matching series.
    Latest(LatestArgs),
    /// List series whose sources stopped reporting.
    Stale(StaleArgs),
    /// Print the server's counters.
    Stats(ClientArgs),
    /// List a namespace's indicator catalog (owners, intervals, data-quality rules), or load
    /// a catalog file's indicators into a running server (`--load`).
    Catalog(CatalogArgs),
    /// List what the data-quality rules rejected and flagged: counters and the latest events.
    Quality(QualityArgs),
    /// Report completeness and liveness over a window: samples expected against received
    /// per metric (and labels), the gaps, the sources silent now, the arrival delays.
    Completeness(CompletenessArgs),
    /// Flush the head to segments now.
    Flush(ClientArgs),
    /// Merge each day's segments into one: on a running server, or on the data directory of
    /// a stopped one (`--data-dir`).
    Compact(CompactArgs),
    /// Delete the samples of the selected series in a time range: on a running server, or
    /// in the data directory of a stopped one (`--data-dir`).
    Delete(DeleteArgs),
    /// Export the selected series' samples (VictoriaMetrics JSON lines or OpenMetrics text):
    /// from a running server, or from the data directory of a stopped one (`--data-dir`).
    Export(ExportArgs),
    /// Import series from VictoriaMetrics JSON lines, OpenMetrics text or `promtool tsdb
    /// dump` output: into a running server, or a stopped one's data directory.
    Import(ImportArgs),
    /// Write a consistent snapshot of the running server's store into a directory on its
    /// machine (a data directory `serve --data-dir` starts from).
    Snapshot(SnapshotArgs),
    /// Bring a backup directory on the server's machine up to date, copying only what it
    /// lacks.
    Backup(SnapshotArgs),
    /// Measure ingest over gRPC against in-process ingest, side by side.
    Bench(BenchArgs),
    /// Print the audit trail: administrative actions, exports and refused calls.
    Audit(AuditArgs),
    /// Make a new random bearer token and print it with the hash the auth file lists.
    Token,
    /// Rebuild a missing or damaged MANIFEST from the segment files (server stopped).
    Repair(RepairArgs),
    /// Check every checksum and invariant of a data directory (server stopped) or of a
    /// running server (`--addr`); exits 1 and names the file and offset of each problem.
    Verify(VerifyArgs),
    /// Look inside a data directory (server stopped) or a running server (`--addr`):
    /// segments, series per metric, bytes per sample, label cardinality, WAL and head.
    Inspect(VerifyArgs),
}

/// `iocdb compact`.
#[derive(Debug, Args)]
pub struct CompactArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Compact this data directory directly (the server must be stopped) instead of asking
    /// the server at `--addr`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `iocdb audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Data directory whose `audit.log` to read.
    #[arg(long, env = "IOCDB_DATA_DIR", default_value = "./iocdb-data")]
    pub data_dir: PathBuf,
    /// The audit file itself, when `audit_file` put it elsewhere.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Only the events of this principal.
    #[arg(long)]
    pub principal: Option<String>,
    /// Print the JSON lines as they are.
    #[arg(long)]
    pub json: bool,
}

/// `iocdb delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Delete in this data directory directly (the server must be stopped) instead of
    /// asking the server at `--addr`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Namespace.
    #[arg(long, short, default_value = "default")]
    pub namespace: String,
    /// PromQL series selector, e.g. `waiting{commune="Châu Đốc"}` (repeatable; each is
    /// deleted in turn).
    #[arg(long = "match", short = 'm')]
    pub selectors: Vec<String>,
    /// First time deleted: ms since the epoch, `now`, or a duration ago (`24h`) [default:
    /// the beginning of time].
    #[arg(long)]
    pub start: Option<String>,
    /// Last time deleted, as `--start` [default: the end of time].
    #[arg(long)]
    pub end: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `iocdb export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Read this data directory directly (the server must be stopped) instead of asking the
    /// server at `--addr`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Namespace.
    #[arg(long, short, default_value = "default")]
    pub namespace: String,
    /// PromQL series selector [default: every series].
    #[arg(long = "match", short = 'm', default_value = "{__name__=~\".+\"}")]
    pub selector: String,
    /// First time exported: ms since the epoch, `now`, or a duration ago (`24h`) [default:
    /// the beginning of time].
    #[arg(long)]
    pub start: Option<String>,
    /// Last time exported, as `--start` [default: the end of time].
    #[arg(long)]
    pub end: Option<String>,
    /// Output format: jsonl is exact to the bit; openmetrics writes every NaN as `NaN`.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: crate::transfer::Format,
    /// Output file ("-": stdout).
    #[arg(long, short)]
    pub output: Option<String>,
    /// Print the summary as JSON (on stdout when the export goes to a file, else stderr).
    #[arg(long)]
    pub json: bool,
}

/// `iocdb import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Write into this data directory directly (the server must be stopped) instead of the
    /// server at `--addr`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Namespace.
    #[arg(long, short, default_value = "default")]
    pub namespace: String,
    /// Input format.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: crate::transfer::Format,
    /// Samples per write.
    #[arg(long, default_value_t = 50_000)]
    pub batch: usize,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Input files ("-" or none: stdin).
    pub files: Vec<String>,
}

/// `iocdb verify` and `iocdb inspect`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Data directory of the stopped server (or a snapshot).
    #[arg(long, env = "IOCDB_DATA_DIR", default_value = "./iocdb-data")]
    pub data_dir: PathBuf,
    /// Ask the running server at this address instead (e.g. http://127.0.0.1:7070).
    #[arg(long)]
    pub addr: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `iocdb snapshot` and `iocdb backup`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Target directory, on the server's machine.
    #[arg(long)]
    pub to: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `iocdb repair`.
#[derive(Debug, Args)]
pub struct RepairArgs {
    /// Data directory of the stopped server.
    #[arg(long, env = "IOCDB_DATA_DIR", default_value = "./iocdb-data")]
    pub data_dir: PathBuf,
}

/// Server settings; each also comes from `IOCDB_*` or the config file (flags win over the
/// environment, the environment over the file).
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Feed the server the simulated province, live (a day of history first): see it work
    /// at once. The data directory defaults to ./iocdb-demo-data.
    #[arg(long)]
    pub demo: bool,
    /// The demo province's size (1.0: the whole province, about 17,000 series).
    #[arg(long, default_value_t = 0.05)]
    pub demo_scale: f64,
    /// TOML config file.
    #[arg(long, env = "IOCDB_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory [default: ./iocdb-data].
    #[arg(long, env = "IOCDB_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port [default: 127.0.0.1:7070].
    #[arg(long, env = "IOCDB_LISTEN")]
    pub listen: Option<String>,
    /// Address of the HTTP API (Prometheus API, remote write and read, line protocol); port
    /// 0 picks a free port, an empty value turns it off [default: 127.0.0.1:7071].
    #[arg(long, env = "IOCDB_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// Principals and their roles (TOML; reread on SIGHUP); without one every call is
    /// allowed and only loopback addresses may be listened on.
    #[arg(long, env = "IOCDB_AUTH_FILE")]
    pub auth_file: Option<PathBuf>,
    /// The indicator catalog (TOML: owners, data-quality rules, namespace policies), loaded
    /// at start and on SIGHUP.
    #[arg(long, env = "IOCDB_CATALOG")]
    pub catalog: Option<PathBuf>,
    /// Listen beyond loopback without TLS and authentication anyway (logged as a warning).
    #[arg(long)]
    pub insecure: bool,
    /// TLS certificate chain (PEM) for both listeners (reread on SIGHUP).
    #[arg(long, env = "IOCDB_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "IOCDB_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// CA (PEM) that client certificates must chain to: mutual TLS.
    #[arg(long, env = "IOCDB_TLS_CLIENT_CA_FILE")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// WAL durability: fsync before acknowledging, or every interval [default: always].
    #[arg(long, env = "IOCDB_FSYNC", value_enum)]
    pub fsync: Option<FsyncMode>,
    /// fsync period under `--fsync interval`, ms [default: 100].
    #[arg(long, env = "IOCDB_FSYNC_INTERVAL_MS")]
    pub fsync_interval_ms: Option<u64>,
    /// Memory the head may hold before writes are refused, MiB [default: 1024].
    #[arg(long, env = "IOCDB_HEAD_MEMORY_MB")]
    pub head_memory_mb: Option<usize>,
    /// Flush the head to segments this often, s [default: 900].
    #[arg(long, env = "IOCDB_FLUSH_INTERVAL_S")]
    pub flush_interval_s: Option<u64>,
    /// Log format [default: text].
    #[arg(long, env = "IOCDB_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

/// Where the server is, and who the client is: the token comes from `IOCDB_TOKEN` or a
/// file, never from the command line (where other users of the machine could read it).
#[derive(Debug, Args, Clone)]
pub struct ClientArgs {
    /// Server address.
    #[arg(long, env = "IOCDB_ADDR", default_value = "http://127.0.0.1:7070")]
    pub addr: String,
    /// File holding the bearer token [default: the IOCDB_TOKEN variable, else none].
    #[arg(long, env = "IOCDB_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// CA (PEM) to trust for an https:// address.
    #[arg(long, env = "IOCDB_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,
}

/// `iocdb write`.
#[derive(Debug, Args)]
pub struct WriteArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Namespace (department).
    #[arg(long, short, default_value = "default")]
    pub namespace: String,
    /// CSV file with a header: `metric` (or `__name__`), `timestamp` (ms), `value`, and any
    /// other column as a label; "-" reads stdin.
    #[arg(default_value = "-")]
    pub file: PathBuf,
    /// Samples per request.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
}

/// Series selection shared by the query commands.
#[derive(Debug, Args)]
pub struct Selection {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Namespace.
    #[arg(long, short, default_value = "default")]
    pub namespace: String,
    /// Matchers like `__name__=lodging_guests`, `commune=~"Phường.*"`, `site!=x` (repeatable).
    #[arg(long = "match", short = 'm')]
    pub matchers: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `iocdb query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Start: ms since epoch, or a duration ago like `24h` [default: 1h].
    #[arg(long, default_value = "1h")]
    pub start: String,
    /// End: ms since epoch, or `now` [default: now].
    #[arg(long, default_value = "now")]
    pub end: String,
    /// Step, e.g. `1m`.
    #[arg(long, default_value = "1m")]
    pub step: String,
    /// Range function and window, e.g. `rate:5m`, `quantile_over_time:0.95:1h`.
    #[arg(long = "fn")]
    pub function: Option<String>,
    /// Aggregation, e.g. `sum`, `sum:by=commune,agency`, `topk:5`, `max:without=camera`.
    #[arg(long = "agg")]
    pub aggregation: Option<String>,
}

/// `iocdb latest`.
#[derive(Debug, Args)]
pub struct LatestArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Lookback, e.g. `5m`.
    #[arg(long, default_value = "5m")]
    pub lookback: String,
}

/// `iocdb stale`.
#[derive(Debug, Args)]
pub struct StaleArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Silent for more than this many expected intervals.
    #[arg(long, default_value_t = 3.0)]
    pub factor: f64,
}

/// `iocdb catalog`.
#[derive(Debug, Args)]
pub struct CatalogArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Namespace.
    #[arg(long, short, default_value = "default")]
    pub namespace: String,
    /// Send the indicators of this catalog file (TOML, as `serve --catalog` reads) instead
    /// of listing.
    #[arg(long)]
    pub load: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `iocdb quality`.
#[derive(Debug, Args)]
pub struct QualityArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Namespace.
    #[arg(long, short, default_value = "default")]
    pub namespace: String,
    /// Only this metric.
    #[arg(long)]
    pub metric: Option<String>,
    /// Only events that arrived since: ms since epoch, or a duration ago like `24h`.
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many events, the newest.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// `iocdb completeness`.
#[derive(Debug, Args)]
pub struct CompletenessArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Window start: ms since epoch, or a duration ago like `24h`.
    #[arg(long, default_value = "24h")]
    pub start: String,
    /// Window end: ms since epoch, or `now`.
    #[arg(long, default_value = "now")]
    pub end: String,
    /// Labels to group by besides the metric, comma-separated (e.g. `commune`).
    #[arg(long, value_delimiter = ',')]
    pub by: Vec<String>,
    /// Silent for more than this many expected intervals.
    #[arg(long, default_value_t = 3.0)]
    pub silent_factor: f64,
}

/// `iocdb bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Workload scale (1.0 = the province).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Minutes of live data to send per run.
    #[arg(long, default_value_t = 10)]
    pub minutes: i64,
    /// Concurrent clients to try, comma-separated.
    #[arg(long, default_value = "1,2,4")]
    pub clients: String,
    /// Batch sizes (samples per request) to try, comma-separated.
    #[arg(long, default_value = "1000,10000")]
    pub batches: String,
}
