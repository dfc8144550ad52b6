//! Prometheus remote write 1.0 (`POST /api/v1/write`) and remote read
//! (`POST /api/v1/read`, sampled responses): snappy-compressed `prompb` messages.
//!
//! A write is read in place ([`WriteView`]): its labels reach the engine as the request's
//! bytes, so a series the engine knows costs a lookup by them, and a label that is not
//! UTF-8 refuses its own series (`label_not_utf8`), not the whole request.
//!
//! A write has the rules of gRPC `Write`: good samples are stored even when others are
//! rejected; the answer comes once they are durable (fsync always, by default). Status
//! codes follow what senders expect: 204 stored; 400 for what retrying cannot fix (a bad
//! body, rejected samples — the good ones are stored, so a retry would only repeat the
//! rejection); 503 for what a retry may fix (the head is full, writes are stopped).
//! Staleness markers arrive as the special NaN Prometheus writes and are stored bit for
//! bit, so queries end a series where Prometheus would.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use iocdb_engine::scratch::Pool;
use iocdb_engine::{
    Error, MatchOp, Matcher, MetricMetadata, RawWriteRequest, Sample, WriteOutcome, echo,
};
use prost::Message;

use super::{ApiError, Namespace, blocking};
use crate::convert::{Named, RawArrays};
use crate::service::AppState;
use iocdb_proto::prompb;
use iocdb_proto::prompb::view::WriteView;

/// Problems named in an error body.
const LISTED_PROBLEMS: usize = 10;

/// Decompresses a snappy block body, refusing to grow past `limit` bytes.
fn unsnappy(body: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    unsnappy_into(body, limit, &mut out)?;
    Ok(out)
}

/// Stores a write whose labels are still the request's bytes (remote write, line protocol),
/// checking it against the request limits and the namespace's ingest rate first; counts
/// the request; what came back for each sample.
pub fn store_raw(
    state: &AppState,
    req: RawWriteRequest<'_>,
) -> Result<WriteOutcome, Box<Response>> {
    let (series, samples) = (
        req.series.len(),
        req.series.iter().map(|s| s.samples.len()).sum::<usize>(),
    );
    let ns = req.namespace;
    let c = &state.config;
    if series > c.max_series_per_request || samples > c.max_samples_per_request {
        return Err(Box::new(
            ApiError::bad_data(format!(
                "the request has {series} series and {samples} samples, the limits are {} and {} (max_series_per_request, max_samples_per_request); send smaller batches",
                c.max_series_per_request, c.max_samples_per_request
            ))
            .into_response(),
        ));
    }
    if let Err(over) = state.limits.admit_samples(ns, samples) {
        return Err(Box::new(super::too_many(&over)));
    }
    let result = match crate::service::run_engine(&state.engine, move |e| e.write_raw(req)) {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(e)) => Err(Box::new(write_error(e))),
        Err(e) => Err(Box::new(write_error(Error::Internal(format!(
            "the write's worker failed: {e}"
        ))))),
    };
    state.metrics.write_request(ns, result.as_ref().ok());
    result
}

/// The status a failed write answers with. Remote-write senders (Prometheus, vmagent, the
/// OpenTelemetry collector) and Telegraf retry 5xx and drop a batch on other 4xx, so what a
/// retry can fix — a full head, stopped writes, shutdown, a full disk — is 503 with
/// `Retry-After`, a malformed request 400, anything else 500 (also retried).
pub fn write_error_status(e: &Error) -> StatusCode {
    match e {
        Error::InvalidArgument(_) => StatusCode::BAD_REQUEST,
        Error::ResourceExhausted { .. }
        | Error::WritesStopped { .. }
        | Error::Closed
        | Error::DeadlineExceeded { .. } => StatusCode::SERVICE_UNAVAILABLE,
        e if e.is_disk_full() => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn write_error(e: Error) -> Response {
    let status = write_error_status(&e);
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %e, "a write over HTTP failed");
    }
    let body = crate::status::bounded(e.to_string());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        return (
            status,
            [(header::RETRY_AFTER, HeaderValue::from_static("1"))],
            body,
        )
            .into_response();
    }
    (status, body).into_response()
}

/// What a write answers: 204 when everything was stored, else 400 naming the first
/// rejections (`describe` names a series by its place in the request; the reason names the
/// label and value).
pub fn answer(outcome: &WriteOutcome, describe: impl Fn(usize) -> String) -> Response {
    if outcome.rejected.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let header = format!(
        "stored {} samples, rejected {}:",
        outcome.accepted,
        outcome.rejected_samples()
    );
    let listed = outcome.rejected.iter().map(|r| {
        let which = match r.sample_index {
            Some(i) => format!("sample {i} of "),
            None => String::new(),
        };
        format!(
            "{which}{}: {} ({})",
            describe(r.series_index),
            r.reason,
            r.reason.kind()
        )
    });
    let msg = list_problems(header, listed, outcome.rejected.len());
    (StatusCode::BAD_REQUEST, msg).into_response()
}

