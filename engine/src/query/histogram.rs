//! `histogram_quantile` over classic histograms: `_bucket` series told apart by their `le`
//! label, as Prometheus 2.42 computes it (buckets sorted, equal bounds merged, counts made
//! monotonic, linear interpolation inside the bucket).

use std::collections::HashMap;

use super::value::Row;
use crate::model::{Labels, METRIC_NAME};

const BUCKET_LABEL: &str = "le";

/// The φ-quantile (per step) of each histogram in `rows`.
pub fn histogram_quantile(q: &[f64], rows: Vec<Row>, steps: usize) -> Vec<Row> {
    // Histograms are told apart by every label but `le` (the metric name included).
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut histograms: Vec<(Labels, Vec<(f64, usize)>)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let Some(bound) = row.labels.get(BUCKET_LABEL).and_then(parse_bound) else {
            continue;
        };
        let key = row.labels.without(BUCKET_LABEL);
        let h = *index.entry(key.clone()).or_insert_with(|| {
            histograms.push((key.without(METRIC_NAME), Vec::new()));
            histograms.len() - 1
        });
        if let Some((_, buckets)) = histograms.get_mut(h) {
            buckets.push((bound, i));
        }
    }
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    histograms
        .into_iter()
        .map(|(labels, members)| {
            let values = (0..steps)
                .map(|step| {
                    buckets.clear();
                    buckets.extend(members.iter().filter_map(|&(bound, i)| {
                        rows.get(i)?.values.get(step).map(|c| (bound, c))
                    }));
                    (!buckets.is_empty()).then(|| {
                        bucket_quantile(q.get(step).copied().unwrap_or(f64::NAN), &mut buckets)
                    })
                })
                .collect();
            Row { labels, values }
        })
        .filter(|r| !r.is_empty())
        .collect()
}

/// Go's `strconv.ParseFloat` for the bounds written in `le` (`+Inf`, `1e3`, `0.5`).
fn parse_bound(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// Prometheus' `bucketQuantile` over (upper bound, cumulative count) pairs.
fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Merge buckets with the same bound (they come from series with other label churn).
    buckets.dedup_by(|next, kept| {
        if next.0 == kept.0 {
            kept.1 += next.1;
            true
        } else {
            false
        }
    });
    // Counts must not fall: a bucket read before its smaller neighbours were updated.
    let mut max = f64::NEG_INFINITY;
    for b in buckets.iter_mut() {
        if b.1 > max {
            max = b.1;
        } else if b.1 < max {
            b.1 = max;
        }
    }
    let n = buckets.len();
    if n < 2 {
        return f64::NAN;
    }
    let observations = buckets.last().map_or(0.0, |b| b.1);
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = buckets
        .get(..n - 1)
        .unwrap_or(&[])
        .partition_point(|x| x.1 < rank);
    let at = |i: usize| buckets.get(i).copied().unwrap_or((f64::NAN, f64::NAN));
    if b == n - 1 {
        return at(n - 2).0;
    }
    if b == 0 && at(0).0 <= 0.0 {
        return at(0).0;
    }
    let (bucket_end, mut count) = at(b);
    let mut bucket_start = 0.0;
    if b > 0 {
        let prev = at(b - 1);
        bucket_start = prev.0;
        count -= prev.1;
        rank -= prev.1;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}
