//! Chunk codecs per data shape, side by side in one run: bytes per sample, the encoding each
//! chunk gets, encode and decode samples/s on one core, against what segment format 1 wrote
//! for the same samples (bucketed timestamps; XOR for every column that is not all
//! integers); and the decimal value column alone, decoded. Usage: `codec_report [milliseconds per measurement]`.

use std::time::{Duration, Instant};

use iocdb_benches::workload::{self, Shape};
use iocdb_engine::internal::{chunk, decimal};

const N: usize = 2048;
const START: i64 = 1_764_547_200_000;

/// A small deterministic generator (the report must not depend on a random seed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn workload_shape(shape: Shape, n: usize) -> Columns {
    let specs = workload::series(0.01);
    let spec = specs.iter().find(|s| s.shape == shape).expect("shape");
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    let mut k = 0;
    while ts.len() < n {
        let t = START + k * spec.interval_ms;
        if let Some(v) = workload::value(spec, k, t) {
            ts.push(t);
            vs.push(v);
        }
        k += 1;
    }
    (ts, vs)
}

fn synthetic(n: usize, step_ms: i64, mut value: impl FnMut(usize, &mut Lcg) -> f64) -> Columns {
    let mut rng = Lcg(42);
    let ts = (0..n as i64).map(|i| START + i * step_ms).collect();
    let vs = (0..n).map(|i| value(i, &mut rng)).collect();
    (ts, vs)
}

/// Timestamps and values of one chunk.
type Columns = (Vec<i64>, Vec<f64>);

fn shapes(n: usize) -> Vec<(&'static str, Columns)> {
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    vec![
        (
            "camera count (10 s, small int)",
            workload_shape(Shape::CameraCount, n),
        ),
        (
            "slow gauge (1-5 min, int)",
            workload_shape(Shape::SlowGauge, n),
        ),
        ("counter (1 min)", workload_shape(Shape::Counter, n)),
        ("ratio (1 h, 2 decimals)", workload_shape(Shape::Ratio, n)),
        (
            "indicator (random, 2 decimals)",
            workload_shape(Shape::Indicator, n),
        ),
        ("percent, 1 decimal, random walk", {
            let mut p = 500i64;
            synthetic(n, 15_000, move |_, r| {
                p = (p + (r.next() % 7) as i64 - 3).clamp(0, 1000);
                p as f64 / 10.0
            })
        }),
        ("CPU seconds counter, 2 decimals", {
            let mut c = 12_345_678_i64;
            synthetic(n, 1_000, move |_, r| {
                c += 90 + (r.next() % 20) as i64;
                c as f64 / 100.0
            })
        }),
        ("sensor, 3 decimals, noisy", {
            synthetic(n, 10_000, |i, r| {
                (25_000 + (i as i64 % 300) * 3 + (r.next() % 50) as i64) as f64 / 1000.0
            })
        }),
        ("gauge, 2 decimals, stale every 500", {
            synthetic(n, 30_000, move |i, r| {
                if i % 500 == 499 {
                    stale
                } else {
                    (10_000 + (r.next() % 400) as i64) as f64 / 100.0
                }
            })
        }),
        ("scraped every 1 s (±4 ms jitter), int counter", {
            let mut c = 1_000_000i64;
            let mut rng = Lcg(7);
            let ts: Vec<i64> = (0..n as i64)
                .map(|i| START + i * 1000 + (rng.next() % 9) as i64 - 4)
                .collect();
            let vs = (0..n)
                .map(|_| {
                    c += (rng.next() % 5000) as i64;
                    c as f64
                })
                .collect();
            (ts, vs)
        }),
        ("ratio of two counts (a / b, not decimal)", {
            synthetic(n, 60_000, |i, _| (i % 97) as f64 / ((i % 13) + 1) as f64)
        }),
        ("running float sum (+0.1 steps, not decimal)", {
            let mut sum = 0.0f64;
            synthetic(n, 15_000, move |i, _| {
                sum += 0.1 * (i % 7) as f64;
                sum
            })
        }),
        ("a few readings again and again (not decimal)", {
            let levels: Vec<f64> = (2..10).map(|k| f64::from(k).sqrt() * 3.3).collect();
            synthetic(n, 10_000, move |_, r| {
                levels
                    .get(r.next() as usize % levels.len())
                    .copied()
                    .unwrap_or(0.0)
            })
        }),
        ("measured floats (a sine, not decimal)", {
            synthetic(n, 10_000, |i, _| (i as f64 * 0.731).sin() * 40.0)
        }),
        ("random floats (not decimal)", {
            synthetic(n, 10_000, |_, r| (r.next() as f64 / 7.0).sqrt())
        }),
    ]
}

/// The mantissas' encoding byte, which follows the exponent, the exception count and the
/// exceptions (varint gap, 8 bytes each).
fn mantissa_encoding(column: &[u8]) -> Option<u8> {
    let varint = |at: &mut usize| -> Option<u64> {
        let mut x = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *column.get(*at)?;
            *at += 1;
            x |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(x);
            }
        }
        None
    };
    let mut at = 1;
    for _ in 0..varint(&mut at)? {
        varint(&mut at)?;
        at += 8;
    }
    column.get(at).copied()
}

