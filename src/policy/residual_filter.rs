//! Residual policies → [`Filter`]. An item is allowed when some permit holds
//! and no forbid does, so the filter is `(p₁ ∨ p₂ ∨ …) ∧ ¬(f₁ ∨ f₂ ∨ …)` over
//! the residual conditions. Every form is translated exactly or not at all:
//! a form the compiler does not know makes the exact filter unavailable, and
//! a superset filter (each unknown part replaced by what keeps every allowed
//! item in) narrows the candidates the gateway then decides one by one.

use super::partial::{Residuals, Unknown};
use crate::filter::{CmpOp, Filter, ListScope, Path, Scalar};
use crate::refs::{EntityRef, EntityType};
use crate::store::filter_sql;
use cedar_policy::pst::{BinaryOp, Expr, Literal, UnaryOp, Var};
use std::collections::HashMap;

/// How the entities `residuals` allow are found: exactly, by a filter with
/// an SQL form ([`ListScope::Filter`]); or, for a form the compiler or the
/// SQL mapping does not know, among the candidates of a superset filter,
/// each then decided ([`ListScope::Candidates`]), with why.
pub fn scope(residuals: &Residuals, item: EntityType) -> (ListScope, Vec<String>) {
    let compiled = compile(residuals, item);
    match compiled.exact {
        Some(f) if filter_sql::check(&f, item).is_ok() => (ListScope::Filter(f), Vec::new()),
        exact => {
            let mut why: Vec<String> = exact
                .and_then(|f| filter_sql::check(&f, item).err())
                .map(|e| e.to_string())
                .into_iter()
                .collect();
            why.extend(compiled.unknown);
            let superset = match filter_sql::check(&compiled.superset, item) {
                Ok(()) => compiled.superset,
                Err(_) => Filter::True,
            };
            (ListScope::Candidates(superset), why)
        }
    }
}

/// A compiled list question.
#[derive(Clone, Debug, PartialEq)]
pub struct Compiled {
    /// The exact filter, when every residual form is known.
    pub exact: Option<Filter>,
    /// A filter matching every allowed item (and maybe more).
    pub superset: Filter,
    /// Why the exact filter is unavailable (the unknown forms).
    pub unknown: Vec<String>,
}

/// How unknown parts are treated while compiling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Refuse them.
    Exact,
    /// Replace them so the result can only match more (`true` under an even
    /// number of negations, `false` under an odd one).
    Over,
    /// Replace them so the result can only match less.
    Under,
}

impl Mode {
    fn negated(self) -> Mode {
        match self {
            Mode::Exact => Mode::Exact,
            Mode::Over => Mode::Under,
            Mode::Under => Mode::Over,
        }
    }

    fn unknown(self, why: String, unknown: &mut Vec<String>) -> Result<Filter, ()> {
        unknown.push(why);
        match self {
            Mode::Exact => Err(()),
            Mode::Over => Ok(Filter::True),
            Mode::Under => Ok(Filter::False),
        }
    }
}

/// Compiles the residuals of a list question over items of type `item`.
/// A decided question (every item, or none) compiles to a constant.
pub fn compile(residuals: &Residuals, item: EntityType) -> Compiled {
    match residuals.decision {
        Some(allow) => {
            let f = if allow { Filter::True } else { Filter::False };
            return Compiled {
                exact: Some(f.clone()),
                superset: f,
                unknown: vec![],
            };
        }
        None if !residuals.errors.is_empty() => {
            return Compiled {
                exact: None,
                superset: Filter::True,
                unknown: vec![format!(
                    "policies failing to evaluate: {}",
                    residuals.errors.join(", ")
                )],
            };
        }
        None => {}
    }
    let on = On {
        var: match residuals.over {
            Unknown::Resource => Var::Resource,
            Unknown::Principal => Var::Principal,
        },
        item,
        ancestors: &residuals.ancestors,
    };
    let mut unknown = Vec::new();
    let exact = allowed(residuals, &on, Mode::Exact, &mut unknown).ok();
    let superset = match &exact {
        Some(f) => f.clone(),
        None => allowed(residuals, &on, Mode::Over, &mut Vec::new()).unwrap_or(Filter::True),
    };
    unknown.dedup();
    Compiled {
        exact,
        superset,
        unknown,
    }
}

/// What a compilation is over: the unknown entity's variable and type, and
/// what the known entities are `in`.
struct On<'r> {
    var: Var,
    item: EntityType,
    ancestors: &'r HashMap<EntityRef, Vec<EntityRef>>,
}

