use cedar_policy::*;
use partner_gateway::policy::PolicyEngine;
use partner_gateway::refs::EntityRef;
use std::path::Path;

fn main() {
    let engine = PolicyEngine::load(Path::new("policies"), Path::new("schema")).unwrap();
    let schema = engine.schema();
    let ents = r#"[
      {"uid": {"type":"PartnerCenter::Partner","id":"dist-a"}, "attrs": {"kind":"distributor","grants":{"budget":false,"freeze":false,"on_behalf":false}}, "parents": []},
      {"uid": {"type":"PartnerCenter::Operator","id":"op"}, "attrs": {"partner":{"__entity":{"type":"PartnerCenter::Partner","id":"dist-a"}},"roles":["account_manager"],"status":"active"}, "parents": [{"type":"PartnerCenter::Partner","id":"dist-a"}]}
    ]"#;
    let entities = Entities::from_json_str(ents, Some(schema)).unwrap();
    let entities = entities
        .add_entities(
            schema.action_entities().unwrap().iter().cloned(),
            Some(schema),
        )
        .unwrap();
    let pents = PartialEntities::from_concrete(entities, schema).unwrap();
    for (action, rtype) in [
        ("ViewCustomer", "Customer"),
        ("ViewOrder", "Order"),
        ("SetBudget", "Customer"),
    ] {
        let ctx = if action == "SetBudget" {
            Context::from_json_str(r#"{"now":"2026-11-21T12:00:00Z","source_ip":"127.0.0.1","budget_type":"MONTHLY","amount":"100.00","cancel_partner_frozen":false}"#, Some((schema, &PolicyEngine::action_uid(action)))).unwrap()
        } else {
            Context::from_json_str(
                r#"{"now":"2026-11-21T12:00:00Z","source_ip":"127.0.0.1"}"#,
                Some((schema, &PolicyEngine::action_uid(action))),
            )
            .unwrap()
        };
        let req = PartialRequest::new(
            PartialEntityUid::from_concrete(EntityRef::Operator("op".into()).uid()),
            PolicyEngine::action_uid(action),
            PartialEntityUid::new(format!("PartnerCenter::{rtype}").parse().unwrap(), None),
            Some(ctx),
            schema,
        )
        .unwrap();
        let t = std::time::Instant::now();
        let resp = engine.policy_set().tpe(&req, &pents, schema).unwrap();
        println!("== {action} {:?} in {:?}", resp.decision(), t.elapsed());
        for p in resp.residual_policies() {
            println!("{p}");
            let pst = p.to_pst().unwrap();
            for c in pst.body().clauses() {
                println!("  PST: {:?}", c);
            }
        }
        println!(
            "true permits: {:?}",
            resp.true_permits().collect::<Vec<_>>()
        );
    }
}
