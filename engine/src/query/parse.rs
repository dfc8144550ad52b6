//! PromQL text to a [`Plan`]: parsed by `promql-parser` (the parser GreptimeDB uses), then
//! resolved and checked against Prometheus 2.42's language.
//!
//! The parser follows Prometheus 3.x; what 3.x added (new functions, `limitk`, `or` in
//! selectors, `fill`) is refused here with a message naming it, and 2.x's `holt_winters` is
//! registered back.

use std::sync::Once;
use std::time::{Duration, SystemTime};

use promql_parser::label::MatchOp as ParserMatchOp;
use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::value::ValueType as ParserType;
use promql_parser::parser::{
    self as pp, AtModifier, BinModifier, Expr, LabelModifier, Offset, VectorMatchCardinality,
};

use super::plan::{
    Aggregate, AggregateOp, At, Binary, BinaryOp, Calendar, Call, Cardinality, Function, Grouping,
    InstantFunction, Matching, Plan, RangeSelector, Selector, Subquery, Trig,
};
use super::window::WindowFunction;
use crate::index::{MatchOp, Matcher};
use crate::model::{METRIC_NAME, echo};
use crate::{Error, Result};

/// The longest query text accepted, bytes.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;

/// Parses and checks a PromQL expression.
pub fn parse(text: &str) -> Result<Plan> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(Error::InvalidArgument(format!(
            "the query is {} bytes, the limit is {MAX_QUERY_BYTES}",
            text.len()
        )));
    }
    if text.trim().is_empty() {
        return Err(Error::InvalidArgument(
            "parse error: the query is empty".into(),
        ));
    }
    check_shape(text)?;
    register_prometheus_2_functions();
    let expr = pp::parse(text).map_err(|e| {
        // Syntax errors come as Prometheus writes them ("1:4: parse error: …").
        if e.contains("parse error") {
            bad(e)
        } else {
            bad(format!("parse error: {e}"))
        }
    })?;
    lower(&expr)
}

/// Parses a series selector (`match[]` of the metadata APIs): its matchers.
pub fn series_selector(text: &str) -> Result<Vec<Matcher>> {
    match parse(text)? {
        Plan::Selector(s) if s.offset_ms == 0 && s.at.is_none() => Ok(s.matchers),
        _ => Err(bad(format!(
            "{} is not a series selector such as metric{{label=\"value\"}}",
            echo(text)
        ))),
    }
}

/// The deepest bracket nesting a query may have.
pub const MAX_NESTING: usize = 128;

/// The most operators (binary and unary) a query may have: each is a level of the tree that
/// parsing, checking and evaluating walk recursively.
pub const MAX_OPERATORS: usize = 512;

/// Refuses, before parsing, a query whose tree would be deep enough to exhaust a thread's
/// stack (thousands of nested parentheses, or `1+1+…+1` ten thousand times): such a query
/// would otherwise abort the whole server. Counted on the text, skipping string literals.
fn check_shape(text: &str) -> Result<()> {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut operators = 0usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                // A string literal: skip to its end (backslash escapes, except in raw ones).
                while let Some(d) = chars.next() {
                    if d == '\\' && c != '`' {
                        chars.next();
                    } else if d == c {
                        break;
                    }
                }
            }
            '#' => {
                // A comment runs to the end of the line.
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '(' | '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '+' | '-' | '*' | '/' | '%' | '^' | '<' | '>' | '!' | '=' => {
                // Two-character operators (`==`, `!=`, `>=`, `<=`, `=~`, `!~`) count once.
                if matches!(chars.peek(), Some('=' | '~')) {
                    chars.next();
                }
                operators += 1;
            }
            _ => {}
        }
    }
    if deepest > MAX_NESTING {
        return Err(bad(format!(
            "the query nests brackets {deepest} deep, the limit is {MAX_NESTING}"
        )));
    }
    // Set operators and atan2 are words; count them too.
    operators += text
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| {
            matches!(
                w.to_ascii_lowercase().as_str(),
                "and" | "or" | "unless" | "atan2"
            )
        })
        .count();
    if operators > MAX_OPERATORS {
        return Err(bad(format!(
            "the query has {operators} operators, the limit is {MAX_OPERATORS}; split it"
        )));
    }
    Ok(())
}

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

/// `holt_winters` is `double_exponential_smoothing` in Prometheus 3 and unknown to the
/// parser; 2.42 queries use the old name.
fn register_prometheus_2_functions() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let holt_winters = pp::Function::new(
            "holt_winters",
            vec![ParserType::Matrix, ParserType::Scalar, ParserType::Scalar],
            0,
            ParserType::Vector,
            false,
        );
        // Only fails if a future parser makes it a built-in again, which is what we want.
        let _ = pp::register_extra_functions(vec![holt_winters]);
    });
}

