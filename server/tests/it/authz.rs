//! The authorization matrix: every caller (no credentials, a principal with no roles, a
//! writer, a reader and an admin of one namespace, the admin of another, and an admin of
//! every namespace) × every gRPC method and HTTP route × its own namespace and another,
//! against a real server with an auth file, each cell asserting the exact outcome: allowed
//! (any answer but UNAUTHENTICATED/PERMISSION_DENIED, 401/403), or refused with exactly the
//! code the policy says. The policy below is written out independently of the server's
//! table; a gRPC method the proto declares and the policy does not know fails the test.

use std::collections::BTreeSet;

use iocdb_proto::v1::{
    self, admin_client::AdminClient, ingest_client::IngestClient, query_client::QueryClient,
};
use prost::Message;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::harness::{Server, http_request, now_ms, series};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Read,
    Write,
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Open,
    Global(Role),
    Namespace(Role),
}

/// The policy: what each gRPC method needs.
const GRPC: &[(&str, Need)] = &[
    ("iocdb.v1.Ingest/Write", Need::Namespace(Role::Write)),
    ("iocdb.v1.Ingest/WriteStream", Need::Namespace(Role::Write)),
    ("iocdb.v1.Query/Instant", Need::Namespace(Role::Read)),
    ("iocdb.v1.Query/Range", Need::Namespace(Role::Read)),
    ("iocdb.v1.Query/Select", Need::Namespace(Role::Read)),
    ("iocdb.v1.Query/QueryRange", Need::Namespace(Role::Read)),
    ("iocdb.v1.Query/Latest", Need::Namespace(Role::Read)),
    ("iocdb.v1.Query/Stale", Need::Namespace(Role::Read)),
    ("iocdb.v1.Query/Series", Need::Namespace(Role::Read)),
    ("iocdb.v1.Query/LabelNames", Need::Namespace(Role::Read)),
    ("iocdb.v1.Query/LabelValues", Need::Namespace(Role::Read)),
    ("iocdb.v1.Admin/Flush", Need::Global(Role::Admin)),
    ("iocdb.v1.Admin/Compact", Need::Global(Role::Admin)),
    ("iocdb.v1.Admin/Delete", Need::Namespace(Role::Admin)),
    ("iocdb.v1.Admin/Export", Need::Namespace(Role::Read)),
    ("iocdb.v1.Admin/Snapshot", Need::Global(Role::Admin)),
    ("iocdb.v1.Admin/Stats", Need::Global(Role::Admin)),
    ("iocdb.v1.Admin/Inspect", Need::Global(Role::Admin)),
    ("iocdb.v1.Admin/Verify", Need::Global(Role::Admin)),
    ("iocdb.v1.Admin/SetMetadata", Need::Namespace(Role::Admin)),
    ("iocdb.v1.Admin/GetMetadata", Need::Namespace(Role::Read)),
    ("iocdb.v1.Admin/Quality", Need::Namespace(Role::Read)),
    ("iocdb.v1.Query/Completeness", Need::Namespace(Role::Read)),
    ("iocdb.v1.Query/Watch", Need::Namespace(Role::Read)),
];

