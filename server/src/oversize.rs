//! A request over the size limit is a limit the caller ran into — `RESOURCE_EXHAUSTED`,
//! naming the limit and how to get under it — not tonic's `OUT_OF_RANGE`. Tonic answers
//! an oversized unary request before our handlers run, with a trailers-only response; the
//! layer here rewrites that answer's status. Streams meet the limit inside the handler,
//! which calls [`status`] itself.

use http::HeaderValue;
use tonic::{Code, Status};

/// The message a too-large request gets: which limit, and what to do.
fn message(limit_name: &str, limit: usize) -> String {
    format!(
        "the request message is too large: more than the limit of {limit} bytes ({limit_name}); \
         split it into several smaller requests, or raise {limit_name} in the server's \
         configuration"
    )
}

/// What a too-large message on the ingest service is told.
pub fn ingest_message(limit: usize) -> String {
    message("max_ingest_message_bytes", limit)
}

/// The status for a too-large message on the ingest service.
pub fn status(original: Status, limit: usize) -> Status {
    if is_oversize(original.code(), original.message()) {
        Status::resource_exhausted(ingest_message(limit))
    } else {
        original
    }
}

fn is_oversize(code: Code, message: &str) -> bool {
    code == Code::OutOfRange && message.contains("too large")
}

/// Rewrites trailers-only `OUT_OF_RANGE` answers to oversized requests.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `max_ingest_message_bytes`.
    pub ingest: usize,
    /// `max_query_message_bytes` (queries and admin).
    pub query: usize,
}

impl Limits {
    /// Applied to each response, with the request's path.
    pub fn rewrite<B>(self, path: &str, mut response: http::Response<B>) -> http::Response<B> {
        let headers = response.headers_mut();
        let code = headers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i32>().ok())
            .map(Code::from);
        let text = headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .replace("%20", " ");
        if code.is_some_and(|c| is_oversize(c, &text)) {
            let (name, limit) = if path.starts_with("/iocdb.v1.Ingest/") {
                ("max_ingest_message_bytes", self.ingest)
            } else {
                ("max_query_message_bytes", self.query)
            };
            // ASCII only, so the message needs no percent-encoding.
            let message = message(name, limit);
            if let Ok(value) = HeaderValue::from_str(&message) {
                headers.insert(
                    "grpc-status",
                    HeaderValue::from(Code::ResourceExhausted as i32),
                );
                headers.insert("grpc-message", value);
            }
        }
        response
    }
}

/// The layer that applies [`Limits::rewrite`] to every response.
#[derive(Debug, Clone, Copy)]
pub struct Layer(pub Limits);

impl<S> tower::Layer<S> for Layer {
    type Service = Service<S>;

    fn layer(&self, inner: S) -> Service<S> {
        Service {
            inner,
            limits: self.0,
        }
    }
}

/// See [`Layer`].
#[derive(Debug, Clone)]
pub struct Service<S> {
    inner: S,
    limits: Limits,
}

impl<S, B, RB> tower::Service<http::Request<B>> for Service<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let limits = self.limits;
        let response = self.inner.call(request);
        Box::pin(async move { response.await.map(|r| limits.rewrite(&path, r)) })
    }
}
