//! `iocdb serve --demo`: the server fed by the simulated province (`benches/workload`), so
//! that a newcomer sees live data within seconds — each indicator declared in the catalog
//! (owner, unit, interval, a valid range for camera counts), the last 24 hours backfilled,
//! then every second the samples that fell due, with the province's misbehaviour included:
//! sources silent a quarter of every hour, one department sending ten minutes late in
//! batches, now and then a camera count of −1 (flagged by the catalog's range).

use std::sync::Arc;
use std::time::Duration;

use iocdb_engine::{Engine, MetricMetadata, QualityRules, WriteRequest};
use iocdb_workload::live::Live;
use iocdb_workload::{Shape, families, series};
use tokio::sync::watch;

/// The department that owns each demo namespace.
fn department(namespace: &str) -> &'static str {
    match namespace {
        "security" => "Công an tỉnh An Giang",
        "lodging" | "tourism" => "Sở Văn hóa, Thể thao và Du lịch",
        "health" => "Sở Y tế",
        "education" => "Sở Giáo dục và Đào tạo",
        "procedures" => "Trung tâm Phục vụ hành chính công",
        "documents" => "Văn phòng UBND tỉnh",
        "social" => "Sở Khoa học và Công nghệ",
        "feedback" => "Trung tâm Giám sát, điều hành đô thị thông minh",
        "economy" => "Sở Tài chính",
        _ => "",
    }
}

/// Declares every demo indicator in the catalog.
fn declare(engine: &Engine) -> iocdb_engine::Result<()> {
    for fam in families() {
        let kind = match fam.shape {
            Shape::Counter => "counter",
            Shape::Ratio => "ratio",
            Shape::Indicator => "monthly",
            Shape::CameraCount | Shape::SlowGauge => "gauge",
        };
        let rules = match fam.shape {
            Shape::CameraCount => QualityRules {
                valid_min: Some(0.0),
                valid_max: Some(500.0),
                required_labels: vec!["commune".into()],
                ..Default::default()
            },
            _ => QualityRules::default(),
        };
        let entry = MetricMetadata {
            metric: fam.metric.into(),
            kind: kind.into(),
            department: department(fam.namespace).into(),
            expected_interval_ms: Some(fam.interval_ms),
            description: format!("{} ({})", fam.metric.replace('_', " "), fam.namespace),
            rules,
            ..Default::default()
        };
        engine.set_metadata(fam.namespace, entry)?;
    }
    Ok(())
}

/// Writes requests, a few thousand series at a time (as history when `backfill`).
fn write_all(
    engine: &Engine,
    requests: Vec<WriteRequest>,
    backfill: bool,
) -> iocdb_engine::Result<u64> {
    let mut accepted = 0;
    for r in requests {
        let ns = r.namespace;
        let mut series = r.series;
        while !series.is_empty() {
            let rest = series.split_off(series.len().min(2_000));
            let chunk = std::mem::replace(&mut series, rest);
            let req = WriteRequest {
                namespace: ns.clone(),
                series: chunk,
            };
            let outcome = if backfill {
                engine.write_backfill(req)?
            } else {
                engine.write(req)?
            };
            accepted += outcome.accepted as u64;
        }
    }
    Ok(accepted)
}

/// Feeds the province at `scale` into `engine` until `stop`.
pub async fn feed(engine: Arc<Engine>, scale: f64, mut stop: watch::Receiver<bool>) {
    let now = crate::service::now_ms();
    let day = 86_400_000;
    let origin = now - now.rem_euclid(day) - day;
    let prepared = {
        let engine = engine.clone();
        tokio::task::spawn_blocking(move || {
            declare(&engine)?;
            let mut live = Live::new(series(scale), origin, now - day);
            let backfilled = write_all(&engine, live.due(now), true)?;
            Ok::<_, iocdb_engine::Error>((live, backfilled))
        })
        .await
    };
    let mut live = match prepared {
        Ok(Ok((live, backfilled))) => {
            tracing::info!(
                scale,
                backfilled,
                "demo: the province's last 24 hours are in; live samples follow every second"
            );
            live
        }
        Ok(Err(e)) => return tracing::error!(error = %e, "demo: the backfill failed"),
        Err(e) => return tracing::error!(error = %e, "demo: the backfill panicked"),
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let due = live.due(crate::service::now_ms());
        let engine = engine.clone();
        match tokio::task::spawn_blocking(move || write_all(&engine, due, false)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "demo: a live write failed"),
            Err(e) => tracing::error!(error = %e, "demo: a live write panicked"),
        }
    }
}
