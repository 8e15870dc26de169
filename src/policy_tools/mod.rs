//! Tools over the policy engine, for people and for operations: `policy`
//! subcommands ([`cli`]), why a decision was taken ([`explain`],
//! [`near_miss`]), who may act on what ([`who_can`]), and the reloader that proves and swaps the live set
//! ([`reload`]). The engine itself ([`crate::policy`]) knows none of them.

pub mod args;
pub mod cli;
pub mod explain;
pub mod fleet;
pub mod near_miss;
pub mod publish;
pub mod reload;
pub mod replay;
pub mod who_can;

use crate::policy::PolicyEngine;
use cedar_policy::Effect;
use serde::Serialize;

/// A policy that took part in a decision, as people read it: its effect,
/// where it is written, and the comment above it.
#[derive(Clone, Debug, Serialize)]
pub struct DeterminingPolicy {
    pub id: String,
    /// `permit` or `forbid`.
    pub effect: &'static str,
    pub file: String,
    pub line: usize,
    /// The comment right above the policy.
    pub comment: Option<String>,
}

impl DeterminingPolicy {
    /// Policy `id` of `engine`; `unknown`, without a place, when the set no
    /// longer holds it.
    pub fn of(engine: &PolicyEngine, id: &str) -> DeterminingPolicy {
        match engine.policy(id) {
            Some(p) => DeterminingPolicy {
                id: id.to_owned(),
                effect: match p.effect {
                    Effect::Permit => "permit",
                    Effect::Forbid => "forbid",
                },
                file: p.file.display().to_string(),
                line: p.line,
                comment: p.comment.clone(),
            },
            None => DeterminingPolicy {
                id: id.to_owned(),
                effect: "unknown",
                file: String::new(),
                line: 0,
                comment: None,
            },
        }
    }
}
