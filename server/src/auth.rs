//! Who is calling, and what they may do.
//!
//! Principals come from the auth file (`auth_file` in the config; reread on SIGHUP): each
//! has a name, the SHA-256 hashes of its tokens (never the tokens: `iocdb token` makes one
//! and prints its hash), optionally an HTTP basic-auth user name (whose password is one of
//! its tokens, for tools such as Grafana that prefer basic auth) and the common name of its
//! client certificate (over mutual TLS, gRPC and HTTP: a call without a token is that principal's),
//! and roles per namespace —
//! `read`, `write`, `admin` — where the namespace `*` means every namespace.
//!
//! ```toml
//! [[principal]]
//! name = "so-y-te"                      # the health department's collector
//! token_sha256 = ["9f86d081884c7d65…"]
//! roles = { y_te = ["write", "read"] }
//!
//! [[principal]]
//! name = "grafana"
//! basic_user = "grafana"
//! token_sha256 = ["60303ae22b998861…"]
//! roles = { "*" = ["read"] }
//! ```
//!
//! Every gRPC method and HTTP route is listed in [`GRPC`] or [`HTTP`] with what it needs;
//! the front doors call [`Auth::check`] before any work, and a test walks the whole matrix
//! of roles × calls × namespaces. Without an auth file every call is allowed (and the server
//! refuses to listen beyond loopback unless told `--insecure`). Tokens never appear in
//! messages or logs: only principal names do.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// A right on a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Queries, series and label listings, metadata, exports.
    Read,
    /// Writes of samples and metric metadata from remote write.
    Write,
    /// Flush, compaction, deletion, snapshots, inspection, declared metadata.
    Admin,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

/// What a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing (health, readiness, reflection, build information).
    Open,
    /// The role on every namespace (`*`): the call reaches the whole store.
    Global(Role),
    /// The role on the namespace the call names.
    Namespace(Role),
}

/// Every gRPC method and what it needs. A method missing here is refused.
pub const GRPC: &[(&str, Need)] = &[
    ("/iocdb.v1.Ingest/Write", Need::Namespace(Role::Write)),
    ("/iocdb.v1.Ingest/WriteStream", Need::Namespace(Role::Write)),
    ("/iocdb.v1.Query/Instant", Need::Namespace(Role::Read)),
    ("/iocdb.v1.Query/Range", Need::Namespace(Role::Read)),
    ("/iocdb.v1.Query/Select", Need::Namespace(Role::Read)),
    ("/iocdb.v1.Query/QueryRange", Need::Namespace(Role::Read)),
    ("/iocdb.v1.Query/Latest", Need::Namespace(Role::Read)),
    ("/iocdb.v1.Query/Stale", Need::Namespace(Role::Read)),
    ("/iocdb.v1.Query/Completeness", Need::Namespace(Role::Read)),
    ("/iocdb.v1.Query/Watch", Need::Namespace(Role::Read)),
    ("/iocdb.v1.Query/Series", Need::Namespace(Role::Read)),
    ("/iocdb.v1.Query/LabelNames", Need::Namespace(Role::Read)),
    ("/iocdb.v1.Query/LabelValues", Need::Namespace(Role::Read)),
    ("/iocdb.v1.Admin/Flush", Need::Global(Role::Admin)),
    ("/iocdb.v1.Admin/Compact", Need::Global(Role::Admin)),
    ("/iocdb.v1.Admin/Delete", Need::Namespace(Role::Admin)),
    ("/iocdb.v1.Admin/Export", Need::Namespace(Role::Read)),
    ("/iocdb.v1.Admin/Snapshot", Need::Global(Role::Admin)),
    ("/iocdb.v1.Admin/Stats", Need::Global(Role::Admin)),
    ("/iocdb.v1.Admin/Inspect", Need::Global(Role::Admin)),
    ("/iocdb.v1.Admin/Verify", Need::Global(Role::Admin)),
    ("/iocdb.v1.Admin/SetMetadata", Need::Namespace(Role::Admin)),
    ("/iocdb.v1.Admin/GetMetadata", Need::Namespace(Role::Read)),
    ("/iocdb.v1.Admin/Quality", Need::Namespace(Role::Read)),
];

