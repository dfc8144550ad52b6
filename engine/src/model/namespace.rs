//! Namespaces: every series belongs to one (a department such as `health`), so that
//! retention, limits and access can differ per department.

use std::fmt;
use std::sync::Arc;

/// The namespace a request uses when it names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Longest accepted namespace name, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 64;

/// A validated namespace name: 1–64 bytes of `[a-zA-Z0-9_-]`, starting with a letter or `_`.
#[derive(Debug, Clone, PartialOrd, Ord)]
pub struct Namespace(Arc<str>);

/// Equal names, compared by pointer first: every series of a namespace shares the
/// namespace's one copy (`head::usage::Usages::interned`), so the write path's comparisons
/// of a series' namespace with the request's (one per series looked up) are pointer
/// comparisons. `Arc<str>`'s own equality compares the bytes every time (a `bcmp` call per
/// series in the profiles of BENCHMARKS.md, "Ingest by labels").
impl PartialEq for Namespace {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for Namespace {}

/// The name's hash, as equality compares names.
impl std::hash::Hash for Namespace {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl Namespace {
    /// Validates `name`; an empty name means [`DEFAULT_NAMESPACE`].
    pub fn new(name: &str) -> Result<Self, String> {
        let name = if name.is_empty() {
            DEFAULT_NAMESPACE
        } else {
            name
        };
        if name.len() > MAX_NAMESPACE_LEN {
            return Err(format!(
                "namespace {} is longer than {MAX_NAMESPACE_LEN} bytes",
                super::echo(name)
            ));
        }
        let mut chars = name.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(format!(
                "namespace {} must match [a-zA-Z_][a-zA-Z0-9_-]*",
                super::echo(name)
            ));
        }
        Ok(Namespace(Arc::from(name)))
    }

    /// The default namespace.
    pub fn default_namespace() -> Self {
        Namespace(Arc::from(DEFAULT_NAMESPACE))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A setting that some namespaces have: their own value, or `default` for the others
/// (`None` in both: the namespace has no such limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerNamespace<T> {
    /// For namespaces without their own value.
    pub default: Option<T>,
    /// Namespaces' own values.
    pub by_namespace: std::collections::HashMap<String, T>,
}

impl<T> Default for PerNamespace<T> {
    fn default() -> Self {
        PerNamespace {
            default: None,
            by_namespace: std::collections::HashMap::new(),
        }
    }
}

impl<T: Copy> PerNamespace<T> {
    /// The namespace's value.
    pub fn get(&self, namespace: &str) -> Option<T> {
        self.by_namespace.get(namespace).copied().or(self.default)
    }

    /// Whether no namespace has a value.
    pub fn is_empty(&self) -> bool {
        self.default.is_none() && self.by_namespace.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_equal_by_name_whether_or_not_they_share_their_copy() {
        let health = Namespace::new("health").unwrap();
        assert_eq!(health, health.clone());
        assert_eq!(health, Namespace::new("health").unwrap());
        assert_ne!(health, Namespace::new("healt").unwrap());
        assert_ne!(health, Namespace::new("tourism").unwrap());
    }

    #[test]
    fn empty_namespace_means_default() {
        assert_eq!(
            Namespace::new("").map(|n| n.as_str().to_owned()),
            Ok("default".to_owned())
        );
    }

    #[test]
    fn namespaces_with_spaces_or_leading_digits_are_refused() {
        assert!(Namespace::new("health dept").is_err());
        assert!(Namespace::new("1health").is_err());
        assert!(Namespace::new(&"a".repeat(65)).is_err());
        assert!(Namespace::new("lodging-2").is_ok());
    }
}
