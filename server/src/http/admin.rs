//! The Prometheus TSDB admin endpoints that iocdb has the same operation for: deleting
//! series (`delete_series`, with Prometheus' parameters and its 204) and applying the
//! deletions for good (`clean_tombstones`, which runs a compaction).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use iocdb_engine::query::parse::series_selector;

use super::params::Params;
use super::{ApiError, Namespace, blocking};
use crate::service::AppState;

/// `POST|PUT /api/v1/admin/tsdb/delete_series`: the samples in `[start, end]` (default: all
/// time) of the series any `match[]` selects, as written until now.
pub async fn delete_series(
    State(state): State<AppState>,
    Namespace(ns): Namespace,
    p: Params,
) -> Result<Response, ApiError> {
    let start = p.time("start")?.unwrap_or(i64::MIN);
    let end = p.time("end")?.unwrap_or(i64::MAX);
    let selectors = p.all("match[]");
    if selectors.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let selections = selectors
        .into_iter()
        .map(series_selector)
        .collect::<Result<Vec<_>, _>>()?;
    blocking(&state, move |e| {
        for matchers in &selections {
            e.delete(&ns, matchers, start, end)?;
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST|PUT /api/v1/admin/tsdb/clean_tombstones`: compacts now, which removes deleted
/// samples from disk and drops the tombstones it applied.
pub async fn clean_tombstones(State(state): State<AppState>) -> Result<Response, ApiError> {
    blocking(&state, |e| {
        e.flush()?;
        e.compact()
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
