//! Shared fixtures: label sets, batches, an oracle of what the store must hold.

use std::collections::BTreeMap;
use std::path::Path;

use iocdb_engine::{
    Engine, Label, Matcher, Options, PromqlResult, QueryValue, Sample, SeriesWrite, WriteRequest,
};

/// Communes whose names must round-trip exactly.
pub const COMMUNES: [&str; 4] = [
    "Phường Long Xuyên",
    "Phường Châu Đốc",
    "Xã Tri Tôn",
    "Đặc khu Phú Quốc",
];

/// Labels of test series `i`.
pub fn labels(metric: &str, i: usize) -> Vec<Label> {
    vec![
        Label::new("__name__", metric),
        Label::new("commune", COMMUNES[i % COMMUNES.len()]),
        Label::new("site", format!("s{i}")),
    ]
}

/// A one-series write.
pub fn series(metric: &str, i: usize, samples: Vec<Sample>) -> SeriesWrite {
    SeriesWrite {
        labels: labels(metric, i),
        samples,
    }
}

/// A write request in namespace `ns`.
pub fn request(ns: &str, series: Vec<SeriesWrite>) -> WriteRequest {
    WriteRequest {
        namespace: ns.into(),
        series,
    }
}

/// Everything in the namespace, by site label, as (t, value bits).
pub fn dump(engine: &Engine, ns: &str) -> BTreeMap<String, Vec<(i64, u64)>> {
    let all = engine
        .select(
            ns,
            &[Matcher::new("site", iocdb_engine::MatchOp::Regex, ".+").expect("m")],
            i64::MIN,
            i64::MAX,
        )
        .expect("select");
    all.into_iter()
        .map(|s| {
            let site = s.labels.get("site").unwrap_or_default().to_owned();
            (
                site,
                s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect(),
            )
        })
        .collect()
}

/// An oracle: site → timestamp → value bits, last write wins.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Oracle(pub BTreeMap<String, BTreeMap<i64, u64>>);

impl Oracle {
    /// Records an acknowledged write.
    pub fn apply(&mut self, req: &WriteRequest) {
        for s in &req.series {
            let site = s
                .labels
                .iter()
                .find(|l| l.name == "site")
                .map(|l| l.value.clone())
                .unwrap_or_default();
            let m = self.0.entry(site).or_default();
            for x in &s.samples {
                m.insert(x.t, x.v.to_bits());
            }
        }
    }

    /// The oracle in [`dump`]'s shape.
    pub fn expected(&self) -> BTreeMap<String, Vec<(i64, u64)>> {
        self.0
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(k, m)| (k.clone(), m.iter().map(|(&t, &v)| (t, v)).collect()))
            .collect()
    }
}

/// Options for tests: small partitions so flushes make several segments.
pub fn options() -> Options {
    Options {
        partition_ms: 10_000,
        ..Options::default()
    }
}

/// Writes `body` as the store's MANIFEST, with the checksum line a manifest ends with
/// (for tests that hand-write or edit one).
pub fn write_manifest(dir: &Path, body: &str) {
    let crc = crc32c::crc32c(body.as_bytes());
    std::fs::write(dir.join("MANIFEST"), format!("{body}crc32c {crc:08x}\n")).expect("manifest");
}

/// Opens with [`options`].
pub fn open(dir: &Path) -> Engine {
    open_with(dir, options()).expect("open")
}

/// Opens, waiting out a lock held for a moment by a forked child of another test: between
/// fork and exec the crash test's child holds copies of every open file, the LOCK files of
/// stores the other tests just closed included.
pub fn open_with(dir: &Path, opts: Options) -> iocdb_engine::Result<Engine> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Engine::open(dir, opts.clone()) {
            Err(iocdb_engine::Error::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// A range query's answer as bits: each series' labels and the (time, value bits) of its
/// points.
pub type MatrixBits = Vec<(String, Vec<(i64, u64)>)>;

/// [`MatrixBits`] of an answer; an error when it is not a matrix.
pub fn matrix_bits(r: &PromqlResult) -> Result<MatrixBits, String> {
    let QueryValue::Matrix(series) = &r.value else {
        return Err("not a matrix".into());
    };
    Ok(series
        .iter()
        .map(|s| {
            (
                format!("{:?}", s.labels),
                s.points.iter().map(|p| (p.t, p.v.to_bits())).collect(),
            )
        })
        .collect())
}

/// [`matrix_bits`] of a query's outcome, or its error as text.
pub fn bits(r: &iocdb_engine::Result<PromqlResult>) -> Result<MatrixBits, String> {
    r.as_ref().map_err(|e| e.to_string()).and_then(matrix_bits)
}
