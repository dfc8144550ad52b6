//! `iocdb serve`: open the store, serve gRPC, flush in the background, shut down gracefully.
//!
//! Shutdown (SIGINT or SIGTERM): stop accepting connections and report NOT_SERVING; write
//! streams stop reading and answer with what they stored; calls in flight get
//! `shutdown_grace_s` to finish; then the WAL is synced and the store closed. A second
//! signal exits at once (the WAL makes that safe: acknowledged writes are durable).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use iocdb_engine::Engine;
use iocdb_proto::v1::{FILE_DESCRIPTOR_SET, admin_server::AdminServer, query_server::QueryServer};
use iocdb_proto::v1_server::ingest_server::IngestServer;
use tokio::sync::{Semaphore, watch};
use tonic::codec::CompressionEncoding;

use crate::config::Config;
use crate::service::{AppState, admin::AdminService, ingest::IngestService, query::QueryService};

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let on_ready = |addr| {
        // One plain line that scripts and tests look for.
        println!("listening on {addr}");
    };
    run_until(config, stop_rx, on_ready, Some(stop_tx)).await
}

/// Runs the server until `stop_rx` turns true; `on_ready` gets the bound address. Given
/// `signals`, SIGINT and SIGTERM set it (a second signal exits the process).
pub async fn run_until(
    config: Config,
    stop_rx: watch::Receiver<bool>,
    on_ready: impl FnOnce(SocketAddr),
    signals: Option<watch::Sender<bool>>,
) -> anyhow::Result<()> {
    let auth = match &config.auth_file {
        Some(path) => Some(crate::auth::Auth::load(path)?),
        None => None,
    };
    let tls = match config.tls_files()? {
        Some(files) => Some(Arc::new(crate::tls::Tls::load(files)?)),
        None => None,
    };
    check_exposure(&config, auth.is_some(), tls.is_some())?;
    let catalog = match &config.catalog_file {
        Some(path) => Some(crate::catalog::CatalogFile::load(path)?),
        None => None,
    };
    let opts = config.engine_options();
    let dir = config.data_dir.clone();
    tracing::info!(data_dir = %dir.display(), "opening the store");
    let engine = tokio::task::spawn_blocking(move || Engine::open(&dir, opts)).await??;
    let engine = Arc::new(engine);
    if let Some(catalog) = catalog {
        let engine = engine.clone();
        let changed = tokio::task::spawn_blocking(move || catalog.apply(&engine)).await??;
        tracing::info!(changed, "indicator catalog loaded");
    }
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr: SocketAddr = listener.local_addr()?;
    let http_listener = match config.http_listen.as_str() {
        "" => None,
        http => Some(
            tokio::net::TcpListener::bind(http)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {http} (http_listen): {e}"))?,
        ),
    };
    if let Some(l) = &http_listener {
        let http_addr = l.local_addr()?;
        tracing::info!(%http_addr, "HTTP API listening");
        // Printed before the gRPC line, which scripts wait for last.
        println!("{}", crate::http::describe(http_addr));
    }
    tracing::info!(%addr, "listening");
    on_ready(addr);

    crate::limits::apply_to_engine(&engine, &config.limits_by_namespace);
    let config_file = config.source.clone();
    let config = Arc::new(config);
    let state = AppState {
        engine: engine.clone(),
        config: config.clone(),
        shutdown: stop_rx.clone(),
        write_streams: Arc::new(Semaphore::new(config.max_concurrent_write_streams)),
        auth: Arc::new(crate::auth::Gate::new(auth)),
        audit: Arc::new(crate::audit::Audit::new(
            config.audit_path(),
            config.audit_max_bytes,
        )),
        limits: Arc::new(crate::limits::Limiter::new(
            config.limits_by_namespace.clone(),
        )),
        metrics: Arc::new(crate::metrics::Metrics::default()),
        small_queries: Arc::default(),
    };
    tokio::spawn(reload_on_sighup(Reloadable {
        auth_file: config.auth_file.clone(),
        catalog_file: config.catalog_file.clone(),
        gate: state.auth.clone(),
        tls: tls.clone(),
        config_file: config_file.clone(),
        limits: state.limits.clone(),
        engine: engine.clone(),
    }));

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<IngestServer<IngestService>>().await;
    health.set_serving::<QueryServer<QueryService>>().await;
    health.set_serving::<AdminServer<AdminService>>().await;
    // Both reflection versions: grpcurl speaks v1, Python's grpcio-reflection v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let ingest = IngestServer::new(IngestService(state.clone()))
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(config.max_ingest_message_bytes);
    let query = QueryServer::new(QueryService(state.clone()))
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(config.max_query_message_bytes)
        .max_encoding_message_size(64 << 20);
    let admin = AdminServer::new(AdminService(state.clone()))
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(config.max_query_message_bytes);

    let http = http_listener.map(|l| {
        let state = state.clone();
        let stop = stop_rx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let served = match tls {
                Some(tls) => {
                    let local = l.local_addr();
                    match local {
                        Ok(local) => {
                            let connections = tls.incoming(l, true);
                            let https = crate::tls::HttpsListener { connections, local };
                            crate::http::serve(https, state, stop).await
                        }
                        Err(e) => Err(e),
                    }
                }
                None => crate::http::serve(l, state, stop).await,
            };
            if let Err(e) = served {
                tracing::error!(error = %e, "the HTTP API stopped");
            }
        })
    });
    if let Some(stop_tx) = signals {
        tokio::spawn(watch_signals(stop_tx, health.clone()));
    }
    if let Some(scale) = config.demo_scale {
        tokio::spawn(crate::demo::feed(engine.clone(), scale, stop_rx.clone()));
    }
    if !config.completeness_export_interval.is_zero() {
        let export = crate::completeness::Export {
            every: config.completeness_export_interval,
            window: config.completeness_export_window,
            namespace: config.completeness_export_namespace.clone(),
        };
        tokio::spawn(crate::completeness::export_periodically(
            engine.clone(),
            export,
            stop_rx.clone(),
        ));
    }
    let flusher = tokio::spawn(flush_periodically(
        engine.clone(),
        Duration::from_secs(config.flush_interval_s.max(1)),
        stop_rx.clone(),
    ));

    let mut stopped = stop_rx.clone();
    let router = tonic::transport::Server::builder()
        .max_concurrent_streams(Some(config.max_concurrent_streams_per_connection))
        // Batches of thousands of samples are hundreds of KiB: windows larger than HTTP/2's
        // 64 KiB default spare a round trip per 64 KiB.
        .initial_stream_window_size(Some(8 << 20))
        .initial_connection_window_size(Some(16 << 20))
        .layer(crate::metrics::Layer(state.metrics.clone()))
        .layer(crate::oversize::Layer(crate::oversize::Limits {
            ingest: config.max_ingest_message_bytes,
            query: config.max_query_message_bytes,
        }))
        .layer(crate::decompress::Layer {
            limit: config.max_ingest_message_bytes,
        })
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(ingest)
        .add_service(query)
        .add_service(admin);
    let shutdown = async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let server: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), tonic::transport::Error>> + Send>,
    > = match &tls {
        Some(tls) => {
            use tokio_stream::StreamExt;
            let connections =
                tokio_stream::wrappers::ReceiverStream::new(tls.clone().incoming(listener, false))
                    .map(Ok::<_, std::io::Error>);
            Box::pin(router.serve_with_incoming_shutdown(connections, shutdown))
        }
        None => Box::pin(router.serve_with_incoming_shutdown(incoming(listener), shutdown)),
    };
    let mut stopped = stop_rx.clone();
    let grace = Duration::from_secs(config.shutdown_grace_s);
    tokio::pin!(server);
    tokio::select! {
        r = &mut server => r?,
        _ = async { let _ = stopped.wait_for(|s| *s).await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_s = grace.as_secs(), "calls still in flight after the grace period; closing anyway");
        }
    }
    flusher.abort();
    if let Some(http) = http {
        http.abort();
    }
    tracing::info!("syncing the WAL and closing the store");
    tokio::task::spawn_blocking(move || engine.close()).await??;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Accepted connections with Nagle's algorithm off: small acknowledgements must not wait
