//! Request parameters as Prometheus reads them: the URL query and, for POST, a form body,
//! merged; times as Unix seconds (fractions allowed) or RFC 3339; durations as seconds or
//! Prometheus durations (`5m`, `1h30m`).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use iocdb_engine::echo;

use super::ApiError;

/// The largest form body read, bytes (a long PromQL query is a few KiB).
const MAX_FORM_BYTES: usize = 1 << 20;

/// All parameters of a request, in order, repeated names kept (`match[]`).
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut pairs: Vec<(String, String)> = match req.uri().query() {
            Some(q) => serde_urlencoded::from_str(q)
                .map_err(|e| ApiError::bad_data(format!("bad query string: {e}")))?,
            None => Vec::new(),
        };
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            let body = Bytes::from_request(req, state)
                .await
                .map_err(|e| ApiError::bad_data(format!("cannot read the form body: {e}")))?;
            if body.len() > MAX_FORM_BYTES {
                return Err(ApiError::bad_data(format!(
                    "the form body is {} bytes, the limit is {MAX_FORM_BYTES}",
                    body.len()
                )));
            }
            let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
                .map_err(|e| ApiError::bad_data(format!("bad form body: {e}")))?;
            pairs.extend(form);
        }
        Ok(Params(pairs))
    }
}

impl Params {
    /// Parameters from decoded pairs.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Params(pairs)
    }

    /// The first value of `name`, if given and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A required parameter.
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::bad_data(format!("missing parameter {name:?}")))
    }

    /// A time parameter, ms.
    pub fn time(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|v| {
                parse_time(v).ok_or_else(|| {
                    ApiError::bad_data(format!(
                        "invalid parameter {name:?}: cannot parse {} to a valid timestamp",
                        echo(v)
                    ))
                })
            })
            .transpose()
    }

    /// A duration parameter, ms.
    pub fn duration(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|v| {
                parse_duration(v).ok_or_else(|| {
                    ApiError::bad_data(format!(
                        "invalid parameter {name:?}: cannot parse {} to a valid duration",
                        echo(v)
                    ))
                })
            })
            .transpose()
    }
}

/// Unix seconds (`1435781451.781`) or RFC 3339 (`2015-07-01T20:10:51.781Z`), to ms.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(secs) = s.parse::<f64>() {
        let ms = (secs * 1000.0).round();
        return (ms.is_finite() && ms.abs() < 9.2e18).then_some(ms as i64);
    }
    let t = humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok()?;
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).ok(),
        Err(e) => i64::try_from(e.duration().as_millis()).ok().map(|v| -v),
    }
}

/// Seconds (`15`, `0.5`) or a Prometheus duration (`5m`, `1h30m`, `100ms`), to ms.
pub fn parse_duration(s: &str) -> Option<i64> {
    if let Ok(secs) = s.parse::<f64>() {
        let ms = (secs * 1000.0).round();
        return (ms.is_finite() && ms.abs() < 9.2e18).then_some(ms as i64);
    }
    let mut total: i64 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: i64 = rest.get(..digits)?.parse().ok()?;
        rest = rest.get(digits..)?;
        let (unit, ms) = [
            ("ms", 1),
            ("s", 1000),
            ("m", 60_000),
            ("h", 3_600_000),
            ("d", 86_400_000),
            ("w", 604_800_000),
            ("y", 31_536_000_000),
        ]
        .into_iter()
        .find(|(u, _)| rest.starts_with(u))?;
        rest = rest.get(unit.len()..)?;
        total = total.checked_add(n.checked_mul(ms)?)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_parse_as_prometheus_reads_them() {
        assert_eq!(parse_time("1435781451.781"), Some(1_435_781_451_781));
        assert_eq!(parse_time("1435781451"), Some(1_435_781_451_000));
        assert_eq!(
            parse_time("2015-07-01T20:10:51.781Z"),
            Some(1_435_781_451_781)
        );
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_duration("15"), Some(15_000));
        assert_eq!(parse_duration("0.5"), Some(500));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration("100ms"), Some(100));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration(""), None);
    }
}