fn allowed(r: &Residuals, on: &On, mode: Mode, unknown: &mut Vec<String>) -> Result<Filter, ()> {
    let permitted = if !r.satisfied.is_empty() {
        Filter::True
    } else {
        let mut any = Vec::new();
        for p in &r.permits {
            any.push(boolean(&p.condition, on, mode, unknown)?);
        }
        Filter::or(any)
    };
    let mut forbidden = Vec::new();
    for f in &r.forbids {
        forbidden.push(boolean(&f.condition, on, mode.negated(), unknown)?);
    }
    Ok(Filter::and(vec![
        permitted,
        Filter::not(Filter::or(forbidden)),
    ]))
}

/// An expression in a boolean position.
fn boolean(e: &Expr, on: &On, mode: Mode, unknown: &mut Vec<String>) -> Result<Filter, ()> {
    match term(e, on) {
        Some(Term::Cond(f)) => return Ok(f),
        // A bare attribute in a boolean position is a Bool attribute.
        Some(Term::Path(p)) => {
            return Ok(Filter::Eq {
                path: p,
                value: Scalar::Bool(true),
            })
        }
        Some(Term::Value(Scalar::Bool(b))) => {
            return Ok(if b { Filter::True } else { Filter::False })
        }
        _ => {}
    }
    // Connectives whose operands may be partly unknown.
    match e {
        Expr::UnaryOp {
            op: UnaryOp::Not,
            expr,
        } => Ok(Filter::not(boolean(expr, on, mode.negated(), unknown)?)),
        // Cedar evaluates `&&` and `||` left to right and stops once the
        // left side decides: a right side it never reaches (the residual of
        // a missing attribute is `false && error()`) changes nothing.
        Expr::BinaryOp {
            op: BinaryOp::And,
            left,
            right,
        } => match boolean(left, on, mode, unknown)? {
            Filter::False => Ok(Filter::False),
            l => Ok(Filter::and(vec![l, boolean(right, on, mode, unknown)?])),
        },
        Expr::BinaryOp {
            op: BinaryOp::Or,
            left,
            right,
        } => match boolean(left, on, mode, unknown)? {
            Filter::True => Ok(Filter::True),
            l => Ok(Filter::or(vec![l, boolean(right, on, mode, unknown)?])),
        },
        Expr::IfThenElse {
            cond,
            then_expr,
            else_expr,
        } => {
            // (c ∧ t) ∨ (¬c ∧ e): c appears under both polarities, so it
            // must be exact even when approximating.
            let c = boolean(cond, on, Mode::Exact, unknown);
            match c {
                Ok(c) => Ok(Filter::or(vec![
                    Filter::and(vec![c.clone(), boolean(then_expr, on, mode, unknown)?]),
                    Filter::and(vec![Filter::not(c), boolean(else_expr, on, mode, unknown)?]),
                ])),
                Err(()) => mode.unknown(format!("if {cond}"), unknown),
            }
        }
        other => mode.unknown(other.to_string(), unknown),
    }
}

/// What an expression compiles to, outside the connectives.
enum Term {
    Cond(Filter),
    Path(Path),
    Value(Scalar),
    Values(Vec<Scalar>),
}

