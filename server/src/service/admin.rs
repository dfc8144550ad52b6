//! `iocdb.v1.Admin`: flush, compaction, deletion, export, inspection, verification,
//! snapshots and backups, stats and indicator metadata.

use iocdb_engine::QualityFilter;
use iocdb_engine::query::parse::series_selector;
use iocdb_proto::v1::{self, admin_server::Admin};
use serde_json::json;
use tonic::{Request, Response, Status};

use super::AppState;
use crate::{convert, status};

/// The admin service.
#[derive(Debug, Clone)]
pub struct AdminService(pub AppState);

#[tonic::async_trait]
impl Admin for AdminService {
    async fn flush(
        &self,
        req: Request<v1::FlushRequest>,
    ) -> Result<Response<v1::FlushResponse>, Status> {
        const METHOD: &str = "/iocdb.v1.Admin/Flush";
        let caller = self.0.authorize(&req, METHOD, "")?;
        let result = self.0.blocking(crate::service::flush).await;
        self.0.audited(&caller, METHOD, "", json!({}), &result);
        let r = result?;
        Ok(Response::new(v1::FlushResponse {
            segments: r.segments as u64,
            samples: r.samples,
            bytes: r.bytes,
        }))
    }

    async fn compact(
        &self,
        req: Request<v1::CompactRequest>,
    ) -> Result<Response<v1::CompactResponse>, Status> {
        const METHOD: &str = "/iocdb.v1.Admin/Compact";
        let caller = self.0.authorize(&req, METHOD, "")?;
        let before = match req.into_inner().before_ms {
            0 => i64::MAX,
            t => t,
        };
        let result = self.0.blocking(move |e| e.compact_before(before)).await;
        self.0
            .audited(&caller, METHOD, "", json!({"before_ms": before}), &result);
        let r = result?;
        Ok(Response::new(convert::compact_response(r)))
    }

    async fn delete(
        &self,
        req: Request<v1::DeleteRequest>,
    ) -> Result<Response<v1::DeleteResponse>, Status> {
        const METHOD: &str = "/iocdb.v1.Admin/Delete";
        let caller = self.0.authorize(&req, METHOD, &req.get_ref().namespace)?;
        let r = req.into_inner();
        let arguments = json!({
            "selector": r.selector,
            "matchers": r.matchers.iter().map(|m| format!("{}{}{:?}", m.name, m.op, m.value)).collect::<Vec<_>>(),
            "start_ms": r.start_ms,
            "end_ms": r.end_ms,
        });
        let matchers = match (r.matchers.is_empty(), r.selector.is_empty()) {
            (false, true) => convert::matchers(r.matchers)?,
            (true, false) => series_selector(&r.selector).map_err(status::to_status)?,
            _ => {
                return Err(Status::invalid_argument(
                    "give either matchers or a selector, not both or neither",
                ));
            }
        };
        let namespace = r.namespace;
        let (start, end) = (r.start_ms.unwrap_or(i64::MIN), r.end_ms.unwrap_or(i64::MAX));
        let ns = namespace.clone();
        let result = self
            .0
            .blocking(move |e| e.delete(&ns, &matchers, start, end))
            .await;
        self.0
            .audited(&caller, METHOD, &namespace, arguments, &result);
        let report = result?;
        Ok(Response::new(v1::DeleteResponse {
            series: report.series,
        }))
    }

    type ExportStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<v1::SeriesBatch, Status>> + Send>>;

