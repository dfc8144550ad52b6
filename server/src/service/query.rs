//! `iocdb.v1.Query`: raw selection, range queries, latest values, liveness, metadata.
//! Large answers are streamed in bounded messages.

use std::pin::Pin;
use std::sync::Arc;

use iocdb_engine::{LatestSample, PromqlQuery, PromqlResult, QueryValue, RangeQuery, SeriesFilter};
use iocdb_proto::v1::{self, query_server::Query};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::{AppState, deadline, now_ms};
use crate::convert;

/// The query service.
#[derive(Debug, Clone)]
pub struct QueryService(pub AppState);

type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Samples per streamed message: keeps messages well under the 4 MiB default.
const SAMPLES_PER_MESSAGE: usize = 100_000;

/// Splits series into messages of at most `max_series` series and about
/// [`SAMPLES_PER_MESSAGE`] samples.
fn batches(series: Vec<v1::Series>, max_series: usize) -> Vec<Vec<v1::Series>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut samples = 0;
    for s in series {
        let n = s.timestamps_ms.len();
        if !current.is_empty() && (current.len() >= max_series || samples + n > SAMPLES_PER_MESSAGE)
        {
            out.push(std::mem::take(&mut current));
            samples = 0;
        }
        samples += n;
        current.push(s);
    }
    if !current.is_empty() || out.is_empty() {
        out.push(current);
    }
    out
}

fn filter(f: v1::MetadataFilter) -> Result<SeriesFilter, Status> {
    Ok(SeriesFilter {
        namespace: f.namespace,
        matchers: convert::matchers(f.matchers)?,
        start: f.start_ms,
        end: if f.end_ms == 0 { now_ms() } else { f.end_ms },
        limit: if f.limit == 0 {
            10_000
        } else {
            f.limit as usize
        },
    })
}

impl QueryService {
    /// Runs a PromQL query and streams its answer in bounded messages.
    async fn promql(
        &self,
        q: PromqlQuery,
    ) -> Result<Response<Streamed<v1::PromqlResponse>>, Status> {
        let _place = self
            .0
            .limits
            .query_permit(&q.namespace)
            .map_err(|over| over.status())?;
        let q = PromqlQuery {
            max_samples: self.0.limits.query_max_samples(&q.namespace),
            ..q
        };
        let answer = crate::service::answered(self.0.query(&q))?;
        let messages = promql_messages(answer, self.0.config.query_batch_series);
        Ok(Response::new(Box::pin(tokio_stream::iter(
            messages.into_iter().map(Ok),
        ))))
    }
}

/// A PromQL answer as messages: series split by [`batches`], the cost on the last one.
fn promql_messages(answer: PromqlResult, max_series: usize) -> Vec<v1::PromqlResponse> {
    use v1::promql_response::ResultType;
    let empty = |t: ResultType| v1::PromqlResponse {
        result_type: t as i32,
        ..Default::default()
    };
    let mut messages = match answer.value {
        QueryValue::Scalar(s) => vec![v1::PromqlResponse {
            scalar: s.v,
            timestamp_ms: s.t,
            ..empty(ResultType::Scalar)
        }],
        QueryValue::String(t, value) => vec![v1::PromqlResponse {
            string_value: value,
            timestamp_ms: t,
            ..empty(ResultType::String)
        }],
        QueryValue::Vector(v) => {
            let series = v
                .iter()
                .map(|s| convert::series_out(&s.labels, std::slice::from_ref(&s.sample)))
                .collect();
            batches(series, max_series)
                .into_iter()
                .map(|series| v1::PromqlResponse {
                    series,
                    ..empty(ResultType::Vector)
                })
                .collect()
        }
        QueryValue::Matrix(m) => {
            let series = m
                .iter()
                .map(|s| convert::series_out(&s.labels, &s.points))
                .collect();
            batches(series, max_series)
                .into_iter()
                .map(|series| v1::PromqlResponse {
                    series,
                    ..empty(ResultType::Matrix)
                })
                .collect()
        }
    };
    if let Some(last) = messages.last_mut() {
        last.series_read = answer.series_read;
        last.samples_read = answer.samples_read;
        last.steps_from_cache = answer.steps_from_cache;
        last.rollup_buckets = answer.rollup_buckets;
        last.rollup_tier_ms = answer.rollup_tier_ms;
    }
    messages
}