/// The exact translation of `e`, when it has one; connectives (which may
/// hold unknown parts) are [`boolean`]'s.
fn term(e: &Expr, on: &On) -> Option<Term> {
    Some(match e {
        Expr::Literal(l) => Term::Value(literal(l)?),
        Expr::Var(v) if *v == on.var => Term::Path(Vec::new()),
        Expr::GetAttr { expr, attr } => match term(expr, on)? {
            Term::Path(mut p) => {
                p.push(attr.to_string());
                Term::Path(p)
            }
            _ => return None,
        },
        Expr::HasAttr { expr, attrs } => match term(expr, on)? {
            Term::Path(p) => {
                // `has a.b` is `has a && a has b`.
                let mut all = Vec::new();
                let mut path = p;
                for a in attrs.iter() {
                    path.push(a.to_string());
                    all.push(Filter::Has { path: path.clone() });
                }
                Term::Cond(Filter::and(all))
            }
            _ => return None,
        },
        Expr::UnaryOp { op, expr } => match (op, term(expr, on)?) {
            (UnaryOp::Not, Term::Cond(f)) => Term::Cond(Filter::not(f)),
            (UnaryOp::Not, Term::Path(p)) => Term::Cond(Filter::not(Filter::Eq {
                path: p,
                value: Scalar::Bool(true),
            })),
            (UnaryOp::Datetime, Term::Value(Scalar::String(s))) => Term::Value(Scalar::Datetime(s)),
            _ => return None,
        },
        Expr::BinaryOp { op, left, right } => binary(*op, term(left, on)?, term(right, on)?, on)?,
        Expr::Is {
            expr,
            entity_type,
            in_expr,
        } => {
            let Term::Path(p) = term(expr, on)? else {
                return None;
            };
            // Only the item's own type is known without a schema walk.
            if !p.is_empty() {
                return None;
            }
            let same = entity_type.to_string().rsplit("::").next() == Some(on.item.name());
            let type_test = if same { Filter::True } else { Filter::False };
            match in_expr {
                None => Term::Cond(type_test),
                Some(parent) => match binary(BinaryOp::In, Term::Path(p), term(parent, on)?, on)? {
                    Term::Cond(f) => Term::Cond(Filter::and(vec![type_test, f])),
                    _ => return None,
                },
            }
        }
        Expr::Set(items) => {
            let mut values = Vec::new();
            for i in items {
                match term(i, on)? {
                    Term::Value(v) => values.push(v),
                    _ => return None,
                }
            }
            Term::Values(values)
        }
        _ => return None,
    })
}

fn literal(l: &Literal) -> Option<Scalar> {
    Some(match l {
        Literal::Bool(b) => Scalar::Bool(*b),
        Literal::Long(n) => Scalar::Long(*n),
        Literal::String(s) => Scalar::String(s.to_string()),
        Literal::EntityUID(uid) => {
            let ty = uid.ty.to_string();
            let (namespace, name) = ty.rsplit_once("::").unwrap_or(("", &ty));
            if namespace != crate::refs::NAMESPACE {
                return None;
            }
            Scalar::Entity(EntityType::from_name(name)?.entity(uid.eid.to_string()))
        }
        _ => return None,
    })
}