/// for the peer's delayed ACK (a 40 ms stall per call otherwise).
fn incoming(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
        let conn = conn?;
        conn.set_nodelay(true)?;
        Ok(conn)
    })
}

async fn watch_signals(stop: watch::Sender<bool>, health: tonic_health::server::HealthReporter) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM");
            return;
        }
    };
    let first = tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    };
    tracing::info!(
        signal = first,
        "shutting down: no new calls; in-flight calls may finish"
    );
    health
        .set_not_serving::<IngestServer<IngestService>>()
        .await;
    health.set_not_serving::<QueryServer<QueryService>>().await;
    let _ = stop.send(true);
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::warn!("second signal: exiting now (acknowledged writes are in the WAL)");
    std::process::exit(130);
}

/// Refuses to listen beyond loopback unprotected: without TLS and an auth file, anyone on the
/// network could read (or sniff) and write every department's data. `--insecure` overrides,
/// with a warning; without an auth file the server says it is open.
fn check_exposure(config: &Config, authenticated: bool, encrypted: bool) -> anyhow::Result<()> {
    let exposed: Vec<&str> = [config.listen.as_str(), config.http_listen.as_str()]
        .into_iter()
        .filter(|a| !a.is_empty() && !is_loopback(a))
        .collect();
    if !authenticated {
        tracing::info!(
            "no auth_file: every caller may read, write and administer every namespace, so only loopback addresses are listened on"
        );
    }
    if exposed.is_empty() || (authenticated && encrypted) {
        return Ok(());
    }
    if config.insecure {
        tracing::warn!(
            addresses = ?exposed,
            authenticated,
            encrypted,
            "listening beyond loopback without TLS and authentication (--insecure)"
        );
        return Ok(());
    }
    anyhow::bail!(
        "refusing to listen on {} without TLS{}: anyone on the network could reach the data. \
         Listen on 127.0.0.1, or pass --insecure to do it anyway",
        exposed.join(" and "),
        if authenticated {
            ""
        } else {
            " and an auth_file"
        }
    )
}