#[tonic::async_trait]
impl Query for QueryService {
    type SelectStream = Streamed<v1::SeriesBatch>;
    type QueryRangeStream = Streamed<v1::RangeQueryResponse>;
    type InstantStream = Streamed<v1::PromqlResponse>;
    type RangeStream = Streamed<v1::PromqlResponse>;
    type WatchStream = Streamed<v1::WatchResponse>;

    async fn instant(
        &self,
        req: Request<v1::InstantQueryRequest>,
    ) -> Result<Response<Self::InstantStream>, Status> {
        self.0.check_running()?;
        self.0
            .authorize(&req, "/iocdb.v1.Query/Instant", &req.get_ref().namespace)?;
        let deadline = deadline(&req);
        let r = req.into_inner();
        let time = if r.time_ms == 0 { now_ms() } else { r.time_ms };
        let q = PromqlQuery {
            lookback_ms: r.lookback_ms,
            deadline,
            ..PromqlQuery::instant(r.namespace, r.query, time)
        };
        self.promql(q).await
    }

    async fn range(
        &self,
        req: Request<v1::PromqlRangeRequest>,
    ) -> Result<Response<Self::RangeStream>, Status> {
        self.0.check_running()?;
        self.0
            .authorize(&req, "/iocdb.v1.Query/Range", &req.get_ref().namespace)?;
        let deadline = deadline(&req);
        let r = req.into_inner();
        if r.step_ms <= 0 {
            return Err(Status::invalid_argument(format!(
                "step_ms must be positive, got {}",
                r.step_ms
            )));
        }
        let q = PromqlQuery {
            lookback_ms: r.lookback_ms,
            deadline,
            ..PromqlQuery::range(r.namespace, r.query, r.start_ms, r.end_ms, r.step_ms)
        };
        self.promql(q).await
    }

    async fn select(
        &self,
        req: Request<v1::SelectRequest>,
    ) -> Result<Response<Self::SelectStream>, Status> {
        self.0.check_running()?;
        self.0
            .authorize(&req, "/iocdb.v1.Query/Select", &req.get_ref().namespace)?;
        let _place = self
            .0
            .limits
            .query_permit(&req.get_ref().namespace)
            .map_err(|over| over.status())?;
        let r = req.into_inner();
        let matchers = convert::matchers(r.matchers)?;
        let found = self
            .0
            .blocking(move |e| e.select(&r.namespace, &matchers, r.start_ms, r.end_ms))
            .await?;
        let series: Vec<v1::Series> = found
            .iter()
            .map(|s| convert::series_out(&s.labels, &s.samples))
            .collect();
        let messages = batches(series, self.0.config.query_batch_series)
            .into_iter()
            .map(|series| Ok(v1::SeriesBatch { series }));
        Ok(Response::new(Box::pin(tokio_stream::iter(messages))))
    }

