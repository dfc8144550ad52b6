//! `iocdb.v1.Ingest`: batches and streams of samples.
//!
//! Partial failure is explicit: good samples are stored, and when any sample was rejected
//! the call ends with INVALID_ARGUMENT (or RESOURCE_EXHAUSTED when only the series limit
//! refused them) whose message names the first rejections and whose details carry the
//! encoded `WriteResponse` with the accepted count and every rejection.

use std::collections::HashMap;

use iocdb_engine::{RejectReason, Resolved, Sample, SeriesHandle};
use iocdb_proto::v1::{self, ingest_server::Ingest};
use prost::Message;
use tonic::{Code, Request, Response, Status, Streaming};

use super::AppState;
use crate::convert;

/// Most series ids one write stream remembers.
pub const MAX_STREAM_IDS: usize = 1_000_000;

/// Request metadata that marks a unary `Write` as history being uploaded (`1`): its samples'
/// arrival delays are not recorded (see `Engine::write_backfill`). `iocdb import` sends it.
pub const BACKFILL_HEADER: &str = "x-iocdb-backfill";

/// The ingest service.
#[derive(Debug, Clone)]
pub struct IngestService(pub AppState);

impl IngestService {
    fn check_limits(&self, req: &v1::WriteRequest) -> Result<(), Status> {
        let c = &self.0.config;
        if req.series.len() > c.max_series_per_request {
            return Err(Status::resource_exhausted(format!(
                "max_series_per_request: the request has {} series, the limit is {}; split it",
                req.series.len(),
                c.max_series_per_request
            )));
        }
        let samples: usize = req.series.iter().map(|s| s.timestamps_ms.len()).sum();
        if samples > c.max_samples_per_request {
            return Err(Status::resource_exhausted(format!(
                "max_samples_per_request: the request has {samples} samples, the limit is {}; split it",
                c.max_samples_per_request
            )));
        }
        Ok(())
    }

    /// Takes the request's samples from its namespace's ingest rate (see `limits.rs`).
    fn admit(&self, req: &v1::WriteRequest) -> Result<(), Status> {
        let samples: usize = req.series.iter().map(|s| s.values.len()).sum();
        self.0
            .limits
            .admit_samples(&req.namespace, samples)
            .map_err(|over| over.status())
    }

    /// One message of a stream: series may come by labels (and a stream id to remember) or
    /// by a stream id alone.
    async fn write_streamed(
        &self,
        req: v1::WriteRequest,
        ids: HashMap<u64, SeriesHandle>,
        resp: &mut v1::WriteResponse,
        index: u32,
    ) -> Result<HashMap<u64, SeriesHandle>, Status> {
        self.check_limits(&req)?;
        self.admit(&req)?;
        convert::check_columns(&req)?;
        let ns = req.namespace.clone();
        let result = self
            .0
            .blocking(move |e| {
                let mut ids = ids;
                let mut batch = Vec::with_capacity(req.series.len());
                for s in req.series {
                    let samples: Vec<Sample> = s
                        .timestamps_ms
                        .iter()
                        .zip(&s.values)
                        .map(|(&t, &v)| Sample { t, v })
                        .collect();
                    if s.labels.is_empty() && s.stream_id != 0 {
                        batch.push(match ids.get(&s.stream_id) {
                            Some(h) => Resolved::Series(h.clone(), samples),
                            None => Resolved::Rejected {
                                reason: RejectReason::UnknownStreamId { id: s.stream_id },
                                samples: samples.len(),
                            },
                        });
                        continue;
                    }
                    match e.resolve(&req.namespace, convert::labels_in(s.labels)) {
                        Ok(h) => {
                            // A stream remembers at most MAX_STREAM_IDS ids, so a client cannot
                            // grow the server's memory without bound; past it, series still
                            // store by labels.
                            if s.stream_id != 0
                                && (ids.len() < MAX_STREAM_IDS || ids.contains_key(&s.stream_id))
                            {
                                ids.insert(s.stream_id, h.clone());
                            }
                            batch.push(Resolved::Series(h, samples));
                        }
                        Err(reason) => batch.push(Resolved::Rejected {
                            reason,
                            samples: samples.len(),
                        }),
                    }
                }
                Ok((ids, e.write_resolved(batch)?))
            })
            .await;
        let metrics = &self.0.metrics;
        metrics.write_request(&ns, result.as_ref().ok().map(|(_, outcome)| outcome));
        let (ids, outcome) = result?;
        convert::add_outcome(resp, &outcome, index);
        Ok(ids)
    }

