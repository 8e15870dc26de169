//! The one place questions of who may do what are decided: the live
//! policies, the shadow set compared beside them, the entities a decision
//! reads and the decisions reused while their facts are unchanged. The
//! gateway's request path, its own operations, AuthZEN, explain and who-can
//! all ask through it; an administrator's question ([`Asker::Admin`]) is
//! decided the same way and changes nothing.
//!
//! An unknown principal or resource is denied exactly like a forbidden one
//! (no existence oracle, in answer or in time); entities that cannot be read
//! are [`AuthorizeError::Unavailable`] (fail closed, 503).

pub mod reuse;

use crate::catalog::ListOf;
use crate::entities::{EntityLoader, Slice};
use crate::filter::ListScope;
use crate::model::SessionFacts;
use crate::policy::partial::Residuals;
use crate::policy::residual_filter;
use crate::policy::{AccessRequest, Asked, Decision, PolicyEngine};
use crate::recent::Recent;
use crate::refs::{EntityRef, EntityType};
use arc_swap::{ArcSwap, ArcSwapOption};
use reuse::DecisionCache;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Why a question got no decision.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    /// The entities could not be read: nothing is decided (503).
    #[error("loading entities: {0}")]
    Unavailable(String),
    /// The policies could not be evaluated over every item at once: denied.
    #[error("partial evaluation failed: {0}")]
    Failed(String),
    /// A list question's principal does not exist: denied.
    #[error("the principal is unknown")]
    Unknown,
}

impl From<crate::entities::EntityError> for AuthorizeError {
    fn from(e: crate::entities::EntityError) -> Self {
        AuthorizeError::Unavailable(e.to_string())
    }
}

impl Question<'_> {
    /// The question about `resource`, its context filled as asked (`now`,
    /// `source_ip`).
    fn about(&self, resource: EntityRef) -> AccessRequest {
        AccessRequest::new(
            self.principal.clone(),
            self.action,
            resource,
            self.context.clone(),
        )
        .asked(self.asked)
    }
}

/// One question asked for a principal: an action with its context,
/// answered by `engine` (the set the request started with), for each
/// resource in turn.
pub struct Question<'a> {
    pub engine: &'a PolicyEngine,
    pub principal: &'a EntityRef,
    /// The facts of sessions already read (a session principal's, from
    /// authentication); any other session the question names the loader
    /// reads.
    pub sessions: &'a [SessionFacts],
    pub action: &'a str,
    pub context: Map<String, Value>,
    pub asked: &'a Asked,
    pub asker: Asker,
}

/// Who asks, which says what a question may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asker {
    /// Live traffic (the gateway, AuthZEN): decisions are reused and kept,
    /// compared with the shadow set, and counted.
    Traffic,
    /// An administrator's question (explain, who-can): decided on the same
    /// entities by the same policies, but neither taken from nor kept in
    /// the decision cache, never a shadow disagreement, never counted; an
    /// evaluation error is part of its answer rather than an error log.
    Admin,
}

/// A decision with the entities it was taken on, for an answer that says
/// more than allow or deny ([`Authorizer::examine`]).
pub struct Examined {
    pub entities: cedar_policy::Entities,
    pub decision: Decision,
}

/// A list's answer: what the policies say of every item, and the items'
/// scope when any may be allowed.
pub struct ListAnswer {
    /// Allowed when some item may be; the forbids that deny all of them
    /// otherwise.
    pub decision: Decision,
    /// `None` when the list is denied as a whole.
    pub scope: Option<ListScope>,
}

/// The shadow set, when there is one: evaluated next to every live
/// decision and compared with it, never deciding (`policy::shadow`). One
/// may come and go while the gateway serves (a shadow publication, then its
/// promotion); a set that is there is reloaded in its own `ArcSwap`.
#[derive(Clone)]
pub struct ShadowSlot(Arc<Shadow>);

struct Shadow {
    engine: ArcSwapOption<ArcSwap<PolicyEngine>>,
    /// The last disagreements with the live set, for the console.
    disagreements: Recent,
    /// How many disagreements there were before the set serving now came.
    before: AtomicU64,
}

impl Default for ShadowSlot {
    fn default() -> ShadowSlot {
        ShadowSlot::new(None)
    }
}

impl ShadowSlot {
    pub fn new(engine: Option<Arc<ArcSwap<PolicyEngine>>>) -> ShadowSlot {
        ShadowSlot(Arc::new(Shadow {
            engine: ArcSwapOption::new(engine),
            disagreements: Recent::new(crate::recent::DISAGREEMENTS),
            before: AtomicU64::new(0),
        }))
    }

    /// The shadow set serving now.
    pub fn current(&self) -> Option<Arc<PolicyEngine>> {
        self.0
            .engine
            .load()
            .as_ref()
            .map(|engine| engine.load_full())
    }

    pub fn is_set(&self) -> bool {
        self.0.engine.load().is_some()
    }

