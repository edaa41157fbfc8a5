//! Pre-warming (docs/cache.md): a graph opened before its first request, on demand and after
//! a restart.

use std::time::Duration;

use serde_json::json;

use crate::support::{Client, TestNode, eventually};

async fn warm_graphs(client: &Client) -> f64 {
    client.metric("omnigraph_repo_actors_active").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_opens_a_graph_before_its_first_request() {
    let root = tempfile::tempdir().unwrap();
    let mut first = TestNode::start_on(root.path(), "").await;
    first.client().create_graph("g").await;
    first.shutdown().await;

    let node = TestNode::start_on(root.path(), "").await;
    let client = node.client();
    assert_eq!(warm_graphs(&client).await, 0.0);
    client
        .post("/graphs/absent/warm", json!({}))
        .await
        .expect_error(404, "not_found", "absent");
    client
        .post("/graphs/Bad%20Id/warm", json!({}))
        .await
        .expect(400);
    let answer = client.post("/graphs/g/warm", json!({})).await.expect(202);
    assert_eq!(answer, json!({"graph_id": "g", "already_warm": false}));
    assert!(
        eventually(Duration::from_secs(10), || async {
            warm_graphs(&client).await == 1.0
        })
        .await,
        "the graph was opened without a request for it"
    );
    let again = client.post("/graphs/g/warm", json!({})).await.expect(202);
    assert_eq!(again["already_warm"], true);
    assert_eq!(client.count_people("g", "main").await, 0);
    assert_eq!(
        client.metric("omnigraph_repo_activations_total").await,
        1.0,
        "the request found the graph warm"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_warms_the_graphs_it_had_warm() {
    let root = tempfile::tempdir().unwrap();
    let config = "[node]\nid = \"node-a\"\n";
    let mut node = TestNode::start_on(root.path(), config).await;
    let client = node.client();
    for graph in ["g1", "g2"] {
        client.create_graph(graph).await;
        client.insert_person(graph, "Ann", 30).await.expect(200);
    }
    node.shutdown().await;

    let node = TestNode::start_on(root.path(), config).await;
    let client = node.client();
    assert!(
        eventually(Duration::from_secs(10), || async {
            warm_graphs(&client).await == 2.0
        })
        .await,
        "both graphs are warm again before any request"
    );
    assert_eq!(client.count_people("g1", "main").await, 1);
    assert_eq!(client.metric("omnigraph_repo_activations_total").await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eviction_records_the_warm_set_without_the_evicted_graph() {
    let root = tempfile::tempdir().unwrap();
    let config = "[node]\nid = \"node-b\"\n[actors]\nidle_timeout = \"1s\"\n";
    let node = TestNode::start_on(root.path(), config).await;
    let client = node.client();
    for graph in ["busy", "idle"] {
        client.create_graph(graph).await;
        client.insert_person(graph, "Ann", 30).await.expect(200);
    }
    let record = root.path().join("_system/warm/node-b.json");
    let recorded = |graphs: &'static [&'static str]| {
        let record = record.clone();
        async move {
            let Ok(text) = std::fs::read_to_string(&record) else {
                return false;
            };
            let set: serde_json::Value = serde_json::from_str(&text).expect("a JSON warm set");
            let names: Vec<&str> = set["graphs"]
                .as_array()
                .expect("graphs")
                .iter()
                .map(|g| g["graph"].as_str().expect("a graph id"))
                .collect();
            names == graphs
        }
    };
    // 'busy' stays in use, 'idle' is evicted after its idle timeout: the record says so
    // without a shutdown (a crash now would warm 'busy' again).
    let mut evicted_recorded = false;
    for _ in 0..50 {
        assert_eq!(client.count_people("busy", "main").await, 1);
        if recorded(&["busy"]).await {
            evicted_recorded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        evicted_recorded,
        "the eviction of 'idle' recorded the warm set: {:?}",
        std::fs::read_to_string(&record)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_the_warm_set_and_turns_503_before_a_drain_stops_serving() {
    let root = tempfile::tempdir().unwrap();
    let config = "[node]\nid = \"node-r\"\n[server]\ndrain_delay = \"2s\"\n";
    let mut node = TestNode::start_on(root.path(), config).await;
    let client = node.client();
    client.create_graph("g").await;
    client.insert_person("g", "Ann", 30).await.expect(200);
    node.shutdown().await;

    // A restart is ready once the graph it had warm is open again.
    let mut node = TestNode::start_on(root.path(), config).await;
    let client = node.client();
    assert!(
        eventually(Duration::from_secs(10), || async {
            client.get("/readyz").await.status == 200
        })
        .await,
        "ready once the warm set is restored"
    );
    assert_eq!(client.get("/readyz").await.json, json!({"status": "ready"}));
    assert_eq!(warm_graphs(&client).await, 1.0, "ready means warm");

    // A drain: /readyz says 503 at once, while requests are still answered.
    let running = node.node.take().expect("a running node");
    let stopping = tokio::spawn(running.shutdown());
    assert!(
        eventually(Duration::from_secs(1), || async {
            client.get("/readyz").await.status == 503
        })
        .await,
        "503 from the start of the drain"
    );
    assert_eq!(
        client.get("/readyz").await.json,
        json!({"status": "draining"})
    );
    assert_eq!(client.count_people("g", "main").await, 1, "still serving");
    stopping.await.unwrap().expect("clean shutdown");
    assert!(
        reqwest::get(format!("{}/readyz", node.base)).await.is_err(),
        "stopped after the drain"
    );
}

/// While a restart reopens its warm set, `/readyz` says so; once it is open, 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_starting_while_the_warm_set_reopens() {
    let Some(s3) = crate::support::s3_backend().await else {
        return;
    };
    let config = "[node]\nid = \"node-s\"\n";
    let mut node = TestNode::start_s3(&s3, "readiness", config).await;
    let client = node.client();
    client.create_graph("g").await;
    client.insert_person("g", "Ann", 30).await.expect(200);
    node.shutdown().await;

    // Slow reads: the restore (leases, listings, the open) takes well over a second.
    let slow = omnigraph_cloud_chaos::Latency {
        p50_ms: 150,
        jitter_ms: 10,
    };
    s3.proxy.set_faults(omnigraph_cloud_chaos::Faults {
        latency: [
            (omnigraph_cloud_chaos::Op::Get, slow),
            (omnigraph_cloud_chaos::Op::List, slow),
        ]
        .into(),
        ..Default::default()
    });
    let node = TestNode::start_s3(&s3, "readiness", config).await;
    let client = node.client();
    let first = client.get("/readyz").await;
    assert_eq!(first.status, 503);
    assert_eq!(first.json, json!({"status": "starting"}));
    assert!(
        eventually(Duration::from_secs(30), || async {
            client.get("/readyz").await.status == 200
        })
        .await,
        "ready once the warm set is open"
    );
    assert_eq!(warm_graphs(&client).await, 1.0);
    s3.proxy
        .set_faults(omnigraph_cloud_chaos::Faults::default());
}