/// A message: `header`, then the first problems one per line, then how many more there were;
/// bounded like every message the server sends.
pub fn list_problems(
    mut msg: String,
    problems: impl Iterator<Item = String>,
    total: usize,
) -> String {
    for p in problems.take(LISTED_PROBLEMS) {
        msg.push('\n');
        msg.push_str(&p);
    }
    if total > LISTED_PROBLEMS {
        msg.push_str(&format!("\n… and {} more", total - LISTED_PROBLEMS));
    }
    crate::status::bounded(msg)
}

/// What a remote write needs besides its body, lent from a pool (see
/// `iocdb_engine::scratch`): the decompressed body, the view of it, and the arrays the
/// engine is handed.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    raw: Vec<u8>,
    view: WriteView,
    arrays: RawArrays,
    /// The request's number of each series the engine is given.
    kept: Vec<usize>,
}

/// Largest decompressed body whose buffers go back to the pool.
const KEPT_BYTES: usize = 8 << 20;

pub(super) static SCRATCH: Pool<Scratch> = Pool::new(|s| s.raw.capacity() <= KEPT_BYTES);

/// Decompresses a snappy block body into `out` (whose length is then the body's, its
/// memory reused), refusing to grow past `limit` bytes.
fn unsnappy_into(body: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), ApiError> {
    let len = snap::raw::decompress_len(body)
        .map_err(|e| ApiError::bad_data(format!("the body is not snappy-compressed: {e}")))?;
    if len > limit {
        return Err(ApiError::bad_data(format!(
            "the body decompresses to {len} bytes, the limit is {limit} (max_ingest_message_bytes)"
        )));
    }
    // Zeroed only where the buffer grows; the decoder writes every byte it reports.
    out.resize(len.max(out.len()), 0);
    let target = out.get_mut(..len).unwrap_or_default();
    let written = snap::raw::Decoder::new()
        .decompress(body, target)
        .map_err(|e| ApiError::bad_data(format!("the body is not snappy-compressed: {e}")))?;
    out.truncate(written);
    Ok(())
}

/// `POST /api/v1/write`.
pub async fn write(
    State(state): State<AppState>,
    Namespace(ns): Namespace,
    body: Bytes,
) -> Response {
    SCRATCH.with(|scratch| write_with(&state, &ns, &body, scratch))
}

fn write_with(state: &AppState, ns: &str, body: &[u8], scratch: &mut Scratch) -> Response {
    let Scratch {
        raw,
        view,
        arrays,
        kept,
    } = scratch;
    if let Err(e) = unsnappy_into(body, state.config.max_ingest_message_bytes, raw) {
        return e.into_response();
    }
    let raw = raw.as_slice();
    if let Err(e) = view.read(raw) {
        return ApiError::bad_data(format!("the body is not a remote-write WriteRequest: {e}"))
            .into_response();
    }
    let metadata = view
        .metadata
        .iter()
        .map(|m| prompb::MetricMetadata::decode(m.of(raw)))
        .collect::<Result<Vec<_>, _>>();
    let metadata = match metadata {
        Ok(m) => m,
        Err(e) => {
            return ApiError::bad_data(format!("the body's metric metadata is not valid: {e}"))
                .into_response();
        }
    };
    if let Err(e) = store_metadata(state, ns, metadata) {
        return e.into_response();
    }
    let histograms: usize = view.series.iter().map(|s| s.histograms).sum();
    // The engine numbers the series it is given (those with samples); `kept` maps its
    // numbers back to the request's. A rejection's reason names the label and value.
    kept.clear();
    let series = view
        .series
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.samples.is_empty())
        .map(|(i, s)| {
            kept.push(i);
            let samples = view.samples_of(s).iter();
            let samples = samples.map(|x| Sample::new(x.timestamp, x.value));
            (Named::Labels(s.labels.clone()), samples)
        });
    let stored = arrays.write(ns, raw, &view.labels, series, |req| store_raw(state, req));
    let outcome = match stored {
        Ok(outcome) => outcome,
        Err(resp) => return *resp,
    };
    if histograms > 0 {
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "stored {} samples; refused {histograms} native histogram samples: iocdb stores float samples (classic histograms' _bucket series work)",
                outcome.accepted
            ),
        )
            .into_response();
    }
    answer(&outcome, |i| match kept.get(i) {
        Some(k) => format!("timeseries {k}"),
        None => format!("timeseries ?{i}"),
    })
}

