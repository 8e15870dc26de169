//! Lists that follow the policies: which items of one entity type the
//! caller may see, as a typed filter over the items' attributes.
//!
//! The gateway asks the policies about every item at once
//! ([`crate::policy::PolicyEngine::residuals`]), compiles what is left into
//! a [`Filter`] ([`crate::policy::residual_filter`]) and hands it to the
//! store in the signed assertion, as data. The store turns it into SQL
//! ([`crate::store::filter_sql`]) over the same attribute columns the entity
//! loader reads, so a list holds exactly the items a single decision would
//! allow, and `count` and paging are exact.
//!
//! A residual form the compiler does not know is never guessed at: the list
//! falls back to deciding each candidate item with the same engine
//! ([`ListScope::Candidates`], then [`ListScope::Decided`]), slower but exact.

use crate::refs::EntityRef;
use serde::{Deserialize, Serialize};

/// An attribute path from the item: `[]` is the item itself,
/// `["partner", "kind"]` its partner's kind.
pub type Path = Vec<String>;

/// A condition on a list's items.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Filter {
    True,
    False,
    And {
        all: Vec<Filter>,
    },
    Or {
        any: Vec<Filter>,
    },
    Not {
        not: Box<Filter>,
    },
    /// The entity at `path` is `entity` or a descendant of it (Cedar's `in`).
    In {
        path: Path,
        entity: EntityRef,
    },
    /// The attribute at `path` exists and equals `value`.
    Eq {
        path: Path,
        value: Scalar,
    },
    /// The attribute at `path` exists (Cedar's `has`).
    Has {
        path: Path,
    },
    /// The attribute at `path` exists and compares with `value` by `cmp`.
    Cmp {
        path: Path,
        cmp: CmpOp,
        value: Scalar,
    },
    /// The string set at `path` contains `value`.
    Contains {
        path: Path,
        value: String,
    },
}

/// A value a filter compares with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scalar {
    Bool(bool),
    Long(i64),
    String(String),
    Entity(EntityRef),
    /// A Cedar datetime literal.
    Datetime(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    /// The operator with its operands swapped (`a < b` is `b > a`).
    pub fn flipped(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
        }
    }
}

impl Filter {
    /// `a AND b`, folding constants, flattening, dropping repeats, and
    /// dropping `has p` where another conjunct tests `p` (which holds only
    /// where `p` exists).
    pub fn and(items: Vec<Filter>) -> Filter {
        let mut all: Vec<Filter> = Vec::new();
        for f in items {
            match f {
                Filter::True => {}
                Filter::False => return Filter::False,
                Filter::And { all: inner } => {
                    for g in inner {
                        if !all.contains(&g) {
                            all.push(g);
                        }
                    }
                }
                other => {
                    if !all.contains(&other) {
                        all.push(other);
                    }
                }
            }
        }
        let tested: Vec<Path> = all
            .iter()
            .filter_map(|f| f.tested_path().cloned())
            .collect();
        all.retain(|f| !matches!(f, Filter::Has { path } if tested.contains(path)));
        match all.len() {
            0 => Filter::True,
            1 => all.pop().expect("one item"),
            _ => Filter::And { all },
        }
    }

    /// `a OR b`, folding constants, flattening and dropping repeats.
    pub fn or(items: Vec<Filter>) -> Filter {
        let mut any: Vec<Filter> = Vec::new();
        for f in items {
            match f {
                Filter::False => {}
                Filter::True => return Filter::True,
                Filter::Or { any: inner } => {
                    for g in inner {
                        if !any.contains(&g) {
                            any.push(g);
                        }
                    }
                }
                other => {
                    if !any.contains(&other) {
                        any.push(other);
                    }
                }
            }
        }
        match any.len() {
            0 => Filter::False,
            1 => any.pop().expect("one item"),
            _ => Filter::Or { any },
        }
    }

    /// `NOT a`, folding constants, double negation, and pushing the negation
    /// into `AND`/`OR` (De Morgan), so that repeats show and fold away.
    #[allow(clippy::should_implement_trait)]
    pub fn not(f: Filter) -> Filter {
        match f {
            Filter::True => Filter::False,
            Filter::False => Filter::True,
            Filter::Not { not } => *not,
            Filter::And { all } => Filter::or(all.into_iter().map(Filter::not).collect()),
            Filter::Or { any } => Filter::and(any.into_iter().map(Filter::not).collect()),
            other => Filter::Not {
                not: Box::new(other),
            },
        }
    }

    /// The attribute a leaf tests for a value (which implies it exists).
    fn tested_path(&self) -> Option<&Path> {
        match self {
            Filter::Eq { path, .. } | Filter::Cmp { path, .. } | Filter::Contains { path, .. }
                if !path.is_empty() =>
            {
                Some(path)
            }
            _ => None,
        }
    }
}

/// What a list request asks the store for, in the assertion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListScope {
    /// The items `filter` matches: exactly those the policies allow.
    Filter(Filter),
    /// The ids of every item `filter` matches (a superset of the allowed
    /// ones), in the list's order, for the gateway to decide one by one.
    Candidates(Filter),
    /// Exactly these items, decided one by one, and the list's total.
    Decided { ids: Vec<String>, total: u64 },
}

/// The answer of the store in [`ListScope::Candidates`] mode.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidates {
    pub candidates: Vec<String>,
}
