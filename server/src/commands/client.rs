//! The client subcommands, for operators and smoke tests: write, query, latest, stale,
//! stats, flush. Each talks to a running server over gRPC.

use std::io::Read;
use std::time::Duration;

use iocdb_proto::v1::{
    self, admin_client::AdminClient, ingest_client::IngestClient, query_client::QueryClient,
};
use serde_json::json;
use tonic::transport::Channel;

use crate::cli::{ClientArgs, Command, QueryArgs, Selection, WriteArgs};

/// `iocdb snapshot` / `iocdb backup` through `Admin.Snapshot`.
async fn snapshot(a: &crate::cli::SnapshotArgs, backup: bool) -> anyhow::Result<()> {
    let r = AdminClient::new(connect(&a.client).await?)
        .snapshot(v1::SnapshotRequest {
            to: a.to.clone(),
            backup,
        })
        .await?
        .into_inner();
    if a.json {
        println!(
            "{}",
            json!({
                "to": a.to,
                "backup": backup,
                "segments_linked": r.segments_linked,
                "segments_copied": r.segments_copied,
                "segments_kept": r.segments_kept,
                "segments_removed": r.segments_removed,
                "wal_files": r.wal_files,
                "bytes_copied": r.bytes_copied,
            })
        );
        return Ok(());
    }
    println!(
        "{} {}: {} segments linked, {} copied, {} kept, {} removed; {} WAL files; {} bytes copied",
        if backup {
            "backed up to"
        } else {
            "snapshot in"
        },
        a.to,
        r.segments_linked,
        r.segments_copied,
        r.segments_kept,
        r.segments_removed,
        r.wal_files,
        r.bytes_copied
    );
    Ok(())
}

/// Runs a client subcommand.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Write(a) => write(a).await,
        Command::Query(a) => query(a).await,
        Command::Latest(a) => latest(&a.selection, &a.lookback).await,
        Command::Stale(a) => stale(&a.selection, a.factor).await,
        Command::Stats(a) => stats(&a).await,
        Command::Catalog(a) => super::quality::catalog(&a).await,
        Command::Quality(a) => super::quality::quality(&a).await,
        Command::Completeness(a) => super::quality::completeness(&a).await,
        Command::Flush(a) => {
            let r = AdminClient::new(connect(&a).await?)
                .flush(v1::FlushRequest {})
                .await?
                .into_inner();
            println!(
                "flushed: {} segments, {} samples, {} bytes",
                r.segments, r.samples, r.bytes
            );
            Ok(())
        }
        Command::Compact(a) => {
            let r = AdminClient::new(connect(&a.client).await?)
                .compact(v1::CompactRequest { before_ms: 0 })
                .await?
                .into_inner();
            super::compact::print(&r.into(), a.json);
            Ok(())
        }
        Command::Snapshot(a) => snapshot(&a, false).await,
        Command::Backup(a) => snapshot(&a, true).await,
        Command::Bench(a) => super::bench::run(a).await,
        Command::Delete(a) => super::delete::run(a).await,
        Command::Token => {
            let token = crate::auth::new_token();
            println!("token:  {token}");
            println!(
                "sha256: {}",
                crate::auth::hex(&crate::auth::token_hash(&token))
            );
            eprintln!(
                "put the sha256 in the auth file's token_sha256; give the token to the client \
                 (IOCDB_TOKEN or --token-file); it is not stored anywhere"
            );
            Ok(())
        }
        Command::Export(a) => super::export::run(a).await,
        Command::Import(a) => {
            if !super::import::run(a).await? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Serve(_)
        | Command::Repair(_)
        | Command::Verify(_)
        | Command::Inspect(_)
        | Command::Audit(_) => {
            anyhow::bail!("serve, repair, verify, inspect and audit are not client commands")
        }
    }
}

/// A connection that sends the caller's token with every call.
pub type Conn = tonic::service::interceptor::InterceptedService<Channel, Bearer>;

/// Adds `authorization: Bearer <token>` to every call (nothing without a token).
#[derive(Clone)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// The token: the file named by `--token-file`/`IOCDB_TOKEN_FILE`, else `IOCDB_TOKEN`.
fn token(c: &ClientArgs) -> anyhow::Result<Option<String>> {
    let token = match &c.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read the token file {}: {e}", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => std::env::var("IOCDB_TOKEN")
            .ok()
            .map(|t| t.trim().to_owned()),
    };
    Ok(token.filter(|t| !t.is_empty()))
}