/// Every HTTP route (as the router spells it, without the `/ns/{namespace}` prefix) and what
/// it needs. A route missing here is refused.
pub const HTTP: &[(&str, Need)] = &[
    ("/api/v1/query", Need::Namespace(Role::Read)),
    ("/api/v1/query_range", Need::Namespace(Role::Read)),
    ("/api/v1/series", Need::Namespace(Role::Read)),
    ("/api/v1/watch", Need::Namespace(Role::Read)),
    ("/api/v1/completeness", Need::Namespace(Role::Read)),
    ("/api/v1/quality", Need::Namespace(Role::Read)),
    ("/api/v1/labels", Need::Namespace(Role::Read)),
    ("/api/v1/label/{name}/values", Need::Namespace(Role::Read)),
    ("/api/v1/metadata", Need::Namespace(Role::Read)),
    ("/api/v1/query_exemplars", Need::Namespace(Role::Read)),
    ("/api/v1/status/buildinfo", Need::Open),
    ("/api/v1/status/iocdb", Need::Global(Role::Read)),
    // The console's files hold no data: its pages ask the API, which checks each call.
    ("/", Need::Open),
    ("/console/{file}", Need::Open),
    (
        "/api/v1/admin/tsdb/delete_series",
        Need::Namespace(Role::Admin),
    ),
    (
        "/api/v1/admin/tsdb/clean_tombstones",
        Need::Global(Role::Admin),
    ),
    ("/api/v1/write", Need::Namespace(Role::Write)),
    ("/api/v1/read", Need::Namespace(Role::Read)),
    ("/api/v2/write", Need::Namespace(Role::Write)),
    ("/write", Need::Namespace(Role::Write)),
    ("/metrics", Need::Global(Role::Read)),
    ("/-/healthy", Need::Open),
    ("/-/ready", Need::Open),
];

/// The need of a gRPC method or HTTP route by its path; `None` when it is not listed.
pub fn need_of(table: &[(&str, Need)], path: &str) -> Option<Need> {
    table.iter().find(|(p, _)| *p == path).map(|(_, n)| *n)
}

/// An authenticated caller.
#[derive(Debug)]
pub struct Principal {
    /// Its name, as logs and messages show it.
    pub name: String,
    roles: BTreeMap<String, BTreeSet<Role>>,
}

impl Principal {
    /// Whether it holds `role` on `namespace` (or on every namespace).
    pub fn may(&self, namespace: &str, role: Role) -> bool {
        [namespace, "*"]
            .iter()
            .any(|ns| self.roles.get(*ns).is_some_and(|r| r.contains(&role)))
    }
}

/// Who a call comes from.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No auth file: every call is allowed.
    Anyone,
    /// An authenticated principal.
    Principal(Arc<Principal>),
}

impl Caller {
    /// The name the audit trail gives the caller.
    pub fn name(&self) -> &str {
        match self {
            Caller::Anyone => "anyone",
            Caller::Principal(p) => &p.name,
        }
    }

    /// Whether the caller may do what `role` allows on `namespace`.
    pub fn check(&self, namespace: &str, role: Role) -> Result<(), Denied> {
        let namespace = display_namespace(namespace);
        match self {
            Caller::Anyone => Ok(()),
            Caller::Principal(p) if p.may(namespace, role) => Ok(()),
            Caller::Principal(p) => Err(Denied::Forbidden(
                p.name.clone(),
                format!(
                    "{} may not {} namespace {}: it lacks the {} role there",
                    p.name,
                    match role {
                        Role::Read => "read",
                        Role::Write => "write into",
                        Role::Admin => "administer",
                    },
                    iocdb_engine::echo(namespace),
                    role.name()
                ),
            )),
        }
    }
}

/// A request that names no namespace writes and reads the default one.
fn display_namespace(ns: &str) -> &str {
    if ns.is_empty() {
        iocdb_engine::DEFAULT_NAMESPACE
    } else {
        ns
    }
}

/// Why a call is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No credentials, or unknown ones (`UNAUTHENTICATED`, HTTP 401).
    Unauthenticated(String),
    /// Known caller (named first), missing role (`PERMISSION_DENIED`, HTTP 403).
    Forbidden(String, String),
}

impl Denied {
    /// Who was refused, as the audit trail names them.
    pub fn principal(&self) -> &str {
        match self {
            Denied::Unauthenticated(_) => "unauthenticated",
            Denied::Forbidden(p, _) => p,
        }
    }

