//! What the data-quality rules and arrival recording cost ingest by labels: the province's
//! 20 minutes written (a) with neither, (b) recording arrival delays only, (c) recording them
//! with every indicator declaring rules that its data keeps (a valid range, a required
//! label, a revision window, and the counter check for counters) under the policy `reject`,
//! (d) the same under `flag` (judged at apply time), so every sample is checked and none is
//! refused or flagged. Runs alternate; prints the median of each and the ratios to (a).
//!
//! `cargo run --release -p iocdb-benches --example quality_cost -- [runs] [writers]`
#![allow(clippy::indexing_slicing)]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use iocdb_benches::workload::{self, Shape};
use iocdb_engine::{Engine, MetricMetadata, Options, QualityPolicy, QualityRules};

fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let writers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let specs = workload::series(1.0);
    let start = workload::drive::day_start();
    let make = |lane, lanes| {
        workload::batches(
            &workload::share(&specs, lane, lanes),
            start,
            start + 20 * 60_000,
            10_000,
        )
    };
    let mut rates = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    // QUALITY_COST_ONLY=2 runs one setup alone (for a profiler).
    let only: Option<usize> = std::env::var("QUALITY_COST_ONLY")
        .ok()
        .and_then(|v| v.parse().ok());
    for run in 0..runs * 4 {
        let setup = run % 4;
        if only.is_some_and(|o| o != setup) {
            continue;
        }
        let dir = tempfile::tempdir().expect("dir");
        if setup >= 2 {
            let engine = Engine::open(dir.path(), Options::default()).expect("open");
            for fam in workload::families() {
                let entry = MetricMetadata {
                    metric: fam.metric.into(),
                    kind: if fam.shape == Shape::Counter {
                        "counter"
                    } else {
                        "gauge"
                    }
                    .into(),
                    department: fam.namespace.into(),
                    rules: QualityRules {
                        valid_min: Some(-1e12),
                        valid_max: Some(1e12),
                        required_labels: vec!["commune".into()],
                        revision_window_ms: Some(86_400_000),
                        max_change_factor: None,
                        policy: Some(if setup == 2 {
                            QualityPolicy::Reject
                        } else {
                            QualityPolicy::Flag
                        }),
                    },
                    ..Default::default()
                };
                engine.set_metadata(fam.namespace, entry).expect("declare");
            }
        }
        let opts = Options {
            record_arrivals: setup > 0,
            ..Options::default()
        };
        let rate = workload::drive::ingest(dir.path(), opts, make, writers);
        rates[setup].push(rate);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let m: Vec<f64> = rates.iter_mut().map(median).collect();
    println!(
        "{writers} writer(s), {runs} runs each, alternated (M samples/s): neither {:.2}, arrivals {:.2} ({:.3}), rules (reject) + arrivals {:.2} ({:.3}), rules (flag) + arrivals {:.2} ({:.3})",
        m[0] / 1e6,
        m[1] / 1e6,
        m[1] / m[0],
        m[2] / 1e6,
        m[2] / m[0],
        m[3] / 1e6,
        m[3] / m[0]
    );
    let show = |v: &[f64]| {
        v.iter()
            .map(|r| (r / 1e4).round() / 100.0)
            .collect::<Vec<_>>()
    };
    println!(
        "all runs: neither {:?}, arrivals {:?}, reject {:?}, flag {:?}",
        show(&rates[0]),
        show(&rates[1]),
        show(&rates[2]),
        show(&rates[3])
    );
}
