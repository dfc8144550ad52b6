//! The province's metrics, as described in `shared/WORKLOAD.md`: ten domains, Vietnamese
//! commune names, each series with its own interval and value shape. Deterministic for a
//! given seed, and scaled by a factor (×0.01 for tests, ×1 for the province, ×100 for a
//! national centre).

use iocdb_engine::{Label, Sample, SeriesWrite, WriteRequest};

/// Commune and ward names of the province (a sample; more are made by numbering).
pub const COMMUNES: [&str; 20] = [
    "Phường Long Xuyên",
    "Phường Châu Đốc",
    "Xã Tri Tôn",
    "Phường Tân Châu",
    "Xã An Phú",
    "Xã Châu Phú",
    "Xã Chợ Mới",
    "Xã Phú Tân",
    "Xã Thoại Sơn",
    "Xã Tịnh Biên",
    "Phường Rạch Giá",
    "Phường Hà Tiên",
    "Đặc khu Phú Quốc",
    "Xã Kiên Lương",
    "Xã Hòn Đất",
    "Xã Tân Hiệp",
    "Xã Giồng Riềng",
    "Xã Gò Quao",
    "Xã An Biên",
    "Xã Vĩnh Thuận",
];

/// The value shape of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Small integer gauge with a daily rhythm and noise (people counted by a camera).
    CameraCount,
    /// Integer gauge that moves slowly (guests, beds, waiting patients).
    SlowGauge,
    /// Monotonic counter with small increments, occasionally reset.
    Counter,
    /// A ratio in [0, 1] reported in daytime only.
    Ratio,
    /// A float indicator with decimals (socio-economic).
    Indicator,
}

/// One kind of series in a domain.
#[derive(Debug, Clone)]
pub struct Family {
    /// Namespace (department).
    pub namespace: &'static str,
    /// Metric name.
    pub metric: &'static str,
    /// Source label name.
    pub source: &'static str,
    /// Number of series at ×1.
    pub series: usize,
    /// Reporting interval, ms.
    pub interval_ms: i64,
    /// Value shape.
    pub shape: Shape,
}

/// The families of the province at ×1 (17,110 series; ~700 samples/s).
pub fn families() -> Vec<Family> {
    use Shape::*;
    let f = |namespace, metric, source, series, interval_s: i64, shape| Family {
        namespace,
        metric,
        source,
        series,
        interval_ms: interval_s * 1000,
        shape,
    };
    vec![
        f(
            "security",
            "camera_people_count",
            "camera",
            3000,
            10,
            CameraCount,
        ),
        f(
            "security",
            "camera_vehicle_count",
            "camera",
            3000,
            10,
            CameraCount,
        ),
        f(
            "lodging",
            "lodging_guests",
            "facility",
            1500,
            300,
            SlowGauge,
        ),
        f(
            "lodging",
            "lodging_rooms_occupied",
            "facility",
            1500,
            300,
            SlowGauge,
        ),
        f(
            "health",
            "hospital_patients_waiting",
            "facility",
            150,
            60,
            SlowGauge,
        ),
        f(
            "health",
            "hospital_beds_occupied",
            "facility",
            150,
            60,
            SlowGauge,
        ),
        f(
            "health",
            "hospital_admissions_total",
            "facility",
            150,
            60,
            Counter,
        ),
        f(
            "education",
            "school_attendance_ratio",
            "school",
            1000,
            3600,
            Ratio,
        ),
        f(
            "procedures",
            "dossiers_received_total",
            "agency",
            300,
            60,
            Counter,
        ),
        f(
            "procedures",
            "dossiers_resolved_total",
            "agency",
            300,
            60,
            Counter,
        ),
        f(
            "procedures",
            "dossiers_overdue",
            "agency",
            300,
            60,
            SlowGauge,
        ),
        f(
            "documents",
            "documents_incoming_total",
            "agency",
            300,
            300,
            Counter,
        ),
        f(
            "documents",
            "documents_outgoing_total",
            "agency",
            300,
            300,
            Counter,
        ),
        f("tourism", "tourism_visitors_total", "site", 80, 60, Counter),
        f(
            "tourism",
            "tourism_visitors_current",
            "site",
            80,
            60,
            SlowGauge,
        ),
        f("social", "social_mentions_total", "topic", 600, 30, Counter),
        f(
            "feedback",
            "feedback_reports_total",
            "category",
            1200,
            60,
            Counter,
        ),
        f(
            "feedback",
            "feedback_resolved_total",
            "category",
            1200,
            60,
            Counter,
        ),
        f(
            "economy",
            "indicator_value",
            "indicator",
            2000,
            30 * 86400,
            Indicator,
        ),
    ]
}

