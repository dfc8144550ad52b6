//! The query plan: what every front door's question compiles to before it is evaluated.
//!
//! PromQL text ([`super::parse`]) and the structured gRPC range query
//! ([`super::RangeQuery`]) both lower to a [`Plan`]; one evaluator ([`super::eval`]) runs it.
//! Everything here is resolved and checked: functions are an enum, durations are
//! milliseconds, matchers are the index's, and the argument types are right.

use super::window::WindowFunction;
use crate::index::Matcher;

/// One node of a query.
#[derive(Debug, Clone)]
pub enum Plan {
    /// A number literal.
    Number(f64),
    /// A string literal.
    String(String),
    /// An instant vector selector.
    Selector(Selector),
    /// A range vector selector: `selector[range]`.
    Range(RangeSelector),
    /// A subquery: `expr[range:step]`.
    Subquery(Subquery),
    /// A function call.
    Call(Call),
    /// An aggregation across series.
    Aggregate(Aggregate),
    /// A binary operation.
    Binary(Binary),
    /// Unary minus.
    Negate(Box<Plan>),
}

/// The type of value a node produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// One number per step.
    Scalar,
    /// A string.
    String,
    /// Series with one value per step.
    Vector,
    /// Series with the samples of a window (only as a function argument, or the result of
    /// an instant query).
    Matrix,
}

impl ValueType {
    /// The name Prometheus uses in its API and messages.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Scalar => "scalar",
            ValueType::String => "string",
            ValueType::Vector => "vector",
            ValueType::Matrix => "matrix",
        }
    }
}

impl Plan {
    /// Every series selector of the expression (instant, in a range, in a subquery), in
    /// order of appearance: what a live evaluation must watch.
    pub fn selectors(&self) -> Vec<&Selector> {
        let mut out = Vec::new();
        self.collect_selectors(&mut out);
        out
    }

    fn collect_selectors<'a>(&'a self, out: &mut Vec<&'a Selector>) {
        match self {
            Plan::Number(_) | Plan::String(_) => {}
            Plan::Selector(s) => out.push(s),
            Plan::Range(r) => out.push(&r.selector),
            Plan::Subquery(q) => q.expr.collect_selectors(out),
            Plan::Call(c) => c.args.iter().for_each(|a| a.collect_selectors(out)),
            Plan::Aggregate(a) => {
                if let Some(p) = &a.param {
                    p.collect_selectors(out);
                }
                a.expr.collect_selectors(out);
            }
            Plan::Binary(b) => {
                b.lhs.collect_selectors(out);
                b.rhs.collect_selectors(out);
            }
            Plan::Negate(p) => p.collect_selectors(out),
        }
    }

    /// The type of value this node produces.
    pub fn value_type(&self) -> ValueType {
        match self {
            Plan::Number(_) => ValueType::Scalar,
            Plan::String(_) => ValueType::String,
            Plan::Selector(_) | Plan::Aggregate(_) => ValueType::Vector,
            Plan::Range(_) | Plan::Subquery(_) => ValueType::Matrix,
            Plan::Call(c) => c.func.return_type(),
            Plan::Binary(b) => {
                if b.lhs.value_type() == ValueType::Scalar
                    && b.rhs.value_type() == ValueType::Scalar
                {
                    ValueType::Scalar
                } else {
                    ValueType::Vector
                }
            }
            Plan::Negate(e) => e.value_type(),
        }
    }
}

/// Where a selector or subquery is anchored in time (`@`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// A fixed time, ms.
    Time(i64),
    /// The query's start.
    Start,
    /// The query's end.
    End,
}

/// Series selection at a time shifted by `offset` or pinned by `@`.
#[derive(Debug, Clone)]
pub struct Selector {
    /// The matchers (the metric name is one of them).
    pub matchers: Vec<Matcher>,
    /// `offset`, ms (negative looks forward).
    pub offset_ms: i64,
    /// `@`, if any.
    pub at: Option<At>,
}

/// `selector[range]`.
#[derive(Debug, Clone)]
pub struct RangeSelector {
    /// The selector.
    pub selector: Selector,
    /// The window, ms (> 0).
    pub range_ms: i64,
}

/// `expr[range:step] offset … @ …`.
#[derive(Debug, Clone)]
pub struct Subquery {
    /// The inner expression (an instant vector).
    pub expr: Box<Plan>,
    /// The window, ms (> 0).
    pub range_ms: i64,
    /// The inner step, ms; `None`: the evaluator's default subquery step.
    pub step_ms: Option<i64>,
    /// `offset`, ms.
    pub offset_ms: i64,
    /// `@`, if any.
    pub at: Option<At>,
}

/// A function call with its arguments, already type-checked.
#[derive(Debug, Clone)]
pub struct Call {
    /// The function.
    pub func: Function,
    /// Its arguments.
    pub args: Vec<Plan>,
}

/// Every function of Prometheus 2.42 (native histogram functions answer nothing for
/// float samples, as there).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Function {
    /// A function of the samples in a window (`rate`, `*_over_time`, …): one argument is
    /// the range vector, the others scalars.
    Window(WindowFunction),
    /// `absent_over_time(range)`.
    AbsentOverTime,
    /// A function of an instant vector and optional scalars.
    Instant(InstantFunction),
    /// `time()`.
    Time,
    /// `pi()`.
    Pi,
    /// `vector(scalar)`.
    Vector,
    /// `scalar(vector)`.
    Scalar,
    /// `absent(vector)`.
    Absent,
    /// `timestamp(vector)`.
    Timestamp,
    /// `sort(vector)`.
    Sort,
    /// `sort_desc(vector)`.
    SortDesc,
    /// `label_replace(v, dst, replacement, src, regex)`.
    LabelReplace,
    /// `label_join(v, dst, separator, src…)`.
    LabelJoin,
    /// `histogram_quantile(φ, buckets)`.
    HistogramQuantile,
    /// `histogram_count`, `histogram_sum`, `histogram_fraction`: native histograms only,
    /// so nothing for float samples.
    NativeHistogram,
}

