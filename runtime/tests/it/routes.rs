//! Each route: the happy path and its documented errors, with upstream's JSON shapes.

use serde_json::json;

use crate::support::{GET_PERSON, INSERT_PERSON, TestNode, example, schema};

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
    client
        .post("/graphs/g/branches", json!({"name": "feature"}))
        .await
        .expect(200);
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
