//! The operator's and the hostile client's worst day, from outside, bounded: the real
//! server SIGKILLed at random moments under concurrent unary and stream writers, every
//! acknowledged sample checked after each restart (present, once, with its value, and
//! nothing invented); then each kind of file damaged, and the disk filled.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iocdb_proto::v1;
use rand::Rng;
use tonic::Code;

use crate::harness::{Server, now_ms, select_all, series};

/// Samples per batch; batch `b` writes timestamps `base + b × BATCH + i`, value `b × 1000 + i`.
const BATCH: i64 = 20;

fn batch_request(base: i64, writer: usize, b: i64) -> v1::WriteRequest {
    let samples: Vec<(i64, f64)> = (0..BATCH)
        .map(|i| (base + b * BATCH + i, (b * 1000 + i) as f64))
        .collect();
    let writer = format!("w{writer}");
    v1::WriteRequest {
        namespace: "torture".into(),
        series: vec![series(
            "xa_hoi",
            &[("writer", writer.as_str()), ("xa", "Mỹ Hòa Hưng")],
            &samples,
        )],
    }
}

/// What the store must hold: for each writer, the batches acknowledged.
type Acked = Arc<Mutex<BTreeMap<usize, Vec<i64>>>>;

/// Two unary writers and one stream writer (streams of three batches, acknowledged at the
/// end of each stream), batch numbers from `next` on, until the server dies.
async fn write_until_killed(server: &Server, base: i64, next: i64, acked: &Acked) {
    let mut tasks = Vec::new();
    for writer in 0..2usize {
        let mut client = server.ingest().await;
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            for b in next..next + 10_000 {
                if client.write(batch_request(base, writer, b)).await.is_err() {
                    return;
                }
                acked
                    .lock()
                    .expect("acked")
                    .entry(writer)
                    .or_default()
                    .push(b);
            }
        }));
    }
    let mut client = server.ingest().await;
    let acked_stream = acked.clone();
    tasks.push(tokio::spawn(async move {
        let mut b = next;
        while b < next + 10_000 {
            let stream: Vec<v1::WriteRequest> =
                (b..b + 3).map(|k| batch_request(base, 2, k)).collect();
            if client
                .write_stream(tokio_stream::iter(stream))
                .await
                .is_err()
            {
                return;
            }
            acked_stream
                .lock()
                .expect("acked")
                .entry(2)
                .or_default()
                .extend(b..b + 3);
            b += 3;
        }
    }));
    for t in tasks {
        let _ = t.await;
    }
}

