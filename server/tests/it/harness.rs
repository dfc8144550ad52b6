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
    /// `host:port` of the HTTP API.
    pub http: String,
}

impl Server {
    /// Starts a server on `dir` with extra TOML config lines.
    pub fn start(dir: &Path, config: &str) -> Server {
        Server::start_logging(dir, config, None)
    }

    /// [`Server::start`], its log (at debug level) written to `log` instead of the test's
    /// stderr.
    pub fn start_logging(dir: &Path, config: &str, log: Option<&Path>) -> Server {
        let config_file = dir.with_extension("toml");
        std::fs::write(&config_file, config).expect("config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_iocdb"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(dir)
            .arg("--config")
            .arg(&config_file)
            .env("IOCDB_LOG", if log.is_some() { "debug" } else { "warn" })
            .stdout(Stdio::piped())
            .stderr(match log {
                Some(path) => Stdio::from(std::fs::File::create(path).expect("log file")),
                None => Stdio::inherit(),
            })
            .spawn()
            .expect("spawn iocdb");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut http = String::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("http listening on ") {
                    http = addr.to_owned();
                } else if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send((addr.to_owned(), std::mem::take(&mut http)));
                }
            }
        });
        let (addr, http) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server did not say where it listens within 60 s");
        Server {
            child,
            addr: format!("http://{addr}"),
            http,
        }
    }

    /// One HTTP/1.1 request to the HTTP API: (status, headers, body).
    pub fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        http_request(&self.http, method, path, headers, body)
    }

    /// `GET path` on the HTTP API, the body parsed as JSON.
    pub fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let (status, _, body) = self.http("GET", path, &[], b"");
        let v = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!("{path}: not JSON ({e}): {}", String::from_utf8_lossy(&body))
        });
        (status, v)
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
/// A minimal HTTP/1.1 client (one request per connection), enough to talk to the HTTP API
/// like curl does without another dependency.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).expect("connect to the HTTP API");
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    conn.write_all(req.as_bytes()).expect("send");
    conn.write_all(body).expect("send body");
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).expect("read answer");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&raw[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 2 + size + 2..];
    }
}

/// Percent-encodes a query parameter value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// A time a minute into the two-hour partition before last: a test that writes less than
/// an hour from here gets one segment per flush, whatever the time of day.
pub fn start_of_a_partition() -> i64 {
    const PARTITION: i64 = 2 * 3_600_000;
    (now_ms() - 2 * PARTITION) / PARTITION * PARTITION + 60_000
}

/// Resident memory of process `pid`, bytes (Linux; 0 when unreadable).
pub fn rss_bytes(pid: u32) -> u64 {
    status_bytes(pid, "VmRSS:")
}

/// A memory field of a process's `/proc/PID/status` (given with its colon), in bytes.
pub fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
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
/// A label encoded by hand as field 1 of its series (`TimeSeries` in remote write, `Series`
/// in `iocdb.v1`), for bytes prost will not write (a value that is not UTF-8); short
/// names and values only.
pub fn label_field(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut label = vec![0x0a, name.len() as u8];
    label.extend_from_slice(name);
    label.extend_from_slice(&[0x12, value.len() as u8]);
    label.extend_from_slice(value);
    let mut field = vec![0x0a, label.len() as u8];
    field.extend_from_slice(&label);
    field
}

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
