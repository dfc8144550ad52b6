//! TLS from outside, with certificates made here (rcgen): gRPC and HTTP served over TLS to a
//! client that trusts the CA; refused to plaintext and to a client trusting another CA;
//! mutual TLS refusing a client without a certificate from the configured CA; and SIGHUP
//! swapping the certificate for new handshakes while an open write stream goes on.

use std::path::Path;

use iocdb_proto::v1::{
    self, admin_client::AdminClient, ingest_client::IngestClient, query_client::QueryClient,
};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::harness::{Server, now_ms, series};

/// A certificate authority that signs leaves.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("self-signed");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for `names` (DNS names or IP addresses): (certificate PEM, key PEM).
    fn leaf(&self, names: &[&str]) -> (String, String) {
        self.leaf_named(names, None)
    }

    /// [`Ca::leaf`] with a subject common name.
    fn leaf_named(&self, names: &[&str], common_name: Option<&str>) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("params");
        if let Some(cn) = common_name {
            params.distinguished_name = rcgen::DistinguishedName::new();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
        }
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes the server's certificate and key (and client CA) and returns the config lines.
fn tls_config(dir: &Path, leaf: &(String, String), client_ca: Option<&Ca>) -> String {
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&cert, &leaf.0).expect("cert");
    std::fs::write(&key, &leaf.1).expect("key");
    let mut config = format!(
        "tls_cert_file = {:?}\ntls_key_file = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    if let Some(ca) = client_ca {
        let path = dir.join("client-ca.pem");
        std::fs::write(&path, &ca.pem).expect("ca");
        config.push_str(&format!(
            "tls_client_ca_file = {:?}\n",
            path.display().to_string()
        ));
    }
    config
}

fn https(server: &Server) -> String {
    server.addr.replacen("http://", "https://", 1)
}

async fn channel(
    url: &str,
    trust: &Ca,
    identity: Option<&(String, String)>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&trust.pem))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Channel::from_shared(url.to_owned())
        .expect("uri")
        .tls_config(tls)?
        .connect()
        .await
}

/// A `Stats` call over `channel`: whether it got an answer.
async fn answers(channel: Result<Channel, tonic::transport::Error>) -> bool {
    match channel {
        Ok(c) => AdminClient::new(c).stats(v1::StatsRequest {}).await.is_ok(),
        Err(_) => false,
    }
}