/// The policy: what each HTTP route needs, with a request that reaches it (method, path
/// after the `/ns/<namespace>` prefix).
const HTTP: &[(&str, &str, Need)] = &[
    ("GET", "/api/v1/query?query=up", Need::Namespace(Role::Read)),
    (
        "GET",
        "/api/v1/query_range?query=up&start=0&end=60&step=15",
        Need::Namespace(Role::Read),
    ),
    (
        "GET",
        "/api/v1/watch?match[]=up&timeout=0.05",
        Need::Namespace(Role::Read),
    ),
    ("GET", "/api/v1/completeness", Need::Namespace(Role::Read)),
    ("GET", "/api/v1/quality", Need::Namespace(Role::Read)),
    (
        "GET",
        "/api/v1/series?match[]=up",
        Need::Namespace(Role::Read),
    ),
    ("GET", "/api/v1/labels", Need::Namespace(Role::Read)),
    (
        "GET",
        "/api/v1/label/job/values",
        Need::Namespace(Role::Read),
    ),
    ("GET", "/api/v1/metadata", Need::Namespace(Role::Read)),
    (
        "GET",
        "/api/v1/query_exemplars?query=up&start=0&end=60",
        Need::Namespace(Role::Read),
    ),
    ("GET", "/api/v1/status/buildinfo", Need::Open),
    ("GET", "/api/v1/status/iocdb", Need::Global(Role::Read)),
    (
        "POST",
        "/api/v1/admin/tsdb/delete_series?match[]=nothing_here",
        Need::Namespace(Role::Admin),
    ),
    (
        "POST",
        "/api/v1/admin/tsdb/clean_tombstones",
        Need::Global(Role::Admin),
    ),
    ("POST", "/api/v1/write", Need::Namespace(Role::Write)),
    ("POST", "/api/v1/read", Need::Namespace(Role::Read)),
    (
        "POST",
        "/api/v2/write?precision=s",
        Need::Namespace(Role::Write),
    ),
    ("POST", "/write", Need::Namespace(Role::Write)),
    ("GET", "/-/healthy", Need::Open),
    ("GET", "/-/ready", Need::Open),
    ("GET", "/", Need::Open),
    ("GET", "/console/app.js", Need::Open),
];