    async fn query_range(
        &self,
        req: Request<v1::RangeQueryRequest>,
    ) -> Result<Response<Self::QueryRangeStream>, Status> {
        self.0.check_running()?;
        self.0
            .authorize(&req, "/iocdb.v1.Query/QueryRange", &req.get_ref().namespace)?;
        let deadline = deadline(&req);
        let r = req.into_inner();
        let q = RangeQuery {
            namespace: r.namespace,
            matchers: convert::matchers(r.matchers)?,
            start: r.start_ms,
            end: r.end_ms,
            step: r.step_ms,
            function: r.function.map(convert::function).transpose()?,
            aggregation: r.aggregation.map(convert::aggregation).transpose()?,
            lookback_ms: r.lookback_ms,
            deadline,
            max_samples: None,
        };
        let _place = self
            .0
            .limits
            .query_permit(&q.namespace)
            .map_err(|over| over.status())?;
        let q = RangeQuery {
            max_samples: self.0.limits.query_max_samples(&q.namespace),
            ..q
        };
        let result = self.0.blocking(move |e| e.query_range(&q)).await?;
        let series: Vec<v1::Series> = result
            .series
            .iter()
            .map(|s| convert::series_out(&s.labels, &s.points))
            .collect();
        let mut messages: Vec<v1::RangeQueryResponse> =
            batches(series, self.0.config.query_batch_series)
                .into_iter()
                .map(|series| v1::RangeQueryResponse {
                    series,
                    series_read: 0,
                    samples_read: 0,
                })
                .collect();
        if let Some(last) = messages.last_mut() {
            last.series_read = result.series_read;
            last.samples_read = result.samples_read;
        }
        Ok(Response::new(Box::pin(tokio_stream::iter(
            messages.into_iter().map(Ok),
        ))))
    }

    async fn latest(
        &self,
        req: Request<v1::LatestRequest>,
    ) -> Result<Response<v1::LatestResponse>, Status> {
        self.0.check_running()?;
        self.0
            .authorize(&req, "/iocdb.v1.Query/Latest", &req.get_ref().namespace)?;
        let _place = self
            .0
            .limits
            .query_permit(&req.get_ref().namespace)
            .map_err(|over| over.status())?;
        let r = req.into_inner();
        let matchers = convert::matchers(r.matchers)?;
        let at = if r.at_ms == 0 { now_ms() } else { r.at_ms };
        let lookback = if r.lookback_ms == 0 {
            iocdb_engine::DEFAULT_LOOKBACK_MS
        } else {
            r.lookback_ms
        };
        let found: Vec<LatestSample> = self
            .0
            .blocking(move |e| e.latest(&r.namespace, &matchers, at, lookback))
            .await?;
        let samples = found
            .iter()
            .map(|l| v1::LatestSample {
                labels: convert::labels_out(&l.labels),
                timestamp_ms: l.sample.t,
                value: l.sample.v,
            })
            .collect();
        Ok(Response::new(v1::LatestResponse { samples }))
    }

    async fn stale(
        &self,
        req: Request<v1::StaleRequest>,
    ) -> Result<Response<v1::StaleResponse>, Status> {
        self.0.check_running()?;
        self.0
            .authorize(&req, "/iocdb.v1.Query/Stale", &req.get_ref().namespace)?;
        let _place = self
            .0
            .limits
            .query_permit(&req.get_ref().namespace)
            .map_err(|over| over.status())?;
        let r = req.into_inner();
        let matchers = convert::matchers(r.matchers)?;
        let at = if r.at_ms == 0 { now_ms() } else { r.at_ms };
        let factor = if r.factor == 0.0 { 3.0 } else { r.factor };
        if !(factor.is_finite() && factor > 0.0) {
            return Err(Status::invalid_argument(format!(
                "factor must be positive, got {factor}"
            )));
        }
        let found = self
            .0
            .blocking(move |e| e.stale_series(&r.namespace, &matchers, at, factor))
            .await?;
        let series = found.iter().map(convert::stale_out).collect();
        Ok(Response::new(v1::StaleResponse { series }))
    }