fn lower(expr: &Expr) -> Result<Plan> {
    Ok(match expr {
        Expr::NumberLiteral(n) => Plan::Number(n.val),
        Expr::StringLiteral(s) => Plan::String(s.val.clone()),
        Expr::Paren(p) => lower(&p.expr)?,
        Expr::Unary(u) => Plan::Negate(Box::new(lower(&u.expr)?)),
        Expr::VectorSelector(vs) => Plan::Selector(selector(vs)?),
        Expr::MatrixSelector(ms) => Plan::Range(RangeSelector {
            selector: selector(&ms.vs)?,
            range_ms: positive_ms(ms.range, "range")?,
        }),
        Expr::Subquery(sq) => Plan::Subquery(Subquery {
            expr: Box::new(lower(&sq.expr)?),
            range_ms: positive_ms(sq.range, "subquery range")?,
            step_ms: sq
                .step
                .map(|s| positive_ms(s, "subquery step"))
                .transpose()?,
            offset_ms: offset(sq.offset.as_ref())?,
            at: sq.at.as_ref().map(at).transpose()?,
        }),
        Expr::Aggregate(a) => Plan::Aggregate(Aggregate {
            op: aggregate_op(a.op.id())?,
            param: a.param.as_deref().map(lower).transpose()?.map(Box::new),
            grouping: match &a.modifier {
                None => Grouping::By(Vec::new()),
                Some(LabelModifier::Include(l)) => Grouping::By(l.labels.clone()),
                Some(LabelModifier::Exclude(l)) => Grouping::Without(l.labels.clone()),
            },
            expr: Box::new(lower(&a.expr)?),
        }),
        Expr::Binary(b) => binary(b)?,
        Expr::Call(c) => call(c)?,
        Expr::Extension(_) => return Err(bad("extension expressions are not supported")),
    })
}

fn positive_ms(d: Duration, what: &str) -> Result<i64> {
    let ms = i64::try_from(d.as_millis()).map_err(|_| bad(format!("the {what} is too long")))?;
    if ms <= 0 {
        return Err(bad(format!("the {what} must be positive")));
    }
    Ok(ms)
}

fn offset(o: Option<&Offset>) -> Result<i64> {
    let ms = |d: &Duration| i64::try_from(d.as_millis()).map_err(|_| bad("the offset is too long"));
    Ok(match o {
        None => 0,
        Some(Offset::Pos(d)) => ms(d)?,
        Some(Offset::Neg(d)) => -ms(d)?,
    })
}

fn at(a: &AtModifier) -> Result<At> {
    Ok(match a {
        AtModifier::Start => At::Start,
        AtModifier::End => At::End,
        AtModifier::At(t) => {
            let ms = match t.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(d) => i64::try_from(d.as_millis()),
                Err(e) => i64::try_from(e.duration().as_millis()).map(|v| -v),
            };
            At::Time(ms.map_err(|_| bad("the @ time is out of range"))?)
        }
    })
}

fn selector(vs: &pp::VectorSelector) -> Result<Selector> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(bad(
            "`or` inside a selector is Prometheus 3 syntax; write two selectors joined by `or`",
        ));
    }
    let mut matchers = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        matchers.push(Matcher::equal(METRIC_NAME, name.clone()));
    }
    for m in &vs.matchers.matchers {
        let op = match m.op {
            ParserMatchOp::Equal => MatchOp::Equal,
            ParserMatchOp::NotEqual => MatchOp::NotEqual,
            ParserMatchOp::Re(_) => MatchOp::Regex,
            ParserMatchOp::NotRe(_) => MatchOp::NotRegex,
        };
        matchers.push(Matcher::new(m.name.clone(), op, m.value.clone())?);
    }
    if matchers.iter().all(|m| m.matches("")) {
        return Err(bad(
            "vector selector must contain at least one non-empty matcher",
        ));
    }
    Ok(Selector {
        matchers,
        offset_ms: offset(vs.offset.as_ref())?,
        at: vs.at.as_ref().map(at).transpose()?,
    })
}

fn aggregate_op(id: TokenId) -> Result<AggregateOp> {
    Ok(match id {
        token::T_SUM => AggregateOp::Sum,
        token::T_AVG => AggregateOp::Avg,
        token::T_MIN => AggregateOp::Min,
        token::T_MAX => AggregateOp::Max,
        token::T_COUNT => AggregateOp::Count,
        token::T_GROUP => AggregateOp::Group,
        token::T_STDDEV => AggregateOp::Stddev,
        token::T_STDVAR => AggregateOp::Stdvar,
        token::T_TOPK => AggregateOp::Topk,
        token::T_BOTTOMK => AggregateOp::Bottomk,
        token::T_QUANTILE => AggregateOp::Quantile,
        token::T_COUNT_VALUES => AggregateOp::CountValues,
        _ => {
            return Err(bad(format!(
                "aggregation {} is not part of Prometheus 2.42's PromQL",
                pp::token::TokenType::new(id)
            )));
        }
    })
}