fn binary(op: BinaryOp, left: Term, right: Term, on: &On) -> Option<Term> {
    use Term::*;
    let cmp = |op: CmpOp| match (&left, &right) {
        (Path(p), Value(v)) => Some(Filter::Cmp {
            path: p.clone(),
            cmp: op,
            value: v.clone(),
        }),
        (Value(v), Path(p)) => Some(Filter::Cmp {
            path: p.clone(),
            cmp: op.flipped(),
            value: v.clone(),
        }),
        _ => None,
    };
    let eq = |l: &Term, r: &Term| match (l, r) {
        (Path(p), Value(v)) | (Value(v), Path(p)) => Some(Filter::Eq {
            path: p.clone(),
            value: v.clone(),
        }),
        _ => None,
    };
    Some(Term::Cond(match op {
        BinaryOp::And => match (left, right) {
            (Cond(a), Cond(b)) => Filter::and(vec![a, b]),
            _ => return None,
        },
        BinaryOp::Or => match (left, right) {
            (Cond(a), Cond(b)) => Filter::or(vec![a, b]),
            _ => return None,
        },
        BinaryOp::Eq => eq(&left, &right)?,
        BinaryOp::NotEq => Filter::not(eq(&left, &right)?),
        BinaryOp::Less => cmp(CmpOp::Lt)?,
        BinaryOp::LessEq => cmp(CmpOp::Le)?,
        BinaryOp::Greater => cmp(CmpOp::Gt)?,
        BinaryOp::GreaterEq => cmp(CmpOp::Ge)?,
        BinaryOp::In => match (left, right) {
            (Path(p), Value(Scalar::Entity(e))) => Filter::In { path: p, entity: e },
            // A known entity in the item's attribute: the attribute is the
            // entity or one of its ancestors (known only for the entities
            // of the slice; any other is left to the fallback).
            (Value(Scalar::Entity(e)), Path(p)) => {
                let above = on.ancestors.get(&e)?;
                Filter::or(
                    std::iter::once(e.clone())
                        .chain(above.iter().cloned())
                        .map(|a| Filter::Eq {
                            path: p.clone(),
                            value: Scalar::Entity(a),
                        })
                        .collect(),
                )
            }
            (Path(p), Values(vs)) => Filter::or(
                vs.into_iter()
                    .map(|v| match v {
                        Scalar::Entity(e) => Some(Filter::In {
                            path: p.clone(),
                            entity: e,
                        }),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()?,
            ),
            _ => return None,
        },
        BinaryOp::Contains => match (left, right) {
            (Path(p), Value(Scalar::String(s))) => Filter::Contains { path: p, value: s },
            (Values(vs), Path(p)) => Filter::or(
                vs.into_iter()
                    .map(|v| Filter::Eq {
                        path: p.clone(),
                        value: v,
                    })
                    .collect(),
            ),
            _ => return None,
        },
        BinaryOp::ContainsAny | BinaryOp::ContainsAll => match (left, right) {
            (Path(p), Values(vs)) => {
                let each = vs
                    .into_iter()
                    .map(|v| match v {
                        Scalar::String(s) => Some(Filter::Contains {
                            path: p.clone(),
                            value: s,
                        }),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()?;
                if op == BinaryOp::ContainsAny {
                    Filter::or(each)
                } else {
                    Filter::and(each)
                }
            }
            _ => return None,
        },
        _ => return None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::partial::Residual;
    use crate::refs::EntityRef;
    use std::sync::Arc;

    fn residual(text: &str) -> Residual {
        let policy: cedar_policy::Policy =
            format!("permit(principal, action, resource) when {{ {text} }};")
                .parse()
                .unwrap();
        let pst = policy.to_pst().unwrap();
        let cedar_policy::pst::Clause::When(condition) = pst.body().clauses()[0].clone() else {
            panic!("a when clause")
        };
        Residual {
            id: "p".into(),
            condition,
            text: text.into(),
        }
    }

    fn residuals(permits: &[&str], forbids: &[&str]) -> Residuals {
        Residuals {
            permits: permits.iter().map(|t| residual(t)).collect(),
            forbids: forbids.iter().map(|t| residual(t)).collect(),
            ..Residuals::default()
        }
    }

    fn path(p: &[&str]) -> Path {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hierarchy_and_account_manager_scope() {
        let r = residuals(
            &[r#"resource in PartnerCenter::Partner::"dist-a""#],
            &[
                r#"!(resource in PartnerCenter::Partner::"dist-a")"#,
                r#"!((resource has account_manager) && (resource.account_manager == PartnerCenter::Operator::"am"))"#,
            ],
        );
        let c = compile(&r, EntityType::Customer);
        // `within ∧ ¬(¬within ∨ ¬(has am ∧ am == x))` folds to `within ∧ am == x`.
        assert_eq!(
            c.exact.unwrap(),
            Filter::And {
                all: vec![
                    Filter::In {
                        path: vec![],
                        entity: EntityRef::Partner("dist-a".into()),
                    },
                    Filter::Eq {
                        path: path(&["account_manager"]),
                        value: Scalar::Entity(EntityRef::Operator("am".into())),
                    },
                ]
            }
        );
    }

    #[test]
    fn unknown_forms_fall_back_with_a_superset() {
        // `like` is not compiled: exact fails; the permit's unknown part
        // becomes `true` and the forbid's `false`, so nothing allowed is lost.
        let r = residuals(
            &[r#"resource in PartnerCenter::Partner::"p" && resource.association like "res*""#],
            &[r#"resource.frozen && resource.association like "x*""#],
        );
        let c = compile(&r, EntityType::Customer);
        assert!(c.exact.is_none());
        assert!(!c.unknown.is_empty());
        assert_eq!(
            c.superset,
            Filter::In {
                path: vec![],
                entity: EntityRef::Partner("p".into())
            }
        );
    }

    #[test]
    fn decided_questions_are_constants() {
        let mut r = Residuals {
            decision: Some(false),
            ..Residuals::default()
        };
        assert_eq!(compile(&r, EntityType::Order).exact, Some(Filter::False));
        r.decision = Some(true);
        assert_eq!(compile(&r, EntityType::Order).exact, Some(Filter::True));
    }

    #[test]
    fn comparisons_sets_and_conditionals() {
        let r = residuals(
            &[
                r#"datetime("2026-11-21T12:00:00Z") < resource.expires_at && resource.scopes.containsAny(["om", "order"]) && (if resource.ended then false else true)"#,
            ],
            &[],
        );
        let f = compile(&r, EntityType::Session).exact.unwrap();
        let text = serde_json::to_string(&f).unwrap();
        assert!(text.contains(r#""cmp":"gt""#), "{text}");
        assert!(text.contains(r#""op":"contains""#), "{text}");
        let _ = Arc::new(());
    }
}