fn write(value: f64) -> v1::WriteRequest {
    v1::WriteRequest {
        namespace: "an_ninh".into(),
        series: vec![series(
            "camera_people",
            &[("camera", "Cầu Cồn Tiên")],
            &[(now_ms() - 1000 + value as i64, value)],
        )],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_and_http_over_tls_refuse_plaintext_and_other_cas() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("iocdb test CA");
    let leaf = ca.leaf(&["localhost", "127.0.0.1"]);
    let server = Server::start(
        &dir.path().join("data"),
        &tls_config(dir.path(), &leaf, None),
    );
    let url = https(&server);

    let c = channel(&url, &ca, None).await.expect("TLS channel");
    IngestClient::new(c.clone())
        .write(write(1.0))
        .await
        .expect("write over TLS");
    assert!(answers(Ok(c)).await);
    // Plaintext to the TLS port, and a client that trusts another CA, get nowhere.
    let plain = Channel::from_shared(server.addr.clone())
        .expect("uri")
        .connect()
        .await;
    assert!(!answers(plain).await, "plaintext must fail");
    assert!(!answers(channel(&url, &Ca::new("stranger"), None).await).await);

    // The CLI over TLS, trusting the CA.
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).expect("ca");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iocdb"))
        .args(["stats", "--addr", &url, "--tls-ca-file"])
        .arg(&ca_file)
        .env("IOCDB_LOG", "warn")
        .output()
        .expect("iocdb stats");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The HTTP API over TLS, by curl trusting the CA; plaintext HTTP gets no answer.
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(&ca_file)
        .args(["-H", "X-Scope-OrgID: an_ninh"])
        .arg(format!(
            "https://{}/api/v1/label/camera/values",
            server.http
        ))
        .output()
        .expect("curl");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        body.contains("Cầu Cồn Tiên"),
        "{body} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer = {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(&server.http).expect("connect");
        conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        let _ = conn.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut buf = Vec::new();
        let _ = conn.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    };
    assert!(
        !answer.contains("200 OK"),
        "plain HTTP to the TLS port was served: {answer}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_wants_a_client_certificate_from_the_configured_ca() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("iocdb test CA");
    let clients = Ca::new("department clients");
    let leaf = ca.leaf(&["localhost"]);
    let server = Server::start(
        &dir.path().join("data"),
        &tls_config(dir.path(), &leaf, Some(&clients)),
    );
    let url = https(&server);
    assert!(
        !answers(channel(&url, &ca, None).await).await,
        "no client certificate"
    );
    let stranger = Ca::new("stranger").leaf(&["so-y-te"]);
    assert!(
        !answers(channel(&url, &ca, Some(&stranger)).await).await,
        "a stranger's certificate"
    );
    let known = clients.leaf(&["so-y-te"]);
    assert!(answers(channel(&url, &ca, Some(&known)).await).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_certificates_common_name_names_a_principal_on_grpc_and_http() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("iocdb test CA");
    let clients = Ca::new("department clients");
    let auth = dir.path().join("auth.toml");
    std::fs::write(
        &auth,
        "[[principal]]\nname = \"so-y-te\"\nmtls_common_name = \"so-y-te\"\nroles = { y_te = [\"read\"] }\n",
    )
    .expect("auth");
    let config = format!(
        "{}auth_file = {:?}\n",
        tls_config(
            dir.path(),
            &ca.leaf(&["localhost", "127.0.0.1"]),
            Some(&clients)
        ),
        auth.display().to_string()
    );
    let server = Server::start(&dir.path().join("data"), &config);
    let url = https(&server);
    let select = |c: Channel| async move {
        QueryClient::new(c)
            .select(v1::SelectRequest {
                namespace: "y_te".into(),
                end_ms: now_ms(),
                ..Default::default()
            })
            .await
            .map(|_| ())
    };
    let known = clients.leaf_named(&["so-y-te"], Some("so-y-te"));
    let c = channel(&url, &ca, Some(&known)).await.expect("mTLS");
    assert!(select(c.clone()).await.is_ok(), "its own namespace");
    let denied = AdminClient::new(c)
        .stats(v1::StatsRequest {})
        .await
        .expect_err("not an admin");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("so-y-te"), "{denied:?}");
    let unknown = clients.leaf_named(&["x"], Some("somebody-else"));
    let c = channel(&url, &ca, Some(&unknown)).await.expect("mTLS");
    let err = select(c).await.expect_err("unknown");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");

    // The same principals over HTTP, by curl presenting the certificates.
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).expect("ca");
    let curl = |identity: &(String, String), path: &str| {
        let (cert, key) = (dir.path().join("client.pem"), dir.path().join("client.key"));
        std::fs::write(&cert, &identity.0).expect("cert");
        std::fs::write(&key, &identity.1).expect("key");
        let out = std::process::Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "-w",
                "\n%{http_code}",
                "--cacert",
            ])
            .arg(&ca_file)
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .arg(format!("https://{}{path}", server.http))
            .output()
            .expect("curl");
        let out = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = out.rsplit_once('\n').unwrap_or_default();
        (code.to_owned(), body.to_owned())
    };
    let (code, body) = curl(&known, "/ns/y_te/api/v1/labels");
    assert_eq!(code, "200", "{body}");
    let (code, body) = curl(&known, "/ns/an_ninh/api/v1/labels");
    assert_eq!(code, "403", "{body}");
    assert!(
        body.contains("so-y-te") && body.contains("an_ninh"),
        "{body}"
    );
    let (code, body) = curl(&unknown, "/ns/y_te/api/v1/labels");
    assert_eq!(code, "401", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_swaps_the_certificate_while_an_open_stream_goes_on() {
    let dir = tempfile::tempdir().expect("dir");
    let first = Ca::new("first CA");
    let second = Ca::new("second CA");
    let server = Server::start(
        &dir.path().join("data"),
        &tls_config(dir.path(), &first.leaf(&["localhost"]), None),
    );
    let url = https(&server);
    let c = channel(&url, &first, None).await.expect("channel");
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let call = tokio::spawn(async move {
        IngestClient::new(c)
            .write_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    tx.send(write(1.0)).await.expect("send");

    // New files, then SIGHUP: new handshakes get the second certificate.
    let leaf = second.leaf(&["localhost"]);
    std::fs::write(dir.path().join("server.pem"), &leaf.0).expect("cert");
    std::fs::write(dir.path().join("server.key"), &leaf.1).expect("key");
    std::process::Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .expect("kill");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !answers(channel(&url, &second, None).await).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate never served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        !answers(channel(&url, &first, None).await).await,
        "the old one is gone"
    );

    // The stream opened before the swap goes on and ends cleanly.
    tx.send(write(2.0)).await.expect("send");
    drop(tx);
    let answer = call.await.expect("join").expect("stream").into_inner();
    assert_eq!((answer.messages, answer.accepted), (2, 2));
}