/// A caller: its name and roles as (namespace, role) pairs; `None` for no credentials.
type Caller = (&'static str, Option<&'static [(&'static str, Role)]>);

/// The callers.
const CALLERS: &[Caller] = &[
    ("anonymous", None),
    ("nobody", Some(&[])),
    ("writer", Some(&[("y_te", Role::Write)])),
    ("reader", Some(&[("y_te", Role::Read)])),
    ("admin", Some(&[("y_te", Role::Admin)])),
    ("other-admin", Some(&[("du_lich", Role::Admin)])),
    (
        "root",
        Some(&[("*", Role::Admin), ("*", Role::Read), ("*", Role::Write)]),
    ),
];

const NAMESPACES: [&str; 2] = ["y_te", "giao_duc"];

fn token(name: &str) -> String {
    format!("iocdb_test_token_of_{name}")
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn auth_file() -> String {
    let mut out = String::new();
    for (name, roles) in CALLERS {
        let Some(roles) = roles else { continue };
        let mut by_ns: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for (ns, role) in *roles {
            by_ns.entry(ns).or_default().push(match role {
                Role::Read => "read",
                Role::Write => "write",
                Role::Admin => "admin",
            });
        }
        let roles: Vec<String> = by_ns
            .iter()
            .map(|(ns, r)| format!("\"{ns}\" = {r:?}"))
            .collect();
        out.push_str(&format!(
            "[[principal]]\nname = \"{name}\"\nbasic_user = \"{name}\"\ntoken_sha256 = [\"{}\"]\nroles = {{ {} }}\n\n",
            sha256_hex(&token(name)),
            roles.join(", ")
        ));
    }
    out
}

/// What the policy answers for `caller` calling something that needs `need` on `namespace`.
fn expected(caller: &Caller, need: Need, namespace: &str) -> Option<Code> {
    let holds = |ns: &str, role: Role| {
        caller.1.is_some_and(|roles| {
            roles
                .iter()
                .any(|(n, r)| (*n == ns || *n == "*") && *r == role)
        })
    };
    let allowed = match need {
        Need::Open => true,
        Need::Global(role) => caller.1.is_some_and(|roles| roles.contains(&("*", role))),
        Need::Namespace(role) => holds(namespace, role),
    };
    match (allowed, caller.1) {
        (true, _) => None,
        (false, None) => Some(Code::Unauthenticated),
        (false, Some(_)) => Some(Code::PermissionDenied),
    }
}

#[derive(Clone)]
struct Attach(Option<String>);

impl tonic::service::Interceptor for Attach {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.0 {
            let value = format!("Bearer {t}").parse().expect("ascii");
            req.metadata_mut().insert("authorization", value);
        }
        Ok(req)
    }
}

/// Calls `method` on `namespace` with a minimal request; the code it ends with (`Ok` when
/// it succeeded).
async fn call(
    channel: &Channel,
    who: Option<String>,
    method: &str,
    ns: &str,
    scratch: &std::path::Path,
) -> Code {
    let svc = || InterceptedService::new(channel.clone(), Attach(who.clone()));
    let ingest = || IngestClient::new(svc());
    let query = || QueryClient::new(svc());
    let admin = || AdminClient::new(svc());
    let namespace = ns.to_owned();
    let write = || v1::WriteRequest {
        namespace: namespace.clone(),
        series: vec![series(
            "queue",
            &[("site", "Châu Đốc")],
            &[(now_ms() - 1000, 1.0)],
        )],
    };
    let filter = v1::MetadataFilter {
        namespace: namespace.clone(),
        ..Default::default()
    };
    fn code<T>(r: Result<T, tonic::Status>) -> Code {
        r.map_or_else(|s| s.code(), |_| Code::Ok)
    }
    match method {
        "iocdb.v1.Ingest/Write" => code(ingest().write(write()).await),
        "iocdb.v1.Ingest/WriteStream" => code(
            ingest()
                .write_stream(tokio_stream::iter(vec![write()]))
                .await,
        ),
        "iocdb.v1.Query/Instant" => code(
            query()
                .instant(v1::InstantQueryRequest {
                    namespace,
                    query: "queue".into(),
                    ..Default::default()
                })
                .await,
        ),
        "iocdb.v1.Query/Range" => code(
            query()
                .range(v1::PromqlRangeRequest {
                    namespace,
                    query: "queue".into(),
                    start_ms: now_ms() - 60_000,
                    end_ms: now_ms(),
                    step_ms: 15_000,
                    ..Default::default()
                })
                .await,
        ),
        "iocdb.v1.Query/Select" => code(
            query()
                .select(v1::SelectRequest {
                    namespace,
                    start_ms: 0,
                    end_ms: now_ms(),
                    ..Default::default()
                })
                .await,
        ),
        "iocdb.v1.Query/QueryRange" => code(
            query()
                .query_range(v1::RangeQueryRequest {
                    namespace,
                    start_ms: now_ms() - 60_000,
                    end_ms: now_ms(),
                    step_ms: 15_000,
                    ..Default::default()
                })
                .await,
        ),
        "iocdb.v1.Query/Latest" => code(
            query()
                .latest(v1::LatestRequest {
                    namespace,
                    ..Default::default()
                })
                .await,
        ),
        "iocdb.v1.Query/Stale" => code(
            query()
                .stale(v1::StaleRequest {
                    namespace,
                    ..Default::default()
                })
                .await,
        ),
        "iocdb.v1.Query/Series" => code(query().series(filter).await),
        "iocdb.v1.Query/LabelNames" => code(query().label_names(filter).await),
        "iocdb.v1.Query/LabelValues" => code(
            query()
                .label_values(v1::LabelValuesRequest {
                    filter: Some(filter),
                    name: "site".into(),
                })
                .await,
        ),
        "iocdb.v1.Admin/Flush" => code(admin().flush(v1::FlushRequest {}).await),
        "iocdb.v1.Admin/Compact" => {
            code(admin().compact(v1::CompactRequest { before_ms: 0 }).await)
        }
        "iocdb.v1.Admin/Delete" => code(
            admin()
                .delete(v1::DeleteRequest {
                    namespace,
                    selector: "nothing_here".into(),
                    ..Default::default()
                })
                .await,
        ),
        "iocdb.v1.Admin/Export" => code(
            admin()
                .export(v1::ExportRequest {
                    namespace,
                    ..Default::default()
                })
                .await,
        ),
        "iocdb.v1.Admin/Snapshot" => {
            let to = scratch.join(format!("snap-{}", now_ms()));
            code(
                admin()
                    .snapshot(v1::SnapshotRequest {
                        to: to.display().to_string(),
                        backup: true,
                    })
                    .await,
            )
        }
        "iocdb.v1.Admin/Stats" => code(admin().stats(v1::StatsRequest {}).await),
        "iocdb.v1.Admin/Inspect" => code(admin().inspect(v1::InspectRequest {}).await),
        "iocdb.v1.Admin/Verify" => code(admin().verify(v1::VerifyRequest {}).await),
        "iocdb.v1.Admin/SetMetadata" => code(
            admin()
                .set_metadata(v1::MetricMetadata {
                    namespace,
                    metric: "queue".into(),
                    unit: "người".into(),
                    ..Default::default()
                })
                .await,
        ),
        "iocdb.v1.Admin/GetMetadata" => code(
            admin()
                .get_metadata(v1::GetMetadataRequest { namespace })
                .await,
        ),
        "iocdb.v1.Query/Watch" => code(
            query()
                .watch(v1::WatchRequest {
                    namespace,
                    ..Default::default()
                })
                .await,
        ),
        "iocdb.v1.Query/Completeness" => code(
            query()
                .completeness(v1::CompletenessRequest {
                    namespace,
                    start_ms: now_ms() - 3_600_000,
                    ..Default::default()
                })
                .await,
        ),
        "iocdb.v1.Admin/Quality" => code(
            admin()
                .quality(v1::QualityRequest {
                    namespace,
                    ..Default::default()
                })
                .await,
        ),
        other => panic!("no request for {other}: add one, and its line to the policy"),
    }
}

/// Every method the proto declares, as `package.Service/Method`.
fn declared_methods() -> BTreeSet<String> {
    let set = prost_types::FileDescriptorSet::decode(v1::FILE_DESCRIPTOR_SET).expect("descriptor");
    let mut out = BTreeSet::new();
    for file in set.file {
        let package = file.package().to_owned();
        for service in file.service {
            for method in &service.method {
                out.insert(format!("{package}.{}/{}", service.name(), method.name()));
            }
        }
    }
    out
}

#[test]
fn the_policy_covers_every_method_the_proto_declares() {
    let policy: BTreeSet<String> = GRPC.iter().map(|(m, _)| (*m).to_owned()).collect();
    let declared = declared_methods();
    let missing: Vec<&String> = declared.difference(&policy).collect();
    assert!(
        missing.is_empty(),
        "methods without an authorization entry (add them to server/src/auth.rs and to this policy): {missing:?}"
    );
    let stale: Vec<&String> = policy.difference(&declared).collect();
    assert!(
        stale.is_empty(),
        "the policy names methods the proto lacks: {stale:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_caller_gets_exactly_what_the_policy_says_on_every_call() {
    let dir = tempfile::tempdir().expect("dir");
    let auth = dir.path().join("auth.toml");
    std::fs::write(&auth, auth_file()).expect("auth file");
    let log = dir.path().join("server.log");
    let server = Server::start_logging(
        &dir.path().join("data"),
        &format!("auth_file = {:?}\n", auth.display().to_string()),
        Some(&log),
    );
    let channel = server.channel().await;
    let mut wrong = Vec::new();
    let mut cells = 0;
    for caller in CALLERS {
        let who = caller.1.map(|_| token(caller.0));
        for ns in NAMESPACES {
            for (method, need) in GRPC {
                let got = call(&channel, who.clone(), method, ns, dir.path()).await;
                let want = expected(caller, *need, ns);
                cells += 1;
                let ok = match want {
                    None => !matches!(got, Code::Unauthenticated | Code::PermissionDenied),
                    Some(code) => got == code,
                };
                if !ok {
                    wrong.push(format!(
                        "{} → {method} on {ns}: got {got:?}, want {want:?}",
                        caller.0
                    ));
                }
            }
            for (verb, path, need) in HTTP {
                let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
                let bearer = who.as_ref().map(|t| format!("Bearer {t}"));
                if let Some(b) = &bearer {
                    headers.push(("Authorization", b.as_str()));
                }
                let (status, _, body) = http_request(
                    &server.http,
                    verb,
                    &format!("/ns/{ns}{path}"),
                    &headers,
                    b"",
                );
                let want = expected(caller, *need, ns);
                cells += 1;
                let ok = match want {
                    None => status != 401 && status != 403,
                    Some(Code::Unauthenticated) => status == 401,
                    Some(_) => status == 403,
                };
                if !ok {
                    wrong.push(format!(
                        "{} → {verb} {path} on {ns}: got {status} {}, want {want:?}",
                        caller.0,
                        String::from_utf8_lossy(&body)
                    ));
                }
            }
        }
    }
    assert_eq!(
        cells,
        CALLERS.len() * NAMESPACES.len() * (GRPC.len() + HTTP.len())
    );
    assert!(
        wrong.is_empty(),
        "{} of {cells} cells wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // Not one token in the server's whole debug log, nor in its audit trail.
    drop(server);
    let logged = std::fs::read_to_string(&log).expect("log");
    let trail = std::fs::read_to_string(dir.path().join("data").join("audit.log")).expect("trail");
    assert!(
        logged.lines().count() > 10,
        "the log is too short to prove anything: {logged}"
    );
    for (name, _) in CALLERS {
        assert!(!logged.contains(&token(name)), "a token in the log");
        assert!(!trail.contains(&token(name)), "a token in the audit trail");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_the_cli_token_and_refusals_that_never_echo_a_token() {
    let dir = tempfile::tempdir().expect("dir");
    let auth = dir.path().join("auth.toml");
    std::fs::write(&auth, auth_file()).expect("auth file");
    let server = Server::start(
        &dir.path().join("data"),
        &format!("auth_file = {:?}\n", auth.display().to_string()),
    );
    // Grafana's way: basic auth, the password being the principal's token.
    let basic = |user: &str, password: &str| {
        let raw = format!("{user}:{password}");
        let out = std::process::Command::new("base64")
            .arg("-w0")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().expect("stdin").write_all(raw.as_bytes())?;
                c.wait_with_output()
            })
            .expect("base64");
        format!("Basic {}", String::from_utf8_lossy(&out.stdout).trim())
    };
    let get = |auth: &str| {
        http_request(
            &server.http,
            "GET",
            "/ns/y_te/api/v1/labels",
            &[("Authorization", auth)],
            b"",
        )
    };
    assert_eq!(get(&basic("reader", &token("reader"))).0, 200);
    let (status, headers, body) = get(&basic("reader", &token("writer")));
    assert_eq!(status, 401);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("www-authenticate") && v.contains("Basic")),
        "{headers:?}"
    );
    let body = String::from_utf8_lossy(&body);
    assert!(!body.contains(&token("writer")), "{body}");
    let (status, _, body) = get(&format!("Bearer {}", token("writer")));
    assert_eq!(status, 403);
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("writer") && body.contains("read role"),
        "{body}"
    );
    assert!(!body.contains(&token("writer")), "{body}");

    // The CLI takes its token from IOCDB_TOKEN or a file, never from its arguments.
    let bin = env!("CARGO_BIN_EXE_iocdb");
    let run = |envs: &[(&str, &str)]| {
        std::process::Command::new(bin)
            .args(["stats", "--addr", &server.addr])
            .env_remove("IOCDB_TOKEN")
            .env_remove("IOCDB_TOKEN_FILE")
            .envs(envs.iter().copied())
            .output()
            .expect("run")
    };
    let out = run(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("authentication required"));
    let out = run(&[("IOCDB_TOKEN", &token("root"))]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{}\n", token("reader"))).expect("token file");
    let out = run(&[("IOCDB_TOKEN_FILE", file.to_str().expect("utf-8"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("reader may not administer"),
        "{err}"
    );
    assert!(!err.contains(&token("reader")), "{err}");

    // The audit trail: the refusals above and an administrator's deletion, by principal,
    // and no token anywhere in it.
    let bearer = format!("Bearer {}", token("root"));
    let (status, _, _) = http_request(
        &server.http,
        "POST",
        "/ns/y_te/api/v1/admin/tsdb/delete_series?match[]=queue",
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(status, 204);
    let out = std::process::Command::new(bin)
        .args(["audit", "--json", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .expect("audit");
    let trail = String::from_utf8_lossy(&out.stdout);
    let events: Vec<serde_json::Value> = trail
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let has = |principal: &str, action: &str, outcome: &str| {
        events.iter().any(|e| {
            e["principal"] == principal
                && e["action"] == action
                && e["outcome"]
                    .as_str()
                    .is_some_and(|o| o.starts_with(outcome))
        })
    };
    assert!(
        has("root", "/api/v1/admin/tsdb/delete_series", "204"),
        "{trail}"
    );
    assert!(has("writer", "/api/v1/labels", "denied"), "{trail}");
    assert!(has("reader", "/iocdb.v1.Admin/Stats", "denied"), "{trail}");
    assert!(
        has("unauthenticated", "/iocdb.v1.Admin/Stats", "denied"),
        "{trail}"
    );
    let raw = std::fs::read_to_string(dir.path().join("data").join("audit.log")).expect("trail");
    for (name, _) in CALLERS {
        assert!(
            !raw.contains(&token(name)),
            "a token in the audit trail: {raw}"
        );
    }

    // `iocdb token` makes a token whose printed hash is its SHA-256.
    let out = std::process::Command::new(bin)
        .arg("token")
        .output()
        .expect("token");
    let text = String::from_utf8_lossy(&out.stdout);
    let tok = text
        .lines()
        .find_map(|l| l.strip_prefix("token:"))
        .expect("token line")
        .trim();
    let sha = text
        .lines()
        .find_map(|l| l.strip_prefix("sha256:"))
        .expect("sha line")
        .trim();
    assert_eq!(sha, sha256_hex(tok));
}

#[test]
fn listening_beyond_loopback_unprotected_is_refused_unless_insecure() {
    let dir = tempfile::tempdir().expect("dir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iocdb"))
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--http-listen",
            "",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .env("IOCDB_LOG", "warn")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without TLS and an auth_file")
            && err.contains("--insecure"),
        "{err}"
    );
}

#[test]
fn sighup_rereads_the_auth_file_and_a_broken_one_leaves_the_old_principals() {
    let dir = tempfile::tempdir().expect("dir");
    let auth = dir.path().join("auth.toml");
    let entry = |name: &str| {
        format!(
            "[[principal]]\nname = \"{name}\"\ntoken_sha256 = [\"{}\"]\nroles = {{ y_te = [\"read\"] }}\n",
            sha256_hex(&token(name))
        )
    };
    std::fs::write(&auth, entry("first")).expect("auth file");
    let server = Server::start(
        &dir.path().join("data"),
        &format!("auth_file = {:?}\n", auth.display().to_string()),
    );
    let status = |name: &str| {
        let bearer = format!("Bearer {}", token(name));
        http_request(
            &server.http,
            "GET",
            "/ns/y_te/api/v1/labels",
            &[("Authorization", &bearer)],
            b"",
        )
        .0
    };
    let hup = || {
        std::process::Command::new("kill")
            .args(["-HUP", &server.child.id().to_string()])
            .status()
            .expect("kill");
    };
    // Reloading is asynchronous: wait (bounded) for the new answer.
    let eventually = |name: &str, want: u16| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while status(name) != want {
            assert!(std::time::Instant::now() < deadline, "{name}: never {want}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    assert_eq!(status("first"), 200);
    assert_eq!(status("second"), 401);
    std::fs::write(&auth, entry("second")).expect("auth file");
    hup();
    eventually("second", 200);
    assert_eq!(status("first"), 401);
    std::fs::write(&auth, "[[principal]]\nname = 'broken'\n").expect("auth file");
    hup();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(status("second"), 200, "a broken file changes nothing");
}

/// A watch of several namespaces needs `read` on each of them, not only on the one its URL
/// names.
#[test]
fn a_watch_of_several_namespaces_needs_read_on_each() {
    let dir = tempfile::tempdir().expect("dir");
    let auth = dir.path().join("auth.toml");
    std::fs::write(&auth, auth_file()).expect("auth file");
    let server = Server::start(
        &dir.path().join("data"),
        &format!("auth_file = {:?}\n", auth.display().to_string()),
    );
    let watch = |who: &str, namespaces: &[&str]| {
        let query: Vec<String> = namespaces
            .iter()
            .map(|ns| format!("watch[]={}", crate::harness::enc(&format!("{ns}:up"))))
            .collect();
        let bearer = format!("Bearer {}", token(who));
        http_request(
            &server.http,
            "GET",
            &format!("/ns/y_te/api/v1/watch?{}&timeout=0.05", query.join("&")),
            &[("Authorization", &bearer)],
            b"",
        )
    };
    assert_eq!(watch("reader", &["y_te"]).0, 200);
    let (status, _, body) = watch("reader", &["y_te", "giao_duc"]);
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(
        String::from_utf8_lossy(&body).contains("giao_duc"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(watch("root", &["y_te", "giao_duc"]).0, 200);
}
