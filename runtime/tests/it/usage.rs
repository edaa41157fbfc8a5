//! Usage records (docs/control-plane.md#usage-records): what a node counts per tenant and
//! graph, written under the root and folded back, against what the store itself saw.

use std::time::Duration;

use omnigraph_cloud_actors::usage::{UsageQuery, fold, read_records};
use omnigraph_cloud_actors::{GraphStore, StoreMetrics};
use omnigraph_cloud_config::StorageRoot;
use tokio::time::Instant;

use crate::support::{
    GET_PERSON, PERMIT_ALL, TWO_TENANTS, TestNode, example, policy_dir, s3_backend,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folded_usage_matches_the_requests_made_and_the_store_requests_seen() {
    let Some(s3) = s3_backend().await else { return };
    let policies = policy_dir(&[("_default.cedar", PERMIT_ALL)]);
    let toml = format!(
        "auth.policy_dir = {:?}\n{TWO_TENANTS}[usage]\nflush_interval = \"1s\"\n\
         [maintenance]\ninterval = \"1h\"\n",
        policies.path().display().to_string()
    );
    let mut node = TestNode::start_s3(&s3, "usage", &toml).await;
    s3.proxy.reset_stats();
    let acme = node.client_with_token("acme-token");
    let globex = node.client_with_token("globex-token");
    let warm_from = Instant::now();
    acme.create_graph("g").await;
    acme.load("g", &example("team.jsonl"), "overwrite").await;
    for name in ["Ada", "Grace", "Alan", "Ada", "Nobody"] {
        acme.post(
            "/graphs/g/query",
            serde_json::json!({"query": GET_PERSON, "params": {"name": name}}),
        )
        .await
        .expect(200);
    }
    globex.create_graph("h").await;
    for i in 0..3 {
        globex
            .insert_person("h", &format!("p{i}"), i)
            .await
            .expect(200);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    node.shutdown().await;
    let warm_for = warm_from.elapsed().as_secs();
    let seen = s3.proxy.stats();

    let store = GraphStore::open(
        &StorageRoot::S3 {
            bucket: s3.bucket.clone(),
            prefix: "usage".into(),
        },
        StoreMetrics::unregistered(),
    )
    .unwrap();
    let records = read_records(&store, None, None).await.unwrap();
    assert!(
        records.len() >= 2,
        "one record a second while busy: {}",
        records.len()
    );
    let totals = fold(&records, &UsageQuery::default());
    let total = |tenant: &str, graph: &str| {
        totals
            .iter()
            .find(|t| t.tenant == tenant && t.graph == graph)
            .unwrap_or_else(|| panic!("no usage for {tenant}/{graph}: {totals:?}"))
            .clone()
    };
    let g = total("acme", "g");
    let h = total("globex", "h");
    assert_eq!(g.counts.requests.get("read"), Some(&5));
    assert_eq!(g.counts.requests.get("write"), Some(&1));
    assert_eq!(h.counts.requests.get("write"), Some(&3));
    // The creations name no graph in their path: the tenant's own line.
    assert_eq!(total("acme", "").counts.requests.get("manage"), Some(&1));
    // Warm from its creation to the node's shutdown.
    for usage in [&g, &h] {
        assert!(
            usage.active_seconds.abs_diff(warm_for) <= 2,
            "{} warm seconds counted, {warm_for} s by the wall clock",
            usage.active_seconds
        );
    }
    // The object-store requests, by graph, against what the store saw. The node sees the
    // requests made through its cache wrapper, the engine's storage adapter and its own; the
    // engine opens a few datasets without the wrapper (a graph's creation, part of each
    // publish), whose requests only the store sees. So the count is a lower bound, never an
    // overcount, and it sees every kind of request.
    for (usage, key) in [(&g, "acme/g"), (&h, "globex/h")] {
        let counted: u64 = usage.counts.store_requests.values().sum();
        let seen: u64 = seen.by_graph.get(key).map_or(0, |ops| ops.values().sum());
        assert!(
            counted <= seen && counted * 2 >= seen,
            "{key}: counted {counted} of the {seen} requests the store saw: {:?}",
            usage.counts.store_requests
        );
        for op in ["get", "put", "list", "head"] {
            assert!(
                usage.counts.store_requests.contains_key(op),
                "{key}: no {op}"
            );
        }
        assert!(usage.counts.store_bytes["put"] > 0 && usage.counts.store_bytes["get"] > 0);
    }
    // Folding is a function of the records.
    let mut twice = records.clone();
    twice.extend(records.iter().rev().cloned());
    assert_eq!(fold(&twice, &UsageQuery::default()), totals);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usage_command_prints_totals_from_the_root() {
    let mut node = TestNode::start_with("[usage]\nflush_interval = \"1s\"\n").await;
    let client = node.client();
    client.create_graph("g").await;
    for i in 0..4 {
        client
            .insert_person("g", &format!("p{i}"), i)
            .await
            .expect(200);
    }
    client.count_people("g", "main").await;
    // Warm seconds are counted by a 1 s tick over the warm graphs.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    node.shutdown().await;

    let config = node.root.join("usage.toml");
    std::fs::write(
        &config,
        format!("[storage]\nroot = \"file://{}\"\n", node.root.display()),
    )
    .unwrap();
    let run = |format: &str| {
        let output = std::process::Command::new(crate::process::BIN)
            .args([
                "usage",
                "--config",
                config.to_str().unwrap(),
                "--format",
                format,
            ])
            .args(["--tenant", "default"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let totals: serde_json::Value = serde_json::from_str(&run("json")).unwrap();
    let graph = totals
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["graph"] == "g")
        .unwrap_or_else(|| panic!("{totals}"));
    assert_eq!(graph["requests"]["write"], 4);
    assert_eq!(graph["requests"]["read"], 1);
    assert!(graph["active_seconds"].as_u64().unwrap() >= 1);
    let csv = run("csv");
    assert!(
        csv.starts_with("tenant,graph,active_seconds,requests,"),
        "{csv}"
    );
    assert!(
        csv.lines().any(|line| line.starts_with("default,g,")),
        "{csv}"
    );
    let seconds = run("seconds");
    assert!(seconds.lines().count() >= 1);
    assert!(
        seconds
            .lines()
            .all(|line| serde_json::from_str::<serde_json::Value>(line).is_ok())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_graph_adds_no_usage() {
    let mut node = TestNode::start_with(
        "[usage]\nflush_interval = \"1s\"\n[actors]\nidle_timeout = \"300ms\"\n",
    )
    .await;
    let client = node.client();
    client.create_graph("g").await;
    client.insert_person("g", "Ann", 1).await.expect(200);
    let evicted = crate::support::eventually(Duration::from_secs(10), || {
        let client = client.clone();
        async move { client.metric("omnigraph_repo_actors_active").await == 0.0 }
    })
    .await;
    assert!(evicted);
    let cold_from = omnigraph_cloud_actors::Clock::system().wall_ms() / 1000 + 1;
    tokio::time::sleep(Duration::from_secs(3)).await;
    node.shutdown().await;
    let store = GraphStore::open(
        &StorageRoot::File(node.root.clone()),
        StoreMetrics::unregistered(),
    )
    .unwrap();
    let records = read_records(&store, None, None).await.unwrap();
    let before = fold(&records, &UsageQuery::default());
    assert!(
        before
            .iter()
            .any(|t| t.graph == "g" && t.active_seconds >= 1)
    );
    let after = fold(
        &records,
        &UsageQuery {
            from_s: Some(cold_from),
            ..UsageQuery::default()
        },
    );
    assert!(
        after.iter().all(|t| t.graph != "g"),
        "usage of a cold graph: {after:?}"
    );
}
