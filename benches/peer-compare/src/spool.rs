//! Encoded remote-write requests spooled to a file in order, so that every system of a
//! comparison is sent the same bytes without the bench holding them all in memory (a year
//! of the province at ×0.1 is ≈ 29 GB of snappy bodies, more than this machine's memory).

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;

/// One encoded request and the namespace it is for.
pub struct Batch {
    /// The namespace (iocdb's URL prefix; the peers have none).
    pub namespace: String,
    /// The snappy-compressed `prompb.WriteRequest`.
    pub body: Vec<u8>,
}

impl Batch {
    /// `r` as a remote-write request.
    pub fn of(r: &iocdb_engine::WriteRequest) -> Batch {
        Batch {
            namespace: r.namespace.clone(),
            body: crate::peers::remote_write_body(r),
        }
    }
}

/// The spool file. Each record: the namespace's length (u32 LE) and bytes, the body's length
/// (u32 LE) and bytes.
pub struct Spool {
    path: PathBuf,
    /// How many requests it holds.
    pub requests: usize,
    /// Their bodies' bytes.
    pub bytes: usize,
}

impl Spool {
    /// Writes `batches` in order to a new file at `path`.
    pub fn write(path: PathBuf, batches: impl Iterator<Item = Batch>) -> Spool {
        let file = std::fs::File::create(&path).expect("spool file");
        let mut out = BufWriter::new(file);
        let (mut requests, mut bytes) = (0, 0);
        for b in batches {
            for part in [b.namespace.as_bytes(), &b.body] {
                let len = u32::try_from(part.len()).expect("a request under 4 GB");
                out.write_all(&len.to_le_bytes()).expect("spool");
                out.write_all(part).expect("spool");
            }
            requests += 1;
            bytes += b.body.len();
        }
        out.flush().expect("spool");
        Spool {
            path,
            requests,
            bytes,
        }
    }

    /// Encodes `requests` as remote-write bodies into a new spool at `path`, in order, and
    /// says on stderr what it holds (`series`: how many series they write) and how long
    /// encoding took; returns it with the samples it holds.
    pub fn encode(
        path: PathBuf,
        requests: impl Iterator<Item = iocdb_engine::WriteRequest>,
        series: usize,
    ) -> (Spool, usize) {
        let started = std::time::Instant::now();
        let mut samples = 0usize;
        let spool = Spool::write(
            path,
            requests.map(|r| {
                samples += r.series.iter().map(|s| s.samples.len()).sum::<usize>();
                Batch::of(&r)
            }),
        );
        eprintln!(
            "encoded {samples} samples of {series} series in {} requests ({:.1} MB snappy) in {:.0} s",
            spool.requests,
            spool.bytes as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
        (spool, samples)
    }

    /// Sends every request in order, one at a time, to `{base(namespace)}/api/v1/write`.
    pub fn send(&self, base: impl Fn(&str) -> String) {
        for b in self.read() {
            crate::peers::post_remote_write(
                &format!("{}/api/v1/write", base(&b.namespace)),
                &b.body,
            );
        }
    }

    /// The requests in the order they were written.
    pub fn read(&self) -> impl Iterator<Item = Batch> + use<> {
        let file = std::fs::File::open(&self.path).expect("spool file");
        let mut input = BufReader::new(file);
        let mut part = move || -> Option<Vec<u8>> {
            let mut len = [0u8; 4];
            input.read_exact(&mut len).ok()?;
            let mut bytes = vec![0; u32::from_le_bytes(len) as usize];
            input.read_exact(&mut bytes).expect("spooled request");
            Some(bytes)
        };
        std::iter::from_fn(move || {
            let namespace = String::from_utf8(part()?).expect("spooled namespace");
            let body = part().expect("spooled body");
            Some(Batch { namespace, body })
        })
    }
}