    async fn write_one(
        &self,
        req: v1::WriteRequest,
        resp: &mut v1::WriteResponse,
        index: u32,
        backfill: bool,
    ) -> Result<(), Status> {
        self.check_limits(&req)?;
        self.admit(&req)?;
        let req = convert::write_request(req)?;
        let ns = req.namespace.clone();
        let result = self
            .0
            .blocking(move |e| {
                if backfill {
                    e.write_backfill(req)
                } else {
                    e.write(req)
                }
            })
            .await;
        self.0.metrics.write_request(&ns, result.as_ref().ok());
        convert::add_outcome(resp, &result?, index);
        Ok(())
    }
}

/// The final answer: OK when nothing was rejected, else an error whose details hold it.
fn finish(resp: v1::WriteResponse) -> Result<Response<v1::WriteResponse>, Status> {
    if resp.rejected == 0 {
        return Ok(Response::new(resp));
    }
    let only_limit = resp.rejections.iter().all(|r| r.reason == "series_limit");
    let code = if only_limit {
        Code::ResourceExhausted
    } else {
        Code::InvalidArgument
    };
    let first: Vec<String> = resp
        .rejections
        .iter()
        .take(3)
        .map(|r| match r.sample_index {
            Some(i) => format!("series {} sample {i}: {}", r.series_index, r.message),
            None => format!(
                "series {} (all {} samples): {}",
                r.series_index, r.samples, r.message
            ),
        })
        .collect();
    let msg = format!(
        "{} samples rejected, {} accepted and stored; {}",
        resp.rejected,
        resp.accepted,
        first.join("; ")
    );
    Err(Status::with_details(
        code,
        crate::status::bounded(msg),
        details(resp),
    ))
}

/// Largest status details sent, bytes: they travel in a header, and default gRPC clients
/// refuse headers past a few KB (and then report that instead of the real error).
const MAX_DETAILS_BYTES: usize = 4096;

/// The answer as status details, listing as many rejections as fit in
/// [`MAX_DETAILS_BYTES`]; `rejected` still counts them all.
fn details(mut resp: v1::WriteResponse) -> tonic::codegen::Bytes {
    while resp.encoded_len() > MAX_DETAILS_BYTES && !resp.rejections.is_empty() {
        let keep = resp.rejections.len() / 2;
        resp.rejections.truncate(keep);
    }
    resp.encode_to_vec().into()
}

/// Error for a failure part-way through a stream: what was stored so far rides along.
fn partial(status: Status, resp: &v1::WriteResponse) -> Status {
    let msg = format!(
        "{} (after {} messages stored: {} samples accepted)",
        status.message(),
        resp.messages,
        resp.accepted
    );
    Status::with_details(
        status.code(),
        crate::status::bounded(msg),
        details(resp.clone()),
    )
}

#[tonic::async_trait]
impl Ingest for IngestService {
    async fn write(
        &self,
        req: Request<v1::WriteRequest>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        self.0.check_running()?;
        self.0
            .authorize(&req, "/iocdb.v1.Ingest/Write", &req.get_ref().namespace)?;
        let backfill = req
            .metadata()
            .get(BACKFILL_HEADER)
            .is_some_and(|v| v == "1");
        let mut resp = v1::WriteResponse::default();
        self.write_one(req.into_inner(), &mut resp, 0, backfill)
            .await?;
        finish(resp)
    }

    async fn write_stream(
        &self,
        req: Request<Streaming<v1::WriteRequest>>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        self.0.check_running()?;
        let limit = self.0.config.max_concurrent_write_streams;
        let _permit = self
            .0
            .write_streams
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                Status::resource_exhausted(format!(
                    "max_concurrent_write_streams: {limit} streams are open; retry later"
                ))
            })?;
        // Each message names its namespace: the caller is known now, its rights are checked
        // message by message.
        let caller = self
            .0
            .auth
            .authenticate(
                crate::service::authorization(&req),
                crate::service::client_common_name(&req).as_deref(),
            )
            .map_err(|d| d.status())?;
        let mut stream = req.into_inner();
        let mut shutdown = self.0.shutdown.clone();
        let mut resp = v1::WriteResponse::default();
        let mut ids = HashMap::new();
        loop {
            let next = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => {
                    resp.stopped_early = true;
                    break;
                }
                next = stream.message() => next,
            };
            match next {
                Ok(Some(msg)) => {
                    if let Err(denied) = caller.check(&msg.namespace, crate::auth::Role::Write) {
                        return Err(partial(denied.status(), &resp));
                    }
                    let index = resp.messages as u32;
                    match self
                        .write_streamed(msg, std::mem::take(&mut ids), &mut resp, index)
                        .await
                    {
                        Ok(back) => ids = back,
                        Err(status) => return Err(partial(status, &resp)),
                    }
                    resp.messages += 1;
                }
                Ok(None) => break,
                Err(status) => {
                    let status =
                        crate::oversize::status(status, self.0.config.max_ingest_message_bytes);
                    return Err(partial(status, &resp));
                }
            }
        }
        finish(resp)
    }
}