/// TLS for an https:// address: the CA from `--tls-ca-file`, and for mutual TLS the client
/// certificate and key from `IOCDB_TLS_CLIENT_CERT_FILE` and `IOCDB_TLS_CLIENT_KEY_FILE`.
fn client_tls(c: &ClientArgs) -> anyhow::Result<tonic::transport::ClientTlsConfig> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
    };
    let ca = c.tls_ca_file.as_deref().ok_or_else(|| {
        anyhow::anyhow!(
            "an https:// address needs the CA to trust: --tls-ca-file or IOCDB_TLS_CA_FILE"
        )
    })?;
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?));
    if let (Some(cert), Some(key)) = (
        std::env::var_os("IOCDB_TLS_CLIENT_CERT_FILE"),
        std::env::var_os("IOCDB_TLS_CLIENT_KEY_FILE"),
    ) {
        tls = tls.identity(tonic::transport::Identity::from_pem(
            read(cert.as_ref())?,
            read(key.as_ref())?,
        ));
    }
    Ok(tls)
}

pub async fn connect(c: &ClientArgs) -> anyhow::Result<Conn> {
    let bearer =
        match token(c)? {
            Some(t) => Some(format!("Bearer {t}").parse().map_err(|_| {
                anyhow::anyhow!("the token holds characters a header cannot carry")
            })?),
            None => None,
        };
    let mut endpoint =
        Channel::from_shared(c.addr.clone())?.connect_timeout(Duration::from_secs(5));
    if c.addr.starts_with("https://") {
        endpoint = endpoint.tls_config(client_tls(c)?)?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the server at {}: {e}", c.addr))?;
    Ok(tonic::service::interceptor::InterceptedService::new(
        channel,
        Bearer(bearer),
    ))
}

/// Runs one Admin call on the server at `addr` from synchronous code (a command that also
/// works offline).
pub fn block_on_admin<T, F, Fut>(addr: &str, call: F) -> anyhow::Result<T>
where
    F: FnOnce(AdminClient<Conn>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let channel = connect(&ClientArgs {
            addr: addr.to_owned(),
            token_file: std::env::var_os("IOCDB_TOKEN_FILE").map(Into::into),
            tls_ca_file: std::env::var_os("IOCDB_TLS_CA_FILE").map(Into::into),
        })
        .await?;
        call(AdminClient::new(channel).max_decoding_message_size(256 << 20)).await
    })
}

/// `--start` and `--end` as ms: absent bounds stay absent (all time on that side).
pub fn time_range(
    start: Option<&str>,
    end: Option<&str>,
) -> anyhow::Result<(Option<i64>, Option<i64>)> {
    let now = crate::service::now_ms();
    let parse = |s: Option<&str>| s.map(|s| parse_time_ms(s, now)).transpose();
    Ok((parse(start)?, parse(end)?))
}

/// Parses `5m`, `1h`, `30s`, `250ms`, `7d` into milliseconds.
pub fn parse_duration_ms(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    // A bare number is seconds, as in Prometheus' API.
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = s.parse()?;
        return Ok(n.saturating_mul(1000));
    }
    let d = humantime::parse_duration(s).map_err(|e| {
        anyhow::anyhow!("bad duration {s:?} ({e}): expected e.g. 250ms, 30s, 5m, 1h, 7d")
    })?;
    Ok(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Parses a time: `now`, milliseconds since the epoch, or a duration ago (`24h`).
pub fn parse_time_ms(s: &str, now: i64) -> anyhow::Result<i64> {
    if s == "now" {
        return Ok(now);
    }
    if s.len() >= 10 && s.chars().all(|c| c.is_ascii_digit()) {
        return Ok(s.parse()?);
    }
    Ok(now - parse_duration_ms(s)?)
}

/// Parses `name=value`, `name!=value`, `name=~regex`, `name!~regex` (value may be quoted).
pub fn parse_matcher(s: &str) -> anyhow::Result<v1::Matcher> {
    use v1::matcher::Op;
    let at = s.find(['=', '!']).ok_or_else(|| {
        anyhow::anyhow!("matcher {s:?}: expected name=value, name!=value, name=~re or name!~re")
    })?;
    let (name, rest) = s.split_at(at);
    let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
        (Op::Regex, v)
    } else if let Some(v) = rest.strip_prefix("!~") {
        (Op::NotRegex, v)
    } else if let Some(v) = rest.strip_prefix("!=") {
        (Op::NotEqual, v)
    } else if let Some(v) = rest.strip_prefix('=') {
        (Op::Equal, v)
    } else {
        anyhow::bail!("matcher {s:?}: unknown operator");
    };
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    Ok(v1::Matcher {
        name: name.trim().to_owned(),
        op: op as i32,
        value: value.to_owned(),
    })
}