    /// Why, for people.
    pub fn message(&self) -> &str {
        match self {
            Denied::Unauthenticated(m) | Denied::Forbidden(_, m) => m,
        }
    }

    /// As a gRPC status.
    pub fn status(&self) -> tonic::Status {
        match self {
            Denied::Unauthenticated(m) => tonic::Status::unauthenticated(m.clone()),
            Denied::Forbidden(_, m) => tonic::Status::permission_denied(m.clone()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    #[serde(default)]
    principal: Vec<PrincipalEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipalEntry {
    name: String,
    #[serde(default)]
    token_sha256: Vec<String>,
    #[serde(default)]
    basic_user: Option<String>,
    #[serde(default)]
    mtls_common_name: Option<String>,
    #[serde(default)]
    roles: BTreeMap<String, Vec<Role>>,
}

/// The principals of the auth file, indexed by token hash and basic-auth user.
#[derive(Debug, Default)]
pub struct Auth {
    by_token: HashMap<[u8; 32], Arc<Principal>>,
    by_user: HashMap<String, Arc<Principal>>,
    by_common_name: HashMap<String, Arc<Principal>>,
}

/// The SHA-256 of a token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new random token: 32 bytes from the OS's generator, hex, with a prefix that says what
/// it is when one turns up in a file.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("iocdb_{}", hex(&bytes))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Auth {
    /// Reads the auth file; the error names the file and what is wrong (never a token).
    pub fn load(path: &Path) -> anyhow::Result<Auth> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the auth file {}: {e}", path.display()))?;
        Auth::parse(&text).map_err(|e| anyhow::anyhow!("auth file {}: {e}", path.display()))
    }

    /// Parses the auth file's text.
    pub fn parse(text: &str) -> anyhow::Result<Auth> {
        let file: AuthFile = toml::from_str(text)?;
        let mut auth = Auth::default();
        for entry in file.principal {
            if entry.token_sha256.is_empty() && entry.mtls_common_name.is_none() {
                anyhow::bail!(
                    "principal {:?} has no token_sha256 and no mtls_common_name",
                    entry.name
                );
            }
            let roles = entry
                .roles
                .into_iter()
                .map(|(ns, roles)| (ns, roles.into_iter().collect()))
                .collect();
            let principal = Arc::new(Principal {
                name: entry.name.clone(),
                roles,
            });
            for hash in &entry.token_sha256 {
                let key = unhex(hash.trim()).ok_or_else(|| {
                    anyhow::anyhow!(
                        "principal {:?}: token_sha256 entries are 64 hex digits (iocdb token prints them)",
                        entry.name
                    )
                })?;
                if auth.by_token.insert(key, principal.clone()).is_some() {
                    anyhow::bail!("principal {:?}: a token hash is listed twice", entry.name);
                }
            }
            if let Some(cn) = entry.mtls_common_name
                && auth
                    .by_common_name
                    .insert(cn.clone(), principal.clone())
                    .is_some()
            {
                anyhow::bail!("mtls_common_name {cn:?} is given to two principals");
            }
            if let Some(user) = entry.basic_user
                && auth.by_user.insert(user.clone(), principal).is_some()
            {
                anyhow::bail!("basic_user {user:?} is given to two principals");
            }
        }
        Ok(auth)
    }

    /// The caller named by an `Authorization` header value (or gRPC `authorization`
    /// metadata): `Bearer <token>` or `Basic <base64 user:password>`.
    /// Or, without an `Authorization` header, by the common name of the client certificate
    /// the TLS handshake verified against the client CA.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        client_common_name: Option<&str>,
    ) -> Result<Caller, Denied> {
        if authorization.is_none()
            && let Some(p) = client_common_name.and_then(|cn| self.by_common_name.get(cn))
        {
            return Ok(Caller::Principal(p.clone()));
        }
        let Some(value) = authorization else {
            return Err(Denied::Unauthenticated(
                "authentication required: send the header `authorization: Bearer <token>`".into(),
            ));
        };
        let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
        let found = match scheme.to_ascii_lowercase().as_str() {
            "bearer" => self.by_token.get(&token_hash(credentials.trim())).cloned(),
            "basic" => decode_basic(credentials.trim()).and_then(|(user, password)| {
                let p = self.by_user.get(&user)?;
                let q = self.by_token.get(&token_hash(&password))?;
                Arc::ptr_eq(p, q).then(|| p.clone())
            }),
            _ => {
                return Err(Denied::Unauthenticated(
                    "unknown authorization scheme: use Bearer or Basic".into(),
                ));
            }
        };
        found.map(Caller::Principal).ok_or_else(|| {
            Denied::Unauthenticated("the credentials are not known to this server".into())
        })
    }
}

/// The subject common name of a DER certificate.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// `user:password` from HTTP basic credentials.
fn decode_basic(b64: &str) -> Option<(String, String)> {
    let bytes = base64_decode(b64)?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Standard base64 with padding (what HTTP basic auth uses).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let text = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for group in text.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in group.iter().enumerate() {
            acc |= value(*c)? << (18 - 6 * i);
        }
        let n = match group.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return None,
        };
        // The 24 bits, most significant byte first.
        out.extend(
            [(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]
                .iter()
                .take(n),
        );
    }
    Some(out)
}