/// One generated series.
#[derive(Debug, Clone)]
pub struct SeriesSpec {
    /// Namespace.
    pub namespace: &'static str,
    /// Labels.
    pub labels: Vec<Label>,
    /// Interval, ms.
    pub interval_ms: i64,
    /// Shape.
    pub shape: Shape,
    /// Per-series seed.
    pub seed: u64,
}

/// Writer `lane`'s share of `specs` among `lanes` writers: every `lanes`-th series, so that
/// each writer has part of every family and no series has two writers.
pub fn share(specs: &[SeriesSpec], lane: usize, lanes: usize) -> Vec<SeriesSpec> {
    specs
        .iter()
        .skip(lane)
        .step_by(lanes.max(1))
        .cloned()
        .collect()
}

/// The province's series at `scale` (at least one series per family).
pub fn series(scale: f64) -> Vec<SeriesSpec> {
    let mut out = Vec::new();
    for (fi, fam) in families().into_iter().enumerate() {
        let n = ((fam.series as f64 * scale).round() as usize).max(1);
        for i in 0..n {
            let commune = COMMUNES[i % COMMUNES.len()];
            let commune = if (i / COMMUNES.len()).is_multiple_of(5) {
                commune.to_owned()
            } else {
                format!("{commune} {}", i / COMMUNES.len() % 5)
            };
            let mut labels = vec![
                Label::new("__name__", fam.metric),
                Label::new("domain", fam.namespace),
                Label::new("commune", commune),
                Label::new(fam.source, format!("{}-{i:05}", fam.source)),
            ];
            if fam.shape == Shape::Indicator {
                labels.push(Label::new("unit", ["%", "tỷ đồng", "người", "ha"][i % 4]));
            }
            out.push(SeriesSpec {
                namespace: fam.namespace,
                labels,
                interval_ms: fam.interval_ms,
                shape: fam.shape,
                seed: splitmix((fi as u64) << 32 | i as u64),
            });
        }
    }
    out
}

