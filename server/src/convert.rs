//! Conversion between wire types (`iocdb.v1`) and engine types, at the server's edge.

use std::borrow::Cow;
use std::ops::Range;

use iocdb_engine::scratch::recycle;
use iocdb_engine::{
    AggregateOp, Aggregation, CompletenessReport, FunctionKind, Grouping, Labels, MatchOp, Matcher,
    MetricMetadata, QualityPolicy, QualityReport, QualityRules, RangeFunction, RawLabel,
    RawSeriesWrite, RawWriteRequest, RejectReason, Rejection, Sample, SeriesBy, SeriesHandle,
    StaleSeries, Subscription, WatchEvent, WriteOutcome, echo,
};
use iocdb_proto::v1;
use iocdb_proto::wire::LabelSpans;
use tonic::Status;

/// Most rejections listed in one answer; the count covers all of them.
pub const MAX_LISTED_REJECTIONS: usize = 1000;

/// Labels read in place (spans of the message `buf`) as the engine takes them, byte slices
/// not yet checked (`Engine::write_raw`).
pub fn raw_labels<'a>(buf: &'a [u8], spans: &[LabelSpans]) -> Vec<RawLabel<'a>> {
    spans.iter().map(|l| raw_label(buf, l)).collect()
}

/// One label read in place as the engine takes it.
fn raw_label<'a>(buf: &'a [u8], l: &LabelSpans) -> RawLabel<'a> {
    RawLabel::new(l.name.of(buf), l.value.of(buf))
}

