//! Differential test against a real Prometheus 2.42: the same generated data written to both
//! by remote write, a few hundred seeded random PromQL expressions asked of both through
//! `/api/v1/query_range`, and the answers compared point by point (NaN equal to NaN,
//! relative tolerance 1e-9). The data has NaN, ±Inf, huge and tiny values, counter resets,
//! gaps, staleness markers, and label sets that collide once the metric name is dropped.

use std::collections::BTreeMap;

use iocdb_proto::prompb;
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::harness::{Server, enc, http_request, now_ms};
use crate::peers;

const STALE: u64 = 0x7ff0_0000_0000_0002;
pub const INTERVAL_MS: i64 = 15_000;
pub const SAMPLES: i64 = 200;

/// Expressions per run; the ignored long run asks many more.
const EXPRESSIONS: usize = 300;

pub fn data(end: i64, rng: &mut StdRng) -> Vec<prompb::TimeSeries> {
    let start = end - (SAMPLES - 1) * INTERVAL_MS;
    let label = |k: &str, v: &str| prompb::Label {
        name: k.into(),
        value: v.into(),
    };
    let mut out = Vec::new();
    let mut push = |name: &str, labels: Vec<(&str, &str)>, values: Vec<Option<f64>>| {
        let mut l = vec![label("__name__", name)];
        l.extend(labels.iter().map(|(k, v)| label(k, v)));
        l.sort_by(|a, b| a.name.cmp(&b.name));
        out.push(prompb::TimeSeries {
            labels: l,
            samples: values
                .into_iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    v.map(|value| prompb::Sample {
                        value,
                        timestamp: start + i as i64 * INTERVAL_MS,
                    })
                })
                .collect(),
            histograms: vec![],
        });
    };
    for job in ["a", "b"] {
        for inst in ["i1", "i2", "i3"] {
            // A counter with resets.
            let mut c = 0.0;
            let counter = (0..SAMPLES)
                .map(|_| {
                    if rng.random_bool(0.03) {
                        c = 0.0;
                    }
                    c += rng.random_range(0.0..10.0f64).floor();
                    Some(c)
                })
                .collect();
            push("cnt", vec![("job", job), ("instance", inst)], counter);
            // A gauge with special values.
            let gauge = (0..SAMPLES)
                .map(|_| {
                    Some(match rng.random_range(0..40) {
                        0 => f64::NAN,
                        1 => f64::INFINITY,
                        2 => f64::NEG_INFINITY,
                        3 => 1e300,
                        4 => 1e-300,
                        5 => -0.0,
                        _ => (rng.random_range(-1000.0..1000.0f64) * 100.0).round() / 100.0,
                    })
                })
                .collect();
            push("gauge", vec![("job", job), ("instance", inst)], gauge);
            // A gauge with gaps and staleness markers.
            let mut alive = true;
            let gappy = (0..SAMPLES)
                .map(|_| {
                    if rng.random_bool(0.05) {
                        alive = !alive;
                        if !alive {
                            return Some(f64::from_bits(STALE));
                        }
                    }
                    (alive && rng.random_bool(0.8)).then(|| rng.random_range(0.0..100.0f64).round())
                })
                .collect();
            push("gap", vec![("job", job), ("instance", inst)], gappy);
        }
    }
    // Label sets that collide once the metric name is dropped.
    for name in ["dup_a", "dup_b"] {
        let v = (0..SAMPLES).map(|i| Some(i as f64)).collect();
        push(name, vec![("x", "1")], v);
    }
    out
}

struct Gen<'a> {
    rng: &'a mut StdRng,
}

