//! `cedar-local-agent` 3.0.0, AWS's reference Cedar authorizer (its
//! `simple::Authorizer`), set up as its users set it up, on the gateway's
//! policies and the gateway's entity slices: the decision bench times a
//! decision of each on the same request and the same entities.
//!
//! - The policies: its file provider reads one file, so the policy files
//!   are concatenated in the order the gateway loads them.
//! - The entities: its authorizer merges, on every call, what its entity
//!   provider gives with the entities passed in. The provider gives the
//!   schema's action entities (what the gateway's engine adds to a slice),
//!   and each call passes the slice the gateway's loader built for that
//!   request: Cedar is timed, not a copy of a whole store.
//! - No tracing subscriber is installed, so its OCSF log line is not built.

use async_trait::async_trait;
use cedar_local_agent::public::file::policy_set_provider::{ConfigBuilder, PolicySetProvider};
use cedar_local_agent::public::simple::{Authorizer, AuthorizerConfigBuilder};
use cedar_local_agent::public::{EntityProviderError, SimpleEntityProvider};
use cedar_policy::{Decision, Entities, Request};
use partner_gateway::policy::{AccessRequest, PolicyEngine};
use std::path::Path;
use std::sync::Arc;

/// The schema's action entities, for every request.
#[derive(Debug)]
pub struct ActionEntities(Arc<Entities>);

#[async_trait]
impl SimpleEntityProvider for ActionEntities {
    async fn get_entities(&self, _: &Request) -> Result<Arc<Entities>, EntityProviderError> {
        Ok(self.0.clone())
    }
}

pub struct LocalAgent {
    authorizer: Authorizer<PolicySetProvider, ActionEntities>,
    /// The concatenated policy file its provider read.
    _policies: tempfile::NamedTempFile,
}

impl LocalAgent {
    pub fn new(engine: &PolicyEngine, policies_dir: &Path) -> LocalAgent {
        let mut files: Vec<_> = std::fs::read_dir(policies_dir)
            .expect("the policy directory")
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "cedar"))
            .collect();
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        let mut text = String::new();
        for file in &files {
            text.push_str(&std::fs::read_to_string(file).expect("a policy file"));
            text.push('\n');
        }
        let policies = tempfile::NamedTempFile::new().expect("a temporary file");
        std::fs::write(policies.path(), text).expect("the concatenated policies");
        let provider = PolicySetProvider::new(
            ConfigBuilder::default()
                .policy_set_path(policies.path().to_str().expect("a UTF-8 path"))
                .build()
                .expect("a provider configuration"),
        )
        .expect("cedar-local-agent reads the policies");
        let actions = engine
            .schema()
            .action_entities()
            .expect("the schema's actions");
        let authorizer = Authorizer::new(
            AuthorizerConfigBuilder::default()
                .policy_set_provider(Arc::new(provider))
                .entity_provider(Arc::new(ActionEntities(Arc::new(actions))))
                .build()
                .expect("an authorizer configuration"),
        );
        LocalAgent {
            authorizer,
            _policies: policies,
        }
    }

    /// Decides `r` on `slice`, the request built as a user of Cedar builds
    /// it (the context checked against the schema), as the engine does.
    pub async fn decide(&self, engine: &PolicyEngine, r: &AccessRequest, slice: &Entities) -> bool {
        let request = engine
            .plain_cedar_request(r)
            .expect("the request fits the schema");
        let response = self
            .authorizer
            .is_authorized(&request, slice)
            .await
            .expect("cedar-local-agent answers");
        response.decision() == Decision::Allow
    }
}
