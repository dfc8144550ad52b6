//! SIGKILL of a real server at random moments while it compacts (asked through
//! `Admin.Compact` while late uploads keep arriving; a short retention in one namespace makes
//! compactions drop expired data too), deletes (`Admin.Delete`) or writes a snapshot
//! (`Admin.Snapshot`): after each restart every acknowledged sample is there exactly once,
//! acknowledged deletions stay deleted (one cut short either happened or did not, whole),
//! expired data stays hidden, nothing is quarantined, every segment file on disk is one the
//! manifest lists, and a snapshot that got its manifest opens to what was written before it.

use std::collections::BTreeMap;
use std::time::Duration;

use iocdb_proto::v1;
use rand::{Rng, SeedableRng};

use crate::harness::{Server, eq, now_ms, select_all, series};

/// (site, timestamp) → value bits, of every acknowledged sample.
type Model = BTreeMap<(String, i64), u64>;

/// The namespace whose retention expires data while the test runs, and that retention.
const FAST: &str = "fast";
const FAST_RETENTION_MS: i64 = 1_000;
/// Server config: a short retention for [`FAST`].
const CONFIG: &str = "[retention_by_namespace]\nfast = \"1s\"\n";

async fn read(server: &Server) -> Model {
    read_ns(server, "archive").await
}

async fn read_ns(server: &Server, namespace: &str) -> Model {
    let mut out = Model::new();
    for s in select_all(server, namespace, vec![]).await {
        let site = s
            .labels
            .iter()
            .find(|l| l.name == "site")
            .map(|l| l.value.clone())
            .unwrap_or_default();
        for (t, v) in s.timestamps_ms.iter().zip(&s.values) {
            out.insert((site.clone(), *t), v.to_bits());
        }
    }
    out
}

/// Late uploads into two finished days, one flush after each, so there is work to compact.
async fn upload(server: &Server, model: &mut Model, cycle: usize, days: [i64; 2]) {
    let mut ingest = server.ingest().await;
    for (k, day) in days.iter().enumerate() {
        for round in 0..3i64 {
            // Ten-minute slots of the day; after a day's worth of cycles they come round
            // again, as corrections of earlier uploads.
            let slot = (cycle as i64 * 3 + round) % 140;
            let t = day + slot * 600_000 + k as i64;
            let value = (cycle * 100 + round as usize) as f64;
            let sites = ["Tri Tôn", "Châu Đốc"];
            let req = v1::WriteRequest {
                namespace: "archive".into(),
                series: sites
                    .iter()
                    .map(|s| series("visitors", &[("site", s)], &[(t, value)]))
                    .collect(),
            };
            ingest.write(req).await.expect("write");
            for s in sites {
                model.insert((s.to_owned(), t), value.to_bits());
            }
            server.flush().await;
        }
    }
}

fn check_files(dir: &std::path::Path, cycle: usize) {
    let manifest = std::fs::read_to_string(dir.join("MANIFEST")).expect("manifest");
    for e in std::fs::read_dir(dir.join("segments")).expect("segments") {
        let name = e.expect("entry").file_name().into_string().expect("utf-8");
        assert!(
            manifest.contains(&format!("segment {name}")),
            "cycle {cycle}: {name} is on disk but not live:\n{manifest}"
        );
    }
}

/// A deletion of one site's samples in `[from, to]`.
#[derive(Debug, Clone)]
struct Deletion {
    site: &'static str,
    from: i64,
    to: i64,
}

impl Deletion {
    fn apply(&self, model: &mut Model) {
        model.retain(|(site, t), _| !(site == self.site && (self.from..=self.to).contains(t)));
    }
}

/// A deletion the kill cut short happened whole or not at all: the model follows what the
/// store shows (the assertion after this checks it is one or the other).
fn reconcile(got: &Model, model: &mut Model, pending: Option<Deletion>) {
    if let Some(d) = pending
        && got != model
    {
        d.apply(model);
    }
}

/// What the server was doing when it was killed.
enum Action {
    Compact,
    Delete(Deletion),
    Snapshot(std::path::PathBuf),
}

/// The [`FAST`] namespace holds, at every instant, the samples of the last second: those
/// older are never served (the server reads its clock after this test does, so they are
/// older still there), those written within a quarter of it are there exactly. Returns how
/// many expired samples it checked were gone.
async fn check_expiry(server: &Server, written: &Model, cycle: usize) -> usize {
    let now = now_ms();
    let got = read_ns(server, FAST).await;
    for (key, bits) in written {
        if now - key.1 < FAST_RETENTION_MS / 4 {
            assert_eq!(got.get(key), Some(bits), "cycle {cycle}: {key:?} lost");
        }
    }
    for key in got.keys() {
        assert!(written.contains_key(key), "cycle {cycle}: {key:?} invented");
        // The cutoff itself is still kept.
        assert!(
            now - key.1 <= FAST_RETENTION_MS,
            "cycle {cycle}: {key:?} expired {} ms ago and is still served",
            now - key.1 - FAST_RETENTION_MS
        );
    }
    written
        .keys()
        .filter(|k| now - k.1 > FAST_RETENTION_MS)
        .count()
}

