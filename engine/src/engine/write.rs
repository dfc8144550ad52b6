//! Writing: validate, resolve series, append to the WAL, wait for durability, apply to the
//! head, acknowledge.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use super::Engine;
use crate::index::Series;
use crate::model::{
    Labels, Namespace, RejectReason, Rejection, Sample, WriteOutcome, WriteRequest,
};
use crate::wal::{frame, record};
use crate::{Error, Result};

impl Engine {
    /// Stores a batch. Bad series and samples are rejected one by one, with reasons, and the
    /// good ones beside them are stored. When this returns `Ok`, the accepted samples are
    /// durable (under the configured fsync policy) and visible to every later query.
    ///
    /// Errors (nothing of the batch stored): [`Error::ResourceExhausted`] when the head's
    /// memory budget or the disk is full, [`Error::WritesStopped`] after a failed fsync,
    /// [`Error::Closed`].
    pub fn write(&self, req: WriteRequest) -> Result<WriteOutcome> {
        let inner = &*self.inner;
        inner.check_open()?;
        if let Some(e) = inner.wal.failure().filter(|e| !e.is_disk_full()) {
            return Err(e);
        }
        let budget = inner.opts.head_memory_budget;
        let used = inner.head_bytes.load(Ordering::Relaxed).max(0) as usize;
        if used >= budget {
            return Err(Error::ResourceExhausted {
                limit: "head_memory_budget",
                detail: format!(
                    "the head holds {used} bytes, its budget is {budget}; flush, or retry later"
                ),
            });
        }

        let mut outcome = WriteOutcome::default();
        let batch = self.validate(req, &mut outcome);
        for r in &outcome.rejected {
            if let Some(counter) = inner.rejections.get(r.reason.index()) {
                counter.fetch_add(r.samples as u64, Ordering::Relaxed);
            }
        }
        if batch.is_empty() {
            return Ok(outcome);
        }

        let mut payload =
            Vec::with_capacity(16 + batch.iter().map(|(_, s)| 12 + s.len() * 16).sum::<usize>());
        crate::codec::varint::put_u64(&mut payload, batch.len() as u64);
        for (series, samples) in &batch {
            record::encode_samples(&mut payload, series.id, samples);
        }
        let mut frames = Vec::with_capacity(payload.len() + frame::HEADER_LEN);
        frame::encode(&mut frames, record::KIND_SAMPLES, &payload);

        let _gate = inner.gate.read();
        inner.check_open()?;
        let ticket = inner
            .wal
            .append(&frames, |file| series_defs(file, &batch))?;
        inner.wal.commit(ticket)?;
        let (mut accepted, mut grown) = (0, 0);
        for (series, samples) in batch {
            accepted += samples.len();
            grown += series.head.append(samples);
        }
        inner.add_head_bytes(grown);
        inner.accepted.fetch_add(accepted as u64, Ordering::Relaxed);
        outcome.accepted = accepted;
        Ok(outcome)
    }

    /// Checks every series and sample; returns the accepted ones and records the rest.
    fn validate(
        &self,
        req: WriteRequest,
        outcome: &mut WriteOutcome,
    ) -> Vec<(Arc<Series>, Vec<Sample>)> {
        let inner = &*self.inner;
        let limits = &inner.opts.limits;
        let reject_series = |outcome: &mut WriteOutcome, i, n, reason| {
            outcome.rejected.push(Rejection {
                series_index: i,
                sample_index: None,
                samples: n,
                reason,
            })
        };
        let namespace = match Namespace::new(&req.namespace) {
            Ok(ns) => ns,
            Err(detail) => {
                for (i, s) in req.series.iter().enumerate() {
                    let reason = RejectReason::InvalidNamespace {
                        detail: detail.clone(),
                    };
                    reject_series(outcome, i, s.samples.len(), reason);
                }
                return Vec::new();
            }
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let max_t = now.saturating_add(limits.max_future.as_millis() as i64);
        let min_t = inner
            .opts
            .retention
            .map_or(i64::MIN, |r| now.saturating_sub(r.as_millis() as i64));

        let mut batch = Vec::with_capacity(req.series.len());
        for (i, write) in req.series.into_iter().enumerate() {
            let n = write.samples.len();
            let series = Labels::validate(write.labels, limits).and_then(|labels| {
                inner
                    .index
                    .get_or_create(&namespace, labels, Some(limits.max_series_per_namespace))
            });
            let series = match series {
                Ok(s) => s,
                Err(reason) => {
                    reject_series(outcome, i, n, reason);
                    continue;
                }
            };
            let mut samples = write.samples;
            if samples.iter().any(|s| s.t > max_t || s.t < min_t) {
                let mut index = 0;
                samples.retain(|s| {
                    let reason = if s.t > max_t {
                        Some(RejectReason::TooFarInFuture {
                            timestamp: s.t,
                            max: max_t,
                        })
                    } else if s.t < min_t {
                        Some(RejectReason::TooOld {
                            timestamp: s.t,
                            min: min_t,
                        })
                    } else {
                        None
                    };
                    if let Some(reason) = reason {
                        outcome.rejected.push(Rejection {
                            series_index: i,
                            sample_index: Some(index),
                            samples: 1,
                            reason,
                        });
                    }
                    index += 1;
                    s.t <= max_t && s.t >= min_t
                });
            }
            if !samples.is_empty() {
                batch.push((series, samples));
            }
        }
        batch
    }
}

/// The definitions frame for the batch's series not yet defined in WAL file `file`.
fn series_defs(file: u64, batch: &[(Arc<Series>, Vec<Sample>)]) -> Option<Vec<u8>> {
    let mut payload = Vec::new();
    let mut count = 0u64;
    for (series, _) in batch {
        if series.wal_file.load(Ordering::Relaxed) != file {
            series.wal_file.store(file, Ordering::Relaxed);
            record::encode_series_def(
                &mut payload,
                series.id,
                series.namespace.as_str(),
                &series.labels,
            );
            count += 1;
        }
    }
    if count == 0 {
        return None;
    }
    let mut full = Vec::with_capacity(payload.len() + 10);
    crate::codec::varint::put_u64(&mut full, count);
    full.extend_from_slice(&payload);
    let mut out = Vec::with_capacity(full.len() + frame::HEADER_LEN);
    frame::encode(&mut out, record::KIND_SERIES, &full);
    Some(out)
}