impl Function {
    /// The type of value the function returns.
    pub fn return_type(self) -> ValueType {
        match self {
            Function::Time | Function::Pi | Function::Scalar => ValueType::Scalar,
            _ => ValueType::Vector,
        }
    }
}

/// Functions applied to each element of an instant vector (the metric name is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstantFunction {
    /// `abs`.
    Abs,
    /// `ceil`.
    Ceil,
    /// `floor`.
    Floor,
    /// `exp`.
    Exp,
    /// `sqrt`.
    Sqrt,
    /// `ln`.
    Ln,
    /// `log2`.
    Log2,
    /// `log10`.
    Log10,
    /// `sgn`.
    Sgn,
    /// `round(v, to_nearest = 1)`.
    Round,
    /// `clamp(v, min, max)`.
    Clamp,
    /// `clamp_min(v, min)`.
    ClampMin,
    /// `clamp_max(v, max)`.
    ClampMax,
    /// `deg`.
    Deg,
    /// `rad`.
    Rad,
    /// Trigonometric and hyperbolic functions.
    Trig(Trig),
    /// A calendar field of the value read as Unix seconds (UTC); the argument defaults to
    /// `vector(time())`.
    Calendar(Calendar),
}

/// Trigonometric and hyperbolic functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Trig {
    Acos,
    Acosh,
    Asin,
    Asinh,
    Atan,
    Atanh,
    Cos,
    Cosh,
    Sin,
    Sinh,
    Tan,
    Tanh,
}

/// Calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Calendar {
    DayOfMonth,
    DayOfWeek,
    DayOfYear,
    DaysInMonth,
    Hour,
    Minute,
    Month,
    Year,
}

/// Aggregation operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum AggregateOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Quantile,
    CountValues,
}

impl AggregateOp {
    /// The PromQL name.
    pub fn name(self) -> &'static str {
        match self {
            AggregateOp::Sum => "sum",
            AggregateOp::Avg => "avg",
            AggregateOp::Min => "min",
            AggregateOp::Max => "max",
            AggregateOp::Count => "count",
            AggregateOp::Group => "group",
            AggregateOp::Stddev => "stddev",
            AggregateOp::Stdvar => "stdvar",
            AggregateOp::Topk => "topk",
            AggregateOp::Bottomk => "bottomk",
            AggregateOp::Quantile => "quantile",
            AggregateOp::CountValues => "count_values",
        }
    }
}

/// How an aggregation groups series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouping {
    /// Keep only these labels.
    By(Vec<String>),
    /// Drop these labels and the metric name.
    Without(Vec<String>),
}

/// `op [by|without (…)] ([param,] expr)`.
#[derive(Debug, Clone)]
pub struct Aggregate {
    /// The operator.
    pub op: AggregateOp,
    /// `k` of topk/bottomk, `φ` of quantile, the label of count_values.
    pub param: Option<Box<Plan>>,
    /// The grouping.
    pub grouping: Grouping,
    /// The aggregated expression (an instant vector).
    pub expr: Box<Plan>,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl BinaryOp {
    /// Comparison operators filter (or answer 0/1 with `bool`).
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Gt | BinaryOp::Lt | BinaryOp::Ge | BinaryOp::Le
        )
    }

    /// `and`, `or`, `unless`.
    pub fn is_set(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or | BinaryOp::Unless)
    }

    /// Prometheus 2.x drops the metric name for these (not for `atan2`, not for
    /// comparisons without `bool`).
    pub fn drops_metric_name(self) -> bool {
        matches!(
            self,
            BinaryOp::Add
                | BinaryOp::Sub
                | BinaryOp::Mul
                | BinaryOp::Div
                | BinaryOp::Mod
                | BinaryOp::Pow
        )
    }
}

/// Which side of a vector match has many series per match group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cardinality {
    /// One to one (the default).
    OneToOne,
    /// `group_left`: many on the left.
    ManyToOne,
    /// `group_right`: many on the right.
    OneToMany,
    /// The set operators.
    ManyToMany,
}

/// How two vectors' series are matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matching {
    /// The cardinality.
    pub card: Cardinality,
    /// `on(…)` (true) or `ignoring(…)` (false).
    pub on: bool,
    /// The labels of `on` / `ignoring`.
    pub labels: Vec<String>,
    /// The labels `group_left(…)` / `group_right(…)` copy from the "one" side.
    pub include: Vec<String>,
}

impl Default for Matching {
    fn default() -> Self {
        Matching {
            card: Cardinality::OneToOne,
            on: false,
            labels: Vec::new(),
            include: Vec::new(),
        }
    }
}

/// `lhs op [bool] [matching] rhs`.
#[derive(Debug, Clone)]
pub struct Binary {
    /// The operator.
    pub op: BinaryOp,
    /// Left side.
    pub lhs: Box<Plan>,
    /// Right side.
    pub rhs: Box<Plan>,
    /// `bool`: comparisons answer 0 or 1 instead of filtering.
    pub return_bool: bool,
    /// Vector matching (both sides vectors).
    pub matching: Matching,
}