/// Order-0 entropy, bits per sample, of the value column's deltas as integers (of the
/// mantissas, for decimals): what an ideal coder of independent deltas would spend on
/// values; `None` when the values are not integers or decimals.
fn delta_entropy(vs: &[f64]) -> Option<f64> {
    let ints: Vec<i64> = decimal::split(vs)?
        .mantissas
        .iter()
        .map(|&m| m as i64)
        .collect();
    let mut counts = std::collections::HashMap::new();
    for w in ints.windows(2) {
        if let [a, b] = w {
            *counts.entry(b.wrapping_sub(*a)).or_insert(0usize) += 1;
        }
    }
    let n = ints.len().saturating_sub(1).max(1) as f64;
    Some(
        counts
            .values()
            .map(|&c| {
                let p = c as f64 / n;
                -p * p.log2()
            })
            .sum(),
    )
}

/// Samples per second of `f` over `items` samples per call, for about `budget`.
fn rate(budget: Duration, items: usize, mut f: impl FnMut()) -> f64 {
    let (mut n, t0) = (0u64, Instant::now());
    while t0.elapsed() < budget {
        f();
        n += items as u64;
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

fn decode_rate(budget: Duration, bytes: &[u8]) -> f64 {
    let (mut dt, mut dv) = (Vec::with_capacity(N), Vec::with_capacity(N));
    rate(budget, N, || {
        dt.clear();
        dv.clear();
        let _ = chunk::decode(bytes, &mut dt, &mut dv);
        std::hint::black_box((&dt, &dv));
    })
}

fn main() {
    let budget = Duration::from_millis(
        std::env::args()
            .nth(1)
            .and_then(|a| a.parse().ok())
            .unwrap_or(300),
    );
    println!(
        "| shape | encoding | bytes/sample | format 1 bytes/sample | ratio | cold (compressed) \
         bytes/sample | encode samples/s | decode samples/s | format 1 decode samples/s | \
         decode ratio | cold decode samples/s | value delta entropy, bits/sample |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut decimal_columns = Vec::new();
    for (name, (ts, vs)) in shapes(N) {
        let bytes = chunk::encode(&ts, &vs);
        let tag = bytes.first().copied().unwrap_or(0);
        let values = match tag & 0x3f {
            0 => "XOR",
            1 => "int delta",
            2 => "int delta-of-delta",
            3 => "int blocks",
            4 => "decimal",
            5 => "Chimp",
            6 => "Chimp128",
            _ => "?",
        };
        let times = if tag & 0x40 != 0 {
            "ts blocks"
        } else {
            "ts bucketed"
        };
        let encoding = format!("{values}, {times}");
        let v1 = chunk::encode_format_1(&ts, &vs);
        let encode = rate(budget, N, || {
            std::hint::black_box(chunk::encode(&ts, &vs));
        });
        let cold = chunk::encode_cold(&ts, &vs);
        let (decode, decode_v1) = (decode_rate(budget, &bytes), decode_rate(budget, &v1));
        let decode_cold = decode_rate(budget, &cold);
        let per = |b: &[u8]| b.len() as f64 / N as f64;
        println!(
            "| {name} | {encoding} | {:.3} | {:.3} | {:.2} | {:.3} | {:.1} M | {:.1} M | {:.1} M | \
             {:.2} | {:.1} M | {} |",
            per(&bytes),
            per(&v1),
            per(&bytes) / per(&v1),
            per(&cold),
            encode / 1e6,
            decode / 1e6,
            decode_v1 / 1e6,
            decode / decode_v1,
            decode_cold / 1e6,
            delta_entropy(&vs).map_or("–".to_owned(), |h| format!("{h:.2}"))
        );
        if let Some(d) = decimal::split(&vs) {
            let exceptions = d.exceptions.len();
            let exponent = d.exponent;
            if let Some(column) = decimal::encode(&d) {
                decimal_columns.push((name, exponent, exceptions, column));
            }
        }
    }
    // Chunk length: the same 16,384 samples of each shape cut into chunks of each length,
    // cold (compressed where that pays), with the segment's 8-byte block header per chunk.
    let lengths = [512usize, 1024, 2048, 4096, 8192];
    println!(
        "\n| shape | {} |\n|---|{}",
        lengths
            .iter()
            .map(|l| format!("bytes/sample in chunks of {l}"))
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(lengths.len())
    );
    for (name, (ts, vs)) in shapes(8 * N) {
        let cells: Vec<String> = lengths
            .iter()
            .map(|&len| {
                let bytes: usize = ts
                    .chunks(len)
                    .zip(vs.chunks(len))
                    .map(|(t, v)| 8 + chunk::encode_cold(t, v).len())
                    .sum();
                format!("{:.3}", bytes as f64 / ts.len() as f64)
            })
            .collect();
        println!("| {name} | {} |", cells.join(" | "));
    }

    println!(
        "\n| decimal value column alone | exponent | exceptions | mantissa encoding | decode samples/s (one core) |\n|---|---|---|---|---|"
    );
    for (name, exponent, exceptions, column) in decimal_columns {
        let mantissas = match mantissa_encoding(&column) {
            Some(1) => "delta",
            Some(2) => "delta-of-delta",
            Some(3) => "blocks",
            _ => "?",
        };
        let mut out = Vec::with_capacity(N);
        let r = rate(budget, N, || {
            out.clear();
            let _ = decimal::decode(&column, N, &mut out);
            std::hint::black_box(&out);
        });
        println!(
            "| {name} | {exponent} | {exceptions} | {mantissas} | {:.0} M |",
            r / 1e6
        );
    }
}
