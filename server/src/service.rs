//! The tonic services, one type per generated trait, sharing one [`AppState`]. Engine calls
//! block (an fsync, a scan), so each runs on tokio's blocking pool.

pub mod admin;
pub mod ingest;
mod live;
pub mod query;

use std::sync::Arc;
use std::time::{Duration, Instant};

use iocdb_engine::Engine;
use tokio::sync::{Semaphore, watch};
use tonic::Status;

use crate::config::Config;
use crate::status;

/// What every service shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The store.
    pub engine: Arc<Engine>,
    /// The configuration.
    pub config: Arc<Config>,
    /// Becomes `true` when the server starts shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// Permits for open write streams.
    pub write_streams: Arc<Semaphore>,
    /// Who may do what (see [`crate::auth`]).
    pub auth: Arc<crate::auth::Gate>,
    /// Who changed what, and who was turned away (see [`crate::audit`]).
    pub audit: Arc<crate::audit::Audit>,
    /// Per-namespace ingest rates and concurrent queries (see [`crate::limits`]).
    pub limits: Arc<crate::limits::Limiter>,
    /// Requests by method and route (see [`crate::metrics`]).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Which queries run inline (see [`crate::small_queries`]).
    pub small_queries: Arc<crate::small_queries::SmallQueries>,
}

impl AppState {
    /// Fails when the server is shutting down.
    pub fn check_running(&self) -> Result<(), Status> {
        if *self.shutdown.borrow() {
            return Err(status::shutting_down());
        }
        Ok(())
    }

    /// Authenticates the caller of gRPC `method` and checks what the method needs
    /// ([`crate::auth::GRPC`]) on `namespace`, before any work.
    pub fn authorize<T>(
        &self,
        req: &tonic::Request<T>,
        method: &str,
        namespace: &str,
    ) -> Result<crate::auth::Caller, Status> {
        let need = crate::auth::need_of(crate::auth::GRPC, method).ok_or_else(|| {
            Status::permission_denied(format!("{method} is not in the authorization table"))
        })?;
        self.auth
            .check(
                authorization(req),
                client_common_name(req).as_deref(),
                need,
                namespace,
            )
            .map_err(|denied| {
                self.audit.record(
                    denied.principal(),
                    namespace,
                    method,
                    serde_json::json!({}),
                    &format!("denied: {}", denied.message()),
                );
                denied.status()
            })
    }

    /// Records an administrative call and its outcome in the audit trail.
    pub fn audited<T>(
        &self,
        caller: &crate::auth::Caller,
        method: &str,
        namespace: &str,
        arguments: serde_json::Value,
        result: &Result<T, Status>,
    ) {
        let outcome = match result {
            Ok(_) => "ok".to_owned(),
            Err(s) => format!("{:?}: {}", s.code(), s.message()),
        };
        self.audit
            .record(caller.name(), namespace, method, arguments, &outcome);
    }

    /// Runs an engine call (see [`run_engine`]).
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine) -> iocdb_engine::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        self.engine_call(f)
    }

    /// Runs a PromQL query: inline on the request's thread when it ran small last time
    /// (see [`crate::small_queries`]), else as every engine call runs ([`run_engine`]).
    pub fn query(
        &self,
        q: &iocdb_engine::PromqlQuery,
    ) -> Result<iocdb_engine::Result<iocdb_engine::PromqlResult>, String> {
        let key = self.small_queries.key(q);
        let started = std::time::Instant::now();
        let answer = match self.small_queries.inline(key) {
            Some(_inline) => catch(|| self.engine.query(q)),
            None => run_engine(&self.engine, |e| e.query(q)),
        };
        self.small_queries.record(key, started.elapsed());
        answer
    }

    /// [`AppState::blocking`] for code that cannot await there (a write holding a view lent
    /// from the scratch pool).
    pub fn engine_call<T>(
        &self,
        f: impl FnOnce(&Engine) -> iocdb_engine::Result<T>,
    ) -> Result<T, Status> {
        answered(run_engine(&self.engine, f))
    }
}

/// An engine call's outcome as gRPC answers it: a panic (caught, as its message) is
/// `INTERNAL`, the engine's errors as they map.
pub fn answered<T>(outcome: Result<iocdb_engine::Result<T>, String>) -> Result<T, Status> {
    outcome
        .map_err(|e| status::internal(&e))?
        .map_err(status::to_status)
}

/// Flushes the head, then hands the memory the flush freed back to the OS (see
/// `allocator`): what every flush the server runs — `Admin.Flush` and the background
/// flusher — goes through.
pub fn flush(engine: &Engine) -> iocdb_engine::Result<iocdb_engine::FlushReport> {
    let flushed = engine.flush();
    crate::allocator::release_freed();
    flushed
}

/// Runs a blocking engine call on the request's own thread, which hands its other tasks to
/// another (`block_in_place`) instead of sending the call to the blocking pool and waiting
/// to be woken: a small query skips two thread hand-offs, which were most of its cost. A
/// panic is caught and returned, as a pool thread's would be.
pub fn run_engine<T>(
    engine: &std::sync::Arc<Engine>,
    f: impl FnOnce(&Engine) -> T,
) -> Result<T, String> {
    tokio::task::block_in_place(|| catch(|| f(engine)))
}

/// Runs `f`, returning a panic as its message.
fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_owned())
    })
}

/// The common name of the client certificate of a mutual-TLS connection.
pub fn client_common_name<T>(req: &tonic::Request<T>) -> Option<String> {
    let certs = req.peer_certs()?;
    crate::auth::common_name(certs.first()?)
}

/// The `authorization` metadata of a request.
pub fn authorization<T>(req: &tonic::Request<T>) -> Option<&str> {
    req.metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
}

/// The caller's deadline, from the `grpc-timeout` header ("100m", "5S", …).
pub fn deadline<T>(req: &tonic::Request<T>) -> Option<Instant> {
    let raw = req.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = raw.split_at(raw.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    let d = match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    };
    Instant::now().checked_add(d)
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
