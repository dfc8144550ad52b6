//! Fair shares between departments: per-namespace limits on the ingest rate (a token bucket
//! of samples per second), on the queries running at once and on the samples one query
//! reads, from the config file's
//! `[limits_by_namespace.<namespace>]` tables, reread on SIGHUP. The table `"*"` gives its
//! limits to every namespace, each on its own (a namespace's own table overrides it field by
//! field); a limit set in neither does not apply. Over its rate, a write is refused whole
//! with `RESOURCE_EXHAUSTED` (HTTP 429) and told when to retry; over its share of the head
//! memory likewise (HTTP 503 with `Retry-After`, which remote-write senders retry) until a
//! flush makes room. Other namespaces are untouched.
//!
//! ```toml
//! [limits_by_namespace."*"]
//! head_memory_share = 0.25           # of head_memory_mb: no department fills the head
//!
//! [limits_by_namespace.an_ninh]
//! ingest_samples_per_sec = 200000   # the bucket holds one second's worth
//! max_concurrent_queries = 4
//! query_max_samples = 20000000       # a query reading more is refused
//! max_series = 500000                # instead of max_series_per_namespace
//! head_memory_share = 0.5
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use iocdb_engine::PerNamespace;
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One namespace's limits.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceLimits {
    /// Samples per second accepted, on average; a second's worth may come at once.
    pub ingest_samples_per_sec: Option<f64>,
    /// Queries of the namespace running at once.
    pub max_concurrent_queries: Option<usize>,
    /// Samples one query of the namespace may read (below the server's `query_max_samples`).
    pub query_max_samples: Option<u64>,
    /// Series the namespace may have in the head, instead of the server's
    /// `max_series_per_namespace`.
    pub max_series: Option<usize>,
    /// The fraction of the head memory (`head_memory_mb`) the namespace may fill, in (0, 1];
    /// past it the namespace's writes wait for the next flush, the others' go on.
    pub head_memory_share: Option<f64>,
}

/// The table whose limits every namespace has unless its own table says otherwise.
pub const ALL_NAMESPACES: &str = "*";

impl NamespaceLimits {
    /// These limits, falling back to `default`'s field by field.
    fn or(&self, default: &NamespaceLimits) -> NamespaceLimits {
        NamespaceLimits {
            ingest_samples_per_sec: self
                .ingest_samples_per_sec
                .or(default.ingest_samples_per_sec),
            max_concurrent_queries: self
                .max_concurrent_queries
                .or(default.max_concurrent_queries),
            query_max_samples: self.query_max_samples.or(default.query_max_samples),
            max_series: self.max_series.or(default.max_series),
            head_memory_share: self.head_memory_share.or(default.head_memory_share),
        }
    }
}

/// Refuses a table with a limit that cannot mean anything, naming the namespace and field.
pub fn validate(table: &BTreeMap<String, NamespaceLimits>) -> Result<(), String> {
    for (ns, l) in table {
        if ns != ALL_NAMESPACES {
            iocdb_engine::Namespace::new(ns)
                .map_err(|e| format!("limits_by_namespace: {e} (or \"*\" for all)"))?;
        }
        let at = |field: &str, why: &str| format!("limits_by_namespace.{ns}.{field}: {why}");
        if let Some(share) = l.head_memory_share
            && !(share > 0.0 && share <= 1.0)
        {
            return Err(at(
                "head_memory_share",
                &format!("{share} is not in (0, 1]"),
            ));
        }
        if let Some(rate) = l.ingest_samples_per_sec
            && !(rate > 0.0 && rate.is_finite())
        {
            return Err(at(
                "ingest_samples_per_sec",
                &format!("{rate} is not a positive rate"),
            ));
        }
        if l.max_concurrent_queries == Some(0) {
            return Err(at("max_concurrent_queries", "0 would refuse every query"));
        }
    }
    Ok(())
}

/// Puts the limits the engine enforces itself (series, head memory shares) in force, the
/// shares as bytes of the engine's head budget.
pub fn apply_to_engine(engine: &iocdb_engine::Engine, table: &BTreeMap<String, NamespaceLimits>) {
    let (_, budget) = engine.head_memory();
    engine.set_series_limits(per_namespace(table, |l| l.max_series));
    engine.set_head_shares(per_namespace(table, |l| {
        l.head_memory_share
            .map(|share| (budget as f64 * share) as u64)
    }));
}