pub fn matchers(sel: &Selection) -> anyhow::Result<Vec<v1::Matcher>> {
    sel.matchers.iter().map(|m| parse_matcher(m)).collect()
}

pub fn labels_text(labels: &[v1::Label]) -> String {
    let name = labels
        .iter()
        .find(|l| l.name == "__name__")
        .map_or("", |l| l.value.as_str());
    let rest: Vec<String> = labels
        .iter()
        .filter(|l| l.name != "__name__")
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{name}{{{}}}", rest.join(", "))
}

pub fn labels_json(labels: &[v1::Label]) -> serde_json::Value {
    labels
        .iter()
        .map(|l| (l.name.clone(), json!(l.value)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Reads CSV samples: `metric` (or `__name__`), `timestamp` (ms), `value`, other columns
/// become labels (empty cells are absent labels).
pub fn read_csv(
    input: impl Read,
    namespace: &str,
    batch: usize,
) -> anyhow::Result<Vec<v1::WriteRequest>> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = rdr.headers()?.clone();
    let col = |names: &[&str]| headers.iter().position(|h| names.contains(&h));
    let metric = col(&["metric", "__name__"])
        .ok_or_else(|| anyhow::anyhow!("the CSV needs a `metric` column"))?;
    let ts = col(&["timestamp", "timestamp_ms", "t"])
        .ok_or_else(|| anyhow::anyhow!("the CSV needs a `timestamp` column (ms)"))?;
    let val =
        col(&["value", "v"]).ok_or_else(|| anyhow::anyhow!("the CSV needs a `value` column"))?;
    let mut requests = Vec::new();
    let mut current = v1::WriteRequest {
        namespace: namespace.to_owned(),
        series: Vec::new(),
    };
    let mut in_batch = 0;
    for (line, record) in rdr.records().enumerate() {
        let record = record?;
        let field = |i: usize| record.get(i).unwrap_or("");
        let t: i64 = field(ts)
            .parse()
            .map_err(|_| anyhow::anyhow!("line {}: bad timestamp {:?}", line + 2, field(ts)))?;
        let v: f64 = field(val)
            .parse()
            .map_err(|_| anyhow::anyhow!("line {}: bad value {:?}", line + 2, field(val)))?;
        let mut labels = vec![v1::Label {
            name: "__name__".into(),
            value: field(metric).to_owned(),
        }];
        for (i, h) in headers.iter().enumerate() {
            if i != metric && i != ts && i != val && !field(i).is_empty() {
                labels.push(v1::Label {
                    name: h.to_owned(),
                    value: field(i).to_owned(),
                });
            }
        }
        match current.series.iter_mut().find(|s| s.labels == labels) {
            Some(s) => {
                s.timestamps_ms.push(t);
                s.values.push(v);
            }
            None => current.series.push(v1::Series {
                labels,
                timestamps_ms: vec![t],
                values: vec![v],
                stream_id: 0,
            }),
        }
        in_batch += 1;
        if in_batch >= batch {
            requests.push(std::mem::replace(
                &mut current,
                v1::WriteRequest {
                    namespace: namespace.to_owned(),
                    series: Vec::new(),
                },
            ));
            in_batch = 0;
        }
    }
    if in_batch > 0 {
        requests.push(current);
    }
    Ok(requests)
}

async fn write(a: WriteArgs) -> anyhow::Result<()> {
    let input: Box<dyn Read> = if a.file.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(&a.file)
                .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", a.file.display()))?,
        )
    };
    let requests = read_csv(input, &a.namespace, a.batch.max(1))?;
    let mut client =
        IngestClient::new(connect(&a.client).await?).max_decoding_message_size(64 << 20);
    let (mut accepted, mut rejected) = (0u64, 0u64);
    for req in requests {
        match client.write(req).await {
            Ok(r) => accepted += r.into_inner().accepted,
            Err(status) => {
                use prost::Message;
                let detail = v1::WriteResponse::decode(status.details()).unwrap_or_default();
                accepted += detail.accepted;
                rejected += detail.rejected;
                eprintln!("{}: {}", status.code(), status.message());
            }
        }
    }
    println!("accepted {accepted} samples, rejected {rejected}");
    if rejected > 0 {
        anyhow::bail!("{rejected} samples were rejected");
    }
    Ok(())
}