    async fn watch(
        &self,
        req: Request<v1::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.0.check_running()?;
        self.0
            .authorize(&req, "/iocdb.v1.Query/Watch", &req.get_ref().namespace)?;
        let r = req.into_inner();
        let matchers = convert::matchers(r.matchers)?;
        let capacity = match r.buffer {
            0 => 10_000,
            n => (n as usize).min(1_000_000),
        };
        if !r.promql.is_empty() {
            let step = match r.step_ms {
                0 => 60_000,
                s if s > 0 => s,
                s => {
                    return Err(Status::invalid_argument(format!(
                        "step_ms must be positive, got {s}"
                    )));
                }
            };
            let (tx, rx) = tokio::sync::mpsc::channel(16);
            super::live::run(self.0.clone(), r.namespace, r.promql, step, capacity, tx).await?;
            return Ok(Response::new(Box::pin(
                tokio_stream::wrappers::ReceiverStream::new(rx),
            )));
        }
        let notify = Arc::new(tokio::sync::Notify::new());
        let wake = notify.clone();
        let sub = self
            .0
            .blocking(move |e| {
                e.watch(
                    &r.namespace,
                    matchers,
                    capacity,
                    Arc::new(move || wake.notify_one()),
                )
            })
            .await?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let mut stop = self.0.shutdown.clone();
        tokio::spawn(async move {
            loop {
                for message in crate::convert::watch_messages(&sub) {
                    if tx.send(Ok(message)).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    _ = notify.notified() => {}
                    _ = tx.closed() => return,
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn completeness(
        &self,
        req: Request<v1::CompletenessRequest>,
    ) -> Result<Response<v1::CompletenessResponse>, Status> {
        self.0.check_running()?;
        const METHOD: &str = "/iocdb.v1.Query/Completeness";
        self.0.authorize(&req, METHOD, &req.get_ref().namespace)?;
        let _place = self
            .0
            .limits
            .query_permit(&req.get_ref().namespace)
            .map_err(|over| over.status())?;
        let r = req.into_inner();
        let now = now_ms();
        let q = iocdb_engine::CompletenessQuery {
            matchers: convert::matchers(r.matchers)?,
            start: r.start_ms,
            end: if r.end_ms == 0 { now } else { r.end_ms },
            by: r.by,
        };
        let factor = if r.silent_factor == 0.0 {
            3.0
        } else {
            r.silent_factor
        };
        if !(factor.is_finite() && factor > 0.0) {
            return Err(Status::invalid_argument(format!(
                "silent_factor must be positive, got {factor}"
            )));
        }
        let at = q.end.min(now);
        let report = self
            .0
            .blocking(move |e| e.completeness(&r.namespace, &q, at, factor))
            .await?;
        Ok(Response::new(convert::completeness_out(report)))
    }

    async fn series(
        &self,
        req: Request<v1::MetadataFilter>,
    ) -> Result<Response<v1::SeriesResponse>, Status> {
        self.0
            .authorize(&req, "/iocdb.v1.Query/Series", &req.get_ref().namespace)?;
        let f = filter(req.into_inner())?;
        let found = self.0.blocking(move |e| e.series(&f)).await?;
        let series = found
            .iter()
            .map(|l| v1::LabelSet {
                labels: convert::labels_out(l),
            })
            .collect();
        Ok(Response::new(v1::SeriesResponse { series }))
    }

    async fn label_names(
        &self,
        req: Request<v1::MetadataFilter>,
    ) -> Result<Response<v1::LabelNamesResponse>, Status> {
        self.0
            .authorize(&req, "/iocdb.v1.Query/LabelNames", &req.get_ref().namespace)?;
        let f = filter(req.into_inner())?;
        let names = self.0.blocking(move |e| e.label_names(&f)).await?;
        Ok(Response::new(v1::LabelNamesResponse { names }))
    }

    async fn label_values(
        &self,
        req: Request<v1::LabelValuesRequest>,
    ) -> Result<Response<v1::LabelValuesResponse>, Status> {
        let namespace = req
            .get_ref()
            .filter
            .as_ref()
            .map(|f| f.namespace.clone())
            .unwrap_or_default();
        self.0
            .authorize(&req, "/iocdb.v1.Query/LabelValues", &namespace)?;
        let r = req.into_inner();
        let f = filter(r.filter.unwrap_or_default())?;
        let name = r.name;
        let values = self.0.blocking(move |e| e.label_values(&f, &name)).await?;
        Ok(Response::new(v1::LabelValuesResponse { values }))
    }
}
