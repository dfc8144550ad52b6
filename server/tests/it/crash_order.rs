//! What a dashboard showed before a crash is what it shows after: four writers correct the
//! same 32 (series, timestamp) slots at once, a reader reads them, the server is
//! SIGKILLed and restarted, and every slot must read the same — also with a flush, and with
//! a clean restart, in between.

use iocdb_proto::v1;

use crate::harness::{Server, now_ms, select_all, series};

const WRITERS: usize = 4;
const ROUNDS: usize = 15;
const SERIES: usize = 4;
const SLOTS_PER_SERIES: i64 = 8;

/// Every slot, as (site, timestamp) → value bits.
type Slots = Vec<(String, i64, u64)>;

async fn read_slots(server: &Server) -> Slots {
    let mut out = Vec::new();
    for s in select_all(server, "feedback", vec![]).await {
        let site = s
            .labels
            .iter()
            .find(|l| l.name == "site")
            .map(|l| l.value.clone())
            .unwrap_or_default();
        for (t, v) in s.timestamps_ms.iter().zip(&s.values) {
            out.push((site.clone(), *t, v.to_bits()));
        }
    }
    out.sort();
    out
}

/// Four writers write every slot in each of `ROUNDS` rounds, all four at once in a round,
/// each with values of its own: the last round races four writes to every slot.
async fn correct_concurrently(server: &Server, cycle: usize, t0: i64) {
    let mut clients = Vec::new();
    for _ in 0..WRITERS {
        clients.push(server.ingest().await);
    }
    for r in 0..ROUNDS {
        let mut tasks = Vec::new();
        for (w, client) in clients.iter().enumerate() {
            let mut client = client.clone();
            let value = (cycle * 1_000_000 + w * 1000 + r) as f64;
            let series = (0..SERIES)
                .map(|k| {
                    let site = format!("Phường {}", (k + w + r) % SERIES);
                    let samples: Vec<(i64, f64)> = (0..SLOTS_PER_SERIES)
                        .map(|i| (t0 + i * 60_000, value))
                        .collect();
                    series("citizen_reports", &[("site", site.as_str())], &samples)
                })
                .collect();
            let req = v1::WriteRequest {
                namespace: "feedback".into(),
                series,
            };
            tasks.push(tokio::spawn(async move {
                client.write(req).await.expect("an acknowledged write");
            }));
        }
        for t in tasks {
            t.await.expect("writer");
        }
    }
}

async fn kill_cycles(cycles: usize) {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let t0 = now_ms() - 3_600_000;
    let mut server = Server::start(&data, "");
    for cycle in 0..cycles {
        correct_concurrently(&server, cycle, t0).await;
        let shown = read_slots(&server).await;
        assert_eq!(shown.len(), SERIES * SLOTS_PER_SERIES as usize);
        match cycle % 3 {
            1 => {
                server.flush().await;
                assert_eq!(
                    read_slots(&server).await,
                    shown,
                    "cycle {cycle}: after a flush"
                );
            }
            2 => {
                assert!(server.terminate().success(), "clean exit on SIGTERM");
                server = Server::start(&data, "");
                assert_eq!(
                    read_slots(&server).await,
                    shown,
                    "cycle {cycle}: after a restart"
                );
            }
            _ => {}
        }
        drop(server); // SIGKILL
        server = Server::start(&data, "");
        assert_eq!(
            read_slots(&server).await,
            shown,
            "cycle {cycle}: after SIGKILL"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_corrections_read_the_same_after_sigkill() {
    kill_cycles(10).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "soak: 100 kill cycles"]
async fn concurrent_corrections_read_the_same_after_many_sigkills() {
    kill_cycles(100).await;
}