impl Gen<'_> {
    fn pick<'s>(&mut self, items: &[&'s str]) -> &'s str {
        items[self.rng.random_range(0..items.len())]
    }

    fn selector(&mut self) -> String {
        let metric = self.pick(&["cnt", "gauge", "gap", "cnt", "gauge"]);
        let matcher = self.pick(&[
            "",
            "",
            "{job=\"a\"}",
            "{instance=~\"i[12]\"}",
            "{job!=\"b\"}",
            "{instance!~\"i3\"}",
        ]);
        let offset = self.pick(&["", "", "", " offset 1m", " offset 5m"]);
        format!("{metric}{matcher}{offset}")
    }

    fn range(&mut self) -> String {
        let r = self.pick(&["1m", "2m", "5m", "10m"]);
        if self.rng.random_bool(0.15) {
            let inner = self.vector(1);
            let step = self.pick(&["30s", "1m", ""]);
            format!("({inner})[{r}:{step}]")
        } else {
            format!("{}[{r}]", self.selector())
        }
    }

    fn scalar(&mut self) -> String {
        match self.rng.random_range(0..5) {
            0 => format!("scalar(sum({}))", self.selector()),
            1 => "time()".into(),
            _ => self
                .pick(&["2", "0.5", "-1", "10", "0", "1e3", "NaN", "Inf"])
                .into(),
        }
    }

    fn vector(&mut self, depth: u32) -> String {
        let choice = if depth == 0 {
            0
        } else {
            self.rng.random_range(0..9)
        };
        match choice {
            0 => self.selector(),
            1 | 2 => {
                let f = self.pick(&[
                    "rate",
                    "irate",
                    "increase",
                    "delta",
                    "idelta",
                    "deriv",
                    "changes",
                    "resets",
                    "avg_over_time",
                    "min_over_time",
                    "max_over_time",
                    "sum_over_time",
                    "count_over_time",
                    "last_over_time",
                    "stddev_over_time",
                    "stdvar_over_time",
                    "present_over_time",
                    "absent_over_time",
                ]);
                let r = self.range();
                match self.rng.random_range(0..8) {
                    0 => format!("quantile_over_time(0.3, {r})"),
                    1 => format!("predict_linear({r}, 60)"),
                    2 => format!("holt_winters({r}, 0.5, 0.3)"),
                    _ => format!("{f}({r})"),
                }
            }
            3 => {
                let f = self.pick(&[
                    "abs",
                    "ceil",
                    "floor",
                    "sqrt",
                    "exp",
                    "ln",
                    "sgn",
                    "timestamp",
                    "sort",
                    "log2",
                    "-",
                ]);
                let v = self.vector(depth - 1);
                match self.rng.random_range(0..6) {
                    0 => format!("clamp_min({v}, 0)"),
                    1 => format!("clamp({v}, -5, 50)"),
                    2 => format!("round({v}, 0.1)"),
                    3 => format!("label_replace({v}, \"dst\", \"$1-x\", \"job\", \"(.*)\")"),
                    _ if f == "-" => format!("-{v}"),
                    _ => format!("{f}({v})"),
                }
            }
            4 | 5 => {
                let op = self.pick(&[
                    "sum",
                    "avg",
                    "min",
                    "max",
                    "count",
                    "stddev",
                    "stdvar",
                    "group",
                    "topk",
                    "bottomk",
                    "quantile",
                    "count_values",
                ]);
                let grouping = self.pick(&[
                    "",
                    " by (job)",
                    " without (instance)",
                    " by (instance, job)",
                ]);
                let v = self.vector(depth - 1);
                match op {
                    // Prometheus feeds topk/bottomk its input in the order of the series it
                    // read (sorted) only when the input is a selector or a range function of
                    // one; after any other operation the order is Go's map order, random, and
                    // so is the choice among ties. Ask it where its answer is defined.
                    "topk" | "bottomk" => {
                        let input = if self.rng.random_bool(0.5) {
                            self.selector()
                        } else {
                            format!("rate({}[5m])", self.selector())
                        };
                        format!("{op}{grouping} (2, {input})")
                    }
                    "quantile" => format!("{op}{grouping} (0.75, {v})"),
                    "count_values" => format!("{op}{grouping} (\"value\", {v})"),
                    _ => format!("{op}{grouping} ({v})"),
                }
            }
            6 | 7 => {
                let op = self.pick(&[
                    "+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", "and", "or",
                    "unless", "atan2",
                ]);
                let lhs = self.vector(depth - 1);
                if self.rng.random_bool(0.4) && !matches!(op, "and" | "or" | "unless") {
                    let s = self.scalar();
                    let b = if matches!(op, "==" | "!=" | ">" | "<" | ">=" | "<=")
                        && self.rng.random_bool(0.5)
                    {
                        " bool"
                    } else {
                        ""
                    };
                    return if self.rng.random_bool(0.5) {
                        format!("({lhs}) {op}{b} {s}")
                    } else {
                        format!("{s} {op}{b} ({lhs})")
                    };
                }
                let rhs = self.vector(depth - 1);
                let matching = self.pick(&[
                    "",
                    "",
                    " on (job, instance)",
                    " ignoring (instance)",
                    " on (job) group_left",
                    " on (job) group_right",
                    " ignoring (job) group_left (job)",
                ]);
                let matching = if matches!(op, "and" | "or" | "unless") {
                    self.pick(&["", " on (job)", " ignoring (instance)"])
                } else {
                    matching
                };
                let b = if matches!(op, "==" | "!=" | ">" | "<" | ">=" | "<=")
                    && self.rng.random_bool(0.5)
                {
                    " bool"
                } else {
                    ""
                };
                format!("({lhs}) {op}{b}{matching} ({rhs})")
            }
            _ => {
                let f = self.pick(&["ceil", "abs", "rate"]);
                if f == "rate" {
                    "sum(rate({__name__=~\"dup_.\"}[5m]))".into()
                } else {
                    format!("{f}({{__name__=~\"dup_.\"}})")
                }
            }
        }
    }
}

