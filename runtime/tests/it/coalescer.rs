//! The write coalescer seen from outside: many concurrent writes, few publishes, each caller
//! its own answer.

use std::time::Duration;

use futures::future::join_all;
use serde_json::json;

use crate::support::{TestNode, s3_backend};

async fn commits(client: &crate::support::Client, graph: &str) -> usize {
    client
        .get(&format!("/graphs/{graph}/commits"))
        .await
        .expect(200)["commits"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_inserts_share_few_publishes() {
    let node = TestNode::start().await;
    let client = node.client();
    client.create_graph("hot").await;
    let before = commits(&client, "hot").await;
    let inserts = (0..200).map(|i| {
        let client = client.clone();
        async move { client.insert_person("hot", &format!("p{i}"), i % 90).await }
    });
    for response in join_all(inserts).await {
        assert_eq!(
            response.expect(200)["affected_nodes"],
            1,
            "every caller gets its own count"
        );
    }
    assert_eq!(client.count_people("hot", "main").await, 200);
    let publishes = commits(&client, "hot").await - before;
    assert!(publishes <= 40, "200 inserts took {publishes} publishes");
    let batches = client.metric("omnigraph_write_batches_total").await;
    assert!(batches >= 1.0 && batches <= publishes as f64);
}

/// One request of a batch violates a constraint (an edge to a person who does not exist):
/// it alone fails, with its own 4xx; the others succeed; nothing is half-applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_write_fails_alone_and_the_rest_of_its_batch_lands() {
    // A short gathering wait makes every concurrent request join one batch.
    let node = TestNode::start_with("[writes]\nmax_wait = \"300ms\"\n").await;
    let client = node.client();
    client.create_graph("g").await;
    client.insert_person("g", "Alice", 30).await.expect(200);
    let mentors = "query mentors($a: String, $b: String) { insert Mentors { from: $a, to: $b } }";
    let good = (0..15).map(|i| {
        let client = client.clone();
        async move { client.insert_person("g", &format!("ok{i}"), 1).await }
    });
    let bad = {
        let client = client.clone();
        async move {
            client
                .post(
                    "/graphs/g/mutate",
                    json!({"query": mentors, "params": {"a": "Alice", "b": "Nobody"}}),
                )
                .await
        }
    };
    let (good, bad) = tokio::join!(join_all(good), bad);
    assert!(bad.status.is_client_error(), "{}: {}", bad.status, bad.text);
    assert!(
        !bad.text.contains("r0_") && !bad.text.contains("coalesced"),
        "the error is the request's own: {}",
        bad.text
    );
    for response in good {
        assert_eq!(response.expect(200)["affected_nodes"], 1);
    }
    assert_eq!(client.count_people("g", "main").await, 16);
    assert!(
        client.metric("omnigraph_write_batch_splits_total").await >= 1.0,
        "the batch was split to find the culprit"
    );
    let mentees = client
        .post(
            "/graphs/g/query",
            json!({"query": "query f() { match { $p: Person $p mentors $f } return { $f.name } }"}),
        )
        .await
        .expect(200);
    assert_eq!(mentees["row_count"], 0, "the bad edge was not applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_and_the_node_stays_healthy() {
    let node = TestNode::start_with("[writes]\nmax_queue = 2\nmax_wait = \"500ms\"\n").await;
    let client = node.client();
    client.create_graph("g").await;
    let inserts = (0..20).map(|i| {
        let client = client.clone();
        async move { client.insert_person("g", &format!("q{i}"), 1).await }
    });
    let responses = join_all(inserts).await;
    let mut accepted = 0;
    let mut refused = 0;
    for response in responses {
        match response.status.as_u16() {
            200 => accepted += 1,
            429 => {
                assert_eq!(response.headers["retry-after"], "1");
                response.expect_error(429, "too_many_requests", "too many writes queued");
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", response.text),
        }
    }
    assert!(refused > 0, "the queue bound was never hit");
    assert!(accepted >= 2);
    client.get("/healthz").await.expect(200);
    client.insert_person("g", "later", 1).await.expect(200);
    assert_eq!(client.count_people("g", "main").await, accepted + 1);
    assert_eq!(
        client.metric("omnigraph_write_rejected_total").await,
        refused as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_coalescing_publishes_each_write() {
    let node = TestNode::start_with("[writes]\ncoalesce = false\n").await;
    let client = node.client();
    client.create_graph("g").await;
    let before = commits(&client, "g").await;
    let statuses = client.insert_concurrently("g", "s", 10).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(commits(&client, "g").await - before, 10);
}

/// At S3-like latency the coalescer turns a queue of writes into a few publishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalescing_on_s3_with_latency() {
    let Some(s3) = s3_backend().await else { return };
    let node = TestNode::start_s3(&s3, "coalesce", "").await;
    let client = node.client();
    client.create_graph("g").await;
    let latency = omnigraph_cloud_chaos::Latency {
        p50_ms: 20,
        jitter_ms: 5,
    };
    s3.proxy.set_faults(omnigraph_cloud_chaos::Faults {
        latency: [
            (omnigraph_cloud_chaos::Op::Put, latency),
            (omnigraph_cloud_chaos::Op::Get, latency),
        ]
        .into(),
        ..Default::default()
    });
    let before = commits(&client, "g").await;
    let inserts = client.insert_concurrently("g", "s", 40);
    let statuses = tokio::time::timeout(Duration::from_secs(240), inserts)
        .await
        .expect("bounded");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(client.count_people("g", "main").await, 40);
    let publishes = commits(&client, "g").await - before;
    assert!(publishes <= 10, "40 inserts took {publishes} publishes");
}

/// The same on the load path (a batch of node inserts): one insert breaks a `@range`
/// constraint; it alone fails with its own message, the others land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_node_insert_fails_alone_on_the_load_path() {
    let node = TestNode::start_with("[writes]\nmax_wait = \"300ms\"\n").await;
    let client = node.client();
    let schema =
        "node Person {\n    name: String @key\n    age: I32?\n    @range(age, 0..200)\n}\n";
    client
        .post("/graphs", json!({"graph_id": "g", "schema_source": schema}))
        .await
        .expect(201);
    let inserts = (0..12).map(|i| {
        let client = client.clone();
        async move {
            client
                .insert_person("g", &format!("p{i}"), if i == 5 { 999 } else { 30 })
                .await
        }
    });
    let responses = join_all(inserts).await;
    for (i, response) in responses.into_iter().enumerate() {
        if i == 5 {
            let body = response.expect(400);
            assert!(body["error"].as_str().unwrap().contains("@range"), "{body}");
        } else {
            assert_eq!(response.expect(200)["affected_nodes"], 1);
        }
    }
    assert_eq!(client.count_people("g", "main").await, 11);
    assert!(client.metric("omnigraph_write_batch_splits_total").await >= 1.0);
}

/// Concurrent loads on one branch coalesce; loads on different branches do not mix; each
/// caller gets its own per-table counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_loads_coalesce_per_branch() {
    let node = TestNode::start_with("[writes]\nmax_wait = \"300ms\"\n").await;
    let client = node.client();
    client.create_graph("g").await;
    client.create_branch("g", "feature").await;
    let main_before = commits(&client, "g").await;
    let people = |prefix: String| -> String {
        (0..3)
            .map(|i| {
                format!(
                    "{{\"type\":\"Person\",\"data\":{{\"name\":\"{prefix}-{i}\",\"age\":{i}}}}}\n"
                )
            })
            .collect()
    };
    let loads = (0..10)
        .map(|i| (format!("main{i}"), "main"))
        .chain((0..5).map(|i| (format!("feat{i}"), "feature")));
    let requests = loads.map(|(prefix, branch)| {
        let client = client.clone();
        let data = people(prefix);
        async move {
            client
                .post(
                    "/graphs/g/load",
                    json!({"data": data, "branch": branch, "mode": "merge"}),
                )
                .await
        }
    });
    for response in join_all(requests).await {
        let body = response.expect(200);
        assert_eq!(
            body["tables"],
            json!([{"table_key": "node:Person", "rows_loaded": 3}]),
            "each caller's own counts"
        );
        assert_eq!(body["branch_created"], false);
    }
    assert_eq!(client.count_people("g", "main").await, 30);
    assert_eq!(
        client.count_people("g", "feature").await,
        15,
        "branches do not mix"
    );
    let main_publishes = commits(&client, "g").await - main_before;
    assert!(
        main_publishes <= 3,
        "10 loads on main took {main_publishes} publishes"
    );

    // Two loads writing the same key never share a publish, and both apply.
    let same =
        |age: i64| format!("{{\"type\":\"Person\",\"data\":{{\"name\":\"dup\",\"age\":{age}}}}}");
    let (a, b) = tokio::join!(
        client.post("/graphs/g/load", json!({"data": same(1)})),
        client.post("/graphs/g/load", json!({"data": same(2)}))
    );
    a.expect(200);
    b.expect(200);
    assert_eq!(client.count_people("g", "main").await, 31);
}

/// Coalescing is configured per node and overridable per tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_tenant_overrides_apply_to_that_tenants_graphs() {
    let node = TestNode::start_permissive(
        "[writes]\nmax_wait = \"200ms\"\n[writes.tenants.solo]\ncoalesce = false\n\
         [[auth.tokens]]\ntoken = \"t-solo\"\nactor = \"s\"\ntenant = \"solo\"\n\
         [[auth.tokens]]\ntoken = \"t-team\"\nactor = \"t\"\ntenant = \"team\"\n",
    )
    .await;
    for (token, expect_batched) in [("t-solo", false), ("t-team", true)] {
        let client = node.client_with_token(token);
        client.create_graph("g").await;
        let before = commits(&client, "g").await;
        let statuses = client.insert_concurrently("g", "x", 8).await;
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        let publishes = commits(&client, "g").await - before;
        if expect_batched {
            assert!(publishes < 8, "{token}: {publishes} publishes");
        } else {
            assert_eq!(publishes, 8, "{token}: coalescing is off for this tenant");
        }
    }
}

/// Regression: coalesced node inserts were published as a load without type checking, and
/// the loader stored a value of the wrong type as null. They must get the engine's 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn badly_typed_inserts_are_refused_even_when_batched() {
    let node = TestNode::start_with("[writes]\nmax_wait = \"300ms\"\n").await;
    let client = node.client();
    client.create_graph("g").await;
    let wrong = "query w($n: String, $a: String) { insert Person { name: $n, age: $a } }";
    let requests =
        (0..4).map(|i| {
            let client = client.clone();
            async move {
                match i {
                    0 => client.insert_person("g", "fine", 1).await,
                // A declared, non-nullable parameter left out: the engine's 400, not a null.
                4 => client.post("/graphs/g/mutate", json!({"query": crate::support::INSERT_PERSON, "params": {"name": "noage"}})).await,
                    _ => client
                        .post(
                            "/graphs/g/mutate",
                            json!({"query": wrong, "params": {"n": format!("bad{i}"), "a": "old"}}),
                        )
                        .await,
                }
            }
        });
    let responses = join_all(requests).await;
    for (i, response) in responses.into_iter().enumerate() {
        let status = response.status.as_u16();
        assert_eq!(
            status,
            if i == 0 { 200 } else { 400 },
            "request {i}: {}",
            response.text
        );
    }
    assert_eq!(
        client.count_people("g", "main").await,
        1,
        "nothing badly typed was stored"
    );
}