/// A deterministic 64-bit mix.
pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The value of `spec` at sample number `k` (time `t`), or `None` for a gap.
pub fn value(spec: &SeriesSpec, k: i64, t: i64) -> Option<f64> {
    let r = splitmix(spec.seed ^ (k as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let hour = (t / 3_600_000).rem_euclid(24) as f64;
    let daily = (std::f64::consts::TAU * (hour - 6.0) / 24.0).sin();
    match spec.shape {
        Shape::CameraCount => {
            if r.is_multiple_of(200) {
                return None; // a camera drops a sample now and then
            }
            Some((12.0 + 10.0 * daily + (r % 6) as f64).max(0.0).round())
        }
        Shape::SlowGauge => {
            // Changes about every eighth sample.
            let step = splitmix(spec.seed ^ (k / 8) as u64);
            Some((40.0 + 20.0 * daily + (step % 10) as f64).round())
        }
        Shape::Counter => {
            let base = (spec.seed % 10_000) as f64;
            // A steady count of events: most intervals add the same amount, a few add more.
            let events = (k as f64) * (1 + spec.seed % 3) as f64 + (k / 17) as f64;
            Some(base + events + if r.is_multiple_of(50) { 1.0 } else { 0.0 })
        }
        Shape::Ratio => {
            if !(7.0..17.0).contains(&hour) {
                return None;
            }
            Some(((850 + r % 150) as f64 / 1000.0 * 100.0).round() / 100.0)
        }
        Shape::Indicator => Some((r % 1_000_000) as f64 / 100.0),
    }
}

/// When, after `start`, the series reports first: sources are not in lockstep.
pub fn phase(spec: &SeriesSpec) -> i64 {
    (spec.seed % spec.interval_ms.max(1) as u64) as i64 / 1000 * 1000
}

/// Generates `[start, end)` as write requests of about `batch_samples` samples each, in time
/// order, one namespace per request, as IOC services would send them.
pub fn batches(
    specs: &[SeriesSpec],
    start: i64,
    end: i64,
    batch_samples: usize,
) -> Vec<WriteRequest> {
    let tick = specs
        .iter()
        .map(|s| s.interval_ms)
        .min()
        .unwrap_or(10_000)
        .max(1);
    // Next sample number of each series.
    let mut next: Vec<i64> = vec![0; specs.len()];
    let mut out = Vec::new();
    let mut pending: std::collections::BTreeMap<&str, Vec<SeriesWrite>> = Default::default();
    let mut pending_samples = 0;
    let mut t = start;
    while t < end {
        let window_end = (t + tick).min(end);
        for (spec, k) in specs.iter().zip(next.iter_mut()) {
            let first = start + phase(spec);
            while first + *k * spec.interval_ms < window_end {
                let st = first + *k * spec.interval_ms;
                if let Some(v) = value(spec, *k, st) {
                    pending
                        .entry(spec.namespace)
                        .or_default()
                        .push(SeriesWrite {
                            labels: spec.labels.clone(),
                            samples: vec![Sample::new(st, v)],
                        });
                    pending_samples += 1;
                }
                *k += 1;
            }
        }
        t = window_end;
        if pending_samples >= batch_samples || t >= end {
            for (ns, series) in std::mem::take(&mut pending) {
                out.push(WriteRequest {
                    namespace: ns.to_owned(),
                    series,
                });
            }
            pending_samples = 0;
        }
    }
    out
}

/// Generates each series' whole history in `[start, end)` (a backfill upload: one series
/// with many samples per entry), grouped into requests of about `batch_samples` samples.
pub fn backfill(
    specs: &[SeriesSpec],
    start: i64,
    end: i64,
    batch_samples: usize,
) -> Vec<WriteRequest> {
    let mut out: Vec<WriteRequest> = Vec::new();
    let mut size = 0;
    for spec in specs {
        let first = start + phase(spec);
        let samples: Vec<Sample> = (0..)
            .map(|k| (k, first + k * spec.interval_ms))
            .take_while(|(_, t)| *t < end)
            .filter_map(|(k, t)| value(spec, k, t).map(|v| Sample::new(t, v)))
            .collect();
        if samples.is_empty() {
            continue;
        }
        let fits = out.last().is_some_and(|r| {
            r.namespace == spec.namespace && size + samples.len() <= batch_samples
        });
        if !fits {
            out.push(WriteRequest {
                namespace: spec.namespace.to_owned(),
                series: Vec::new(),
            });
            size = 0;
        }
        size += samples.len();
        if let Some(last) = out.last_mut() {
            last.series.push(SeriesWrite {
                labels: spec.labels.clone(),
                samples,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_province_has_about_seventeen_thousand_series() {
        let n = series(1.0).len();
        assert!((17_000..17_500).contains(&n), "{n}");
        assert!((150..200).contains(&series(0.01).len()));
    }

    #[test]
    fn live_batches_and_backfill_hold_the_same_samples() {
        let specs = series(0.01);
        let (start, end) = (
            1_700_000_000_000 - 1_700_000_000_000 % 86_400_000,
            1_700_000_000_000 - 1_700_000_000_000 % 86_400_000 + 3_600_000,
        );
        let count = |reqs: &[WriteRequest]| {
            reqs.iter()
                .flat_map(|r| &r.series)
                .map(|s| s.samples.len())
                .sum::<usize>()
        };
        let live = batches(&specs, start, end, 1000);
        let back = backfill(&specs, start, end, 1000);
        assert!(count(&live) > 20_000, "{}", count(&live));
        assert_eq!(count(&live), count(&back));
    }
}
