//! The web console: the pages in `server/console/` — Explore, the province overview, data
//! health and the server's state — embedded in the binary and served at `/` on the HTTP
//! listener. They are plain ES modules and CSS with no build step, so what is committed is
//! what is served (a test checks that every file of the folder is in [`ASSETS`] and that
//! nothing else is), nothing is fetched from elsewhere at run time, and `cargo run` needs no
//! Node.js. The pages speak only the HTTP API, like any other client.
//!
//! Each asset is sent gzip-compressed when the browser accepts it (compressed once, on
//! first use), with a strong `ETag` so that a reload costs a `304`, and a content security
//! policy that allows nothing but this origin.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file of the console.
pub struct Asset {
    /// Its name in `server/console/` and under `/console/`.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes, as committed.
    pub body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("../console/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of `server/console/`.
pub const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("errors.js", JS),
    asset!("dom.js", JS),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("i18n.js", JS),
    asset!("chart.js", JS),
    asset!("explore.js", JS),
    asset!("overview.js", JS),
    asset!("health.js", JS),
    asset!("server.js", JS),
    asset!("favicon.svg", "image/svg+xml"),
];

/// An asset as served: its tag and its gzip-compressed bytes.
struct Prepared {
    etag: String,
    gzip: Vec<u8>,
}

fn prepared() -> &'static [Prepared] {
    static PREPARED: OnceLock<Vec<Prepared>> = OnceLock::new();
    PREPARED.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.body);
                let etag = format!(
                    "\"{}\"",
                    digest
                        .iter()
                        .take(12)
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                );
                Prepared {
                    etag,
                    gzip: gzip(a.body),
                }
            })
            .collect()
    })
}

fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(body);
    enc.finish().unwrap_or_default()
}

/// `GET /`: the console's page.
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /console/{file}`: one of its assets.
pub async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    serve(&name, &headers)
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some((asset, prepared)) = ASSETS.iter().zip(prepared()).find(|(a, _)| a.name == name)
    else {
        return (
            StatusCode::NOT_FOUND,
            format!("no console file {:?}\n", iocdb_engine::echo(name)),
        )
            .into_response();
    };
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == prepared.etag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else if accepts_gzip(headers) {
        let mut r = prepared.gzip.clone().into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        asset.body.into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    if let Ok(tag) = HeaderValue::from_str(&prepared.etag) {
        h.insert(header::ETAG, tag);
    }
    // Always revalidated: a new binary serves new pages at once, and a 304 costs nothing.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|e| {
                let mut parts = e.split(';');
                let coding = parts.next().unwrap_or("").trim();
                let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00"));
                (coding == "gzip" || coding == "*") && !refused
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded list and the folder agree: a file added to `server/console/` without
    /// an entry here would never be served, and an entry without its file cannot compile.
    #[test]
    fn every_console_file_is_embedded_and_identical() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("server/console")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.name.to_owned()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
        for a in ASSETS {
            assert_eq!(
                std::fs::read(dir.join(a.name)).expect("read"),
                a.body,
                "{} differs from what is embedded (rebuild)",
                a.name
            );
        }
    }

    #[test]
    fn assets_are_served_compressed_only_to_browsers_that_accept_it() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, deflate, br"),
        );
        assert!(accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip;q=0"),
        );
        assert!(!accepts_gzip(&h));
    }

    #[test]
    fn the_page_loads_only_its_own_modules() {
        let index = std::str::from_utf8(ASSETS[0].body).expect("utf-8");
        for needle in ["http://", "https://", "//cdn"] {
            assert!(
                !index.contains(needle),
                "index.html refers elsewhere: {needle}"
            );
        }
    }
}
