//! `Query.Watch` with a PromQL expression: the expression's selectors are watched, and each
//! time new samples arrive the expression is evaluated again at the steps they touch (the
//! first step of the `step_ms` grid at or after each sample) and those points are sent — a
//! wall screen's panel kept current without polling. At most [`MAX_STEPS`] steps are
//! recomputed per round, the newest; a gap recomputes the steps it spans within that bound.

use std::collections::BTreeSet;
use std::sync::Arc;

use iocdb_engine::{PromqlQuery, QueryValue, Subscription, WatchEvent};
use iocdb_proto::v1;
use tokio::sync::{Notify, mpsc, watch};
use tonic::Status;

use super::AppState;
use crate::convert;

/// Most steps recomputed in one round.
pub const MAX_STEPS: usize = 100;

/// Subscribes to every selector of `expr` in `namespace` and streams recomputed points into
/// `tx` until the client goes or the server stops.
pub async fn run(
    state: AppState,
    namespace: String,
    expr: String,
    step: i64,
    capacity: usize,
    tx: mpsc::Sender<Result<v1::WatchResponse, Status>>,
) -> Result<(), Status> {
    let plan = iocdb_engine::query::parse(&expr).map_err(crate::status::to_status)?;
    let selectors: Vec<_> = plan
        .selectors()
        .into_iter()
        .map(|s| s.matchers.clone())
        .collect();
    if selectors.is_empty() {
        return Err(Status::invalid_argument(
            "the expression selects no series: there is nothing to watch",
        ));
    }
    let notify = Arc::new(Notify::new());
    let mut subs = Vec::new();
    for matchers in selectors {
        let (ns, wake) = (namespace.clone(), notify.clone());
        let sub = state
            .blocking(move |e| {
                e.watch(&ns, matchers, capacity, Arc::new(move || wake.notify_one()))
            })
            .await?;
        subs.push(sub);
    }
    let stop = state.shutdown.clone();
    tokio::spawn(stream_points(
        state, namespace, expr, step, subs, notify, tx, stop,
    ));
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn stream_points(
    state: AppState,
    namespace: String,
    expr: String,
    step: i64,
    subs: Vec<Subscription>,
    notify: Arc<Notify>,
    tx: mpsc::Sender<Result<v1::WatchResponse, Status>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let steps = touched(&subs, step);
        for at in steps {
            let q = PromqlQuery::instant(namespace.clone(), expr.clone(), at);
            let answer = match state.blocking(move |e| e.query(&q)).await {
                Ok(a) => a,
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            };
            let points = match answer.value {
                QueryValue::Vector(v) => v
                    .iter()
                    .map(|s| convert::series_out(&s.labels, std::slice::from_ref(&s.sample)))
                    .collect(),
                QueryValue::Scalar(s) => {
                    vec![convert::series_out(&Default::default(), &[s])]
                }
                QueryValue::String(..) | QueryValue::Matrix(_) => Vec::new(),
            };
            let message = v1::WatchResponse {
                points,
                ..Default::default()
            };
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
}

/// The steps the queued events touch, the newest [`MAX_STEPS`], in time order.
fn touched(subs: &[Subscription], step: i64) -> Vec<i64> {
    let at = |t: i64| t.div_euclid(step) * step + if t.rem_euclid(step) == 0 { 0 } else { step };
    let mut steps = BTreeSet::new();
    for sub in subs {
        while let Some(event) = sub.try_recv() {
            match event {
                WatchEvent::Samples { samples, .. } => {
                    steps.extend(samples.iter().map(|s| at(s.t)));
                }
                WatchEvent::Gap { from, to, .. } => {
                    let (first, last) = (at(from), at(to));
                    let span = ((last - first) / step) as usize;
                    let skip = span.saturating_sub(MAX_STEPS);
                    steps.extend((skip..=span).map(|k| first + k as i64 * step));
                }
            }
            while steps.len() > MAX_STEPS {
                steps.pop_first();
            }
        }
    }
    steps.into_iter().collect()
}
