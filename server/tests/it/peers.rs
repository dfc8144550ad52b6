//! Real peers for compatibility tests: a Prometheus 2.42, a node exporter and a
//! VictoriaMetrics, started as child processes on free loopback ports and killed on drop.
//! `.ci/run` installs the Debian packages `prometheus` (with `promtool`),
//! `prometheus-node-exporter` and `victoria-metrics` when they are missing.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::http_request;

/// A free loopback port (bound and released: another process could take it, rarely).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn require(binary: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(binary).is_file()));
    assert!(
        found,
        "{binary} is not installed: run .ci/run (it installs the Debian package {package}) or apt-get install {package}"
    );
}

/// A child process killed on drop.
pub struct Peer {
    child: Child,
    /// `host:port`.
    pub addr: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_ready(addr: &str, path: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if std::net::TcpStream::connect(addr).is_ok() {
            let (status, _, _) = http_request(addr, "GET", path, &[], b"");
            if status == 200 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what} on {addr} not ready within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts Prometheus with `config` (YAML), storing under `dir`, accepting remote write.
pub fn prometheus(dir: &Path, config: &str) -> Peer {
    prometheus_with(dir, config, &[])
}

/// [`prometheus`] with more command-line flags.
pub fn prometheus_with(dir: &Path, config: &str, flags: &[&str]) -> Peer {
    require("prometheus", "prometheus");
    std::fs::create_dir_all(dir).expect("dir");
    let cfg = dir.join("prometheus.yml");
    std::fs::write(&cfg, config).expect("config");
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--web.enable-remote-write-receiver")
        .arg("--log.level=warn")
        .args(flags)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn prometheus");
    let peer = Peer { child, addr };
    wait_ready(&peer.addr, "/-/ready", "Prometheus");
    peer
}

/// Starts a VictoriaMetrics single node storing under `dir`.
pub fn victoria_metrics(dir: &Path) -> Peer {
    require("victoria-metrics", "victoria-metrics");
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new("victoria-metrics")
        .arg(format!("-storageDataPath={}", dir.display()))
        .arg(format!("-httpListenAddr={addr}"))
        .arg("-loggerLevel=ERROR")
        .arg("-search.disableCache")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn victoria-metrics");
    let peer = Peer { child, addr };
    wait_ready(&peer.addr, "/health", "VictoriaMetrics");
    peer
}

/// Starts a node exporter.
pub fn node_exporter() -> Peer {
    require("prometheus-node-exporter", "prometheus-node-exporter");
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new("prometheus-node-exporter")
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn node exporter");
    let peer = Peer { child, addr };
    wait_ready(&peer.addr, "/metrics", "node exporter");
    peer
}
