//! What TLS and authentication cost: one `iocdb` binary started twice — plaintext without
//! auth, and TLS (certificates made here with rcgen) with an auth file and a bearer token —
//! and the same work against each, alternating, in one run:
//!
//! - ingest: 4 clients × unary `Write` of 10,000-sample batches (fsync interval, so that the
//!   transport, not the disk, is what differs);
//! - queries: 4 clients × PromQL instant queries over what was written;
//! - handshakes: new connections, each making one `Stats` call, one after another.
//!
//! Usage: `secure_compare [ROUNDS]`; needs the release `iocdb` beside it
//! (`cargo build --release -p iocdb-server`). Prints Markdown.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use iocdb_proto::v1::{
    self, admin_client::AdminClient, ingest_client::IngestClient, query_client::QueryClient,
};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

const CLIENTS: usize = 4;
const BATCHES_PER_CLIENT: usize = 100;
/// Request shapes, (series, samples per series): long runs, where the transport is what
/// costs, and labels on every few samples, as remote write sends them.
const SHAPES: [(usize, usize); 2] = [(100, 100), (2_000, 5)];
const QUERIES_PER_CLIENT: usize = 500;
const HANDSHAKES: usize = 200;

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn iocdb() -> PathBuf {
    std::env::current_exe()
        .expect("exe")
        .with_file_name("iocdb")
}

fn start(dir: &Path, config: &str, scheme: &str) -> Server {
    let file = dir.join("iocdb.toml");
    std::fs::write(&file, config).expect("config");
    let mut child = Command::new(iocdb())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "",
            "--fsync",
            "interval",
        ])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&file)
        .env("IOCDB_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start iocdb (cargo build --release -p iocdb-server)");
    let out = child.stdout.take().expect("stdout");
    let addr = std::io::BufRead::lines(std::io::BufReader::new(out))
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("listening on ").map(str::to_owned))
        .expect("the server says where it listens");
    Server {
        child,
        url: format!("{scheme}://{addr}"),
    }
}

/// How a client reaches a server: its TLS trust and its token, if any.
#[derive(Clone)]
struct Access {
    ca: Option<String>,
    token: Option<String>,
}

#[derive(Clone)]
struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

type Conn = InterceptedService<Channel, Bearer>;

async fn connect(url: &str, access: &Access) -> Conn {
    let mut endpoint = Channel::from_shared(url.to_owned()).expect("uri");
    if let Some(ca) = &access.ca {
        endpoint = endpoint
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(ca))
                    .domain_name("localhost"),
            )
            .expect("tls");
    }
    let channel = endpoint.connect().await.expect("connect");
    let bearer = access
        .token
        .as_ref()
        .map(|t| format!("Bearer {t}").parse().expect("ascii"));
    InterceptedService::new(channel, Bearer(bearer))
}

fn batch(client: usize, k: usize, (series, samples): (usize, usize)) -> v1::WriteRequest {
    let t0 = 1_790_000_000_000 + (k * samples) as i64 * 10_000;
    v1::WriteRequest {
        namespace: "an_ninh".into(),
        series: (0..series)
            .map(|s| v1::Series {
                labels: vec![
                    v1::Label {
                        name: "__name__".into(),
                        value: "camera_people".into(),
                    },
                    v1::Label {
                        name: "camera".into(),
                        value: format!("cam-{client}-{s}"),
                    },
                    v1::Label {
                        name: "commune".into(),
                        value: "Châu Đốc".into(),
                    },
                ],
                timestamps_ms: (0..samples).map(|i| t0 + i as i64 * 10_000).collect(),
                values: (0..samples).map(|i| ((i * 7 + s) % 50) as f64).collect(),
                stream_id: 0,
            })
            .collect(),
    }
}

