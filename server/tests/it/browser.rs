//! A real browser for the console's tests: Debian's Chromium, headless, driven over
//! WebDriver by Debian's ChromeDriver (`.ci/run` installs both). The client is the few
//! WebDriver commands the tests use, spoken with the harness' HTTP client.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium session; the driver is killed on drop.
pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
}

impl Browser {
    /// Starts ChromeDriver on a free loopback port and a headless Chromium session. Panics,
    /// saying how to get them, when either is missing.
    pub fn start() -> Browser {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: install Debian's chromium and chromium-driver \
                 (.ci/run does: apt-get install chromium chromium-driver)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = std::net::TcpStream::connect(&addr).is_ok()
                && wd(&addr, "GET", "/status", None)["value"]["ready"] == true;
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver not ready in 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                "--lang=vi"]}
        }}});
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
        };
        let answer = wd(&browser.addr, "POST", "/session", Some(&caps));
        browser.session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {answer}"))
            .to_owned();
        // Elements a page has yet to draw are waited for, a little.
        browser.call("POST", "/timeouts", Some(&json!({"implicit": 10_000})));
        browser
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let answer = wd(
            &self.addr,
            method,
            &format!("/session/{}{path}", self.session),
            body,
        );
        if answer["value"].get("error").is_some() {
            panic!("WebDriver {method} {path}: {}", answer["value"]);
        }
        answer["value"].clone()
    }

    /// Opens `url` (returns when the page has loaded; its scripts may still be fetching).
    pub fn go(&self, url: &str) {
        self.call("POST", "/url", Some(&json!({"url": url})));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub fn run(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(&json!({"script": script, "args": args})),
        )
    }

    /// Waits (bounded) until `script` returns something truthy, and returns it.
    pub fn wait_for(&self, what: &str, timeout: Duration, script: &str) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.run(script, json!([]));
            if !(v.is_null() || v == false || v == "" || v == 0) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?}; errors so far: {:?}",
                self.errors()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The element `css` selects (it must exist).
    pub fn find(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            Some(&json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    /// Types `text` into the element `css` selects, as a user would (one key at a time).
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(&json!({"text": text})),
        );
    }

    pub fn clear(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/clear"), Some(&json!({})));
    }

    pub fn click(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/click"), Some(&json!({})));
    }

    /// Script errors the page recorded (`window.iocdbErrors`, see `errors.js`) and the
    /// browser's own severe log entries (failed loads, refused by the security policy, …)
    /// since the last call.
    pub fn errors(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .run("return window.iocdbErrors || [];", json!([]))
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect();
        let log = self.call("POST", "/se/log", Some(&json!({"type": "browser"})));
        for entry in log.as_array().into_iter().flatten() {
            if entry["level"] == "SEVERE" {
                out.push(entry["message"].as_str().unwrap_or_default().to_owned());
            }
        }
        out
    }

    /// Writes a PNG of the window to `path`.
    pub fn screenshot(&self, path: &std::path::Path) {
        let b64 = self.call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().expect("base64"))
            .expect("a PNG");
        std::fs::write(path, png).expect("write the screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = wd(
                &self.addr,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// One WebDriver command. ChromeDriver keeps connections open whatever the request says, so
/// the answer is read by its `Content-Length`, not to the end of the stream.
fn wd(addr: &str, method: &str, path: &str, body: Option<&Value>) -> Value {
    use std::io::{BufRead, BufReader, Read, Write};
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut conn = std::net::TcpStream::connect(addr).expect("connect to chromedriver");
    conn.set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send to chromedriver");
    let mut reader = BufReader::new(conn);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("an answer's head");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().expect("a length");
        }
    }
    let mut answer = vec![0; length];
    reader.read_exact(&mut answer).expect("an answer's body");
    serde_json::from_slice(&answer).unwrap_or_else(|e| {
        panic!(
            "WebDriver {method} {path}: not JSON ({e}): {}",
            String::from_utf8_lossy(&answer)
        )
    })
}
