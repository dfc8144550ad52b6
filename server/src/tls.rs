//! TLS on both listeners, with rustls (no OpenSSL): the certificate chain and key from PEM
//! files, and, given a CA file, client certificates required and checked (mTLS). SIGHUP
//! rereads the files: handshakes from then on use the new certificate, while connections
//! already open — a write stream, say — keep the session they have. A file that does not
//! load leaves the previous configuration in force.
//!
//! Handshakes run in tasks of their own, each bounded by [`HANDSHAKE_TIMEOUT`], so a client
//! that connects and says nothing holds up no one else.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;

/// The longest a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the certificate, key and (for mTLS) client CA are.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// The TLS configurations in force, one per protocol (gRPC speaks HTTP/2, the HTTP API
/// HTTP/1.1), swapped whole on reload.
#[derive(Debug)]
pub struct Tls {
    files: TlsFiles,
    grpc: RwLock<Arc<ServerConfig>>,
    http: RwLock<Arc<ServerConfig>>,
}

fn read_pem(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("cannot read the {what} {}: {e}", path.display()))
}

fn configs(files: &TlsFiles) -> anyhow::Result<(ServerConfig, ServerConfig)> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read_pem(&files.cert, "TLS certificate")?)
            .collect::<Result<_, _>>()
            .map_err(|e| {
                anyhow::anyhow!("{}: not a PEM certificate chain: {e}", files.cert.display())
            })?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no certificate", files.cert.display());
    }
    let key = PrivateKeyDer::from_pem_slice(&read_pem(&files.key, "TLS key")?)
        .map_err(|e| anyhow::anyhow!("{}: not a PEM private key: {e}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow::anyhow!("TLS: {e}"))?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&read_pem(ca, "client CA")?) {
                let cert = cert
                    .map_err(|e| anyhow::anyhow!("{}: not a PEM certificate: {e}", ca.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", ca.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| anyhow::anyhow!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        anyhow::anyhow!(
            "{} and {} do not make a key pair: {e}",
            files.cert.display(),
            files.key.display()
        )
    })?;
    let mut grpc = config.clone();
    grpc.alpn_protocols = vec![b"h2".to_vec()];
    let mut http = config;
    http.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((grpc, http))
}

impl Tls {
    /// Loads the files; the error names the file and what is wrong with it.
    pub fn load(files: TlsFiles) -> anyhow::Result<Tls> {
        let (grpc, http) = configs(&files)?;
        Ok(Tls {
            files,
            grpc: RwLock::new(Arc::new(grpc)),
            http: RwLock::new(Arc::new(http)),
        })
    }

    /// Rereads the files; on failure the configuration in force stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let (grpc, http) = configs(&self.files)?;
        if let (Ok(mut g), Ok(mut h)) = (self.grpc.write(), self.http.write()) {
            *g = Arc::new(grpc);
            *h = Arc::new(http);
        }
        Ok(())
    }

    fn acceptor(&self, http: bool) -> Option<TlsAcceptor> {
        let lock = if http { &self.http } else { &self.grpc };
        lock.read().ok().map(|c| TlsAcceptor::from(c.clone()))
    }

    /// Accepts TCP connections on `listener` and hands on those whose handshake succeeds
    /// (with Nagle's algorithm off); failed handshakes are logged at debug level.
    pub fn incoming(
        self: Arc<Self>,
        listener: TcpListener,
        http: bool,
    ) -> tokio::sync::mpsc::Receiver<TlsStream<TcpStream>> {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (conn, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = conn.set_nodelay(true);
                let Some(acceptor) = self.acceptor(http) else {
                    continue;
                };
                if tx.is_closed() {
                    return;
                }
                let handed = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(conn)).await {
                        Ok(Ok(stream)) => {
                            let _ = handed.send(stream).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        rx
    }
}

/// Who is at the other end of an HTTP connection: over mutual TLS, the common name of the
/// client certificate the handshake verified (what names a principal through
/// `mtls_common_name`, as on gRPC). Read once per connection.
#[derive(Debug, Clone)]
pub struct HttpPeer {
    pub client_common_name: Option<String>,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, HttpsListener>>
    for HttpPeer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, HttpsListener>) -> Self {
        let (_, session) = stream.io().get_ref();
        HttpPeer {
            client_common_name: session
                .peer_certificates()
                .and_then(|chain| crate::auth::common_name(chain.first()?)),
        }
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TcpListener>>
    for HttpPeer
{
    fn connect_info(_: axum::serve::IncomingStream<'_, TcpListener>) -> Self {
        HttpPeer {
            client_common_name: None,
        }
    }
}

/// The HTTP API's listener over TLS, for `axum::serve`.
pub struct HttpsListener {
    pub connections: tokio::sync::mpsc::Receiver<TlsStream<TcpStream>>,
    pub local: std::net::SocketAddr,
}

impl axum::serve::Listener for HttpsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.connections.recv().await {
            Some(stream) => {
                let peer = stream.get_ref().0.peer_addr().unwrap_or(self.local);
                (stream, peer)
            }
            // The accept task is gone (shutting down): wait to be dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