/// Parses `rate:5m` or `quantile_over_time:0.95:1h`.
pub fn parse_function(s: &str) -> anyhow::Result<v1::RangeFunction> {
    use v1::range_function::Kind;
    let parts: Vec<&str> = s.split(':').collect();
    let (name, q, window) = match parts.as_slice() {
        [name, window] => (*name, 0.0, *window),
        [name, q, window] => (*name, q.parse()?, *window),
        _ => anyhow::bail!("function {s:?}: expected name:window, e.g. rate:5m"),
    };
    let kind = Kind::from_str_name(&name.to_uppercase())
        .ok_or_else(|| anyhow::anyhow!("unknown function {name:?}"))?;
    Ok(v1::RangeFunction {
        kind: kind as i32,
        window_ms: parse_duration_ms(window)?,
        quantile: q,
    })
}

/// Parses `sum`, `sum:by=commune,agency`, `topk:5`, `quantile:0.95:by=commune`, `max:without=camera`.
pub fn parse_aggregation(s: &str) -> anyhow::Result<v1::Aggregation> {
    use v1::aggregation::Op;
    let mut parts = s.split(':');
    let name = parts.next().unwrap_or_default();
    let op = Op::from_str_name(&name.to_uppercase())
        .ok_or_else(|| anyhow::anyhow!("unknown aggregation {name:?}"))?;
    let mut agg = v1::Aggregation {
        op: op as i32,
        ..Default::default()
    };
    for p in parts {
        if let Some(by) = p.strip_prefix("by=") {
            agg.by = by.split(',').map(str::to_owned).collect();
        } else if let Some(without) = p.strip_prefix("without=") {
            agg.without = without.split(',').map(str::to_owned).collect();
        } else {
            agg.param = p.parse().map_err(|_| {
                anyhow::anyhow!("aggregation {s:?}: {p:?} is neither by=, without= nor a number")
            })?;
        }
    }
    Ok(agg)
}