fn binary_op(id: TokenId) -> Result<BinaryOp> {
    Ok(match id {
        token::T_ADD => BinaryOp::Add,
        token::T_SUB => BinaryOp::Sub,
        token::T_MUL => BinaryOp::Mul,
        token::T_DIV => BinaryOp::Div,
        token::T_MOD => BinaryOp::Mod,
        token::T_POW => BinaryOp::Pow,
        token::T_ATAN2 => BinaryOp::Atan2,
        token::T_EQLC => BinaryOp::Eq,
        token::T_NEQ => BinaryOp::Ne,
        token::T_GTR => BinaryOp::Gt,
        token::T_LSS => BinaryOp::Lt,
        token::T_GTE => BinaryOp::Ge,
        token::T_LTE => BinaryOp::Le,
        token::T_LAND => BinaryOp::And,
        token::T_LOR => BinaryOp::Or,
        token::T_LUNLESS => BinaryOp::Unless,
        _ => {
            return Err(bad(format!(
                "operator {} is not supported",
                pp::token::TokenType::new(id)
            )));
        }
    })
}

fn binary(b: &pp::BinaryExpr) -> Result<Plan> {
    let op = binary_op(b.op.id())?;
    let default = BinModifier::default();
    let modifier = b.modifier.as_ref().unwrap_or(&default);
    if modifier.fill_values != default.fill_values {
        return Err(bad("`fill` modifiers are Prometheus 3 syntax"));
    }
    let (card, include) = match &modifier.card {
        VectorMatchCardinality::OneToOne => (Cardinality::OneToOne, Vec::new()),
        VectorMatchCardinality::ManyToOne(l) => (Cardinality::ManyToOne, l.labels.clone()),
        VectorMatchCardinality::OneToMany(l) => (Cardinality::OneToMany, l.labels.clone()),
        VectorMatchCardinality::ManyToMany => (Cardinality::ManyToMany, Vec::new()),
    };
    let card = if op.is_set() {
        Cardinality::ManyToMany
    } else {
        card
    };
    let (on, labels) = match &modifier.matching {
        None => (false, Vec::new()),
        Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
        Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
    };
    Ok(Plan::Binary(Binary {
        op,
        lhs: Box::new(lower(&b.lhs)?),
        rhs: Box::new(lower(&b.rhs)?),
        return_bool: modifier.return_bool,
        matching: Matching {
            card,
            on,
            labels,
            include,
        },
    }))
}

/// The function a name stands for in Prometheus 2.42.
pub fn function(name: &str) -> Option<Function> {
    use InstantFunction as I;
    if let Some(w) = WindowFunction::ALL.iter().find(|w| w.name() == name) {
        return Some(Function::Window(*w));
    }
    Some(match name {
        "double_exponential_smoothing" => Function::Window(WindowFunction::HoltWinters),
        "absent_over_time" => Function::AbsentOverTime,
        "time" => Function::Time,
        "pi" => Function::Pi,
        "vector" => Function::Vector,
        "scalar" => Function::Scalar,
        "absent" => Function::Absent,
        "timestamp" => Function::Timestamp,
        "sort" => Function::Sort,
        "sort_desc" => Function::SortDesc,
        "label_replace" => Function::LabelReplace,
        "label_join" => Function::LabelJoin,
        "histogram_quantile" => Function::HistogramQuantile,
        "histogram_count" | "histogram_sum" | "histogram_fraction" => Function::NativeHistogram,
        "abs" => Function::Instant(I::Abs),
        "ceil" => Function::Instant(I::Ceil),
        "floor" => Function::Instant(I::Floor),
        "exp" => Function::Instant(I::Exp),
        "sqrt" => Function::Instant(I::Sqrt),
        "ln" => Function::Instant(I::Ln),
        "log2" => Function::Instant(I::Log2),
        "log10" => Function::Instant(I::Log10),
        "sgn" => Function::Instant(I::Sgn),
        "round" => Function::Instant(I::Round),
        "clamp" => Function::Instant(I::Clamp),
        "clamp_min" => Function::Instant(I::ClampMin),
        "clamp_max" => Function::Instant(I::ClampMax),
        "deg" => Function::Instant(I::Deg),
        "rad" => Function::Instant(I::Rad),
        "acos" => Function::Instant(I::Trig(Trig::Acos)),
        "acosh" => Function::Instant(I::Trig(Trig::Acosh)),
        "asin" => Function::Instant(I::Trig(Trig::Asin)),
        "asinh" => Function::Instant(I::Trig(Trig::Asinh)),
        "atan" => Function::Instant(I::Trig(Trig::Atan)),
        "atanh" => Function::Instant(I::Trig(Trig::Atanh)),
        "cos" => Function::Instant(I::Trig(Trig::Cos)),
        "cosh" => Function::Instant(I::Trig(Trig::Cosh)),
        "sin" => Function::Instant(I::Trig(Trig::Sin)),
        "sinh" => Function::Instant(I::Trig(Trig::Sinh)),
        "tan" => Function::Instant(I::Trig(Trig::Tan)),
        "tanh" => Function::Instant(I::Trig(Trig::Tanh)),
        "day_of_month" => Function::Instant(I::Calendar(Calendar::DayOfMonth)),
        "day_of_week" => Function::Instant(I::Calendar(Calendar::DayOfWeek)),
        "day_of_year" => Function::Instant(I::Calendar(Calendar::DayOfYear)),
        "days_in_month" => Function::Instant(I::Calendar(Calendar::DaysInMonth)),
        "hour" => Function::Instant(I::Calendar(Calendar::Hour)),
        "minute" => Function::Instant(I::Calendar(Calendar::Minute)),
        "month" => Function::Instant(I::Calendar(Calendar::Month)),
        "year" => Function::Instant(I::Calendar(Calendar::Year)),
        _ => return None,
    })
}