/// The arrays a write read in place hands the engine — its labels as slices of the message,
/// its samples, its series — kept in a front door's pooled scratch for the next request
/// (see `iocdb_engine::scratch`): fresh, they took over half the page faults of a
/// remote-write run (BENCHMARKS.md, "A request's arrays kept for the next").
#[derive(Debug, Default)]
pub struct RawArrays {
    labels: Vec<RawLabel<'static>>,
    samples: Vec<Sample>,
    /// Each series: how it is named and its samples, as a range of the array above.
    entries: Vec<(Named<'static>, Range<usize>)>,
    series: Vec<RawSeriesWrite<'static>>,
}

/// How a series of a message read in place is named: by its labels (a range of the
/// message's label spans), by a series the caller holds (a stream's id), or not at all
/// (refused by the caller, with why).
#[derive(Debug)]
pub enum Named<'h> {
    /// By the labels at this range of the message's label spans.
    Labels(Range<usize>),
    /// By a series resolved before.
    Handle(&'h SeriesHandle),
    /// Refused before the engine.
    Refused(RejectReason),
}

impl RawArrays {
    /// Runs `write` with the request of `namespace` whose labels are `spans` of `buf` and
    /// whose series are `series`: each how it is named and its samples.
    pub fn write<'b, 'h, R, S: IntoIterator<Item = Sample>>(
        &mut self,
        namespace: &str,
        buf: &'b [u8],
        spans: &[LabelSpans],
        series: impl Iterator<Item = (Named<'h>, S)>,
        write: impl FnOnce(RawWriteRequest<'_>) -> R,
    ) -> R {
        let mut labels: Vec<RawLabel<'b>> = recycle(std::mem::take(&mut self.labels));
        labels.extend(spans.iter().map(|l| raw_label(buf, l)));
        self.samples.clear();
        let mut entries: Vec<(Named<'h>, Range<usize>)> =
            recycle(std::mem::take(&mut self.entries));
        for (named, samples) in series {
            let from = self.samples.len();
            self.samples.extend(samples);
            entries.push((named, from..self.samples.len()));
        }
        let mut raw = recycle(std::mem::take(&mut self.series));
        raw.extend(entries.drain(..).map(|(named, at)| RawSeriesWrite {
            by: match named {
                Named::Labels(of) => SeriesBy::Labels(labels.get(of).unwrap_or_default()),
                Named::Handle(handle) => SeriesBy::Handle(handle),
                Named::Refused(reason) => SeriesBy::Refused(reason),
            },
            samples: Cow::Borrowed(self.samples.get(at).unwrap_or_default()),
        }));
        let answer = write(RawWriteRequest {
            namespace,
            series: &raw,
        });
        self.series = recycle(raw);
        self.entries = recycle(entries);
        self.labels = recycle(labels);
        answer
    }
}

/// Engine labels onto the wire.
pub fn labels_out(labels: &Labels) -> Vec<v1::Label> {
    labels
        .iter()
        .map(|l| v1::Label {
            name: l.name.clone(),
            value: l.value.clone(),
        })
        .collect()
}

/// One rejection onto the wire.
pub fn rejection(r: &Rejection, message_index: u32) -> v1::Rejection {
    v1::Rejection {
        series_index: r.series_index as u32,
        sample_index: r.sample_index.map(|i| i as u32),
        samples: r.samples as u64,
        reason: r.reason.kind().to_owned(),
        message: r.reason.to_string(),
        message_index,
    }
}

/// Adds an outcome to a wire answer.
pub fn add_outcome(resp: &mut v1::WriteResponse, outcome: &WriteOutcome, message_index: u32) {
    resp.accepted += outcome.accepted as u64;
    resp.rejected += outcome.rejected_samples() as u64;
    let room = MAX_LISTED_REJECTIONS.saturating_sub(resp.rejections.len());
    resp.rejections.extend(
        outcome
            .rejected
            .iter()
            .take(room)
            .map(|r| rejection(r, message_index)),
    );
}

/// A compaction's report onto the wire.
pub fn compact_response(r: iocdb_engine::CompactReport) -> v1::CompactResponse {
    v1::CompactResponse {
        windows: r.windows as u64,
        segments_in: r.segments_in as u64,
        segments_out: r.segments_out as u64,
        samples: r.samples,
        bytes_in: r.bytes_in,
        bytes_out: r.bytes_out,
        skipped: r.skipped.unwrap_or_default(),
    }
}

/// Wire matchers into engine matchers.
pub fn matchers(ms: Vec<v1::Matcher>) -> Result<Vec<Matcher>, Status> {
    ms.into_iter()
        .map(|m| {
            let op = match v1::matcher::Op::try_from(m.op) {
                Ok(v1::matcher::Op::Equal) => MatchOp::Equal,
                Ok(v1::matcher::Op::NotEqual) => MatchOp::NotEqual,
                Ok(v1::matcher::Op::Regex) => MatchOp::Regex,
                Ok(v1::matcher::Op::NotRegex) => MatchOp::NotRegex,
                Err(_) => {
                    return Err(Status::invalid_argument(format!(
                        "matcher on {}: unknown operator {}",
                        iocdb_engine::echo(&m.name),
                        m.op
                    )));
                }
            };
            Matcher::new(m.name, op, m.value).map_err(crate::status::to_status)
        })
        .collect()
}

/// A wire range function into the engine's.
pub fn function(f: v1::RangeFunction) -> Result<RangeFunction, Status> {
    use v1::range_function::Kind;
    let kind = match Kind::try_from(f.kind) {
        Ok(Kind::Rate) => FunctionKind::Rate,
        Ok(Kind::Increase) => FunctionKind::Increase,
        Ok(Kind::Delta) => FunctionKind::Delta,
        Ok(Kind::Irate) => FunctionKind::Irate,
        Ok(Kind::AvgOverTime) => FunctionKind::AvgOverTime,
        Ok(Kind::MinOverTime) => FunctionKind::MinOverTime,
        Ok(Kind::MaxOverTime) => FunctionKind::MaxOverTime,
        Ok(Kind::SumOverTime) => FunctionKind::SumOverTime,
        Ok(Kind::CountOverTime) => FunctionKind::CountOverTime,
        Ok(Kind::LastOverTime) => FunctionKind::LastOverTime,
        Ok(Kind::QuantileOverTime) => FunctionKind::QuantileOverTime(f.quantile),
        Ok(Kind::StddevOverTime) => FunctionKind::StddevOverTime,
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "unknown range function {}",
                f.kind
            )));
        }
    };
    Ok(RangeFunction {
        kind,
        window_ms: f.window_ms,
    })
}

