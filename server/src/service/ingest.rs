//! `iocdb.v1.Ingest`: batches and streams of samples.
//!
//! Each `WriteRequest` is read in place (`iocdb_proto::ingest_view`): its labels reach the
//! engine as the message's bytes, so a series the engine knows costs a lookup by them
//! (`Engine::write_raw`), and a stream's series by id skip even that. Unary writes and
//! streams read their messages the same way.
//!
//! Partial failure is explicit: good samples are stored, and when any sample was rejected
//! the call ends with INVALID_ARGUMENT (or RESOURCE_EXHAUSTED when only the series limit
//! refused them) whose message names the first rejections and whose details carry the
//! encoded `WriteResponse` with the accepted count and every rejection.

use std::collections::HashMap;
use std::sync::Arc;

use iocdb_engine::scratch::Pool;
use iocdb_engine::{RawLabel, RejectReason, Sample, SeriesHandle};
use iocdb_proto::ingest_view::{SeriesEntry, WriteRequestBytes, WriteView};
use iocdb_proto::v1;
use iocdb_proto::v1_server::ingest_server::Ingest;
use prost::Message;
use tonic::{Code, Request, Response, Status, Streaming};

use super::AppState;
use crate::convert::{self, Named, RawArrays};

/// Most series ids one write stream remembers.
pub const MAX_STREAM_IDS: usize = 1_000_000;

/// Request metadata that marks a unary `Write` as history being uploaded (`1`): its samples'
/// arrival delays are not recorded (see `Engine::write_backfill`). `iocdb import` sends it.
pub const BACKFILL_HEADER: &str = "x-iocdb-backfill";

/// The ingest service.
#[derive(Debug, Clone)]
pub struct IngestService(pub AppState);

/// What a write message needs, lent from a pool (see `iocdb_engine::scratch`): the view
/// of it, and the arrays a unary write hands the engine.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    view: WriteView,
    arrays: RawArrays,
}

/// The scratch of write messages; one that read more than a million labels is not kept.
pub(crate) static SCRATCH: Pool<Scratch> = Pool::new(|s| s.view.labels.capacity() <= 1 << 20);

/// One write message read in place: its bytes and the view of them.
struct Incoming<'a> {
    buf: &'a [u8],
    view: &'a WriteView,
    namespace: &'a str,
}

impl<'a> Incoming<'a> {
    /// Reads `buf` into `view`. Bytes that are not a `WriteRequest` are the caller's error,
    /// as for every other message (prost would refuse them the same way).
    fn read(buf: &'a [u8], view: &'a mut WriteView) -> Result<Incoming<'a>, Status> {
        let invalid = |why: String| {
            Status::invalid_argument(format!(
                "the request is not a valid iocdb.v1.WriteRequest protobuf message: {why}"
            ))
        };
        view.read(buf).map_err(|e| invalid(e.to_string()))?;
        let view: &WriteView = view;
        let namespace = std::str::from_utf8(view.namespace.of(buf))
            .map_err(|e| invalid(format!("its namespace is not UTF-8 ({e})")))?;
        let message = Incoming {
            buf,
            view,
            namespace,
        };
        message.check_columns()?;
        Ok(message)
    }

    /// Mismatched column lengths are a request error: the request is malformed as a whole,
    /// and the message names the series.
    fn check_columns(&self) -> Result<(), Status> {
        for (i, s) in self.view.series.iter().enumerate() {
            let (t, v) = (s.timestamps.len(), s.values.len());
            if t != v {
                return Err(Status::invalid_argument(format!(
                    "series {i}: {t} timestamps but {v} values; the columns must have the same length"
                )));
            }
        }
        Ok(())
    }

    fn samples(&self) -> usize {
        self.view.timestamps.len()
    }

    fn labels(&self, series: &SeriesEntry) -> Vec<RawLabel<'a>> {
        convert::raw_labels(self.buf, self.view.labels_of(series))
    }

    fn samples_in(&self, series: &SeriesEntry) -> impl Iterator<Item = Sample> + use<'a> {
        let view = self.view;
        view.timestamps_of(series)
            .iter()
            .zip(view.values_of(series))
            .map(|(&t, &v)| Sample { t, v })
    }
}

impl IngestService {
    fn check_limits(&self, m: &Incoming<'_>) -> Result<(), Status> {
        let c = &self.0.config;
        let series = m.view.series.len();
        if series > c.max_series_per_request {
            return Err(Status::resource_exhausted(format!(
                "max_series_per_request: the request has {series} series, the limit is {}; split it",
                c.max_series_per_request
            )));
        }
        let samples = m.samples();
        if samples > c.max_samples_per_request {
            return Err(Status::resource_exhausted(format!(
                "max_samples_per_request: the request has {samples} samples, the limit is {}; split it",
                c.max_samples_per_request
            )));
        }
        // Takes the request's samples from its namespace's ingest rate (see `limits.rs`).
        self.0
            .limits
            .admit_samples(m.namespace, samples)
            .map_err(|over| over.status())
    }

