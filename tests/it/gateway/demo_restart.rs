//! `serve --demo` keeps what was done across restarts; `--demo-reset` loads
//! the demo data again.

use super::TestGateway;
use crate::kit::test_cipher;
use partner_gateway::ids::CustomerId;
use partner_gateway::store::{Backend, Store};
use serde_json::json;

async fn frozen(url: &str) -> bool {
    let store = Store::connect(url, test_cipher()).await.unwrap();
    let frozen = store
        .customer(&CustomerId::from("cust-nova"))
        .await
        .unwrap()
        .unwrap()
        .frozen;
    store.close().await;
    frozen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_keeps_its_data_across_restarts_unless_reset() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/demo.db", dir.path().display());
    // One port for every start: a restarted gateway is the same instance.
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let start = |reset: bool| {
        let url = url.clone();
        TestGateway::start_with(Backend::Sqlite, move |cfg| {
            cfg.database.database_url = url;
            cfg.demo_reset = reset;
            cfg.listen = listen;
        })
    };
    let gw = start(false).await;
    let done = gw
        .call(
            "op-dist-finance",
            "POST",
            "/v2/partners/sub-customers/freeze",
            Some(json!({"customer_ids": ["cust-nova"], "reason": "arrears"})),
        )
        .await;
    assert_eq!(done.status, 200);
    gw.running.stop().await;
    assert!(frozen(&url).await);

    let again = start(false).await;
    again.running.stop().await;
    assert!(frozen(&url).await, "a restart keeps the change");
    let store = Store::connect(&url, test_cipher()).await.unwrap();
    let fleet = store.fleet().await.unwrap();
    store.close().await;
    assert_eq!(
        fleet.len(),
        1,
        "one row for the restarted gateway: {fleet:?}"
    );
    assert!(
        fleet[0].instance.ends_with(&format!(":{}", listen.port())),
        "{fleet:?}"
    );

    let reset = start(true).await;
    reset.running.stop().await;
    assert!(!frozen(&url).await, "--demo-reset loads the demo again");
}
