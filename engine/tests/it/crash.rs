//! Crash safety with a real process: a child writes batches and prints the id of each
//! acknowledged one; the parent SIGKILLs it at random moments, reopens the store, and
//! checks that every acknowledged batch is there, whole, and that nothing else is.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use iocdb_engine::Sample;
use rand::Rng;

use crate::common::{self, dump, request, series};

const ENV_DIR: &str = "IOCDB_CRASH_CHILD_DIR";
const ENV_START: &str = "IOCDB_CRASH_CHILD_START";
const SAMPLES_PER_BATCH: i64 = 40;
const SERIES: usize = 5;

/// The value batch `b` writes at its `i`-th sample: any other value found is corruption.
fn value(b: i64, i: i64) -> f64 {
    (b * 1000 + i) as f64 * 0.5
}

fn batch_samples(b: i64) -> Vec<Sample> {
    (0..SAMPLES_PER_BATCH)
        .map(|i| Sample::new(b * SAMPLES_PER_BATCH + i, value(b, i)))
        .collect()
}

/// The child: not a test of its own; does nothing unless the parent set its variables.
#[test]
#[ignore = "run by crash tests as a child process"]
fn child_writer() {
    let (Ok(dir), Ok(start)) = (std::env::var(ENV_DIR), std::env::var(ENV_START)) else {
        return;
    };
    let start: i64 = start.parse().expect("start");
    let engine = common::open(std::path::Path::new(&dir));
    for b in start..start + 100_000 {
        let req = request(
            "crash",
            vec![series("m", b as usize % SERIES, batch_samples(b))],
        );
        engine.write(req).expect("write");
        println!("ack {b}");
        if b % 25 == 0 {
            engine.flush().expect("flush");
        }
    }
}

fn run_kills(kills: usize) {
    let dir = tempfile::tempdir().expect("dir");
    let exe = std::env::current_exe().expect("test binary");
    let mut rng = rand::rng();
    let mut next = 0i64;
    let mut acked_total = 0;
    for round in 0..kills {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash::child_writer",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV_DIR, dir.path())
            .env(ENV_START, next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(b) = line
                    .strip_prefix("ack ")
                    .and_then(|b| b.parse::<i64>().ok())
                {
                    let _ = tx.send(b);
                }
            }
        });
        // Wait for a random number of acknowledgements (bounded in time), then kill.
        let want = rng.random_range(1..60);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut acked = Vec::new();
        while acked.len() < want && Instant::now() < deadline {
            if let Ok(b) = rx.recv_timeout(Duration::from_millis(50)) {
                acked.push(b);
            }
        }
        std::thread::sleep(Duration::from_micros(rng.random_range(0..3000)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        reader.join().expect("reader");
        acked.extend(rx.try_iter());
        assert!(
            !acked.is_empty(),
            "round {round}: the child acknowledged nothing in 20 s"
        );

        let engine = common::open_with(dir.path(), common::options()).expect("reopen after kill");
        let stored = dump(&engine, "crash");
        let max_acked = *acked.iter().max().expect("acked");
        // Every sample found belongs to a batch that was started, with its exact value,
        // and every batch is whole or absent.
        let mut found_per_batch = std::collections::BTreeMap::<i64, i64>::new();
        for samples in stored.values() {
            for &(t, bits) in samples {
                let (b, i) = (t / SAMPLES_PER_BATCH, t % SAMPLES_PER_BATCH);
                assert_eq!(
                    bits,
                    value(b, i).to_bits(),
                    "round {round}: wrong value at t={t}"
                );
                assert!(
                    b <= max_acked + 1,
                    "round {round}: batch {b} was never written"
                );
                *found_per_batch.entry(b).or_default() += 1;
            }
        }
        for (b, n) in &found_per_batch {
            assert_eq!(*n, SAMPLES_PER_BATCH, "round {round}: batch {b} is torn");
        }
        for b in 0..=max_acked {
            assert!(
                found_per_batch.contains_key(&b),
                "round {round}: acknowledged batch {b} is lost"
            );
        }
        acked_total += acked.len();
        next = max_acked + 1;
        drop(engine);
    }
    assert!(acked_total >= kills);
}

#[test]
fn acknowledged_writes_survive_twenty_sigkills() {
    run_kills(20);
}

#[test]
#[ignore = "long: 200 kills; run with --ignored"]
fn acknowledged_writes_survive_two_hundred_sigkills() {
    run_kills(200);
}