fn call(c: &pp::Call) -> Result<Plan> {
    let name = c.func.name;
    let func = function(name).ok_or_else(|| {
        bad(format!(
            "function {} is not part of Prometheus 2.42's PromQL",
            echo(name)
        ))
    })?;
    let args = c
        .args
        .args
        .iter()
        .map(|a| lower(a))
        .collect::<Result<Vec<_>>>()?;
    Ok(Plan::Call(Call { func, args }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(q: &str) -> String {
        match parse(q) {
            Err(Error::InvalidArgument(m)) => m,
            other => panic!("{q}: expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn syntax_errors_say_where_and_why() {
        assert_eq!(error("1 +* 2"), "1:4: parse error: unexpected \"*\"");
        assert_eq!(
            error("sum(rate(x[5m])) by (a) +"),
            "1:26: parse error: unexpected end of input"
        );
        assert_eq!(
            error("sum(x)\n  by (a) + * 1"),
            "2:12: parse error: unexpected \"*\""
        );
        // Unbalanced brackets are found by the lexer, which names them.
        assert!(error("sum(x))").contains("right parenthesis"));
        assert!(error("foo{a=\"b\"").contains("braces"));
        assert!(error("rate(foo)").contains("expected type matrix"));
        assert!(
            error("foo bool > 1").contains("1:5"),
            "{}",
            error("foo bool > 1")
        );
        assert!(error("").contains("empty"));
        assert!(error("mad_over_time(x[5m])").contains("Prometheus 2.42"));
        let re = error("{a=~\"(\"}");
        assert!(re.contains("regex") || re.contains("parse error"), "{re}");
        assert!(error("{__name__=~\".*\"}").contains("non-empty matcher"));
        let deep = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
        assert!(error(&deep).contains("nests brackets 5000 deep"));
        let long = vec!["1"; 10_000].join("+");
        assert!(error(&long).contains("9999 operators"));
        // Operators inside strings and label matchers' values are not operators.
        let plan = parse(&format!("up{{job=\"{}\"}}", "+".repeat(2000)));
        assert!(plan.is_ok(), "{plan:?}");
    }

    /// Pieces of PromQL, to make near-misses of the syntax from.
    const PIECES: &[&str] = &[
        "sum",
        "rate",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "5m",
        ":",
        "1m",
        "a",
        "=",
        "=~",
        "!=",
        "\"x\"",
        ",",
        "+",
        "-",
        "*",
        "/",
        "^",
        "%",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "offset",
        "@",
        "start()",
        "1e3",
        "0x1f",
        "Inf",
        "NaN",
        "bool",
        "and",
        "or",
        "topk",
        "count_values",
        "label_replace",
        "histogram_quantile",
        "'",
        "`",
        "#",
        "\\",
        " ",
        "1.5",
        "-1h",
        "999999999999999999999y",
        "__name__",
        "Châu Đốc",
    ];

    proptest::proptest! {
        /// Whatever the text, parsing answers a plan or an error; it never panics.
        #[test]
        fn no_text_panics(pieces in proptest::collection::vec(proptest::sample::select(PIECES), 0..24)) {
            let _ = parse(&pieces.concat());
        }

        #[test]
        fn no_bytes_panic(text in "\\PC{0,60}") {
            let _ = parse(&text);
        }
    }
}