    /// One message of a stream: series may come by labels (and a stream id to remember) or
    /// by a stream id alone. The message is one write, its series by labels and by id alike
    /// (`Engine::write_raw`); a series that brings an id with its labels is resolved first,
    /// so that the stream remembers it.
    fn write_streamed(
        &self,
        m: &Incoming<'_>,
        ids: &mut HashMap<u64, Arc<SeriesHandle>>,
        resp: &mut v1::WriteResponse,
        index: u32,
        arrays: &mut RawArrays,
    ) -> Result<(), Status> {
        self.check_limits(m)?;
        let result = self.0.engine_call(|e| {
            for s in &m.view.series {
                // A stream remembers at most MAX_STREAM_IDS ids, so a client cannot grow the
                // server's memory without bound; past it, series still store by labels.
                let remembered = ids.len() < MAX_STREAM_IDS || ids.contains_key(&s.stream_id);
                if s.stream_id != 0 && !s.labels.is_empty() && remembered {
                    match e.resolve_raw(m.namespace, &m.labels(s)) {
                        Ok(h) => {
                            ids.insert(s.stream_id, Arc::new(h));
                        }
                        // Written by its labels below, which refuses it again, with why;
                        // the id names no series now (not the one it named before).
                        Err(_) => {
                            ids.remove(&s.stream_id);
                        }
                    }
                }
            }
            let series = m.view.series.iter().map(|s| {
                let named = match (s.labels.is_empty(), s.stream_id) {
                    (true, id) if id != 0 => match ids.get(&id) {
                        Some(h) => Named::Handle(h),
                        None => Named::Refused(RejectReason::UnknownStreamId { id }),
                    },
                    _ => Named::Labels(s.labels.clone()),
                };
                (named, m.samples_in(s))
            });
            arrays.write(m.namespace, m.buf, &m.view.labels, series, |req| {
                e.write_raw(req)
            })
        });
        self.0
            .metrics
            .write_request(m.namespace, result.as_ref().ok());
        convert::add_outcome(resp, &result?, index);
        Ok(())
    }

    /// One unary write, by labels read in place, handed to the engine in `arrays`.
    fn write_one(
        &self,
        m: &Incoming<'_>,
        resp: &mut v1::WriteResponse,
        backfill: bool,
        arrays: &mut RawArrays,
    ) -> Result<(), Status> {
        self.check_limits(m)?;
        let series = m
            .view
            .series
            .iter()
            .map(|s| (Named::Labels(s.labels.clone()), m.samples_in(s)));
        let result = arrays.write(m.namespace, m.buf, &m.view.labels, series, |req| {
            self.0.engine_call(move |e| {
                if backfill {
                    e.write_raw_backfill(req)
                } else {
                    e.write_raw(req)
                }
            })
        });
        self.0
            .metrics
            .write_request(m.namespace, result.as_ref().ok());
        convert::add_outcome(resp, &result?, 0);
        Ok(())
    }
}

/// The final answer: OK when nothing was rejected, else an error whose details hold it.
/// How long the rest of a stream stopped by shutdown is read and dropped.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads and drops what a client still sends on a stream answered early, for at most
/// [`DRAIN`]: a bounded courtesy, so that the answer is read before the connection goes.
async fn drain<T: Send + 'static>(mut stream: Streaming<T>) {
    let _ = tokio::time::timeout(DRAIN, async {
        while let Ok(Some(_)) = stream.message().await {}
    })
    .await;
}

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
        req: Request<WriteRequestBytes>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        self.0.check_running()?;
        let backfill = req
            .metadata()
            .get(BACKFILL_HEADER)
            .is_some_and(|v| v == "1");
        let mut resp = v1::WriteResponse::default();
        SCRATCH.with(|Scratch { view, arrays }| {
            let m = Incoming::read(&req.get_ref().0, view)?;
            self.0
                .authorize(&req, "/iocdb.v1.Ingest/Write", m.namespace)?;
            self.write_one(&m, &mut resp, backfill, arrays)
        })?;
        finish(resp)
    }

    async fn write_stream(
        &self,
        req: Request<Streaming<WriteRequestBytes>>,
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
                    // The client is still sending: what it sends is read (and dropped) for a
                    // moment, so that the answer reaches it before the connection closes
                    // (closed with unread bytes, it would be reset, the answer with it).
                    tokio::spawn(drain(stream));
                    break;
                }
                next = stream.message() => next,
            };
            match next {
                Ok(Some(msg)) => {
                    let index = resp.messages as u32;
                    let written = SCRATCH.with(|scratch| {
                        let m = Incoming::read(&msg.0, &mut scratch.view)?;
                        caller
                            .check(m.namespace, crate::auth::Role::Write)
                            .map_err(|denied| denied.status())?;
                        self.write_streamed(&m, &mut ids, &mut resp, index, &mut scratch.arrays)
                    });
                    if let Err(status) = written {
                        return Err(partial(status, &resp));
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
