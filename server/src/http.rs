//! The HTTP front door: the Prometheus HTTP API v1 (queries, metadata, status, TSDB
//! deletion), Prometheus remote write and remote read, and InfluxDB line protocol, on a
//! listener of its own (`http_listen`, default `127.0.0.1:7071`). It converts between the
//! wire and the engine's types at its edge and calls the same engine as gRPC.
//!
//! Every route is also served under `/ns/<namespace>/…`; without that prefix the
//! `X-Scope-OrgID` header (as Mimir and Cortex use it) names the namespace, and without
//! either the default namespace is used.

mod admin;
mod api;
mod influx;
mod json;
mod params;
mod remote;
mod reports;

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use iocdb_engine::{Engine, Error};
use tokio::sync::watch;

use crate::auth::{Need, Role};
use crate::service::AppState;

/// The port the HTTP API listens on by default.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:7071";

/// The routes, each with and without the `/ns/{namespace}` prefix.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for (path, route) in routes() {
        router = router
            .route(path, route.clone())
            .route(&format!("/ns/{{namespace}}{path}"), route);
    }
    // Remote-write bodies are compressed; they are checked again once decompressed.
    let body_limit = state.config.max_ingest_message_bytes;
    router
        // After routing, so that the route is known; before any handler reads the body.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        // Outside authorization, so that refusals are counted too.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::record_http,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Every route, as the router spells it, and its handlers. Each has an entry in
/// [`crate::auth::HTTP`] (a test checks).
fn routes() -> Vec<(&'static str, axum::routing::MethodRouter<AppState>)> {
    vec![
        ("/api/v1/query", get(api::query).post(api::query)),
        (
            "/api/v1/query_range",
            get(api::query_range).post(api::query_range),
        ),
        ("/api/v1/series", get(api::series).post(api::series)),
        ("/api/v1/labels", get(api::labels).post(api::labels)),
        ("/api/v1/label/{name}/values", get(api::label_values)),
        ("/api/v1/metadata", get(api::metadata)),
        ("/api/v1/watch", get(api::watch)),
        ("/api/v1/completeness", get(reports::completeness)),
        ("/api/v1/quality", get(reports::quality)),
        (
            "/api/v1/query_exemplars",
            get(api::exemplars).post(api::exemplars),
        ),
        ("/api/v1/status/buildinfo", get(api::buildinfo)),
        ("/api/v1/status/iocdb", get(api::status)),
        (
            "/api/v1/admin/tsdb/delete_series",
            post(admin::delete_series).put(admin::delete_series),
        ),
        (
            "/api/v1/admin/tsdb/clean_tombstones",
            post(admin::clean_tombstones).put(admin::clean_tombstones),
        ),
        ("/api/v1/write", post(remote::write)),
        ("/api/v1/read", post(remote::read)),
        ("/api/v2/write", post(influx::write)),
        ("/write", post(influx::write)),
        ("/metrics", get(crate::metrics::handler)),
        ("/-/healthy", get(api::healthy)),
        ("/-/ready", get(api::ready)),
        // The console names namespaces in its own API calls, whichever prefix served it.
        ("/", get(crate::console::index)),
        ("/console/{file}", get(crate::console::file)),
    ]
}

/// Serves the HTTP API on `listener` (plain TCP, or [`crate::tls::HttpsListener`]) until
/// `stop` turns true.
pub async fn serve<L>(
    listener: L,
    state: AppState,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
    crate::tls::HttpPeer:
        for<'a> axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    let app = router(state).into_make_service_with_connect_info::<crate::tls::HttpPeer>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
}

/// The address an HTTP listener is bound to, for the "http listening on" line.
pub fn describe(addr: SocketAddr) -> String {
    format!("http listening on {addr}")
}