    async fn export(
        &self,
        req: Request<v1::ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        const METHOD: &str = "/iocdb.v1.Admin/Export";
        let caller = self.0.authorize(&req, METHOD, &req.get_ref().namespace)?;
        self.0.check_running()?;
        let r = req.into_inner();
        // An export hands out a department's whole history: recorded when it starts.
        self.0.audited(
            &caller,
            METHOD,
            &r.namespace,
            json!({"selector": r.selector, "start_ms": r.start_ms, "end_ms": r.end_ms}),
            &Ok::<(), Status>(()),
        );
        let matchers = match (r.matchers.is_empty(), r.selector.is_empty()) {
            (_, true) => convert::matchers(r.matchers)?,
            (true, false) => series_selector(&r.selector).map_err(status::to_status)?,
            (false, false) => {
                return Err(Status::invalid_argument(
                    "give either matchers or a selector, not both",
                ));
            }
        };
        let range = (r.start_ms.unwrap_or(i64::MIN), r.end_ms.unwrap_or(i64::MAX));
        let per_message = self.0.config.query_batch_series.max(1);
        // A few messages in flight: the export reads no faster than the client takes them.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<v1::SeriesBatch, Status>>(4);
        let engine = self.0.engine.clone();
        tokio::task::spawn_blocking(move || {
            let mut batch = Vec::with_capacity(per_message);
            let mut client_gone = false;
            let result = engine.export(&r.namespace, &matchers, range, 256, &mut |s| {
                batch.push(convert::series_out(&s.labels, &s.samples));
                if batch.len() == per_message {
                    let series = std::mem::replace(&mut batch, Vec::with_capacity(per_message));
                    if tx.blocking_send(Ok(v1::SeriesBatch { series })).is_err() {
                        client_gone = true;
                        return Err(iocdb_engine::Error::Internal("the client went away".into()));
                    }
                }
                Ok(())
            });
            let last = match result {
                // Nobody to tell.
                _ if client_gone => return,
                Ok(_) if batch.is_empty() => return,
                Ok(_) => Ok(v1::SeriesBatch { series: batch }),
                Err(e) => Err(status::to_status(e)),
            };
            let _ = tx.blocking_send(last);
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn snapshot(
        &self,
        req: Request<v1::SnapshotRequest>,
    ) -> Result<Response<v1::SnapshotResponse>, Status> {
        const METHOD: &str = "/iocdb.v1.Admin/Snapshot";
        let caller = self.0.authorize(&req, METHOD, "")?;
        let r = req.into_inner();
        if r.to.is_empty() {
            return Err(Status::invalid_argument(
                "to: the target directory is required",
            ));
        }
        let arguments = json!({"to": r.to, "backup": r.backup});
        let result = self
            .0
            .blocking(move |e| {
                if r.backup {
                    e.backup(&r.to)
                } else {
                    e.snapshot(&r.to)
                }
            })
            .await;
        self.0.audited(&caller, METHOD, "", arguments, &result);
        let report = result?;
        Ok(Response::new(v1::SnapshotResponse {
            segments_linked: report.segments_linked as u64,
            segments_copied: report.segments_copied as u64,
            segments_kept: report.segments_kept as u64,
            segments_removed: report.segments_removed as u64,
            wal_files: report.wal_files as u64,
            bytes_copied: report.bytes_copied,
        }))
    }

    async fn stats(
        &self,
        req: Request<v1::StatsRequest>,
    ) -> Result<Response<v1::StatsResponse>, Status> {
        self.0.authorize(&req, "/iocdb.v1.Admin/Stats", "")?;
        let s = self.0.blocking(|e| Ok(e.stats())).await?;
        Ok(Response::new(v1::StatsResponse {
            series: s.series,
            head_series: s.head_series,
            series_evicted: s.series_evicted,
            series_revived: s.series_revived,
            head_samples: s.head_samples,
            head_bytes: s.head_bytes,
            segments: s.segments,
            segment_samples: s.segment_samples,
            segment_bytes: s.segment_bytes,
            accepted_samples: s.accepted_samples,
            rejected_samples: s
                .rejected_samples
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            series_by_namespace: s.series_by_namespace.into_iter().collect(),
            disk_bytes_by_namespace: s.disk_bytes_by_namespace.into_iter().collect(),
            head_bytes_by_namespace: s.head_bytes_by_namespace.into_iter().collect(),
            head_share_by_namespace: s.head_share_by_namespace.into_iter().collect(),
            quarantined: s
                .quarantined
                .into_iter()
                .map(|q| v1::Quarantined {
                    file: q.file.display().to_string(),
                    moved_to: q.moved_to.display().to_string(),
                    reason: q.reason,
                })
                .collect(),
            writes_stopped: s.writes_stopped.unwrap_or_default(),
            write_recoveries: s.write_recoveries,
            damaged_rollup_reads: s.damaged_rollup_reads,
            last_damaged_rollup: s.last_damaged_rollup.unwrap_or_default(),
            wal_files_cut: s.wal_files_cut,
            wal_bytes_cut: s.wal_bytes_cut,
            query_cache: Some(v1::QueryCacheStats {
                lookups: s.query_cache.lookups,
                hits: s.query_cache.hits,
                steps_reused: s.query_cache.steps_reused,
                steps_computed: s.query_cache.steps_computed,
                invalidations: s.query_cache.invalidations,
                evictions: s.query_cache.evictions,
                coalesced: s.query_cache.coalesced,
                entries: s.query_cache.entries,
                bytes: s.query_cache.bytes,
                limit_bytes: s.query_cache.limit_bytes,
            }),
        }))
    }

    async fn inspect(
        &self,
        req: Request<v1::InspectRequest>,
    ) -> Result<Response<v1::InspectResponse>, Status> {
        self.0.authorize(&req, "/iocdb.v1.Admin/Inspect", "")?;
        let i = self.0.blocking(|e| Ok(e.inspect())).await?;
        Ok(Response::new(v1::InspectResponse {
            segments: i
                .segments
                .into_iter()
                .map(|s| v1::SegmentInfo {
                    name: s.name,
                    seq: s.seq,
                    min_t_ms: s.min_t,
                    max_t_ms: s.max_t,
                    series: s.series,
                    samples: s.samples,
                    bytes: s.bytes,
                    rollup_bytes: s.rollup_bytes,
                })
                .collect(),
            series_by_metric: i
                .series_by_metric
                .into_iter()
                .map(|((namespace, metric), series)| v1::MetricSeries {
                    namespace,
                    metric,
                    series,
                })
                .collect(),
            bytes_per_sample_by_namespace: i.bytes_per_sample_by_namespace.into_iter().collect(),
            label_cardinality: i
                .label_cardinality
                .into_iter()
                .map(|(name, values)| v1::LabelCardinality { name, values })
                .collect(),
            wal_files: i.wal_files,
            wal_bytes: i.wal_bytes,
            head_samples: i.head_samples,
            head_bytes: i.head_bytes,
            tombstones: i.tombstones,
        }))
    }

    async fn verify(
        &self,
        req: Request<v1::VerifyRequest>,
    ) -> Result<Response<v1::VerifyResponse>, Status> {
        self.0.authorize(&req, "/iocdb.v1.Admin/Verify", "")?;
        let r = self.0.blocking(|e| e.verify_live()).await?;
        Ok(Response::new(v1::VerifyResponse {
            segments: r.segments,
            chunks: r.chunks,
            samples: r.samples,
            wal_files: r.wal_files,
            wal_frames: r.wal_frames,
            problems: r
                .problems
                .into_iter()
                .map(|p| v1::Problem {
                    file: p.file.display().to_string(),
                    offset: p.offset,
                    reason: p.reason,
                })
                .collect(),
        }))
    }

    async fn set_metadata(
        &self,
        req: Request<v1::MetricMetadata>,
    ) -> Result<Response<v1::SetMetadataResponse>, Status> {
        const METHOD: &str = "/iocdb.v1.Admin/SetMetadata";
        let caller = self.0.authorize(&req, METHOD, &req.get_ref().namespace)?;
        let m = req.into_inner();
        let arguments = json!({"metric": m.metric, "unit": m.unit, "description": m.description,
            "expected_interval_ms": m.expected_interval_ms, "kind": m.kind,
            "department": m.department, "contact": m.contact, "valid_min": m.valid_min,
            "valid_max": m.valid_max, "required_labels": m.required_labels,
            "revision_window_ms": m.revision_window_ms, "max_change_factor": m.max_change_factor,
            "quality_policy": m.quality_policy});
        let (ns, meta) = convert::catalog_entry_in(m)?;
        let namespace = ns.clone();
        let result = self.0.blocking(move |e| e.set_metadata(&ns, meta)).await;
        self.0
            .audited(&caller, METHOD, &namespace, arguments, &result);
        result?;
        Ok(Response::new(v1::SetMetadataResponse {}))
    }

    async fn get_metadata(
        &self,
        req: Request<v1::GetMetadataRequest>,
    ) -> Result<Response<v1::GetMetadataResponse>, Status> {
        self.0.authorize(
            &req,
            "/iocdb.v1.Admin/GetMetadata",
            &req.get_ref().namespace,
        )?;
        let ns = req.into_inner().namespace;
        let ns2 = ns.clone();
        let found = self.0.blocking(move |e| e.metadata(&ns2)).await?;
        let metrics = found
            .into_iter()
            .map(|m| convert::catalog_entry_out(&ns, m))
            .collect();
        Ok(Response::new(v1::GetMetadataResponse { metrics }))
    }

    async fn quality(
        &self,
        req: Request<v1::QualityRequest>,
    ) -> Result<Response<v1::QualityResponse>, Status> {
        self.0
            .authorize(&req, "/iocdb.v1.Admin/Quality", &req.get_ref().namespace)?;
        let r = req.into_inner();
        let namespace = iocdb_engine::Namespace::new(&r.namespace)
            .map_err(Status::invalid_argument)?
            .to_string();
        let filter = QualityFilter {
            namespace: Some(namespace.clone()),
            metric: (!r.metric.is_empty()).then_some(r.metric),
            since_ms: r.since_ms,
            limit: match r.limit {
                0 => 100,
                n => (n as usize).min(iocdb_engine::MAX_QUALITY_EVENTS),
            },
        };
        let (report, catalog) = self
            .0
            .blocking(move |e| Ok((e.quality(&filter), e.metadata(&namespace)?)))
            .await?;
        let departments = catalog
            .into_iter()
            .map(|m| (m.metric, m.department))
            .collect();
        Ok(Response::new(convert::quality_out(report, &departments)))
    }
}