/// The auth in force: `None` without an auth file. Swapped whole on SIGHUP.
#[derive(Debug, Default)]
pub struct Gate {
    current: std::sync::RwLock<Option<Arc<Auth>>>,
}

impl Gate {
    /// A gate with `auth` in force.
    pub fn new(auth: Option<Auth>) -> Self {
        Gate {
            current: std::sync::RwLock::new(auth.map(Arc::new)),
        }
    }

    /// Replaces the principals (a reload).
    pub fn replace(&self, auth: Auth) {
        if let Ok(mut g) = self.current.write() {
            *g = Some(Arc::new(auth));
        }
    }

    /// Authenticates the caller only, for calls that check each message's namespace as it
    /// comes (a write stream).
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        client_common_name: Option<&str>,
    ) -> Result<Caller, Denied> {
        match self.current.read() {
            Ok(g) => match g.as_ref() {
                None => Ok(Caller::Anyone),
                Some(auth) => auth.authenticate(authorization, client_common_name),
            },
            Err(_) => Err(Denied::Unauthenticated(
                "the server's principals are unavailable".into(),
            )),
        }
    }

    /// Authenticates the caller and checks `need`; `namespace` is the one the call names
    /// (ignored for `Open` and `Global`).
    pub fn check(
        &self,
        authorization: Option<&str>,
        client_common_name: Option<&str>,
        need: Need,
        namespace: &str,
    ) -> Result<Caller, Denied> {
        let auth = match self.current.read() {
            Ok(g) => g.clone(),
            // A poisoned lock: refuse rather than open the door.
            Err(_) => {
                return Err(Denied::Unauthenticated(
                    "the server's principals are unavailable".into(),
                ));
            }
        };
        let Some(auth) = auth else {
            return Ok(Caller::Anyone);
        };
        if need == Need::Open {
            return Ok(auth
                .authenticate(authorization, client_common_name)
                .unwrap_or(Caller::Anyone));
        }
        let caller = auth.authenticate(authorization, client_common_name)?;
        match need {
            Need::Open => {}
            Need::Global(role) => caller.check("*", role)?,
            Need::Namespace(role) => caller.check(namespace, role)?,
        }
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(tokens: &[(&str, &str)]) -> String {
        tokens
            .iter()
            .map(|(name, roles)| {
                format!(
                    "[[principal]]\nname = \"{name}\"\nbasic_user = \"{name}\"\ntoken_sha256 = [\"{}\"]\nroles = {roles}\n",
                    hex(&token_hash(&format!("tok-{name}")))
                )
            })
            .collect()
    }

    #[test]
    fn roles_apply_per_namespace_and_star_means_all() {
        let auth = Auth::parse(&file(&[
            ("writer", "{ y_te = [\"write\"] }"),
            ("reader", "{ \"*\" = [\"read\"] }"),
        ]))
        .expect("parse");
        let gate = Gate::new(Some(auth));
        let bearer = |name: &str| format!("Bearer tok-{name}");
        let w = bearer("writer");
        assert!(
            gate.check(Some(&w), None, Need::Namespace(Role::Write), "y_te")
                .is_ok()
        );
        let denied = gate
            .check(Some(&w), None, Need::Namespace(Role::Write), "du_lich")
            .expect_err("other namespace");
        assert!(
            matches!(&denied, Denied::Forbidden(p, m) if p == "writer" && m.contains("writer") && m.contains("du_lich") && m.contains("write role")),
            "{denied:?}"
        );
        assert!(
            gate.check(Some(&w), None, Need::Namespace(Role::Read), "y_te")
                .is_err()
        );
        let r = bearer("reader");
        assert!(
            gate.check(Some(&r), None, Need::Namespace(Role::Read), "any")
                .is_ok()
        );
        assert!(
            gate.check(Some(&r), None, Need::Global(Role::Read), "")
                .is_ok()
        );
        assert!(
            gate.check(Some(&r), None, Need::Global(Role::Admin), "")
                .is_err()
        );
        assert!(matches!(
            gate.check(None, None, Need::Namespace(Role::Read), "y_te"),
            Err(Denied::Unauthenticated(_))
        ));
        assert!(matches!(
            gate.check(Some("Bearer nope"), None, Need::Namespace(Role::Read), "y_te"),
            Err(Denied::Unauthenticated(m)) if !m.contains("nope")
        ));
        assert!(gate.check(None, None, Need::Open, "").is_ok());
    }

    #[test]
    fn basic_auth_takes_the_users_own_token_as_password() {
        let auth = Auth::parse(&file(&[
            ("grafana", "{ \"*\" = [\"read\"] }"),
            ("other", "{}"),
        ]))
        .expect("parse");
        let basic = |user: &str, password: &str| {
            let raw = format!("{user}:{password}");
            // Standard base64, written out to test the decoder against a known encoder.
            let encoded = base64_encode(raw.as_bytes());
            format!("Basic {encoded}")
        };
        assert!(
            auth.authenticate(Some(&basic("grafana", "tok-grafana")), None)
                .is_ok()
        );
        assert!(
            auth.authenticate(Some(&basic("grafana", "tok-other")), None)
                .is_err()
        );
        assert!(
            auth.authenticate(Some(&basic("nobody", "tok-grafana")), None)
                .is_err()
        );
        assert!(auth.authenticate(Some("Basic !!!"), None).is_err());
        assert!(auth.authenticate(Some("Digest x"), None).is_err());
        // A client certificate's common name names a principal only when it is known, and
        // a token, when sent, is what counts.
        assert!(auth.authenticate(None, Some("grafana")).is_err());
    }

    fn base64_encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for group in bytes.chunks(3) {
            let mut acc = [0u8; 3];
            acc[..group.len()].copy_from_slice(group);
            let n = (u32::from(acc[0]) << 16) | (u32::from(acc[1]) << 8) | u32::from(acc[2]);
            for i in 0..4 {
                if i <= group.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn a_bad_auth_file_says_what_is_wrong_and_never_echoes_a_token() {
        for (text, why) in [
            (
                "[[principal]]\nname = \"a\"\n",
                "no token_sha256 and no mtls_common_name",
            ),
            (
                "[[principal]]\nname = \"a\"\ntoken_sha256 = [\"secret-token\"]\n",
                "64 hex digits",
            ),
            (
                "[[principal]]\nname = \"a\"\ntoken_sha256 = []\nroles = { x = [\"root\"] }\n",
                "unknown variant",
            ),
            (
                "[[principal]]\nname = \"a\"\npassword = \"x\"\n",
                "unknown field",
            ),
        ] {
            let e = Auth::parse(text).expect_err(text).to_string();
            assert!(e.contains(why), "{text}: {e}");
            assert!(!e.contains("secret-token"), "{e}");
        }
    }

    #[test]
    fn every_grpc_method_has_exactly_one_entry() {
        use prost::Message;
        let set = prost_types::FileDescriptorSet::decode(iocdb_proto::v1::FILE_DESCRIPTOR_SET)
            .expect("descriptor");
        let mut declared = BTreeSet::new();
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    declared.insert(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
        let listed: BTreeSet<String> = GRPC.iter().map(|(m, _)| (*m).to_owned()).collect();
        assert_eq!(listed.len(), GRPC.len(), "a method is listed twice");
        assert_eq!(declared, listed);
    }

    #[test]
    fn new_tokens_are_distinct_and_hash_to_64_hex_digits() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with("iocdb_") && a.len() == 6 + 64);
        assert_eq!(unhex(&hex(&token_hash(&a))), Some(token_hash(&a)));
    }
}