/// One field of the table, as the engine takes it: the `"*"` table's value as the default.
fn per_namespace<T>(
    table: &BTreeMap<String, NamespaceLimits>,
    field: impl Fn(&NamespaceLimits) -> Option<T>,
) -> PerNamespace<T> {
    let mut out = PerNamespace::default();
    for (ns, l) in table {
        if ns == ALL_NAMESPACES {
            out.default = field(l);
        } else if let Some(v) = field(l) {
            out.by_namespace.insert(ns.clone(), v);
        }
    }
    out
}

/// Why a call is held back, and when to try again.
#[derive(Debug, Clone, PartialEq)]
pub struct OverLimit {
    pub message: String,
    pub retry_after: Duration,
}

impl OverLimit {
    /// As a gRPC status, the wait in `retry-after-ms` metadata.
    pub fn status(&self) -> tonic::Status {
        let mut status = tonic::Status::resource_exhausted(self.message.clone());
        if let Ok(v) = self.retry_after.as_millis().to_string().parse() {
            status.metadata_mut().insert("retry-after-ms", v);
        }
        status
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The limits in force and the state they keep.
#[derive(Debug, Default)]
pub struct Limiter {
    table: RwLock<Arc<BTreeMap<String, NamespaceLimits>>>,
    buckets: Mutex<HashMap<String, Bucket>>,
    queries: Mutex<HashMap<String, (usize, Arc<Semaphore>)>>,
}

fn namespace_name(ns: &str) -> &str {
    if ns.is_empty() {
        iocdb_engine::DEFAULT_NAMESPACE
    } else {
        ns
    }
}

impl Limiter {
    /// Limits from the config.
    pub fn new(table: BTreeMap<String, NamespaceLimits>) -> Limiter {
        Limiter {
            table: RwLock::new(Arc::new(table)),
            ..Limiter::default()
        }
    }

    /// Puts new limits in force (a reload); buckets and running queries carry over.
    pub fn replace(&self, table: BTreeMap<String, NamespaceLimits>) {
        if let Ok(mut t) = self.table.write() {
            *t = Arc::new(table);
        }
    }

    fn limits(&self, ns: &str) -> Option<NamespaceLimits> {
        let table = self.table.read().ok()?;
        match (table.get(ns), table.get(ALL_NAMESPACES)) {
            (Some(own), Some(all)) => Some(own.or(all)),
            (own, all) => own.or(all).cloned(),
        }
    }

    /// Takes `samples` from the namespace's bucket, or says when there will be room. The
    /// bucket may go into debt by one request (so a batch larger than a second's worth is
    /// not refused forever); the debt is repaid before the next one is admitted.
    pub fn admit_samples(&self, namespace: &str, samples: usize) -> Result<(), OverLimit> {
        let ns = namespace_name(namespace);
        let Some(rate) = self
            .limits(ns)
            .and_then(|l| l.ingest_samples_per_sec)
            .filter(|r| *r > 0.0)
        else {
            return Ok(());
        };
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        let bucket = buckets.entry(ns.to_owned()).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        let elapsed = now.duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.at = now;
        if bucket.tokens <= 0.0 {
            let wait = Duration::from_secs_f64((-bucket.tokens + 1.0) / rate);
            return Err(OverLimit {
                message: format!(
                    "namespace {} is over its ingest rate of {rate} samples/s \
                     (limits_by_namespace); retry in {} ms",
                    iocdb_engine::echo(ns),
                    wait.as_millis()
                ),
                retry_after: wait,
            });
        }
        bucket.tokens -= samples as f64;
        Ok(())
    }

    /// The namespace's sample budget per query, when it has one.
    pub fn query_max_samples(&self, namespace: &str) -> Option<u64> {
        self.limits(namespace_name(namespace))?.query_max_samples
    }

    /// A place among the namespace's running queries, held until dropped; `None` when the
    /// namespace has no such limit.
    pub fn query_permit(&self, namespace: &str) -> Result<Option<OwnedSemaphorePermit>, OverLimit> {
        let ns = namespace_name(namespace);
        let Some(max) = self.limits(ns).and_then(|l| l.max_concurrent_queries) else {
            return Ok(None);
        };
        let semaphore = {
            let Ok(mut q) = self.queries.lock() else {
                return Ok(None);
            };
            let entry = q
                .entry(ns.to_owned())
                .or_insert_with(|| (max, Arc::new(Semaphore::new(max))));
            // A reload changed the limit: a new semaphore; queries under the old one finish.
            if entry.0 != max {
                *entry = (max, Arc::new(Semaphore::new(max)));
            }
            entry.1.clone()
        };
        semaphore
            .try_acquire_owned()
            .map(Some)
            .map_err(|_| OverLimit {
                message: format!(
                    "namespace {} already runs {max} queries (max_concurrent_queries in \
                 limits_by_namespace); retry shortly",
                    iocdb_engine::echo(ns)
                ),
                retry_after: Duration::from_millis(100),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: f64, queries: usize) -> Limiter {
        Limiter::new(BTreeMap::from([(
            "an_ninh".to_owned(),
            NamespaceLimits {
                ingest_samples_per_sec: Some(rate),
                max_concurrent_queries: Some(queries),
                query_max_samples: None,
                max_series: None,
                head_memory_share: None,
            },
        )]))
    }

    #[test]
    fn a_bucket_admits_a_seconds_worth_then_refuses_with_a_wait() {
        let l = limiter(1000.0, 1);
        assert!(l.admit_samples("an_ninh", 600).is_ok());
        assert!(
            l.admit_samples("an_ninh", 600).is_ok(),
            "into debt by one request"
        );
        let over = l.admit_samples("an_ninh", 1).expect_err("in debt");
        assert!(
            over.message.contains("an_ninh") && over.message.contains("1000"),
            "{over:?}"
        );
        assert!(over.retry_after >= Duration::from_millis(150), "{over:?}");
        // Other namespaces are not limited.
        for _ in 0..100 {
            assert!(l.admit_samples("y_te", 1_000_000).is_ok());
        }
    }

    #[test]
    fn queries_beyond_the_limit_wait_for_a_place() {
        let l = limiter(1.0, 2);
        let a = l.query_permit("an_ninh").expect("first");
        let _b = l.query_permit("an_ninh").expect("second");
        assert!(l.query_permit("an_ninh").is_err());
        drop(a);
        assert!(l.query_permit("an_ninh").expect("a place again").is_some());
        assert!(l.query_permit("").expect("default is unlimited").is_none());
    }

    fn table(toml_text: &str) -> BTreeMap<String, NamespaceLimits> {
        toml::from_str(toml_text).expect("toml")
    }

    #[test]
    fn the_all_namespaces_table_fills_in_what_a_namespace_leaves_unset() {
        let l = Limiter::new(table(
            "[\"*\"]\nmax_concurrent_queries = 1\nquery_max_samples = 10\n\
             [an_ninh]\nquery_max_samples = 99\n",
        ));
        assert_eq!(l.query_max_samples("an_ninh"), Some(99));
        assert_eq!(l.query_max_samples("y_te"), Some(10));
        // Each namespace has its own places, not one shared by all.
        let _a = l.query_permit("an_ninh").expect("a").expect("limited");
        let _y = l
            .query_permit("y_te")
            .expect("y_te has its own")
            .expect("limited");
        assert!(l.query_permit("an_ninh").is_err());
    }

    #[test]
    fn limits_that_cannot_mean_anything_are_refused_by_name() {
        for (text, expected) in [
            (
                "[y_te]\nhead_memory_share = 1.5\n",
                "limits_by_namespace.y_te.head_memory_share",
            ),
            (
                "[y_te]\nhead_memory_share = 0.0\n",
                "head_memory_share: 0 is not in (0, 1]",
            ),
            (
                "[\"*\"]\ningest_samples_per_sec = -1.0\n",
                "ingest_samples_per_sec",
            ),
            (
                "[y_te]\nmax_concurrent_queries = 0\n",
                "would refuse every query",
            ),
            ("[\"y te\"]\nmax_series = 1\n", "must match"),
        ] {
            let err = validate(&table(text)).expect_err(text);
            assert!(err.contains(expected), "{text}: {err}");
        }
        assert!(validate(&table("[\"*\"]\nhead_memory_share = 1.0\n")).is_ok());
    }
}
