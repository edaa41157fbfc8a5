//! Each route: the happy path and its documented errors, with upstream's JSON shapes.

use serde_json::json;

use crate::support::{GET_PERSON, INSERT_PERSON, TestNode, example, schema};

mod reads;
mod writes;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_open_and_reports_versions() {
    let node = TestNode::start_permissive(
        "[[auth.tokens]]\ntoken = \"t\"\nactor = \"a\"\ntenant = \"t1\"\n",
    )
    .await;
    let body = node.client().get("/healthz").await.expect(200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["engine_version"], "0.8.0");
    assert_eq!(body["internal_schema_version"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_errors_use_upstream_messages() {
    let node = TestNode::start_permissive(
        "[[auth.tokens]]\ntoken = \"good\"\nactor = \"alice\"\ntenant = \"acme\"\n",
    )
    .await;
    node.client()
        .get("/graphs")
        .await
        .expect_error(401, "unauthorized", "missing bearer token");
    node.client_with_token("bad")
        .get("/graphs/g/snapshot")
        .await
        .expect_error(401, "unauthorized", "invalid bearer token");
    // Authentication comes before graph resolution: no existence leaks to a bad token.
    node.client()
        .get("/graphs/bad_id/snapshot")
        .await
        .expect(401);
    let ok = node.client_with_token("good");
    ok.create_graph("g").await;
    let body = ok.insert_person("g", "Ann", 3).await.expect(200);
    assert_eq!(body["actor_id"], "alice", "the actor comes from the token");
    let commits = ok.get("/graphs/g/commits").await.expect(200);
    let last = commits["commits"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last["actor_id"], "alice",
        "commits are stamped with the actor"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_management_routes() {
    let node = TestNode::start().await;
    let client = node.client();
    assert_eq!(
        client.get("/graphs").await.expect(200),
        json!({"graphs": []})
    );
    let created = client
        .post(
            "/graphs",
            json!({"graph_id": "g-1", "schema_source": schema()}),
        )
        .await
        .expect(201);
    assert_eq!(created["graph_id"], "g-1");
    assert_eq!(created["uri"], "/graphs/g-1");
    client
        .post(
            "/graphs",
            json!({"graph_id": "g-1", "schema_source": schema()}),
        )
        .await
        .expect_error(409, "conflict", "already exists");
    for bad in ["_sys", "a_b", "x".repeat(65).as_str()] {
        client
            .post(
                "/graphs",
                json!({"graph_id": bad, "schema_source": schema()}),
            )
            .await
            .expect_error(400, "bad_request", "invalid graph id");
    }
    client
        .post(
            "/graphs",
            json!({"graph_id": "broken", "schema_source": "node {"}),
        )
        .await
        .expect(400);
    assert_eq!(
        client.get("/graphs").await.expect(200)["graphs"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "a failed create leaves nothing"
    );
    client
        .post("/graphs", json!({"graph_id": "g-2"}))
        .await
        .expect(422);
    client.post_raw("/graphs", None, "{}").await.expect(415);
    client
        .post_raw("/graphs", Some("application/json"), "{not json")
        .await
        .expect(400);

    client.insert_person("g-1", "Ann", 3).await.expect(200);
    client.delete("/graphs/g-1").await.expect(200);
    client.get("/graphs/g-1/snapshot").await.expect_error(
        404,
        "not_found",
        "graph 'g-1' not found",
    );
    client.delete("/graphs/g-1").await.expect(404);
    client.create_graph("g-1").await;
    assert_eq!(
        client.count_people("g-1", "main").await,
        0,
        "a re-created graph starts empty"
    );
    client.delete("/graphs/bad_id").await.expect(400);

    // Regression: residue of a delete that crashed after removing the schema object made the
    // id unusable (404 on delete, 409 on create). Both now clear it.
    client.create_graph("half").await;
    let dir = node.root.join("tenants/default/graphs/half.omni");
    std::fs::remove_file(dir.join("_schema.pg")).unwrap();
    assert!(dir.exists(), "residue left behind");
    client.create_graph("half").await;
    assert_eq!(client.count_people("half", "main").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limits_answer_413() {
    let node =
        TestNode::start_with("[server]\nbody_limit_bytes = 4096\nload_body_limit_bytes = 65536\n")
            .await;
    let client = node.client();
    client.create_graph("g").await;
    let padding = "x".repeat(8 * 1024);
    client
        .post(
            "/graphs/g/query",
            json!({"query": GET_PERSON, "name": padding}),
        )
        .await
        .expect_error(413, "payload_too_large", "");
    // The load route has its own, larger limit.
    let rows: String = (0..40)
        .map(|i| {
            format!("{{\"type\":\"Person\",\"data\":{{\"name\":\"p{i:0>100}\",\"age\":1}}}}\n")
        })
        .collect();
    assert!(rows.len() > 4096 && rows.len() < 65536);
    client.load("g", &rows, "append").await;
    let too_big = "y".repeat(70 * 1024);
    client
        .post("/graphs/g/load", json!({"data": too_big}))
        .await
        .expect(413);
    assert_eq!(client.count_people("g", "main").await, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_requests_and_actors() {
    let node = TestNode::start().await;
    let client = node.client();
    client.create_graph("g").await;
    client.insert_person("g", "Ann", 1).await.expect(200);
    let metrics = client.metrics().await;
    assert!(
        metrics.headers["content-type"]
            .to_str()
            .unwrap()
            .contains("openmetrics-text")
    );
    let text = metrics.text;
    assert!(text.contains("omnigraph_http_requests_total{route=\"/graphs/{graph_id}/mutate\",method=\"POST\",status=\"200\"} 1"), "{text}");
    assert!(
        text.contains("omnigraph_http_request_duration_seconds_bucket{"),
        "{text}"
    );
    assert_eq!(client.metric("omnigraph_repo_actors_active").await, 1.0);
    assert_eq!(client.metric("omnigraph_repo_activations_total").await, 1.0);
    assert!(
        text.contains("omnigraph_repo_activation_duration_seconds_count 1"),
        "{text}"
    );
}
