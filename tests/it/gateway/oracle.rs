//! No existence oracle: an unknown id and an id out of the caller's reach
//! get the same answer, and the same work (so the same time; the times
//! themselves are measured by `examples/timing_oracle.rs`, not here).

use super::TestGateway;
use partner_gateway::store::Backend;

/// Entity lookups one request makes.
async fn lookups(gw: &TestGateway, customer: &str) -> (u64, serde_json::Value) {
    let entities = &gw.running.gateway.authorizer.entities;
    let before = entities.stats();
    let answer = gw
        .call(
            "op-dist-admin",
            "GET",
            &format!("/v2/partners/sub-customers/budget?customer_id={customer}"),
            None,
        )
        .await;
    assert_eq!(answer.status.as_u16(), 403, "{customer}");
    let after = entities.stats();
    (
        after.hits + after.misses - before.hits - before.misses,
        answer.json(),
    )
}

/// An unknown id is decided like a known one (against a known entity of
/// its type, the answer thrown away): it makes at least the entity lookups
/// a known one does, where it used to stop at the first missing entity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_id_costs_what_a_known_one_does() {
    let gw = TestGateway::start(Backend::Sqlite).await;
    // cust-kite belongs to sp-blue, out of op-dist-admin's reach.
    for customer in ["cust-kite", "cust-nobody", "cust-kite", "cust-nobody"] {
        lookups(&gw, customer).await; // warm the caches
    }
    let (known, known_body) = lookups(&gw, "cust-kite").await;
    let (unknown, unknown_body) = lookups(&gw, "cust-nobody").await;
    assert_eq!(known_body, unknown_body, "the same answer");
    assert!(
        unknown >= known,
        "an unknown id made {unknown} entity lookups, a known one {known}"
    );
    gw.running.stop().await;
}