/// Checks that every acknowledged batch is stored whole, once, with its values, and that
/// every stored sample is one some writer sent.
async fn verify(server: &Server, base: i64, acked: &Acked, cycle: usize) {
    let stored = select_all(server, "torture", vec![]).await;
    let mut by_writer: BTreeMap<usize, BTreeMap<i64, f64>> = BTreeMap::new();
    for s in stored {
        let writer: usize = s
            .labels
            .iter()
            .find(|l| l.name == "writer")
            .and_then(|l| l.value.strip_prefix('w')?.parse().ok())
            .expect("a writer label");
        let samples = by_writer.entry(writer).or_default();
        for (t, v) in s.timestamps_ms.iter().zip(&s.values) {
            let (b, i) = ((t - base).div_euclid(BATCH), (t - base).rem_euclid(BATCH));
            assert_eq!(
                *v,
                (b * 1000 + i) as f64,
                "cycle {cycle}: an invented value at {t}"
            );
            assert!(samples.insert(*t, *v).is_none(), "cycle {cycle}: {t} twice");
        }
    }
    for (writer, batches) in acked.lock().expect("acked").iter() {
        let samples = by_writer.get(writer).cloned().unwrap_or_default();
        for b in batches {
            for i in 0..BATCH {
                assert!(
                    samples.contains_key(&(base + b * BATCH + i)),
                    "cycle {cycle}: writer {writer} batch {b} was acknowledged and is gone"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkills_under_unary_and_stream_writers_lose_and_invent_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let base = now_ms() - 3_600_000;
    let acked: Acked = Arc::default();
    let mut rng = rand::rng();
    let started = Instant::now();
    for cycle in 0..20usize {
        let server = Server::start(&data, "flush_interval_s = 1\n");
        verify(&server, base, &acked, cycle).await;
        let next = cycle as i64 * 10_000;
        let kill_after = Duration::from_millis(rng.random_range(50..400));
        let killer = async {
            tokio::time::sleep(kill_after).await;
        };
        tokio::select! {
            _ = write_until_killed(&server, base, next, &acked) => {}
            _ = killer => {}
        }
        drop(server); // SIGKILL, with writes in flight
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "bounded in time"
        );
    }
    let server = Server::start(&data, "");
    verify(&server, base, &acked, 20).await;
    let total: usize = acked.lock().expect("acked").values().map(Vec::len).sum();
    assert!(total > 20, "the writers got through: {total} batches");
}

/// Copies a data directory (files only, one level of folders).
fn copy_dir(from: &Path, to: &Path) {
    for sub in ["", "wal", "segments", "quarantine"] {
        std::fs::create_dir_all(to.join(sub)).expect("mkdir");
        for entry in std::fs::read_dir(from.join(sub))
            .expect("read dir")
            .flatten()
        {
            let path = entry.path();
            if path.is_file() && path.file_name().is_some_and(|n| n != "LOCK") {
                std::fs::copy(&path, to.join(sub).join(entry.file_name())).expect("copy");
            }
        }
    }
}

fn first_file(dir: &Path, sub: &str) -> std::path::PathBuf {
    let mut files: Vec<_> = std::fs::read_dir(dir.join(sub))
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files.into_iter().next().expect("a file")
}

fn flip(path: &Path, at: impl Fn(usize) -> usize) {
    let mut bytes = std::fs::read(path).expect("read");
    let i = at(bytes.len());
    bytes[i] ^= 0x5a;
    std::fs::write(path, bytes).expect("write");
}

/// Starts `iocdb serve` on `data`: the running server, or what it said when it refused.
fn try_serve(data: &Path) -> Result<Server, String> {
    use std::io::{BufRead, BufReader, Read};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_iocdb"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "",
            "--data-dir",
        ])
        .arg(data)
        .env("IOCDB_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn iocdb");
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(addr) => Ok(Server {
            child,
            addr: format!("http://{addr}"),
            http: String::new(),
        }),
        Err(_) => {
            let status = child.wait().expect("wait");
            let text = errors.join().unwrap_or_default();
            assert_ne!(status.code(), Some(101), "the server panicked: {text}");
            Err(text)
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_damaged_file_is_reported_and_the_rest_served_or_refused_clearly() {
    let dir = tempfile::tempdir().expect("dir");
    let good = dir.path().join("good");
    let base = now_ms() - 3_600_000;
    let server = Server::start(&good, "");
    let mut client = server.ingest().await;
    for b in 0..30 {
        client
            .write(batch_request(base, b % 3, b as i64))
            .await
            .expect("write");
        if b % 10 == 9 {
            server.flush().await;
        }
    }
    // And some in the WAL only.
    for b in 30..40 {
        client
            .write(batch_request(base, b % 3, b as i64))
            .await
            .expect("write");
    }
    let meta = v1::MetricMetadata {
        namespace: "torture".into(),
        metric: "xa_hoi".into(),
        unit: "hồ sơ".into(),
        description: "Hồ sơ hành chính".into(),
        expected_interval_ms: Some(60_000),
        kind: String::new(),
        ..Default::default()
    };
    server
        .admin()
        .await
        .set_metadata(meta)
        .await
        .expect("metadata");
    assert!(server.terminate().success());

    type Damage = Box<dyn Fn(&Path)>;
    let damages: Vec<(&str, Damage, bool)> = vec![
        (
            "WAL middle",
            Box::new(|d| flip(&first_file(d, "wal"), |n| n / 2)),
            true,
        ),
        (
            "WAL tail",
            Box::new(|d| {
                let f = first_file(d, "wal");
                let len = std::fs::metadata(&f).expect("meta").len();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&f)
                    .expect("open")
                    .set_len(len - 3)
                    .expect("cut");
            }),
            true,
        ),
        (
            "segment chunk",
            Box::new(|d| flip(&first_file(d, "segments"), |_| 20)),
            true,
        ),
        (
            "segment table and postings",
            Box::new(|d| flip(&first_file(d, "segments"), |n| n - 120)),
            true,
        ),
        (
            "segment footer",
            Box::new(|d| flip(&first_file(d, "segments"), |n| n - 20)),
            true,
        ),
        (
            "MANIFEST flipped",
            Box::new(|d| flip(&d.join("MANIFEST"), |n| n / 2)),
            false,
        ),
        (
            "MANIFEST truncated",
            Box::new(|d| {
                let bytes = std::fs::read(d.join("MANIFEST")).expect("read");
                std::fs::write(d.join("MANIFEST"), &bytes[..bytes.len() / 2]).expect("write");
            }),
            false,
        ),
        (
            "MANIFEST missing",
            Box::new(|d| std::fs::remove_file(d.join("MANIFEST")).expect("rm")),
            false,
        ),
        (
            "METADATA flipped",
            Box::new(|d| flip(&d.join("METADATA"), |n| n / 2)),
            true,
        ),
    ];
    for (what, damage, serves) in damages {
        let copy = dir.path().join(what.replace(' ', "_"));
        copy_dir(&good, &copy);
        damage(&copy);
        match try_serve(&copy) {
            Ok(server) => {
                assert!(serves, "{what}: the server must refuse to start");
                let stats = server.admin().await.stats(v1::StatsRequest {}).await;
                let stats = stats.expect("stats").into_inner();
                // Every series, one at a time: a chunk is checked when a query reads it, and
                // a damaged one answers DATA_LOSS naming its file while the others are served.
                let (mut served, mut lost) = (0, 0);
                for writer in ["w0", "w1", "w2"] {
                    let req = v1::SelectRequest {
                        namespace: "torture".into(),
                        matchers: vec![crate::harness::eq("writer", writer)],
                        start_ms: i64::MIN,
                        end_ms: i64::MAX,
                    };
                    match server.query().await.select(req).await {
                        Ok(_) => served += 1,
                        Err(s) => {
                            assert_eq!(s.code(), Code::DataLoss, "{what}: {s:?}");
                            assert!(s.message().contains(".seg"), "{what}: {}", s.message());
                            lost += 1;
                        }
                    }
                }
                let reported = !stats.quarantined.is_empty() || stats.wal_files_cut > 0 || lost > 0;
                assert!(
                    reported,
                    "{what}: the damage is reported (Stats or DATA_LOSS)"
                );
                assert!(served > 0, "{what}: the rest is served");
            }
            Err(err) => {
                assert!(!serves, "{what}: the server refused to start: {err}");
                assert!(
                    err.contains("MANIFEST"),
                    "{what}: the refusal names the file: {err}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_refuses_writes_and_keeps_serving_queries() {
    let dir = tempfile::tempdir().expect("dir");
    let mount = dir.path().join("small");
    std::fs::create_dir_all(&mount).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mount)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a 2 MiB tmpfs here (needs root)");
        return;
    }
    // A panic inside the task is caught by the join, so the tmpfs is always unmounted.
    let outcome = tokio::spawn(fill_the_disk(mount.clone())).await;
    let _ = std::process::Command::new("umount").arg(&mount).status();
    outcome.expect("the full-disk scenario");
}

async fn fill_the_disk(mount: std::path::PathBuf) {
    let data = mount.join("data");
    let server = Server::start(&data, "");
    let base = now_ms() - 3_600_000;
    let mut client = server.ingest().await;
    client
        .write(batch_request(base, 0, 0))
        .await
        .expect("a first write fits");
    let mut refused = None;
    for b in 1..100_000 {
        let mut req = batch_request(base, 0, b);
        req.series[0].labels.push(v1::Label {
            name: "padding".into(),
            value: "x".repeat(2000),
        });
        if let Err(status) = client.write(req).await {
            refused = Some(status);
            break;
        }
    }
    let status = refused.expect("a 2 MiB disk fills up");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("disk"), "{}", status.message());
    let got = select_all(&server, "torture", vec![]).await;
    assert!(!got.is_empty(), "queries go on while the disk is full");
}
