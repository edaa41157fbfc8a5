//! The write routes (mutate, change, load, schema apply, branches, merge) and their errors.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_routes_and_their_errors() {
    let node = TestNode::start().await;
    let client = node.client();
    client.create_graph("g").await;
    let mutated = client.insert_person("g", "Ann", 30).await;
    assert!(mutated.headers.get("deprecation").is_none());
    assert_eq!(
        mutated.expect(200),
        json!({"branch": "main", "query_name": "insert_person", "affected_nodes": 1, "affected_edges": 0, "actor_id": null})
    );
    // Deprecated /change takes the legacy names too.
    let changed = client
        .post("/graphs/g/change", json!({"query_source": INSERT_PERSON, "query_name": "insert_person", "params": {"name": "Ben", "age": 4}}))
        .await;
    assert_eq!(changed.headers["deprecation"], "true");
    assert_eq!(changed.expect(200)["affected_nodes"], 1);
    client
        .post(
            "/graphs/g/mutate",
            json!({"query": INSERT_PERSON, "params": {"name": "C", "age": 1}, "branch": "nope"}),
        )
        .await
        .expect_error(404, "not_found", "branch 'nope' not found");
    client
        .post(
            "/graphs/g/mutate",
            json!({"query": INSERT_PERSON, "params": {"name": "D", "age": "old"}}),
        )
        .await
        .expect(400);

    // Load: modes, branches, errors.
    let loaded = client
        .post("/graphs/g/load", json!({"data": "{\"type\":\"Person\",\"data\":{\"name\":\"Eve\",\"age\":5}}", "branch": "feature", "from": "main"}))
        .await
        .expect(200);
    assert_eq!(loaded["branch"], "feature");
    assert_eq!(loaded["base_branch"], "main");
    assert_eq!(loaded["branch_created"], true);
    assert_eq!(loaded["mode"], "merge");
    assert_eq!(
        loaded["tables"],
        json!([{"table_key": "node:Person", "rows_loaded": 1}])
    );
    client
        .post("/graphs/g/load", json!({"data": "{}", "branch": "missing"}))
        .await
        .expect_error(404, "not_found", "pass `from` to create it");
    assert!(
        !client.get("/graphs/g/branches").await.expect(200)["branches"]
            .as_array()
            .unwrap()
            .contains(&json!("missing"))
    );
    client
        .post("/graphs/g/load", json!({"data": "", "mode": "sideways"}))
        .await
        .expect_error(400, "bad_request", "invalid load mode");
    client
        .post(
            "/graphs/g/load",
            json!({"data": "{\"type\":\"Nope\",\"data\":{}}"}),
        )
        .await
        .expect(400);
    let ingested = client
        .post(
            "/graphs/g/ingest",
            json!({"data": "{\"type\":\"Team\",\"data\":{\"name\":\"Search\"}}"}),
        )
        .await;
    assert_eq!(ingested.headers["deprecation"], "true");
    assert_eq!(ingested.expect(200)["base_branch"], json!(null));

    // Branches.
    assert_eq!(
        client.get("/graphs/g/branches").await.expect(200),
        json!({"branches": ["feature", "main"]})
    );
    let created = client
        .post("/graphs/g/branches", json!({"name": "review/one"}))
        .await
        .expect(200);
    assert_eq!(created["from"], "main");
    client
        .post("/graphs/g/branches", json!({"name": "feature"}))
        .await
        .expect_error(409, "conflict", "already exists");
    client
        .post("/graphs/g/branches", json!({"name": "x", "from": "nope"}))
        .await
        .expect_error(404, "not_found", "branch 'nope'");
    client
        .post("/graphs/g/branches", json!({"name": "  "}))
        .await
        .expect(400);
    client
        .delete("/graphs/g/branches/review%2Fone")
        .await
        .expect(200);
    client.delete("/graphs/g/branches/nope").await.expect(404);
    client.delete("/graphs/g/branches/main").await.expect(400);

    let merged = client
        .post("/graphs/g/branches/merge", json!({"source": "feature"}))
        .await
        .expect(200);
    // main moved on (the ingest above) after feature forked: a three-way merge.
    assert_eq!(
        merged,
        json!({"source": "feature", "target": "main", "outcome": "merged", "actor_id": null})
    );
    let again = client
        .post(
            "/graphs/g/branches/merge",
            json!({"source": "feature", "target": "main"}),
        )
        .await
        .expect(200);
    assert_eq!(again["outcome"], "already_up_to_date");
    client
        .post("/graphs/g/branches/merge", json!({"source": "nope"}))
        .await
        .expect_error(404, "not_found", "branch 'nope'");
    client
        .post("/graphs/g/branches/merge", json!({"source": "main"}))
        .await
        .expect(400);

    // Schema apply: adds a property; refused while other branches exist.
    let widened = schema().replace("age: I32?", "age: I32?\n    email: String?");
    client
        .post("/graphs/g/schema/apply", json!({"schema_source": widened}))
        .await
        .expect_error(409, "conflict", "non-main branches");
    client
        .delete("/graphs/g/branches/feature")
        .await
        .expect(200);
    let applied = client
        .post("/graphs/g/schema/apply", json!({"schema_source": widened}))
        .await
        .expect(200);
    assert_eq!(applied["applied"], true);
    assert_eq!(applied["steps"][0]["kind"], "add_property");
    assert_eq!(applied["step_count"], 1);
    client
        .post("/graphs/g/schema/apply", json!({"schema_source": "node {"}))
        .await
        .expect(400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_conflicts_are_listed() {
    let node = TestNode::start().await;
    let client = node.client();
    client.create_graph("g").await;
    client.insert_person("g", "Alice", 30).await.expect(200);
    client.create_branch("g", "feature").await;
    let set_age = "query set_age($name: String, $age: I32) { update Person set { age: $age } where name = $name }";
    for (branch, age) in [("main", 31), ("feature", 32)] {
        client
            .post("/graphs/g/mutate", json!({"query": set_age, "params": {"name": "Alice", "age": age}, "branch": branch}))
            .await
            .expect(200);
    }
    let body = client
        .post("/graphs/g/branches/merge", json!({"source": "feature"}))
        .await
        .expect_error(409, "conflict", "merge conflicts");
    let conflict = &body["merge_conflicts"][0];
    assert_eq!(conflict["table_key"], "node:Person");
    assert_eq!(conflict["row_id"], "Alice");
    assert_eq!(conflict["kind"], "divergent_update");
}
