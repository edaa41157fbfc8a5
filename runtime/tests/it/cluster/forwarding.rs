//! Writes and reads sent to any node: forwarding to the lease holder, reads routed to the
//! placement owner, and nodes embedded in one process.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_sent_to_any_node_land_through_the_lease_holder() {
    let cluster = Cluster::start(3, 30).await;
    cluster.client(0).create_graph("g").await;
    let first = cluster
        .client(0)
        .post("/graphs/g/mutate", insert("Ann"))
        .await;
    assert_eq!(forwarded_to(&first), None, "n0 takes the free lease itself");
    first.expect(200);

    // n1 and n2 do not hold the lease: their writes are answered by n0.
    for (node, name) in [(1, "Bob"), (2, "Cid"), (1, "Dee")] {
        let resp = cluster
            .client(node)
            .post("/graphs/g/mutate", insert(name))
            .await;
        let holder = forwarded_to(&resp).expect("forwarded");
        assert!(holder.starts_with("n0-"), "{holder}");
        let body = resp.expect(200);
        assert_eq!(body["affected_nodes"], 1, "{body}");
    }
    // A load (the larger body limit) goes the same way.
    let data = r#"{"type":"Person","data":{"name":"Eve","age":5}}"#;
    let load = cluster
        .client(2)
        .post("/graphs/g/load", json!({"data": data, "mode": "append"}))
        .await;
    assert!(forwarded_to(&load).is_some());
    let last = landed(&load, VERSION);
    load.expect(200);

    // Read-your-writes on every node: each answers from its own handle. Asked to, each
    // says which version it read: the last write's.
    let confirm = [("x-omnigraph-read-version", "confirm")];
    for node in 0..3 {
        let client = cluster.client(node);
        assert_eq!(client.count_people("g", "main").await, 5);
        let query = json!({"query": COUNT_PEOPLE, "branch": "main"});
        let read = client
            .post_headers("/graphs/g/query", query, &confirm)
            .await;
        assert_eq!(landed(&read, VERSION), last, "query on n{node}");
        let export = client.post_headers("/graphs/g/export", json!({}), &confirm);
        assert_eq!(landed(&export.await, VERSION), last, "export on n{node}");
        // The commit listing and a snapshot's read say theirs unasked: it costs nothing.
        let commits = client.get("/graphs/g/commits").await;
        assert_eq!(landed(&commits, VERSION), last, "commits on n{node}");
        let head = commits.expect(200)["commits"]
            .as_array()
            .unwrap()
            .last()
            .cloned();
        let head = head.unwrap()["graph_commit_id"]
            .as_str()
            .unwrap()
            .to_string();
        let at = json!({"query": COUNT_PEOPLE, "snapshot": head});
        let read_at = client.post_headers("/graphs/g/query", at, &confirm).await;
        assert_eq!(landed(&read_at, VERSION), last, "snapshot query on n{node}");
    }
    // Unasked, a node that is not the graph's writer says nothing: confirming would cost it
    // a request to the store. A value other than `confirm` is refused.
    let query = json!({"query": COUNT_PEOPLE});
    let unasked = cluster
        .client(1)
        .post("/graphs/g/query", query.clone())
        .await;
    assert!(unasked.headers.get(VERSION).is_none());
    unasked.expect(200);
    let bad = [("x-omnigraph-read-version", "always")];
    let bad = cluster
        .client(1)
        .post_headers("/graphs/g/query", query, &bad);
    let body = bad.await.expect(400);
    assert!(
        body["error"].as_str().unwrap().contains("'confirm'"),
        "{body}"
    );
    assert_eq!(
        cluster
            .client(1)
            .metric("omnigraph_forwards_total{outcome=\"answered\"}")
            .await,
        2.0
    );
    assert_eq!(
        cluster
            .client(0)
            .metric("omnigraph_forwarded_received_total")
            .await,
        4.0
    );

    // A client that asks for the 421 gets it, naming the holder.
    let direct = cluster
        .post_with(
            1,
            "/graphs/g/mutate",
            Some(TOKEN),
            ("x-omnigraph-forward", "never"),
            "Fay",
        )
        .await;
    assert_eq!(direct.status(), 421);
    let body: serde_json::Value = direct.json().await.unwrap();
    assert_eq!(body["code"], "not_writer");
    assert!(body["error"].as_str().unwrap().contains("'n0-"), "{body}");

    // The caller's credential is verified again by the holder: a bad token is refused at
    // the node it reaches, and a forwarded header does not stand in for one.
    let forged = ("x-omnigraph-forwarded", "v1 n1-1-000000 0 00");
    let forged = cluster
        .post_with(0, "/graphs/g/mutate", None, forged, "Gus")
        .await;
    assert_eq!(forged.status(), 403);
    // A correctly signed forward to a node without the lease is answered 421 there, never
    // sent on again.
    let path = "/graphs/g/mutate";
    let mark = sign("n1-1-000000", path);
    let signed = cluster
        .post_with(
            2,
            path,
            Some(TOKEN),
            ("x-omnigraph-forwarded", &mark),
            "Hal",
        )
        .await;
    assert_eq!(signed.status(), 421);
    assert_eq!(
        cluster
            .client(2)
            .metric("omnigraph_forwarded_not_forwarded_again_total")
            .await,
        1.0
    );
    for node in 0..3 {
        assert_eq!(cluster.client(node).count_people("g", "main").await, 5);
    }

    // Graph lifecycle from any node: a delete sent to n2 is made by n0, which writes the graph.
    let deleted = cluster.client(2).delete("/graphs/g").await;
    assert!(forwarded_to(&deleted).is_some());
    deleted.expect(200);
    for node in 0..3 {
        cluster
            .client(node)
            .get("/graphs/g/snapshot")
            .await
            .expect(404);
    }
    let _ = &cluster.dir;
}

