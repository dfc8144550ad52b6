//! The dashboard queries of `shared/WORKLOAD.md`, as engine queries, and a loader that fills
//! a store with the province workload. Used by the query report and by the peer comparison.

use iocdb_engine::{
    AggregateOp, Aggregation, Engine, FunctionKind, Grouping, Matcher, RangeFunction, RangeQuery,
};

use crate::workload::{self, SeriesSpec};

/// One dashboard query, with its PromQL twin for the peers.
#[derive(Debug, Clone)]
pub struct DashboardQuery {
    /// Short name.
    pub name: &'static str,
    /// The same query in PromQL (what VictoriaMetrics and Prometheus are asked).
    pub promql: String,
    /// What iocdb is asked.
    pub kind: QueryKind,
}

/// An iocdb query.
#[derive(Debug, Clone)]
pub enum QueryKind {
    /// A range query.
    Range(RangeQuery),
    /// Series silent for more than `factor` intervals at `at`.
    Stale {
        /// Namespace.
        namespace: &'static str,
        /// At.
        at: i64,
        /// Factor.
        factor: f64,
    },
}

fn name(metric: &str) -> Matcher {
    Matcher::equal("__name__", metric)
}

/// The seven queries of WORKLOAD.md, evaluated at `now` over a store whose data ends there.
pub fn queries(now: i64) -> Vec<DashboardQuery> {
    let h = 3_600_000;
    let by = |l: &str| Grouping::By(vec![l.to_owned()]);
    let range = |ns: &str, m: Vec<Matcher>, span: i64, step: i64| {
        RangeQuery::new(ns, m, now - span, now, step)
    };
    let mut q1 = range("lodging", vec![name("lodging_guests")], 0, 60_000);
    q1.aggregation = Some(Aggregation {
        op: AggregateOp::Sum,
        grouping: by("commune"),
    });
    let q2 = range(
        "health",
        vec![
            name("hospital_patients_waiting"),
            Matcher::equal("facility", "facility-00007"),
        ],
        24 * h,
        60_000,
    );
    let mut q3 = range("lodging", vec![name("lodging_guests")], 24 * h, 300_000);
    q3.aggregation = Some(Aggregation {
        op: AggregateOp::Sum,
        grouping: by("commune"),
    });
    let mut q4 = range(
        "procedures",
        vec![name("dossiers_resolved_total")],
        7 * 24 * h,
        h,
    );
    q4.function = Some(RangeFunction {
        kind: FunctionKind::Rate,
        window_ms: h,
    });
    q4.aggregation = Some(Aggregation {
        op: AggregateOp::Sum,
        grouping: by("agency"),
    });
    let mut q5 = range("security", vec![name("camera_people_count")], 6 * h, 60_000);
    q5.aggregation = Some(Aggregation {
        op: AggregateOp::Max,
        grouping: Grouping::By(vec![]),
    });
    let mut q6 = range(
        "health",
        vec![name("hospital_patients_waiting")],
        30 * 24 * h,
        h,
    );
    q6.aggregation = Some(Aggregation {
        op: AggregateOp::Quantile(0.95),
        grouping: Grouping::By(vec![]),
    });
    let mut q8 = range(
        "health",
        vec![name("hospital_patients_waiting")],
        365 * 24 * h,
        24 * h,
    );
    q8.aggregation = Some(Aggregation {
        op: AggregateOp::Quantile(0.95),
        grouping: Grouping::By(vec![]),
    });
    vec![
        DashboardQuery {
            name: "1 latest per commune (map tile)",
            promql: "sum by (commune) (lodging_guests)".into(),
            kind: QueryKind::Range(q1),
        },
        DashboardQuery {
            name: "2 one series, 24 h at 1 min",
            promql: "hospital_patients_waiting{facility=\"facility-00007\"}".into(),
            kind: QueryKind::Range(q2),
        },
        DashboardQuery {
            name: "3 sum by commune, 24 h at 5 min",
            promql: "sum by (commune) (lodging_guests)".into(),
            kind: QueryKind::Range(q3),
        },
        DashboardQuery {
            name: "4 rate by agency, 7 d at 1 h",
            promql: "sum by (agency) (rate(dossiers_resolved_total[1h]))".into(),
            kind: QueryKind::Range(q4),
        },
        DashboardQuery {
            name: "5 max over 3,000 cameras, 6 h at 1 min",
            promql: "max(camera_people_count)".into(),
            kind: QueryKind::Range(q5),
        },
        DashboardQuery {
            name: "6 p95 across hospitals, 30 d at 1 h",
            promql: "quantile(0.95, hospital_patients_waiting)".into(),
            kind: QueryKind::Range(q6),
        },
        DashboardQuery {
            name: "8 p95 across hospitals, 365 d at 1 d",
            promql: "quantile(0.95, hospital_patients_waiting)".into(),
            kind: QueryKind::Range(q8),
        },
        DashboardQuery {
            name: "7 sources silent > 3 intervals",
            promql: String::new(),
            kind: QueryKind::Stale {
                namespace: "lodging",
                at: now,
                factor: 3.0,
            },
        },
    ]
}