async fn kill_during_maintenance(cycles: usize) {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let day = (now_ms() / 86_400_000 - 3) * 86_400_000;
    let days = [day, day + 86_400_000];
    let mut model = Model::new();
    let mut fast = Model::new();
    // A deletion or snapshot the kill may have cut short.
    let mut pending: Option<Deletion> = None;
    let mut snapshots = 0;
    for cycle in 0..cycles {
        let server = Server::start(&data, CONFIG);
        let got = read(&server).await;
        reconcile(&got, &mut model, pending.take());
        assert_eq!(got, model, "cycle {cycle}: after restart");
        check_expiry(&server, &fast, cycle).await;
        let stats = server
            .admin()
            .await
            .stats(v1::StatsRequest {})
            .await
            .expect("stats")
            .into_inner();
        assert!(
            stats.quarantined.is_empty(),
            "cycle {cycle}: {:?}",
            stats.quarantined
        );
        check_files(&data, cycle);
        upload(&server, &mut model, cycle, days).await;
        let t = now_ms();
        server
            .ingest()
            .await
            .write(v1::WriteRequest {
                namespace: FAST.into(),
                series: vec![series(
                    "queue",
                    &[("site", "Tri Tôn")],
                    &[(t, cycle as f64)],
                )],
            })
            .await
            .expect("write");
        fast.insert(("Tri Tôn".to_owned(), t), (cycle as f64).to_bits());
        server.flush().await;

        let action = match rng.random_range(0..4) {
            0 | 1 => Action::Compact,
            2 => {
                let day = days[rng.random_range(0..2)];
                let from = day + rng.random_range(0..140) * 600_000;
                Action::Delete(Deletion {
                    site: ["Tri Tôn", "Châu Đốc"][rng.random_range(0..2)],
                    from,
                    to: from + rng.random_range(0..20) * 600_000,
                })
            }
            _ => Action::Snapshot(dir.path().join(format!("snapshot-{cycle}"))),
        };
        let mut admin = server.admin().await;
        let task = match &action {
            Action::Compact => tokio::spawn(async move {
                admin
                    .compact(v1::CompactRequest { before_ms: 0 })
                    .await
                    .is_ok()
            }),
            Action::Delete(d) => {
                let req = v1::DeleteRequest {
                    namespace: "archive".into(),
                    matchers: vec![eq("site", d.site)],
                    start_ms: Some(d.from),
                    end_ms: Some(d.to),
                    ..Default::default()
                };
                tokio::spawn(async move { admin.delete(req).await.is_ok() })
            }
            Action::Snapshot(to) => {
                let req = v1::SnapshotRequest {
                    to: to.display().to_string(),
                    backup: false,
                };
                tokio::spawn(async move { admin.snapshot(req).await.is_ok() })
            }
        };
        let delay = rng.random_range(0..40u64);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        drop(server); // SIGKILL, the maintenance in flight or just done
        let acknowledged = task.await.unwrap_or(false);
        match action {
            Action::Compact => {}
            Action::Delete(d) if acknowledged => d.apply(&mut model),
            Action::Delete(d) => pending = Some(d),
            Action::Snapshot(to) => {
                // A snapshot is a store once its manifest is there, and then a whole one.
                if acknowledged || to.join("MANIFEST").exists() {
                    let copy = Server::start(&to, "");
                    assert_eq!(read(&copy).await, model, "cycle {cycle}: snapshot");
                    snapshots += 1;
                }
            }
        }
    }
    let server = Server::start(&data, CONFIG);
    let got = read(&server).await;
    reconcile(&got, &mut model, pending.take());
    assert_eq!(got, model, "after the last kill");
    let expired = check_expiry(&server, &fast, cycles).await;
    assert!(expired > 0, "nothing expired: the test ran under a second");
    check_files(&data, cycles);
    // Compactions did run (and were not all cut short): six flushes a cycle would otherwise
    // have left six segments a cycle.
    let files = std::fs::read_dir(data.join("segments"))
        .expect("segments")
        .count();
    assert!(
        files < cycles * 3,
        "{files} segment files after {cycles} cycles"
    );
    assert!(snapshots > 0, "no snapshot finished in {cycles} cycles");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkills_during_compaction_deletion_and_snapshots_lose_nothing_and_leave_no_orphan() {
    kill_during_maintenance(24).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "long: 200 kills during compaction, deletion and snapshots"]
async fn two_hundred_sigkills_during_maintenance() {
    kill_during_maintenance(200).await;
}