/// Authenticates the caller and checks what the route needs ([`crate::auth::HTTP`]) on the
/// request's namespace before the handler runs: 401 without known credentials (with a
/// `WWW-Authenticate` challenge), 403 without the role.
async fn authorize(
    axum::extract::State(state): axum::extract::State<AppState>,
    matched: axum::extract::MatchedPath,
    Namespace(namespace): Namespace,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = matched.as_str();
    let route = route.strip_prefix("/ns/{namespace}").unwrap_or(route);
    let Some(need) = crate::auth::need_of(crate::auth::HTTP, route) else {
        return ApiError {
            status: StatusCode::FORBIDDEN,
            kind: "forbidden",
            message: format!("{route} is not in the authorization table"),
        }
        .into_response();
    };
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let client_cn = request
        .extensions()
        .get::<axum::extract::ConnectInfo<crate::tls::HttpPeer>>()
        .and_then(|info| info.0.client_common_name.as_deref());
    match state.auth.check(header, client_cn, need, &namespace) {
        // Administration is recorded with its outcome.
        Ok(caller)
            if matches!(
                need,
                Need::Global(Role::Admin) | Need::Namespace(Role::Admin)
            ) =>
        {
            let uri = request.uri().to_string();
            let response = next.run(request).await;
            state.audit.record(
                caller.name(),
                &namespace,
                route,
                serde_json::json!({"uri": uri}),
                response.status().as_str(),
            );
            response
        }
        // A query holds one of its namespace's places while it runs.
        Ok(_) if matches!(route, "/api/v1/query" | "/api/v1/query_range") => {
            match state.limits.query_permit(&namespace) {
                Ok(_place) => next.run(request).await,
                Err(over) => too_many(&over),
            }
        }
        // The caller goes along, for handlers that reach further namespaces (a watch of several).
        Ok(caller) => {
            let mut request = request;
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(denied) => {
            state.audit.record(
                denied.principal(),
                &namespace,
                route,
                serde_json::json!({"uri": request.uri().to_string()}),
                &format!("denied: {}", denied.message()),
            );
            refusal(denied)
        }
    }
}

/// 429 with `Retry-After` (whole seconds, at least one): a namespace over its limits.
pub fn too_many(over: &crate::limits::OverLimit) -> Response {
    let mut response = ApiError {
        status: StatusCode::TOO_MANY_REQUESTS,
        kind: "too_many_requests",
        message: over.message.clone(),
    }
    .into_response();
    let seconds = over.retry_after.as_secs_f64().ceil().max(1.0) as u64;
    if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// 401 (with a challenge) or 403, in Prometheus' error shape.
pub(crate) fn refusal(denied: crate::auth::Denied) -> Response {
    match denied {
        crate::auth::Denied::Unauthenticated(message) => {
            let mut response = ApiError {
                status: StatusCode::UNAUTHORIZED,
                kind: "unauthorized",
                message,
            }
            .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer, Basic realm=\"iocdb\""),
            );
            response
        }
        crate::auth::Denied::Forbidden(_, message) => ApiError {
            status: StatusCode::FORBIDDEN,
            kind: "forbidden",
            message,
        }
        .into_response(),
    }
}

/// The namespace a request is about: the `/ns/{namespace}` prefix, else the
/// `X-Scope-OrgID` header, else the default namespace (empty).
#[derive(Debug, Clone)]
pub struct Namespace(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Namespace {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Ok(Path(params)) =
            Path::<HashMap<String, String>>::from_request_parts(parts, state).await
            && let Some(ns) = params.get("namespace")
        {
            return Ok(Namespace(ns.clone()));
        }
        let header = parts
            .headers
            .get("x-scope-orgid")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        Ok(Namespace(header.trim().to_owned()))
    }
}

/// An API error with Prometheus' `errorType` and status code.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    /// 400 `bad_data`: the request is malformed.
    pub fn bad_data(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_data",
            message: message.into(),
        }
    }

    fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "internal",
            message: message.into(),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, kind) = match &e {
            Error::InvalidArgument(_) => (StatusCode::BAD_REQUEST, "bad_data"),
            Error::Execution(_) | Error::ResourceExhausted { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "execution")
            }
            Error::DeadlineExceeded { .. } => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            Error::WritesStopped { .. } | Error::Closed => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            _ => {
                tracing::error!(error = %e, "HTTP request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let message = match e {
            Error::InvalidArgument(m) | Error::Execution(m) => m,
            other => other.to_string(),
        };
        ApiError {
            status,
            kind,
            message: crate::status::bounded(message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = format!(
            r#"{{"status":"error","errorType":"{}","error":{}}}"#,
            self.kind,
            json::string(&self.message)
        );
        json_response(self.status, body)
    }
}

/// A JSON body with its content type.
pub fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// Runs an engine call (see [`crate::service::run_engine`]).
pub async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Engine) -> iocdb_engine::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    engine_call(state, f)
}

/// [`blocking`] for code that cannot await there (a remote write holding buffers lent from
/// the scratch pool).
pub fn engine_call<T>(
    state: &AppState,
    f: impl FnOnce(&Engine) -> iocdb_engine::Result<T>,
) -> Result<T, ApiError> {
    answered(crate::service::run_engine(&state.engine, f))
}

/// An engine call's outcome as the API answers it: a panic (caught, as its message) is the
/// server's fault, the engine's errors as they map.
pub fn answered<T>(outcome: Result<iocdb_engine::Result<T>, String>) -> Result<T, ApiError> {
    outcome
        .map_err(|e| ApiError::internal(format!("the request's worker failed: {e}")))?
        .map_err(ApiError::from)
}

/// Lets remote write's pooled request buffers go when no request has taken one for `idle`.
pub fn release_idle_scratch(idle: std::time::Duration) {
    remote::SCRATCH.release_idle(idle);
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_has_an_authorization_entry() {
        for (path, _) in super::routes() {
            assert!(
                crate::auth::need_of(crate::auth::HTTP, path).is_some(),
                "{path} has no entry in auth::HTTP"
            );
        }
        assert_eq!(super::routes().len(), crate::auth::HTTP.len());
    }
}