/// Stores what remote write says about metrics (type, help, unit) where it changed.
fn store_metadata(
    state: &AppState,
    ns: &str,
    incoming: Vec<prompb::MetricMetadata>,
) -> Result<(), ApiError> {
    if incoming.is_empty() {
        return Ok(());
    }
    super::engine_call(state, move |e| {
        let known = e.metadata(ns)?;
        for m in incoming {
            if m.metric_family_name.is_empty() {
                continue;
            }
            let old = known.iter().find(|k| k.metric == m.metric_family_name);
            let old = old.cloned().unwrap_or_default();
            // An entry the IOC's catalog declared (an owner or rules) keeps its own texts:
            // remote write fills in only what it left empty. What remote write does not carry
            // (the interval, owner, rules) is kept either way.
            let declared = !old.department.is_empty() || old.rules.any();
            let take = |ours: &str, theirs: &str| {
                if declared && !ours.is_empty() {
                    ours
                } else {
                    theirs
                }
                .to_owned()
            };
            let new = MetricMetadata {
                metric: m.metric_family_name.clone(),
                unit: take(&old.unit, &m.unit),
                description: take(&old.description, &m.help),
                kind: take(&old.kind, prompb::metric_type_name(m.r#type)),
                ..old.clone()
            };
            if old != new {
                e.set_metadata(ns, new)?;
            }
        }
        Ok(())
    })
}

/// `POST /api/v1/read`: the samples of each query, in a sampled response.
pub async fn read(
    State(state): State<AppState>,
    Namespace(ns): Namespace,
    body: Bytes,
) -> Response {
    match read_inner(state, ns, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn read_inner(state: AppState, ns: String, body: Bytes) -> Result<Response, ApiError> {
    let raw = unsnappy(&body, state.config.max_query_message_bytes)?;
    let req = prompb::ReadRequest::decode(raw.as_slice()).map_err(|e| {
        ApiError::bad_data(format!("the body is not a remote-read ReadRequest: {e}"))
    })?;
    if !req.accepted_response_types.is_empty()
        && !req
            .accepted_response_types
            .contains(&prompb::RESPONSE_TYPE_SAMPLES)
    {
        return Err(ApiError::bad_data(
            "iocdb answers remote read with samples (response type SAMPLES) only",
        ));
    }
    let queries = req
        .queries
        .into_iter()
        .map(|q| {
            let matchers = q
                .matchers
                .into_iter()
                .map(|m| {
                    let op = match m.r#type {
                        0 => MatchOp::Equal,
                        1 => MatchOp::NotEqual,
                        2 => MatchOp::Regex,
                        3 => MatchOp::NotRegex,
                        t => {
                            return Err(Error::InvalidArgument(format!(
                                "matcher on {}: unknown type {t}",
                                echo(&m.name)
                            )));
                        }
                    };
                    Matcher::new(m.name, op, m.value)
                })
                .collect::<Result<Vec<_>, Error>>()?;
            Ok((matchers, q.start_timestamp_ms, q.end_timestamp_ms))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let results = blocking(&state, move |e| {
        queries
            .into_iter()
            .map(|(matchers, start, end)| {
                let found = e.select(&ns, &matchers, start, end)?;
                Ok(prompb::QueryResult {
                    timeseries: found
                        .into_iter()
                        .map(|s| prompb::TimeSeries {
                            labels: s
                                .labels
                                .iter()
                                .map(|l| prompb::Label {
                                    name: l.name.clone(),
                                    value: l.value.clone(),
                                })
                                .collect(),
                            samples: s
                                .samples
                                .iter()
                                .map(|x| prompb::Sample {
                                    value: x.v,
                                    timestamp: x.t,
                                })
                                .collect(),
                            histograms: Vec::new(),
                        })
                        .collect(),
                })
            })
            .collect::<Result<Vec<_>, Error>>()
    })
    .await?;
    let encoded = prompb::ReadResponse { results }.encode_to_vec();
    let compressed = snap::raw::Encoder::new()
        .compress_vec(&encoded)
        .map_err(|e| ApiError::bad_data(format!("cannot compress the answer: {e}")))?;
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            ),
            (header::CONTENT_ENCODING, HeaderValue::from_static("snappy")),
        ],
        compressed,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use iocdb_engine::Limit;

    #[test]
    fn what_a_retry_can_fix_is_503_what_it_cannot_is_400() {
        let full = Error::ResourceExhausted {
            limit: Limit::HeadMemoryBudget,
            detail: String::new(),
        };
        assert_eq!(write_error_status(&full), StatusCode::SERVICE_UNAVAILABLE);
        let stopped = Error::WritesStopped {
            reason: "fsync failed".into(),
        };
        assert_eq!(
            write_error_status(&stopped),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            write_error_status(&Error::Closed),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            write_error_status(&Error::InvalidArgument("bad".into())),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            write_error_status(&Error::Internal("bug".into())),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
