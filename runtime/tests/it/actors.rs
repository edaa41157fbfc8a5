//! Actor lifecycle seen from outside: activation, concurrency, eviction, supervision,
//! graceful shutdown.

use std::time::Duration;

use futures::future::join_all;
use omnigraph_cloud_actors::RepoKey;
use omnigraph_cloud_config::{GraphId, TenantId};
use serde_json::json;

use crate::support::{TestNode, eventually};

fn people(count: usize, prefix: &str) -> String {
    (0..count)
        .map(|i| {
            format!(
                "{{\"type\":\"Person\",\"data\":{{\"name\":\"{prefix}{i}\",\"age\":{}}}}}\n",
                i % 90
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_first_requests_activate_once() {
    let node = TestNode::start().await;
    let client = node.client();
    client.create_graph("g").await;
    let requests = (0..50).map(|_| {
        let client = client.clone();
        async move { client.get("/graphs/g/snapshot").await.status.as_u16() }
    });
    let statuses = join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(client.metric("omnigraph_repo_activations_total").await, 1.0);
    assert_eq!(client.metric("omnigraph_repo_actors_active").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inserts_all_land_on_one_graph_and_on_eight() {
    let node = TestNode::start().await;
    let client = node.client();
    client.create_graph("hot").await;
    let inserts = (0..32).map(|i| {
        let client = client.clone();
        async move { client.insert_person("hot", &format!("p{i}"), i).await }
    });
    for response in join_all(inserts).await {
        assert_eq!(response.expect(200)["affected_nodes"], 1);
    }
    assert_eq!(client.count_people("hot", "main").await, 32);

    let graphs: Vec<String> = (0..8).map(|i| format!("g{i}")).collect();
    join_all(graphs.iter().map(|g| client.create_graph(g))).await;
    let writes = graphs
        .iter()
        .flat_map(|graph| (0..4).map(move |i| (graph.clone(), i)))
        .map(|(graph, i)| {
            let client = client.clone();
            async move {
                client
                    .insert_person(&graph, &format!("{graph}-{i}"), i)
                    .await
                    .status
                    .as_u16()
            }
        });
    let statuses = join_all(writes).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    for graph in &graphs {
        assert_eq!(client.count_people(graph, "main").await, 4, "{graph}");
    }
    assert_eq!(client.metric("omnigraph_repo_actors_active").await, 9.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_repo_is_evicted_and_reactivates_with_its_data() {
    let node = TestNode::start_with("[actors]\nidle_timeout = \"400ms\"\n").await;
    let client = node.client();
    client.create_graph("g").await;
    client.insert_person("g", "Ann", 7).await.expect(200);
    assert_eq!(client.metric("omnigraph_repo_actors_active").await, 1.0);
    let evicted = eventually(Duration::from_secs(10), || {
        let client = client.clone();
        async move { client.metric("omnigraph_repo_actors_active").await == 0.0 }
    })
    .await;
    assert!(evicted, "repo still warm after its idle timeout");
    assert_eq!(client.metric("omnigraph_repo_evictions_total").await, 1.0);
    // Transparent re-activation, data intact.
    assert_eq!(client.count_people("g", "main").await, 1);
    assert_eq!(client.metric("omnigraph_repo_activations_total").await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_never_drops_a_write_in_flight() {
    // The idle timeout is far shorter than the load: the in-flight load holds the repo.
    let node = TestNode::start_with("[actors]\nidle_timeout = \"100ms\"\n").await;
    let client = node.client();
    client.create_graph("g").await;
    let data = people(3000, "w");
    let loaded = client.load("g", &data, "append").await;
    assert_eq!(loaded["tables"][0]["rows_loaded"], 3000);
    assert_eq!(client.count_people("g", "main").await, 3000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_actor_is_restarted_and_callers_get_an_answer() {
    // Writes wait 500 ms in the queue before their publish, so the crash at 150 ms finds them
    // queued: they are lost, and each caller must be told so.
    let node = TestNode::start_with("[writes]\nmax_wait = \"500ms\"\n").await;
    let client = node.client();
    client.create_graph("g").await;
    client.insert_person("g", "seed", 1).await.expect(200);
    let key = RepoKey::new(TenantId::default_tenant(), GraphId::new("g").unwrap());
    let lease = node.node().registry().repo(&key).await.unwrap();

    let writes = (0..10).map(|i| {
        let client = client.clone();
        async move { client.insert_person("g", &format!("c{i}"), i).await }
    });
    let crash = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        lease.inject_crash();
    };
    let (responses, ()) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(join_all(writes), crash)
    })
    .await
    .expect("every caller is answered; none hangs");
    drop(lease);
    let mut acknowledged = 1;
    let lost = responses.iter().filter(|r| r.status == 503).count();
    assert!(lost > 0, "the crash found queued writes");
    for response in responses {
        match response.status.as_u16() {
            200 => acknowledged += 1,
            503 => {
                assert!(
                    response.headers.get("retry-after").is_none(),
                    "an unacknowledged write must not invite a blind retry"
                );
                let body = response.expect_error(503, "unavailable", "restarting");
                assert!(body["error"].as_str().unwrap().contains("graph 'g'"));
            }
            other => panic!("unexpected status {other}: {}", response.text),
        }
    }
    assert!(
        eventually(Duration::from_secs(10), || {
            let client = client.clone();
            async move { client.metric("omnigraph_repo_actor_restarts_total").await == 1.0 }
        })
        .await
    );
    // The restarted actor serves writes, and exactly the acknowledged writes are there.
    client.insert_person("g", "after", 1).await.expect(200);
    assert_eq!(client.count_people("g", "main").await, acknowledged + 1);
    assert_eq!(
        client.metric("omnigraph_repo_activations_total").await,
        1.0,
        "restart is not re-activation"
    );
    assert_eq!(
        client.metric("omnigraph_write_queue_depth").await,
        0.0,
        "writes lost in the crash are not counted as queued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_writes_in_flight() {
    let mut node = TestNode::start().await;
    let client = node.client();
    client.create_graph("g").await;
    let data = people(5000, "s");
    let load = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .post("/graphs/g/load", json!({"data": data, "mode": "append"}))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.shutdown().await;
    let response = load.await.unwrap();
    assert_eq!(response.status, 200, "{}", response.text);
    let restarted = TestNode::start_on(&node.root, "").await;
    assert_eq!(restarted.client().count_people("g", "main").await, 5000);
}

fn key(graph: &str) -> RepoKey {
    RepoKey::new(TenantId::default_tenant(), GraphId::new(graph).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_warm_cap_the_least_recently_used_graph_is_evicted_with_its_data_kept() {
    let node = TestNode::start_with("[actors]\nmax_warm_graphs = 2\n").await;
    let client = node.client();
    let registry = node.node().registry();
    for graph in ["a", "b", "c"] {
        client.create_graph(graph).await;
    }
    client.insert_person("a", "Ann", 1).await.expect(200);
    client.insert_person("b", "Bob", 2).await.expect(200);
    // "a" was used after "b": "b" is now the least recently used.
    assert_eq!(client.count_people("a", "main").await, 1);
    assert!(registry.is_warm(&key("a")) && registry.is_warm(&key("b")));

    client.insert_person("c", "Cy", 3).await.expect(200);
    assert!(registry.is_warm(&key("c")), "the graph asked for is warm");
    assert!(registry.is_warm(&key("a")), "the recently used graph stays");
    assert!(
        !registry.is_warm(&key("b")),
        "the least recently used graph left"
    );
    assert_eq!(client.metric("omnigraph_repo_actors_active").await, 2.0);
    assert_eq!(
        client
            .metric("omnigraph_repo_pressure_evictions_total{reason=\"warm_cap\"}")
            .await,
        1.0
    );
    // Its data is intact when it comes back (and "a", now the oldest, makes room for it).
    assert_eq!(client.count_people("b", "main").await, 1);
    assert!(!registry.is_warm(&key("a")));
    assert_eq!(client.count_people("a", "main").await, 1);
    assert_eq!(client.count_people("c", "main").await, 1);
    assert_eq!(client.metric("omnigraph_repo_actors_active").await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_graph_in_use_is_never_evicted_for_another() {
    let node = TestNode::start_with("[actors]\nmax_warm_graphs = 1\n").await;
    let client = node.client();
    client.create_graph("busy").await;
    client.create_graph("other").await;
    let registry = node.node().registry();
    // A request in flight on "busy" (held as an export stream would hold it).
    let held = registry.repo(&key("busy")).await.unwrap();
    client.get("/graphs/other/snapshot").await.expect_error(
        503,
        "unavailable",
        "actors.max_warm_graphs = 1",
    );
    assert!(registry.is_warm(&key("busy")));
    drop(held);
    client.get("/graphs/other/snapshot").await.expect(200);
    assert!(!registry.is_warm(&key("busy")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_above_the_budget_evicts_unused_graphs_and_their_data_stays() {
    // The smallest budget accepted: a process that has loaded 20,000 rows into each of two
    // graphs (Lance, DataFusion, the test's own client) is well past 90 % of it.
    let node = TestNode::start_with("[node]\nmemory_budget = 134217728\n").await;
    let client = node.client();
    for graph in ["a", "b"] {
        client.create_graph(graph).await;
        client.load(graph, &people(20_000, graph), "append").await;
    }
    let shed = eventually(Duration::from_secs(20), || {
        let client = client.clone();
        async move {
            client
                .metric_value("omnigraph_repo_pressure_evictions_total{reason=\"memory\"}")
                .await
                .unwrap_or(0.0)
                >= 1.0
        }
    })
    .await;
    assert!(
        shed,
        "no graph evicted with resident memory at {} bytes",
        client.metric("omnigraph_process_resident_bytes").await
    );
    assert!(client.metric("omnigraph_repo_actors_active").await < 2.0);
    assert_eq!(client.count_people("a", "main").await, 20_000);
    assert_eq!(client.count_people("b", "main").await, 20_000);
}