/// With `cluster.reads = "owner"`, a read sent to a node that does not own the graph is
/// answered by the owner, and by the node itself when the owner is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_follow_placement_and_fall_back_when_the_owner_is_gone() {
    let mut cluster = Cluster::start_gossiping_with(2, "reads = \"owner\"").await;
    cluster.converged().await;
    // A graph placed on n1, written there.
    let graph = (0..)
        .map(|g| format!("o{g}"))
        .find(|graph| placed_on(graph, 2) == 1)
        .unwrap();
    cluster.seed(1, &graph).await;
    let query =
        json!({"query": "query total() { match { $p: Person } return { count($p) as total } }"});
    let path = format!("/graphs/{graph}/query");
    let routed = cluster.client(0).post(&path, query.clone()).await;
    assert_eq!(
        forwarded_to(&routed).as_deref(),
        Some("n1"),
        "{}",
        routed.text
    );
    assert_eq!(routed.expect(200)["rows"][0]["total"], 1);
    let snapshot = cluster
        .client(0)
        .get(&format!("/graphs/{graph}/snapshot"))
        .await;
    assert_eq!(forwarded_to(&snapshot).as_deref(), Some("n1"));
    snapshot.expect(200);
    // A routed read is authenticated before its body is read.
    let anonymous = Client::new(&format!("http://127.0.0.1:{}", cluster.nodes[0].port), None);
    anonymous
        .post(&path, query.clone())
        .await
        .expect_error(401, "unauthorized", "bearer");
    // The owner answers its own reads.
    let own = cluster.client(1).post(&path, query.clone()).await;
    assert_eq!(forwarded_to(&own), None);
    own.expect(200);
    // The owner killed: n0 answers from its own handle.
    let owner = cluster.nodes.remove(1);
    owner.server.signal("KILL");
    let local = cluster.client(0).post(&path, query).await;
    assert_eq!(forwarded_to(&local), None);
    assert_eq!(local.expect(200)["rows"][0]["total"], 1);
    drop(owner);
}

/// Several nodes in one process (the embedded runtime): each with its own address, they
/// forward to each other like separate processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_embedded_in_one_process_forward_to_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let root = dir.path().join("data");
    std::fs::create_dir(&root).unwrap();
    let config = |id: &str| {
        format!(
            "[node]\nid = \"{id}\"\n[cluster]\nsecret_file = {:?}\n",
            secret.display().to_string()
        )
    };
    let a = crate::support::TestNode::start_on(&root, &config("a")).await;
    let b = crate::support::TestNode::start_on(&root, &config("b")).await;
    assert_ne!(a.node().local_addr(), b.node().local_addr());
    a.client().create_graph("g").await;
    a.client().insert_person("g", "Ann", 1).await.expect(200);
    let forwarded = b.client().insert_person("g", "Bob", 2).await;
    assert!(forwarded_to(&forwarded).unwrap().starts_with("a-"));
    forwarded.expect(200);
    assert_eq!(b.client().count_people("g", "main").await, 2);
}