async fn query(a: QueryArgs) -> anyhow::Result<()> {
    let now = crate::service::now_ms();
    let req = v1::RangeQueryRequest {
        namespace: a.selection.namespace.clone(),
        matchers: matchers(&a.selection)?,
        start_ms: parse_time_ms(&a.start, now)?,
        end_ms: parse_time_ms(&a.end, now)?,
        step_ms: parse_duration_ms(&a.step)?,
        function: a.function.as_deref().map(parse_function).transpose()?,
        aggregation: a
            .aggregation
            .as_deref()
            .map(parse_aggregation)
            .transpose()?,
        lookback_ms: None,
    };
    let mut client =
        QueryClient::new(connect(&a.selection.client).await?).max_decoding_message_size(64 << 20);
    let mut stream = client.query_range(req).await?.into_inner();
    let mut all = Vec::new();
    while let Some(msg) = stream.message().await? {
        all.extend(msg.series);
    }
    if a.selection.json {
        let out: Vec<serde_json::Value> = all
            .iter()
            .map(|s| json!({"labels": labels_json(&s.labels), "points": s.timestamps_ms.iter().zip(&s.values).map(|(t, v)| json!([t, v])).collect::<Vec<_>>()}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for s in &all {
            println!("{}", labels_text(&s.labels));
            for (t, v) in s.timestamps_ms.iter().zip(&s.values) {
                println!("  {t}\t{v}");
            }
        }
        eprintln!("{} series", all.len());
    }
    Ok(())
}

async fn latest(sel: &Selection, lookback: &str) -> anyhow::Result<()> {
    let req = v1::LatestRequest {
        namespace: sel.namespace.clone(),
        matchers: matchers(sel)?,
        at_ms: 0,
        lookback_ms: parse_duration_ms(lookback)?,
    };
    let r = QueryClient::new(connect(&sel.client).await?)
        .latest(req)
        .await?
        .into_inner();
    if sel.json {
        let out: Vec<_> = r.samples.iter().map(|s| json!({"labels": labels_json(&s.labels), "timestamp_ms": s.timestamp_ms, "value": s.value})).collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for s in &r.samples {
            println!(
                "{}\t{}\t{}",
                labels_text(&s.labels),
                s.timestamp_ms,
                s.value
            );
        }
    }
    Ok(())
}

async fn stale(sel: &Selection, factor: f64) -> anyhow::Result<()> {
    let req = v1::StaleRequest {
        namespace: sel.namespace.clone(),
        matchers: matchers(sel)?,
        at_ms: 0,
        factor,
    };
    let r = QueryClient::new(connect(&sel.client).await?)
        .stale(req)
        .await?
        .into_inner();
    if sel.json {
        let out: Vec<_> = r
            .series
            .iter()
            .map(|s| json!({"labels": labels_json(&s.labels), "last_timestamp_ms": s.last_timestamp_ms, "expected_interval_ms": s.expected_interval_ms, "silent_ms": s.silent_ms}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for s in &r.series {
            println!(
                "{}\tsilent {} s (expected every {} s)",
                labels_text(&s.labels),
                s.silent_ms / 1000,
                s.expected_interval_ms / 1000
            );
        }
    }
    Ok(())
}

async fn stats(c: &ClientArgs) -> anyhow::Result<()> {
    let s = AdminClient::new(connect(c).await?)
        .stats(v1::StatsRequest {})
        .await?
        .into_inner();
    println!("series            {}", s.series);
    println!(
        "head samples      {} ({} bytes)",
        s.head_samples, s.head_bytes
    );
    println!(
        "segments          {} ({} samples, {} bytes)",
        s.segments, s.segment_samples, s.segment_bytes
    );
    println!("accepted samples  {}", s.accepted_samples);
    for (k, v) in &s.rejected_samples {
        println!("rejected          {k}: {v}");
    }
    for (k, v) in &s.series_by_namespace {
        let share = match s.head_share_by_namespace.get(k) {
            Some(share) => format!(" of its {share}"),
            None => String::new(),
        };
        println!(
            "namespace         {k}: {v} series, {} bytes in the head{share}, {} bytes on disk",
            s.head_bytes_by_namespace.get(k).copied().unwrap_or(0),
            s.disk_bytes_by_namespace.get(k).copied().unwrap_or(0)
        );
    }
    if let Some(c) = s.query_cache.as_ref().filter(|c| c.limit_bytes > 0) {
        println!(
            "query cache       {} of {} lookups reused steps ({} steps reused, {} computed, {} invalidated, {} coalesced); {} entries, {} of {} bytes",
            c.hits,
            c.lookups,
            c.steps_reused,
            c.steps_computed,
            c.invalidations,
            c.coalesced,
            c.entries,
            c.bytes,
            c.limit_bytes
        );
    }
    for q in &s.quarantined {
        println!(
            "QUARANTINED       {} → {}: {}",
            q.file, q.moved_to, q.reason
        );
    }
    if s.wal_files_cut > 0 {
        println!(
            "WAL CUT AT START  {} files, {} bytes",
            s.wal_files_cut, s.wal_bytes_cut
        );
    }
    if s.damaged_rollup_reads > 0 {
        println!(
            "DAMAGED ROLLUPS   {} reads answered from raw samples; last: {}",
            s.damaged_rollup_reads, s.last_damaged_rollup
        );
    }
    if s.write_recoveries > 0 {
        println!("WRITE RECOVERIES  {}", s.write_recoveries);
    }
    if !s.writes_stopped.is_empty() {
        println!("WRITES STOPPED    {}", s.writes_stopped);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_times_and_matchers_parse() {
        assert_eq!(parse_duration_ms("5m").ok(), Some(300_000));
        assert_eq!(parse_duration_ms("250ms").ok(), Some(250));
        assert!(parse_duration_ms("5 parsecs").is_err());
        assert_eq!(parse_time_ms("1h", 10_000_000).ok(), Some(6_400_000));
        assert_eq!(
            parse_time_ms("1700000000000", 0).ok(),
            Some(1_700_000_000_000)
        );
        let m = parse_matcher("commune=~\"Phường.*\"").expect("matcher");
        assert_eq!(
            (m.name.as_str(), m.op, m.value.as_str()),
            ("commune", 2, "Phường.*")
        );
        assert_eq!(parse_matcher("site!=x").expect("m").op, 1);
        assert!(parse_matcher("nonsense").is_err());
    }

    #[test]
    fn functions_and_aggregations_parse() {
        let f = parse_function("quantile_over_time:0.95:1h").expect("f");
        assert_eq!((f.window_ms, f.quantile), (3_600_000, 0.95));
        let a = parse_aggregation("sum:by=commune,agency").expect("a");
        assert_eq!(a.by, ["commune", "agency"]);
        assert_eq!(parse_aggregation("topk:5").expect("a").param, 5.0);
        assert!(parse_aggregation("median").is_err());
    }

    #[test]
    fn csv_rows_group_into_series_with_vietnamese_labels() {
        let csv = "metric,commune,timestamp,value\nlodging_guests,Phường Châu Đốc,1000,4\nlodging_guests,Phường Châu Đốc,2000,5\nlodging_guests,Xã Tri Tôn,1000,7\n";
        let reqs = read_csv(csv.as_bytes(), "lodging", 100).expect("csv");
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].series.len(), 2);
        assert_eq!(reqs[0].series[0].labels[1].value, "Phường Châu Đốc");
        assert_eq!(reqs[0].series[0].values, [4.0, 5.0]);
        assert!(read_csv("a,b\n1,2\n".as_bytes(), "x", 10).is_err());
    }
}