    /// Compares with `engine` from now on (none: compares no more).
    pub fn set(&self, engine: Option<Arc<ArcSwap<PolicyEngine>>>) {
        self.0
            .before
            .store(self.0.disagreements.pushed(), Ordering::Relaxed);
        self.0.engine.store(engine);
    }

    /// The last disagreements (of every shadow set since start).
    pub fn disagreements(&self) -> &Recent {
        &self.0.disagreements
    }

    /// How many live decisions the shadow set serving now disagreed with.
    pub fn flips(&self) -> u64 {
        self.0.disagreements.pushed() - self.0.before.load(Ordering::Relaxed)
    }
}

pub struct Authorizer {
    pub policies: Arc<ArcSwap<PolicyEngine>>,
    /// Shadow policies (`--shadow-policies` or a shadow publication).
    pub shadow: ShadowSlot,
    pub entities: Arc<EntityLoader>,
    /// Decisions reused while their question and facts are unchanged.
    pub decisions: DecisionCache,
    /// (policy version, list action) pairs whose item-by-item fallback was
    /// logged: once each.
    fallbacks_logged: Mutex<HashSet<(String, &'static str)>>,
}

impl Authorizer {
    pub fn new(
        policies: Arc<ArcSwap<PolicyEngine>>,
        shadow: ShadowSlot,
        entities: Arc<EntityLoader>,
        decisions: DecisionCache,
    ) -> Authorizer {
        Authorizer {
            policies,
            shadow,
            entities,
            decisions,
            fallbacks_logged: Mutex::new(HashSet::new()),
        }
    }

    /// An authorizer for administrators' questions alone (the `policy`
    /// commands): `engine`, no shadow set, nothing reused.
    pub fn for_questions(engine: PolicyEngine, entities: EntityLoader) -> Authorizer {
        Authorizer::new(
            Arc::new(ArcSwap::from_pointee(engine)),
            ShadowSlot::default(),
            Arc::new(entities),
            DecisionCache::new(0),
        )
    }

    /// One decision of `question` on `resource`.
    pub async fn decide(
        &self,
        question: &Question<'_>,
        resource: &EntityRef,
    ) -> Result<Decision, AuthorizeError> {
        let Question {
            engine,
            principal,
            sessions,
            action,
            ..
        } = *question;
        let slice = self
            .entities
            .slice_records(engine, principal, resource, sessions)
            .await?;
        let Some(slice) = slice else {
            // Unknown: denied. The same question about a known resource of
            // the type is decided (or reused) and thrown away, so that this
            // answer takes as long as a real one (no timing oracle).
            let stand_in = self
                .entities
                .stand_in(engine, principal, resource, sessions)
                .await?;
            if let Some((stand_in, slice)) = stand_in.filter(|_| question.asker == Asker::Traffic) {
                std::hint::black_box(self.decide_on(question, &stand_in, &slice));
            }
            return Ok(Decision {
                allow: false,
                determining: vec![],
                errors: vec![],
            });
        };
        let decision = self.decide_on(question, resource, &slice);
        if !decision.errors.is_empty() && question.asker == Asker::Traffic {
            crate::metrics::evaluation_error(action);
            tracing::error!(errors = ?decision.errors, action, resource = %resource, "policy evaluation failed; denied");
        }
        Ok(decision)
    }

    /// [`Authorizer::decide`] for an administrator's question, with the
    /// entities it was decided on; `None` when the principal or the
    /// resource does not exist (which [`Authorizer::decide`] answers with a
    /// plain deny).
    pub async fn examine(
        &self,
        question: &Question<'_>,
        resource: &EntityRef,
    ) -> Result<Option<Examined>, AuthorizeError> {
        debug_assert_eq!(question.asker, Asker::Admin);
        let slice = self
            .entities
            .slice_records(
                question.engine,
                question.principal,
                resource,
                question.sessions,
            )
            .await?;
        let Some(slice) = slice else {
            return Ok(None);
        };
        let request = question.about(resource.clone());
        // As `decide_on`: a slice Cedar refuses is a deny with the reason.
        Ok(Some(
            match slice.entities_for(question.engine, question.action) {
                Ok(entities) => Examined {
                    decision: question.engine.decide(&request, &entities),
                    entities,
                },
                Err(e) => Examined {
                    decision: Decision::failed(e.to_string()),
                    entities: cedar_policy::Entities::empty(),
                },
            },
        ))
    }

    /// `question` decided on each resource, in order: the one loop every
    /// batch, item-by-item list and search goes through.
    pub async fn decide_each(
        &self,
        question: &Question<'_>,
        resources: impl IntoIterator<Item = EntityRef>,
    ) -> Result<Vec<(EntityRef, Decision)>, AuthorizeError> {
        let mut decided = Vec::new();
        for resource in resources {
            let decision = self.decide(question, &resource).await?;
            decided.push((resource, decision));
        }
        Ok(decided)
    }