/// A wire aggregation into the engine's.
pub fn aggregation(a: v1::Aggregation) -> Result<Aggregation, Status> {
    use v1::aggregation::Op;
    let k = || -> Result<usize, Status> {
        if a.param.is_finite() && a.param >= 1.0 && a.param.fract() == 0.0 {
            Ok(a.param as usize)
        } else {
            Err(Status::invalid_argument(format!(
                "k of topk/bottomk must be a positive integer, got {}",
                a.param
            )))
        }
    };
    let op = match Op::try_from(a.op) {
        Ok(Op::Sum) => AggregateOp::Sum,
        Ok(Op::Avg) => AggregateOp::Avg,
        Ok(Op::Min) => AggregateOp::Min,
        Ok(Op::Max) => AggregateOp::Max,
        Ok(Op::Count) => AggregateOp::Count,
        Ok(Op::Quantile) => AggregateOp::Quantile(a.param),
        Ok(Op::Stddev) => AggregateOp::Stddev,
        Ok(Op::Topk) => AggregateOp::Topk(k()?),
        Ok(Op::Bottomk) => AggregateOp::Bottomk(k()?),
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "unknown aggregation {}",
                a.op
            )));
        }
    };
    let grouping = match (a.by.is_empty(), a.without.is_empty()) {
        (_, true) => Grouping::By(a.by),
        (true, false) => Grouping::Without(a.without),
        (false, false) => {
            return Err(Status::invalid_argument(
                "an aggregation groups by or without labels, not both",
            ));
        }
    };
    Ok(Aggregation { op, grouping })
}

/// Engine samples as a wire series.
pub fn series_out(labels: &Labels, samples: &[Sample]) -> v1::Series {
    v1::Series {
        labels: labels_out(labels),
        timestamps_ms: samples.iter().map(|s| s.t).collect(),
        values: samples.iter().map(|s| s.v).collect(),
        stream_id: 0,
    }
}

/// A wire catalog entry into its namespace and the engine's entry.
pub fn catalog_entry_in(m: v1::MetricMetadata) -> Result<(String, MetricMetadata), Status> {
    let policy = match m.quality_policy.as_str() {
        "" => None,
        p => Some(QualityPolicy::parse(p).ok_or_else(|| {
            Status::invalid_argument(format!(
                "quality_policy {} is not one of {}",
                echo(p),
                QualityPolicy::NAMES.join(", ")
            ))
        })?),
    };
    let entry = MetricMetadata {
        metric: m.metric,
        unit: m.unit,
        description: m.description,
        expected_interval_ms: m.expected_interval_ms,
        kind: m.kind,
        department: m.department,
        contact: m.contact,
        rules: QualityRules {
            valid_min: m.valid_min,
            valid_max: m.valid_max,
            required_labels: m.required_labels,
            revision_window_ms: m.revision_window_ms,
            max_change_factor: m.max_change_factor,
            policy,
        },
    };
    Ok((m.namespace, entry))
}

/// The engine's catalog entry of `namespace` on the wire.
pub fn catalog_entry_out(namespace: &str, m: MetricMetadata) -> v1::MetricMetadata {
    let r = m.rules;
    v1::MetricMetadata {
        namespace: namespace.to_owned(),
        metric: m.metric,
        unit: m.unit,
        description: m.description,
        expected_interval_ms: m.expected_interval_ms,
        kind: m.kind,
        department: m.department,
        contact: m.contact,
        valid_min: r.valid_min,
        valid_max: r.valid_max,
        required_labels: r.required_labels,
        revision_window_ms: r.revision_window_ms,
        max_change_factor: r.max_change_factor,
        quality_policy: r.policy.map(|p| p.name().to_owned()).unwrap_or_default(),
    }
}

/// A data-quality report on the wire; `departments` names each metric's owner.
pub fn quality_out(
    report: QualityReport,
    departments: &std::collections::HashMap<String, String>,
) -> v1::QualityResponse {
    let department = |metric: &str| departments.get(metric).cloned().unwrap_or_default();
    v1::QualityResponse {
        counts: report
            .counts
            .into_iter()
            .map(|c| v1::QualityCount {
                department: department(&c.metric),
                metric: c.metric,
                rule: c.rule.kind().to_owned(),
                action: c.action.name().to_owned(),
                samples: c.samples,
            })
            .collect(),
        events: report
            .events
            .into_iter()
            .map(|e| v1::QualityEvent {
                arrival_ms: e.arrival_ms,
                metric: e.metric,
                series: e.series,
                rule: e.rule.kind().to_owned(),
                action: e.action.name().to_owned(),
                samples: e.samples,
                timestamp_ms: e.timestamp,
                value: e.value,
                detail: e.detail,
            })
            .collect(),
    }
}