/// A query_range answer reduced to what must agree: status, and per series its points.
#[derive(Debug)]
pub enum Answer {
    Error(u16),
    Matrix(BTreeMap<String, Vec<(f64, f64)>>),
}

pub fn ask(addr: &str, path: &str) -> Answer {
    let (status, _, body) = http_request(addr, "GET", path, &[], b"");
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if status != 200 || v["status"] != "success" {
        return Answer::Error(status);
    }
    let mut m = BTreeMap::new();
    for s in v["data"]["result"].as_array().into_iter().flatten() {
        let key = s["metric"].to_string();
        let points = s["values"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let t = p[0].as_f64().unwrap_or(f64::NAN);
                let v = match p[1].as_str().unwrap_or("") {
                    "NaN" => f64::NAN,
                    "+Inf" => f64::INFINITY,
                    "-Inf" => f64::NEG_INFINITY,
                    x => x.parse().unwrap_or(f64::NAN),
                };
                (t, v)
            })
            .collect();
        m.insert(key, points);
    }
    Answer::Matrix(m)
}

fn same(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    // Relative 1e-9; and an absolute floor for sums that cancel to about zero, whose last
    // bits depend on the order of the terms, which in Prometheus is Go's map order (random)
    // after most operations.
    diff <= 1e-9 * a.abs().max(b.abs()) || diff < 1e-12
}

/// Where two answers differ, if they do.
pub fn differ(ours: &Answer, theirs: &Answer) -> Option<String> {
    match (ours, theirs) {
        (Answer::Error(a), Answer::Error(b)) if a / 100 == b / 100 => None,
        (Answer::Matrix(a), Answer::Matrix(b)) => {
            if a.keys().ne(b.keys()) {
                return Some(format!(
                    "series differ: iocdb {:?} vs prometheus {:?}",
                    a.keys().collect::<Vec<_>>(),
                    b.keys().collect::<Vec<_>>()
                ));
            }
            for (k, pa) in a {
                let pb = &b[k];
                if pa.len() != pb.len() {
                    return Some(format!("{k}: {} points vs {}", pa.len(), pb.len()));
                }
                for (x, y) in pa.iter().zip(pb) {
                    if x.0 != y.0 || !same(x.1, y.1) {
                        return Some(format!(
                            "{k} at {}: iocdb {} vs prometheus {} (t {})",
                            x.0, x.1, y.1, y.0
                        ));
                    }
                }
            }
            None
        }
        _ => Some(format!("iocdb {ours:?} vs prometheus {theirs:?}")),
    }
}