    /// The ids of type `item` among `ids` that `question` allows, in order.
    pub async fn allowed(
        &self,
        question: &Question<'_>,
        item: EntityType,
        ids: impl IntoIterator<Item = String>,
    ) -> Result<Vec<String>, AuthorizeError> {
        let decided = self
            .decide_each(question, ids.into_iter().map(|id| item.entity(id)))
            .await?;
        Ok(decided
            .into_iter()
            .filter(|(_, d)| d.allow)
            .map(|(resource, _)| resource.id().to_owned())
            .collect())
    }

    /// Decides `question` about `resource` on `slice` (reused when it may
    /// be), compared with the shadow set when there is one, for live
    /// traffic. An entity slice that Cedar refuses is a deny with the reason.
    fn decide_on(&self, question: &Question<'_>, resource: &EntityRef, slice: &Slice) -> Decision {
        let engine = question.engine;
        let traffic = question.asker == Asker::Traffic;
        // Cedar's request is built only to evaluate: a reused decision is
        // found by the question's parts.
        let evaluate = || match self.entities.entities_for(engine, question.action, slice) {
            Ok(entities) => {
                let request = question.about(resource.clone());
                let decision = engine.decide(&request, &entities);
                if let Some(shadow) = self.shadow.current().filter(|_| traffic) {
                    crate::policy::shadow::compare(
                        &shadow,
                        engine,
                        &request,
                        &entities,
                        &decision,
                        self.shadow.disagreements(),
                    );
                }
                decision
            }
            Err(e) => Decision::failed(e.to_string()),
        };
        // The shadow set is compared on every decision: nothing is reused
        // then. A `now` the caller named is no moment of live traffic, nor
        // is an administrator's question: its decision neither comes from
        // nor goes into the shared cache.
        if self.shadow.is_set() || question.asked.now_supplied || !traffic {
            let decision = evaluate();
            if traffic {
                engine.count_determining(&decision.determining);
            }
            return decision;
        }
        let parts = reuse::Parts {
            principal: question.principal,
            action: question.action,
            resource,
            context: &question.context,
            source_ip: question.asked.source_ip,
        };
        let decision = self
            .decisions
            .decide(engine, &parts, question.asked.now, slice, evaluate);
        engine.count_determining(&decision.determining);
        decision
    }

    /// What the policies say about `question` on every item of type `item`
    /// (compared with the shadow set's answer, when there is one).
    pub async fn residuals(
        &self,
        question: &Question<'_>,
        item: EntityType,
    ) -> Result<Residuals, AuthorizeError> {
        let Question {
            engine,
            principal,
            sessions,
            action,
            asker,
            ..
        } = *question;
        let Some(entities) = self
            .entities
            .principal_slice(engine, principal, sessions)
            .await?
        else {
            return Err(AuthorizeError::Unknown);
        };
        // `now` and `source_ip`, as every decision gets them.
        let context = question.about(principal.clone()).context;
        let residuals = engine
            .residuals(principal, action, item, &context, &entities)
            .map_err(|e| {
                if asker == Asker::Traffic {
                    tracing::error!(error = %e, action, item = %item, "partial evaluation failed; denied");
                }
                AuthorizeError::Failed(e)
            })?;
        if let Some(shadow) = self.shadow.current().filter(|_| asker == Asker::Traffic) {
            crate::policy::shadow::compare_list(
                &shadow,
                crate::policy::shadow::ListQuestion {
                    live: engine,
                    principal,
                    action,
                    item,
                    context: &context,
                    entities: &entities,
                },
                &residuals.list_decision(),
                self.shadow.disagreements(),
            );
        }
        Ok(residuals)
    }

    /// The items of list `of` the caller may see: a filter the store runs,
    /// or, for a residual form the compiler does not know, a superset whose
    /// candidates are then decided one by one ([`Authorizer::allowed`]).
    pub async fn list_scope(
        &self,
        question: &Question<'_>,
        of: ListOf,
    ) -> Result<ListAnswer, AuthorizeError> {
        let residuals = self.residuals(question, of.item).await?;
        let decision = residuals.list_decision();
        if question.asker == Asker::Traffic {
            question.engine.count_determining(&decision.determining);
        }
        if !decision.allow {
            return Ok(ListAnswer {
                decision,
                scope: None,
            });
        }
        let (scope, why) = residual_filter::scope(&residuals, of.item);
        if matches!(scope, ListScope::Candidates(_)) {
            self.fallback_noted(question.engine.version(), of, &why.join("; "));
        }
        Ok(ListAnswer {
            decision,
            scope: Some(scope),
        })
    }

    /// Counts a list decided item by item and logs it once per policy
    /// version and list action (the form that caused it does not change
    /// until the policies do).
    fn fallback_noted(&self, version: &str, of: ListOf, why: &str) {
        crate::metrics::list_fallback(of.action);
        let mut logged = self
            .fallbacks_logged
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if logged.insert((version.to_owned(), of.action)) {
            tracing::warn!(
                action = of.action,
                item = %of.item,
                policy_version = version,
                reason = why,
                "a list's residual policies have no filter form; its items are decided one by one (exact, slower)"
            );
        }
    }
}
