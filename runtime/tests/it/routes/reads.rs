//! The read routes (snapshot, query, the deprecated read, snapshots at a commit) and their errors.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_routes_and_their_errors() {
    let node = TestNode::start().await;
    let client = node.client();
    client.get("/graphs/nope/snapshot").await.expect_error(
        404,
        "not_found",
        "graph 'nope' not found",
    );
    client.get("/graphs/bad_id/snapshot").await.expect_error(
        400,
        "bad_request",
        "invalid graph id",
    );
    client.create_graph("g").await;
    client.load("g", &example("team.jsonl"), "overwrite").await;

    let snapshot = client.get("/graphs/g/snapshot").await.expect(200);
    assert_eq!(snapshot["branch"], "main");
    assert_eq!(snapshot["internal_schema_version"], 4);
    let keys: Vec<&str> = snapshot["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table_key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["edge:MemberOf", "edge:Mentors", "node:Person", "node:Team"]
    );
    client
        .get("/graphs/g/snapshot?branch=nope")
        .await
        .expect_error(404, "not_found", "branch 'nope' not found");

    let gq = example("team.gq");
    let read = client
        .post(
            "/graphs/g/query",
            json!({"query": gq, "name": "get_person", "params": {"name": "Ada"}}),
        )
        .await
        .expect(200);
    assert_eq!(read["query_name"], "get_person");
    assert_eq!(read["target"], json!({"branch": "main", "snapshot": null}));
    assert_eq!(read["row_count"], 1);
    assert_eq!(read["columns"], json!(["p.name", "p.age"]));
    assert_eq!(read["rows"], json!([{"p.name": "Ada", "p.age": 36}]));

    client
        .post("/graphs/g/query", json!({"query": gq}))
        .await
        .expect_error(400, "bad_request", "multiple queries");
    client
        .post("/graphs/g/query", json!({"query": gq, "name": "zzz"}))
        .await
        .expect_error(400, "bad_request", "query 'zzz' not found");
    client
        .post(
            "/graphs/g/query",
            json!({"query": GET_PERSON, "branch": "main", "snapshot": "x"}),
        )
        .await
        .expect_error(400, "bad_request", "branch or snapshot, not both");
    client
        .post(
            "/graphs/g/query",
            json!({"query": INSERT_PERSON, "params": {"name": "x", "age": 1}}),
        )
        .await
        .expect_error(400, "bad_request", "contains mutations");
    client
        .post(
            "/graphs/g/query",
            json!({"query": GET_PERSON, "params": {"name": 5}}),
        )
        .await
        .expect(400);
    client
        .post(
            "/graphs/g/query",
            json!({"query": GET_PERSON, "params": {"name": "Alice"}, "branch": "nope"}),
        )
        .await
        .expect_error(404, "not_found", "branch 'nope' not found");
    client
        .post("/graphs/g/query", json!({"name": "x"}))
        .await
        .expect(422);

    // Deprecated /read: legacy field names, deprecation headers, no refusal of mutations.
    let legacy = client
        .post(
            "/graphs/g/read",
            json!({"query_source": gq, "query_name": "get_person", "params": {"name": "Grace"}}),
        )
        .await;
    assert_eq!(legacy.headers["deprecation"], "true");
    assert!(
        legacy.headers["link"]
            .to_str()
            .unwrap()
            .contains("successor-version")
    );
    assert_eq!(legacy.expect(200)["rows"][0]["p.name"], "Grace");
    let modern = client
        .post(
            "/graphs/g/query",
            json!({"query": GET_PERSON, "params": {"name": "Grace"}}),
        )
        .await;
    assert!(modern.headers.get("deprecation").is_none());

    // Snapshot reads at a commit echo the snapshot target.
    let commits = client.get("/graphs/g/commits").await.expect(200);
    let head = commits["commits"].as_array().unwrap().last().unwrap()["graph_commit_id"]
        .as_str()
        .unwrap()
        .to_string();
    let at = client
        .post(
            "/graphs/g/query",
            json!({"query": GET_PERSON, "params": {"name": "Grace"}, "snapshot": head}),
        )
        .await
        .expect(200);
    assert_eq!(at["target"], json!({"branch": null, "snapshot": head}));
    client
        .get(&format!("/graphs/g/commits/{head}"))
        .await
        .expect(200);
    client
        .get("/graphs/g/commits/01ZZZZZZZZZZZZZZZZZZZZZZZZ")
        .await
        .expect(404);

    let schema_out = client.get("/graphs/g/schema").await.expect(200);
    assert_eq!(schema_out["schema_source"].as_str().unwrap(), schema());
    assert_eq!(
        client.get("/graphs/g/queries").await.expect(200),
        json!({"queries": []})
    );
    client
        .post("/graphs/g/queries/anything", json!({}))
        .await
        .expect_error(404, "not_found", "stored query not found");
    client.get("/graphs/nope/queries").await.expect(404);
    client.get("/graphs/g/nothing-here").await.expect(404);
}
