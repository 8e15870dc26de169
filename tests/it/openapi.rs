//! The OpenAPI document: the copy in docs/ is what the catalog generates,
//! the gateway serves it to anyone over TLS, and it names every operation
//! of the catalog with its parameters and answers. That the gateway answers
//! what the document says is the fuzzing run's to check (`tests/openapi`).

use crate::domain::support::DEMO;
use crate::kit::DomainServer;
use partner_gateway::catalog::OPERATIONS;
use partner_gateway::openapi;
use partner_gateway::store::Backend;
use serde_json::Value;

#[test]
fn the_copy_in_docs_is_what_the_catalog_generates() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    let copy = std::fs::read_to_string(&path).unwrap();
    assert!(
        copy.trim_end() == openapi::text(),
        "docs/openapi.json is not what the catalog generates: run `cargo run -- openapi > docs/openapi.json`"
    );
}

#[test]
fn every_operation_is_in_it_with_its_answers() {
    let doc = openapi::document();
    let mut documented = 0;
    for (path, methods) in doc["paths"].as_object().unwrap() {
        documented += methods.as_object().unwrap().len();
        assert!(
            OPERATIONS.iter().any(|o| o.path == path),
            "{path} is no route of the catalog"
        );
    }
    assert_eq!(documented, OPERATIONS.len(), "one entry per operation");
    for o in OPERATIONS {
        let method = o.method.as_str().to_ascii_lowercase();
        let entry = &doc["paths"][o.path][&method];
        let name = o.op.name();
        assert_eq!(entry["operationId"], name, "{method} {}", o.path);
        let parameters = entry["parameters"].as_array().unwrap();
        let in_path = |p: &&Value| p["in"] == "path";
        let named: Vec<&str> = parameters
            .iter()
            .filter(in_path)
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for segment in o.path.split('/') {
            if let Some(param) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                assert!(named.contains(&param), "{name}: path parameter {param}");
            }
        }
        let responses = entry["responses"].as_object().unwrap();
        let success = responses.keys().filter(|s| s.starts_with('2')).count();
        assert_eq!(success, 1, "{name}: one success");
        for status in ["400", "401", "403", "429", "503"] {
            assert!(responses.contains_key(status), "{name}: {status}");
        }
        let client_token = parameters.iter().any(|p| p["name"] == "X-Client-Token");
        assert_eq!(client_token, o.op.creates(), "{name}: X-Client-Token");
        if o.op.creates() {
            assert!(
                responses.contains_key("409"),
                "{name}: a reused X-Client-Token is 409"
            );
        }
    }
    // Every error answer is the API's error, with the codes it carries; a
    // denial's code may be one the policies name.
    for (name, response) in doc["components"]["responses"].as_object().unwrap() {
        let named = response["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap();
        let named = named.strip_prefix("#/components/schemas/").unwrap();
        let schema = &doc["components"]["schemas"][named]["allOf"];
        assert_eq!(schema[0]["$ref"], "#/components/schemas/Error", "{name}");
        let code = &schema[1]["properties"]["error_code"];
        match name.as_str() {
            "Denied" => assert_eq!(code["type"], "string"),
            _ => assert!(!code["enum"].as_array().unwrap().is_empty(), "{name}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_it_to_anyone() {
    let s = DomainServer::start(Backend::Sqlite, DEMO).await;
    let served = s.call("GET", "/openapi.json", None, None).await;
    assert_eq!(served.status, 200);
    assert_eq!(
        served.headers["content-type"],
        "application/json;charset=UTF-8"
    );
    assert_eq!(served.json(), openapi::document());
    // Only that: another method on it, or another path, is still refused
    // to an unsigned caller.
    for (method, path) in [("POST", "/openapi.json"), ("GET", "/openapi.yaml")] {
        let refused = s.call(method, path, None, None).await;
        assert_eq!(refused.status, 401, "{method} {path}");
    }
}
