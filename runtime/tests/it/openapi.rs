//! The OpenAPI document describes the routes the node really serves, upstream's included.

use reqwest::Method;
use serde_json::Value;

use crate::support::TestNode;

/// Every route of upstream omnigraph-server 0.8 (with our graph management and readiness) that the
/// document must carry.
const UPSTREAM_ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/openapi.json"),
    ("get", "/graphs"),
    ("get", "/graphs/{graph_id}/snapshot"),
    ("post", "/graphs/{graph_id}/query"),
    ("post", "/graphs/{graph_id}/read"),
    ("post", "/graphs/{graph_id}/mutate"),
    ("post", "/graphs/{graph_id}/change"),
    ("post", "/graphs/{graph_id}/load"),
    ("post", "/graphs/{graph_id}/ingest"),
    ("post", "/graphs/{graph_id}/export"),
    ("get", "/graphs/{graph_id}/schema"),
    ("post", "/graphs/{graph_id}/schema/apply"),
    ("get", "/graphs/{graph_id}/branches"),
    ("post", "/graphs/{graph_id}/branches"),
    ("delete", "/graphs/{graph_id}/branches/{branch}"),
    ("post", "/graphs/{graph_id}/branches/merge"),
    ("get", "/graphs/{graph_id}/commits"),
    ("get", "/graphs/{graph_id}/commits/{commit_id}"),
    ("get", "/graphs/{graph_id}/queries"),
    ("post", "/graphs/{graph_id}/queries/{name}"),
    ("post", "/graphs"),
    ("delete", "/graphs/{graph_id}"),
    ("post", "/graphs/{graph_id}/warm"),
    ("get", "/admin/repos/{tenant}/{graph_id}/maintenance"),
    ("get", "/admin/cluster"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_lists_every_route_and_only_served_ones() {
    let node = TestNode::start().await;
    let doc = node.client().get("/openapi.json").await.expect(200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    for (method, path) in UPSTREAM_ROUTES {
        assert!(
            documented.contains(&(method.to_string(), path.to_string())),
            "{method} {path} missing from the document"
        );
    }
    assert_eq!(documented.len(), UPSTREAM_ROUTES.len(), "{documented:?}");

    // Each documented operation reaches a handler: never the router's 404 or 405.
    let http = reqwest::Client::new();
    for (method, path) in &documented {
        let concrete = path
            .replace("{graph_id}", "nope")
            .replace("{tenant}", "default")
            .replace("{branch}", "b")
            .replace("{commit_id}", "c")
            .replace("{name}", "n");
        let response = http
            .request(
                Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                format!("{}{concrete}", node.base),
            )
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_ne!(response.status(), 405, "{method} {path}");
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_ne!(body["error"], "no such route", "{method} {path}");
    }
}