/// A silent series on the wire.
pub fn stale_out(s: &StaleSeries) -> v1::StaleSeries {
    v1::StaleSeries {
        labels: labels_out(&s.labels),
        last_timestamp_ms: s.last.map(|x| x.t),
        last_value: s.last.map(|x| x.v),
        expected_interval_ms: s.expected_interval_ms,
        silent_ms: s.silent_ms,
    }
}

/// A completeness report on the wire.
pub fn completeness_out(r: CompletenessReport) -> v1::CompletenessResponse {
    v1::CompletenessResponse {
        groups: r
            .figures
            .groups
            .iter()
            .map(|g| v1::CompletenessGroup {
                metric: g.metric.clone(),
                department: g.department.clone(),
                labels: r
                    .figures
                    .by
                    .iter()
                    .zip(&g.labels)
                    .map(|(name, value)| v1::Label {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                series: g.series,
                expected: g.expected,
                received: g.received,
                gaps: g.gaps,
                ratio: g.ratio(),
            })
            .collect(),
        gaps: r
            .figures
            .gaps
            .iter()
            .map(|g| v1::CompletenessGap {
                labels: labels_out(&g.labels),
                start_ms: g.start,
                end_ms: g.end,
                missing: g.missing,
                open: g.open,
                interval_ms: g.interval_ms,
            })
            .collect(),
        silent: r.silent.iter().map(stale_out).collect(),
        silent_by_metric: r.silent_by_metric.into_iter().collect(),
        delays: r
            .delays
            .into_iter()
            .map(|d| v1::ArrivalDelay {
                metric: d.metric,
                samples: d.samples,
                p50_ms: d.p50_ms,
                p99_ms: d.p99_ms,
                max_ms: d.max_ms,
            })
            .collect(),
        unjudged_series: r.figures.unjudged_series,
    }
}

/// Most series in one Watch message.
const WATCH_BATCH: usize = 1000;

/// What a subscription has queued, as Watch messages: runs of samples, a gap alone, in
/// their order.
pub fn watch_messages(sub: &Subscription) -> Vec<v1::WatchResponse> {
    let mut out = Vec::new();
    let mut series = Vec::new();
    while let Some(event) = sub.try_recv() {
        match event {
            WatchEvent::Samples { labels, samples } => {
                series.push(series_out(&labels, &samples));
                if series.len() >= WATCH_BATCH {
                    out.push(v1::WatchResponse {
                        series: std::mem::take(&mut series),
                        ..Default::default()
                    });
                }
            }
            WatchEvent::Gap { lost, from, to } => {
                if !series.is_empty() {
                    out.push(v1::WatchResponse {
                        series: std::mem::take(&mut series),
                        ..Default::default()
                    });
                }
                out.push(v1::WatchResponse {
                    gap: Some(v1::WatchGap {
                        lost,
                        from_ms: from,
                        to_ms: to,
                    }),
                    ..Default::default()
                });
            }
        }
    }
    if !series.is_empty() {
        out.push(v1::WatchResponse {
            series,
            ..Default::default()
        });
    }
    out
}

#[cfg(test)]
mod tests {
    /// The rejection reasons the API documents are exactly the engine's.
    #[test]
    fn the_proto_documents_every_rejection_reason_and_no_other() {
        let proto = include_str!("../../proto/proto/iocdb/v1/iocdb.proto");
        let start = proto.find("string reason = 4;").expect("the reason field");
        let comment = proto
            .get(..start)
            .and_then(|s| s.rsplit("// Why").next())
            .unwrap_or("");
        let documented: Vec<&str> = comment.split('"').skip(1).step_by(2).collect();
        assert_eq!(documented, iocdb_engine::RejectReason::KINDS);
    }
}