/// Writes `series` to iocdb and to Prometheus by remote write.
pub fn write_both(server: &Server, prometheus: &str, series: Vec<prompb::TimeSeries>) {
    let body = snap::raw::Encoder::new()
        .compress_vec(
            &prompb::WriteRequest {
                timeseries: series,
                metadata: vec![],
            }
            .encode_to_vec(),
        )
        .expect("snappy");
    let headers = [
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "snappy"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ];
    let (s1, _, b1) = server.http("POST", "/api/v1/write", &headers, &body);
    assert_eq!(s1, 204, "iocdb: {}", String::from_utf8_lossy(&b1));
    let (s2, _, b2) = http_request(prometheus, "POST", "/api/v1/write", &headers, &body);
    assert!(
        s2 / 100 == 2,
        "prometheus: {s2} {}",
        String::from_utf8_lossy(&b2)
    );
}

fn run(seed: u64, expressions: usize) {
    let dir = tempfile::tempdir().expect("dir");
    let prom = peers::prometheus(&dir.path().join("prom"), "global:\n  scrape_interval: 1h\n");
    let server = Server::start(&dir.path().join("iocdb"), "");
    let mut rng = StdRng::seed_from_u64(seed);
    let end = (now_ms() / INTERVAL_MS) * INTERVAL_MS - 60_000;
    write_both(&server, &prom.addr, data(end, &mut rng));

    let start = end - 40 * 60_000;
    let mut generator = Gen { rng: &mut rng };
    let mut failures = Vec::new();
    let mut compared = 0;
    // IOCDB_PROMQL_DIFF_EXPR=a;;b asks only those expressions (step 15 s) and prints both
    // answers.
    let only: Option<Vec<String>> = std::env::var("IOCDB_PROMQL_DIFF_EXPR")
        .ok()
        .map(|e| e.split(";;").map(str::to_owned).collect());
    let expressions = only.as_ref().map_or(expressions, Vec::len);
    for n in 0..expressions {
        let mut expr = generator.vector(2);
        // exp, ln, log2 and fractional powers come from Go's math library in Prometheus and
        // from the platform's here; they agree to the last bit or one unit in it, and what
        // compares values exactly (`%`, `round`, comparisons, count_values labels, the equal-
        // values test of deriv and predict_linear, changes, resets) can turn that one unit
        // into another answer. Such combinations are not asked (BENCHMARKS.md says so).
        let amplifiers = [
            "%",
            "round(",
            "count_values",
            "=",
            ">",
            "<",
            "deriv(",
            "predict_linear(",
            "changes(",
            "resets(",
        ];
        while ["exp(", "ln(", "log2(", "^"]
            .iter()
            .any(|f| expr.contains(f))
            && amplifiers.iter().any(|f| expr.contains(f))
        {
            expr = generator.vector(2);
        }
        let mut step = generator.pick(&["15", "30", "60", "45"]);
        if let Some(only) = &only {
            expr = only[n].clone();
            step = "15";
        }
        let path = format!(
            "/api/v1/query_range?query={}&start={}&end={}&step={step}",
            enc(&expr),
            start as f64 / 1000.0,
            end as f64 / 1000.0
        );
        let ours = ask(&server.http, &path);
        let theirs = ask(&prom.addr, &path);
        if only.is_some() {
            println!("iocdb: {ours:?}\nprometheus: {theirs:?}");
        }
        if matches!(theirs, Answer::Matrix(_)) {
            compared += 1;
        }
        if let Some(why) = differ(&ours, &theirs) {
            failures.push(format!("{expr}\n    {why}"));
        }
    }
    assert!(
        compared > expressions / 2,
        "only {compared} expressions had answers to compare"
    );
    assert!(
        failures.is_empty(),
        "{} of {expressions} expressions differ from Prometheus 2.42 (seed {seed}):\n{}",
        failures.len(),
        failures
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn random_promql_agrees_with_prometheus() {
    // IOCDB_PROMQL_DIFF_SEED=… replays another seed (the long run names its failing seed).
    let seed = std::env::var("IOCDB_PROMQL_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(42);
    run(seed, EXPRESSIONS);
}

#[test]
#[ignore = "long: thousands of expressions over several seeds"]
fn random_promql_agrees_with_prometheus_long() {
    for seed in 1..=12 {
        run(seed, 2000);
    }
}
