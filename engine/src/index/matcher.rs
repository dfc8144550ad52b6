//! Label matchers: `=`, `!=`, `=~`, `!~`, with regular expressions anchored at both ends as
//! in PromQL.

use regex::Regex;

use crate::model::echo;
use crate::{Error, Result};

/// The matcher operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (anchored)
    Regex,
    /// `!~` (anchored)
    NotRegex,
}

/// One label matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Operator.
    pub op: MatchOp,
    /// Value or pattern.
    pub value: String,
    re: Option<Regex>,
}

impl Matcher {
    /// A matcher; regular expressions are compiled anchored (`^(?:…)$`).
    pub fn new(name: impl Into<String>, op: MatchOp, value: impl Into<String>) -> Result<Self> {
        let (name, value) = (name.into(), value.into());
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                regex::RegexBuilder::new(&format!("^(?:{value})$"))
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| {
                        // The regex crate's message quotes the whole pattern: keep its gist.
                        let why = e.to_string();
                        let why = why.lines().last().unwrap_or_default();
                        Error::InvalidArgument(format!(
                            "matcher {}=~{}: bad regex: {}",
                            echo(&name),
                            echo(&value),
                            echo(why)
                        ))
                    })?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name,
            op,
            value,
            re,
        })
    }

    /// `name = value`.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            re: None,
        }
    }

    /// Whether a label value (empty for an absent label) satisfies the matcher.
    pub fn matches(&self, v: &str) -> bool {
        match (self.op, &self.re) {
            (MatchOp::Equal, _) => v == self.value,
            (MatchOp::NotEqual, _) => v != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(v),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(v),
            (_, None) => false,
        }
    }
}
