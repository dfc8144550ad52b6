//! Starting and stopping the real server, and clients for it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use iocdb_proto::v1::{
    self, admin_client::AdminClient, ingest_client::IngestClient, query_client::QueryClient,
};
use tonic::transport::Channel;

/// A running `iocdb serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Server {
    /// Starts a server on `dir` with extra TOML config lines.
    pub fn start(dir: &Path, config: &str) -> Server {
        let config_file = dir.with_extension("toml");
        std::fs::write(&config_file, config).expect("config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_iocdb"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .arg("--config")
            .arg(&config_file)
            .env("IOCDB_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn iocdb");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server did not say where it listens within 60 s");
        Server {
            child,
            addr: format!("http://{addr}"),
        }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.addr.clone())
            .expect("uri")
            .connect()
            .await
            .expect("connect")
    }

    pub async fn ingest(&self) -> IngestClient<Channel> {
        IngestClient::new(self.channel().await)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }

    pub async fn query(&self) -> QueryClient<Channel> {
        QueryClient::new(self.channel().await).max_decoding_message_size(64 << 20)
    }

    pub async fn admin(&self) -> AdminClient<Channel> {
        AdminClient::new(self.channel().await)
    }

    /// Flushes the head to segments (`Admin.Flush`).
    pub async fn flush(&self) {
        self.admin()
            .await
            .flush(v1::FlushRequest {})
            .await
            .expect("flush");
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub fn terminate(self) -> std::process::ExitStatus {
        self.signal_term();
        self.wait_exit()
    }

    /// Sends SIGTERM.
    pub fn signal_term(&self) {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
    }

    /// Waits (bounded) for the process to exit, sending nothing (a second signal would make
    /// it exit at once, on purpose).
    pub fn wait_exit(mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// A wire series.
pub fn series(metric: &str, labels: &[(&str, &str)], samples: &[(i64, f64)]) -> v1::Series {
    let mut l = vec![v1::Label {
        name: "__name__".into(),
        value: metric.into(),
    }];
    l.extend(labels.iter().map(|(n, v)| v1::Label {
        name: (*n).into(),
        value: (*v).into(),
    }));
    v1::Series {
        labels: l,
        timestamps_ms: samples.iter().map(|s| s.0).collect(),
        values: samples.iter().map(|s| s.1).collect(),
        stream_id: 0,
    }
}

/// An equality matcher.
pub fn eq(name: &str, value: &str) -> v1::Matcher {
    v1::Matcher {
        name: name.into(),
        op: v1::matcher::Op::Equal as i32,
        value: value.into(),
    }
}

/// Every series and sample of a namespace matching `matchers`.
pub async fn select_all(
    server: &Server,
    namespace: &str,
    matchers: Vec<v1::Matcher>,
) -> Vec<v1::Series> {
    let req = v1::SelectRequest {
        namespace: namespace.into(),
        matchers,
        start_ms: i64::MIN,
        end_ms: i64::MAX,
    };
    let mut stream = server
        .query()
        .await
        .select(req)
        .await
        .expect("select")
        .into_inner();
    let mut out = Vec::new();
    while let Some(batch) = stream.message().await.expect("message") {
        out.extend(batch.series);
    }
    out
}