/// Whether a listen address is a loopback one (`127.0.0.1:7070`, `[::1]:0`, `localhost:…`).
fn is_loopback(addr: &str) -> bool {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What SIGHUP rereads.
struct Reloadable {
    auth_file: Option<std::path::PathBuf>,
    catalog_file: Option<std::path::PathBuf>,
    gate: Arc<crate::auth::Gate>,
    tls: Option<Arc<crate::tls::Tls>>,
    config_file: Option<std::path::PathBuf>,
    limits: Arc<crate::limits::Limiter>,
    engine: Arc<Engine>,
}

/// Rereads the auth file, the TLS files, the catalog and the config file's per-namespace
/// limits on every SIGHUP; a file that does not load leaves what was in force as it was, and says why.
async fn reload_on_sighup(r: Reloadable) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGHUP: nothing will be reloaded");
            return;
        }
    };
    while hup.recv().await.is_some() {
        if let Some(path) = &r.auth_file {
            match crate::auth::Auth::load(path) {
                Ok(auth) => {
                    r.gate.replace(auth);
                    tracing::info!(file = %path.display(), "auth file reloaded");
                }
                Err(e) => {
                    tracing::error!(error = %e, "auth file not reloaded; the previous principals stay in force")
                }
            }
        }
        if let Some(path) = &r.catalog_file {
            let engine = r.engine.clone();
            let path = path.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                crate::catalog::CatalogFile::load(&path)?.apply(&engine)
            })
            .await;
            match loaded {
                Ok(Ok(changed)) => tracing::info!(changed, "indicator catalog reloaded"),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "catalog not (fully) reloaded; what it could not set stays as it was")
                }
                Err(e) => tracing::error!(error = %e, "catalog reload panicked"),
            }
        }
        if let Some(tls) = &r.tls {
            match tls.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded; open connections keep theirs"),
                Err(e) => {
                    tracing::error!(error = %e, "TLS files not reloaded; the previous certificate stays in force")
                }
            }
        }
        if let Some(path) = &r.config_file {
            match Config::from_file(path) {
                Ok(c) => {
                    crate::limits::apply_to_engine(&r.engine, &c.limits_by_namespace);
                    r.limits.replace(c.limits_by_namespace);
                    tracing::info!(file = %path.display(), "per-namespace limits reloaded");
                }
                Err(e) => {
                    tracing::error!(error = %e, "limits not reloaded; the previous ones stay in force")
                }
            }
        }
    }
}

/// Merges the segments of every finished window (the current one is still being flushed
/// into), after a flush that wrote segments: one compaction at a time, on the blocking pool.
async fn compact_finished_windows(engine: &Arc<Engine>) {
    let engine = engine.clone();
    let window = engine.compaction_window_ms();
    let before = crate::service::now_ms().div_euclid(window) * window;
    match tokio::task::spawn_blocking(move || engine.compact_before(before)).await {
        Ok(Ok(r)) if r.windows > 0 => tracing::info!(
            windows = r.windows,
            segments_in = r.segments_in,
            segments_out = r.segments_out,
            bytes_in = r.bytes_in,
            bytes_out = r.bytes_out,
            "compacted"
        ),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, "background compaction failed; the segments stay as they were")
        }
        Err(e) => tracing::error!(error = %e, "background compaction panicked"),
    }
}

/// Flushes every `every`, and early when the head passes half its memory budget or a
/// namespace half its share, so that writers are not refused while a flush could make room.
async fn flush_periodically(engine: Arc<Engine>, every: Duration, mut stop: watch::Receiver<bool>) {
    let check = every.min(Duration::from_secs(5));
    let mut tick = tokio::time::interval(check);
    tick.tick().await;
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let (used, budget) = engine.head_memory();
        if last.elapsed() < every && used < budget / 2 && !engine.head_share_pressed() {
            continue;
        }
        last = tokio::time::Instant::now();
        let flusher = engine.clone();
        match tokio::task::spawn_blocking(move || crate::service::flush(&flusher)).await {
            Ok(Ok(r)) if r.segments > 0 => {
                tracing::info!(
                    segments = r.segments,
                    samples = r.samples,
                    bytes = r.bytes,
                    head_bytes = used,
                    "flushed"
                );
                compact_finished_windows(&engine).await;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "background flush failed; the data stays in the head and the WAL")
            }
            Err(e) => tracing::error!(error = %e, "background flush panicked"),
        }
    }
}