/// Times every query of [`queries`] at `end` whose name passes `only`, `repeats` times with
/// one client and about as many spread over eight, and prints a Markdown table.
pub fn print_latency(engine: &Engine, end: i64, repeats: usize, only: &dyn Fn(&str) -> bool) {
    use std::time::{Duration, Instant};

    use crate::report::percentile_ms;
    println!(
        "| query | result series | samples read | 1 client p50 | 1 client p99 | 8 clients p50 | 8 clients p99 | samples read/s (1 client) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for q in queries(end - 60_000).into_iter().filter(|q| only(q.name)) {
        let (series, samples) = run(engine, &q);
        let mut one: Vec<Duration> = (0..repeats)
            .map(|_| {
                let t = Instant::now();
                run(engine, &q);
                t.elapsed()
            })
            .collect();
        let mut eight: Vec<Duration> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        (0..repeats.div_ceil(4))
                            .map(|_| {
                                let t = Instant::now();
                                run(engine, &q);
                                t.elapsed()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("client"))
                .collect()
        });
        let p50 = percentile_ms(&mut one, 0.5);
        let rate = if matches!(q.kind, QueryKind::Stale { .. }) {
            "—".to_owned()
        } else {
            format!("{:.0} M", samples as f64 / (p50 / 1e3) / 1e6)
        };
        println!(
            "| {} | {series} | {samples} | {p50:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {rate} |",
            q.name,
            percentile_ms(&mut one, 0.99),
            percentile_ms(&mut eight, 0.5),
            percentile_ms(&mut eight, 0.99),
        );
    }
}

/// Runs one query; returns the number of result series and samples read.
pub fn run(engine: &Engine, q: &DashboardQuery) -> (usize, u64) {
    match &q.kind {
        QueryKind::Range(r) => {
            let res = engine
                .query_range(r)
                .unwrap_or_else(|e| panic!("{}: {e}", q.name));
            (res.series.len(), res.samples_read)
        }
        QueryKind::Stale {
            namespace,
            at,
            factor,
        } => {
            let res = engine
                .stale_series(namespace, &[], *at, *factor)
                .unwrap_or_else(|e| panic!("{}: {e}", q.name));
            (res.len(), 0)
        }
    }
}

/// Fills `engine` with `[start, end)` of the workload, a few hundred series at a time, and
/// flushes; returns the samples written.
pub fn load(engine: &Engine, specs: &[SeriesSpec], start: i64, end: i64) -> u64 {
    let mut n = 0;
    for chunk in specs.chunks(300) {
        for r in workload::backfill(chunk, start, end, 100_000) {
            n += engine
                .write(r)
                .unwrap_or_else(|e| panic!("write: {e}"))
                .accepted as u64;
        }
        if engine.stats().head_bytes > 512 << 20 {
            engine.flush().unwrap_or_else(|e| panic!("flush: {e}"));
        }
    }
    engine.flush().unwrap_or_else(|e| panic!("flush: {e}"));
    n
}
