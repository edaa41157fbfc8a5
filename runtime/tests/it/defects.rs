//! Known engine 0.8.0 defects and how the node answers them (docs/known-engine-issues.md).

use serde_json::json;

use crate::support::TestNode;

/// Regression for the defect reported on engine 0.8.0 embedded: merge `f1` into `main`
/// (fast-forward), create `f2` from `main`, load a row of the same node type on `f2`, merge
/// `f2` into `main` -> "table version 5 already exists for node:Person". Through the node,
/// every step must succeed and the data of both branches must be on main.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_pull_request_branches_merge() {
    let node = TestNode::start().await;
    let client = node.client();
    client.create_graph("g").await;
    client
        .load("g", &crate::support::example("team.jsonl"), "overwrite")
        .await;
    let person =
        |name: &str| format!("{{\"type\":\"Person\",\"data\":{{\"name\":\"{name}\",\"age\":1}}}}");
    for (round, branch) in ["f1", "f2", "f3"].iter().enumerate() {
        client
            .post(
                "/graphs/g/branches",
                json!({"name": branch, "from": "main"}),
            )
            .await
            .expect(200);
        client
            .post(
                "/graphs/g/load",
                json!({"data": person(&format!("pr{round}")), "branch": branch}),
            )
            .await
            .expect(200);
        let merged = client
            .post("/graphs/g/branches/merge", json!({"source": branch}))
            .await
            .expect(200);
        assert_eq!(merged["outcome"], "fast_forward");
    }
    assert_eq!(client.count_people("g", "main").await, 4 + 3);

    // The same with main moving in between (a real three-way merge).
    client.create_branch("g", "f4").await;
    client
        .post(
            "/graphs/g/load",
            json!({"data": person("on-f4"), "branch": "f4"}),
        )
        .await
        .expect(200);
    client
        .post("/graphs/g/load", json!({"data": person("on-main")}))
        .await
        .expect(200);
    let merged = client
        .post("/graphs/g/branches/merge", json!({"source": "f4"}))
        .await
        .expect(200);
    assert_eq!(merged["outcome"], "merged");
    assert_eq!(client.count_people("g", "main").await, 4 + 3 + 2);
}
