//! What the data-quality rules cost ingest by labels: the province's 20 minutes written with
//! no catalog, and with every indicator declaring rules that its data keeps (a valid range,
//! a required label, a revision window, and the counter check for counters), so every sample
//! is checked and none is flagged. Runs alternate; prints the median of each and the ratio.
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
    let make = || workload::batches(&specs, start, start + 20 * 60_000, 10_000);
    let mut rates = [Vec::new(), Vec::new()];
    for run in 0..runs * 2 {
        let with_rules = run % 2 == 1;
        let dir = tempfile::tempdir().expect("dir");
        if with_rules {
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
                        policy: Some(QualityPolicy::Reject),
                    },
                    ..Default::default()
                };
                engine.set_metadata(fam.namespace, entry).expect("declare");
            }
        }
        let rate = workload::drive::ingest(dir.path(), Options::default(), make, writers);
        rates[usize::from(with_rules)].push(rate);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (off, on) = (median(&mut rates[0]), median(&mut rates[1]));
    println!(
        "{writers} writer(s), {runs} runs each, alternated: without rules {:.2} M samples/s, with rules {:.2} M samples/s, ratio {:.3}",
        off / 1e6,
        on / 1e6,
        on / off
    );
    println!(
        "all runs (M/s): without {:?}, with {:?}",
        rates[0]
            .iter()
            .map(|r| (r / 1e4).round() / 100.0)
            .collect::<Vec<_>>(),
        rates[1]
            .iter()
            .map(|r| (r / 1e4).round() / 100.0)
            .collect::<Vec<_>>()
    );
}
