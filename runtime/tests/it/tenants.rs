//! Tenants are resolved from the token only, and never see each other's graphs.

use serde_json::json;

use crate::support::{
    COUNT_PEOPLE, GET_PERSON, PERMIT_ALL, TWO_TENANTS, TestNode, policy_dir, s3_backend,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_graph_name_in_two_tenants_is_two_graphs() {
    let node = TestNode::start_permissive(TWO_TENANTS).await;
    tenants_are_isolated(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_isolated_on_s3() {
    let Some(s3) = s3_backend().await else { return };
    let policies = policy_dir(&[("_default.cedar", PERMIT_ALL)]);
    let toml = format!(
        "auth.policy_dir = {:?}\n{TWO_TENANTS}",
        policies.path().display().to_string()
    );
    let node = TestNode::start_s3(&s3, "tenants", &toml).await;
    tenants_are_isolated(&node).await;
}

async fn tenants_are_isolated(node: &TestNode) {
    let acme = node.client_with_token("acme-token");
    let globex = node.client_with_token("globex-token");
    acme.create_graph("production").await;
    globex.create_graph("production").await;
    acme.insert_person("production", "AcmeOnly", 1)
        .await
        .expect(200);
    assert_eq!(acme.count_people("production", "main").await, 1);
    assert_eq!(globex.count_people("production", "main").await, 0);

    acme.create_graph("acme-secret").await;
    let listed = globex.get("/graphs").await.expect(200);
    assert_eq!(listed["graphs"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["graphs"][0]["graph_id"], "production");

    // Every route answers 404 for another tenant's graph: existence does not leak.
    globex
        .get("/graphs/acme-secret/snapshot")
        .await
        .expect_error(404, "not_found", "not found");
    globex
        .post(
            "/graphs/acme-secret/query",
            json!({"query": GET_PERSON, "params": {"name": "x"}}),
        )
        .await
        .expect(404);
    globex
        .insert_person("acme-secret", "intruder", 1)
        .await
        .expect(404);
    globex
        .post("/graphs/acme-secret/load", json!({"data": "{}"}))
        .await
        .expect(404);
    globex
        .post("/graphs/acme-secret/export", json!({}))
        .await
        .expect(404);
    globex.get("/graphs/acme-secret/commits").await.expect(404);
    globex.delete("/graphs/acme-secret").await.expect(404);
    // A tenant can create its own graph of that name without touching the other's.
    globex.create_graph("acme-secret").await;
    assert_eq!(
        acme.get("/graphs").await.expect(200)["graphs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // A header cannot pick the tenant: globex's token reads globex's `production` (empty),
    // not acme's (one person).
    let forged = reqwest::Client::new()
        .post(format!("{}/graphs/production/query", node.base))
        .bearer_auth("globex-token")
        .header("x-tenant-id", "acme")
        .json(&json!({"query": COUNT_PEOPLE}))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(forged["rows"][0]["total"], 0, "{forged}");
}
