//! SIGKILL of a real server at random moments while it compacts (asked through
//! `Admin.Compact` while late uploads keep arriving): after each restart every acknowledged
//! sample is there exactly once, nothing is quarantined, and every segment file on disk is
//! one the manifest lists.

use std::collections::BTreeMap;
use std::time::Duration;

use iocdb_proto::v1;
use rand::{Rng, SeedableRng};

use crate::harness::{Server, now_ms, select_all, series};

/// (site, timestamp) → value bits, of every acknowledged sample.
type Model = BTreeMap<(String, i64), u64>;

async fn read(server: &Server) -> Model {
    let mut out = Model::new();
    for s in select_all(server, "archive", vec![]).await {
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

async fn kill_during_compaction(cycles: usize) {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let day = (now_ms() / 86_400_000 - 3) * 86_400_000;
    let days = [day, day + 86_400_000];
    let mut model = Model::new();
    for cycle in 0..cycles {
        let server = Server::start(&data, "");
        assert_eq!(read(&server).await, model, "cycle {cycle}: after restart");
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
        let mut admin = server.admin().await;
        let compaction = tokio::spawn(async move {
            let _ = admin.compact(v1::CompactRequest { before_ms: 0 }).await;
        });
        let delay = rng.random_range(0..40u64);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        drop(server); // SIGKILL, compaction in flight or just done
        let _ = compaction.await;
    }
    let server = Server::start(&data, "");
    assert_eq!(read(&server).await, model, "after the last kill");
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
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkills_during_compaction_lose_nothing_and_leave_no_orphan() {
    kill_during_compaction(20).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "long: 200 kills during compaction"]
async fn two_hundred_sigkills_during_compaction() {
    kill_during_compaction(200).await;
}