/// Samples per second over `CLIENTS` writers, each sending requests of `shape` made
/// before the clock starts.
async fn ingest(url: &str, access: &Access, round: usize, shape: (usize, usize)) -> f64 {
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let client =
            IngestClient::new(connect(url, access).await).max_encoding_message_size(64 << 20);
        let requests: Vec<_> = (0..BATCHES_PER_CLIENT)
            .map(|k| batch(c, round * BATCHES_PER_CLIENT + k, shape))
            .collect();
        clients.push((client, requests));
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (mut client, requests) in clients {
        tasks.push(tokio::spawn(async move {
            for request in requests {
                client.write(request).await.expect("write");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    (CLIENTS * BATCHES_PER_CLIENT * shape.0 * shape.1) as f64 / started.elapsed().as_secs_f64()
}

/// Queries per second over `CLIENTS` clients.
async fn queries(url: &str, access: &Access) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let mut client = QueryClient::new(connect(url, access).await);
        tasks.push(tokio::spawn(async move {
            for _ in 0..QUERIES_PER_CLIENT {
                let mut stream = client
                    .instant(v1::InstantQueryRequest {
                        namespace: "an_ninh".into(),
                        query: "max by (commune) (camera_people)".into(),
                        time_ms: 1_790_000_000_000 + 3_600_000,
                        ..Default::default()
                    })
                    .await
                    .expect("query")
                    .into_inner();
                while stream.message().await.expect("answer").is_some() {}
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    (CLIENTS * QUERIES_PER_CLIENT) as f64 / started.elapsed().as_secs_f64()
}

/// Mean milliseconds of a new connection and its first call.
async fn handshakes(url: &str, access: &Access) -> f64 {
    let started = Instant::now();
    for _ in 0..HANDSHAKES {
        AdminClient::new(connect(url, access).await)
            .stats(v1::StatsRequest {})
            .await
            .expect("stats");
    }
    started.elapsed().as_secs_f64() * 1e3 / HANDSHAKES as f64
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2);
    let tmp = tempfile::tempdir().expect("tmp");

    // Certificates and a token for the protected server.
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_pem = ca_params.self_signed(&ca_key).expect("ca").pem();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf");
    let secure = tmp.path().join("secure");
    std::fs::create_dir_all(&secure).expect("dir");
    std::fs::write(secure.join("cert.pem"), leaf.pem()).expect("cert");
    std::fs::write(secure.join("key.pem"), leaf_key.serialize_pem()).expect("key");
    let out = Command::new(iocdb())
        .arg("token")
        .output()
        .expect("iocdb token");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .expect("token output")
    };
    let (token, hash) = (field("token:"), field("sha256:"));
    std::fs::write(
        secure.join("auth.toml"),
        format!("[[principal]]\nname = \"bench\"\ntoken_sha256 = [\"{hash}\"]\nroles = {{ \"*\" = [\"read\", \"write\", \"admin\"] }}\n"),
    )
    .expect("auth");
    let config = format!(
        "tls_cert_file = {:?}\ntls_key_file = {:?}\nauth_file = {:?}\n",
        secure.join("cert.pem").display().to_string(),
        secure.join("key.pem").display().to_string(),
        secure.join("auth.toml").display().to_string()
    );
    let plain_dir = tmp.path().join("plain");
    std::fs::create_dir_all(&plain_dir).expect("dir");
    let plain = start(&plain_dir, "", "http");
    let protected = start(&secure, &config, "https");
    let open = Access {
        ca: None,
        token: None,
    };
    let locked = Access {
        ca: Some(ca_pem),
        token: Some(token),
    };

    let mut rows = Vec::new();
    for round in 0..rounds {
        for (i, shape) in SHAPES.into_iter().enumerate() {
            // Rounds alternate which server goes first, so neither always meets a cold cache.
            let round_of_shape = round * SHAPES.len() + i;
            let (a, b) = if round % 2 == 0 {
                let a = ingest(&plain.url, &open, round_of_shape, shape).await;
                (
                    a,
                    ingest(&protected.url, &locked, round_of_shape, shape).await,
                )
            } else {
                let b = ingest(&protected.url, &locked, round_of_shape, shape).await;
                (ingest(&plain.url, &open, round_of_shape, shape).await, b)
            };
            let name = if shape.1 >= 100 {
                "ingest, samples/s (4 clients, Write of 100 series × 100)"
            } else {
                "ingest, samples/s (4 clients, Write of 2,000 series × 5)"
            };
            rows.push((name, a, b));
        }
        let a = queries(&plain.url, &open).await;
        let b = queries(&protected.url, &locked).await;
        rows.push(("instant queries/s (4 clients)", a, b));
        let a = handshakes(&plain.url, &open).await;
        let b = handshakes(&protected.url, &locked).await;
        rows.push(("new connection + first call, ms", a, b));
    }
    println!("| measure (round by round) | plaintext, no auth | TLS + bearer token | ratio |");
    println!("|---|---|---|---|");
    for (name, a, b) in rows {
        println!("| {name} | {a:.1} | {b:.1} | {:.3} |", b / a);
    }
}
