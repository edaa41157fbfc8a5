//! The cache tier (docs/cache.md): what it saves, and that it never changes an answer.
//!
//! Requests are counted where they reach the store, by the fault-injecting proxy in front of
//! moto, so a read the cache misses (or an engine upgrade that bypasses a seam) shows up.

use std::collections::BTreeMap;
use std::time::Duration;

use omnigraph_cloud_chaos::Op;
use serde_json::{Value, json};

use crate::support::{
    Client, GET_PERSON, INSERT_PERSON, TestNode, eventually, example, s3_backend,
};

/// Settings that keep the node's own background work out of the counts: no maintenance run
/// during the test (it would read and write the graph).
const QUIET: &str = "[maintenance]\ninterval = \"1h\"\n";

async fn age_of(client: &Client, graph: &str, branch: &str, name: &str) -> Option<i64> {
    let body = client
        .post(
            &format!("/graphs/{graph}/query"),
            json!({"query": GET_PERSON, "params": {"name": name}, "branch": branch}),
        )
        .await
        .expect(200);
    body["rows"].as_array().expect("rows").first().map(|row| {
        row["p.age"]
            .as_i64()
            .unwrap_or_else(|| panic!("an age in {row}"))
    })
}

fn requests(stats: &omnigraph_cloud_chaos::Stats, graph: &str) -> u64 {
    stats
        .by_graph
        .get(&format!("default/{graph}"))
        .map_or(0, |ops| ops.values().sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_repeat_query_on_the_lease_holder_makes_no_store_request() {
    let Some(s3) = s3_backend().await else { return };
    let node = TestNode::start_s3(&s3, "warm", QUIET).await;
    let client = node.client();
    client.create_graph("g").await;
    client.load("g", &example("team.jsonl"), "overwrite").await;
    assert_eq!(age_of(&client, "g", "main", "Ada").await, Some(36));

    let snapshot = client
        .get("/graphs/g/snapshot?branch=main")
        .await
        .expect(200);
    let version = snapshot["manifest_version"].as_u64();

    s3.proxy.reset_stats();
    for _ in 0..3 {
        assert_eq!(age_of(&client, "g", "main", "Ada").await, Some(36));
    }
    // On the holder a query says, unasked, which version it read: that costs no request.
    let query = json!({"query": GET_PERSON, "params": {"name": "Ada"}});
    let read = client.post("/graphs/g/query", query).await;
    let read_version = read.headers.get("x-omnigraph-manifest-version").cloned();
    read.expect(200);
    assert_eq!(
        read_version.map(|v| v.to_str().unwrap().parse::<u64>().unwrap()),
        version
    );
    let stats = s3.proxy.stats();
    assert_eq!(
        requests(&stats, "g"),
        0,
        "a warm repeat query reached the store: {:?}",
        stats.by_graph
    );
    // Another person: other pages of the same immutable files, still no listing or text read.
    s3.proxy.reset_stats();
    assert_eq!(age_of(&client, "g", "main", "Grace").await, Some(45));
    let by_op = s3
        .proxy
        .stats()
        .by_graph
        .get("default/g")
        .cloned()
        .unwrap_or_default();
    assert_eq!(by_op.get(&Op::List), None, "{by_op:?}");
    assert_eq!(by_op.get(&Op::Head), None, "{by_op:?}");

    let hits = client
        .metric("omnigraph_cache_hits_total{tier=\"authority\"}")
        .await;
    assert!(
        hits > 0.0,
        "the holder serves listings and text from memory"
    );
    assert!(
        client
            .metric(
                "omnigraph_engine_store_requests_total{op=\"get\",tenant=\"default\",graph=\"g\"}"
            )
            .await
            > 0.0,
        "the engine's own reads are counted per graph"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_is_read_back_through_the_cache() {
    let node = TestNode::start_with(QUIET).await;
    let client = node.client();
    client.create_graph("g").await;
    // Ten writers, a hundred writes each: every write, once acknowledged, is read back at once
    // (while the others' writes keep moving the graph and its cache epochs).
    let writers = (0..10).map(|writer| {
        let client = client.clone();
        async move {
            for i in 0..100 {
                let (name, age) = (format!("w{writer}-{i}"), writer * 100 + i);
                client.insert_person("g", &name, age).await.expect(200);
                assert_eq!(
                    age_of(&client, "g", "main", &name).await,
                    Some(age),
                    "{name} was acknowledged but not read back"
                );
            }
        }
    });
    futures::future::join_all(writers).await;
    assert_eq!(client.count_people("g", "main").await, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_reads_what_the_holder_wrote_and_takes_over_after_it() {
    let Some(s3) = s3_backend().await else { return };
    let mut holder = TestNode::start_s3(&s3, "handoff", QUIET).await;
    let reader = TestNode::start_s3(&s3, "handoff", QUIET).await;
    let (a, b) = (holder.client(), reader.client());
    a.create_graph("g").await;
    a.insert_person("g", "Ann", 30).await.expect(200);
    // The reader activates the graph while the holder holds its writer lease: it revalidates.
    assert_eq!(age_of(&b, "g", "main", "Ann").await, Some(30));
    a.insert_person("g", "Ben", 31).await.expect(200);
    assert_eq!(age_of(&b, "g", "main", "Ben").await, Some(31));
    // Writes to the reader are refused with the holder's name.
    b.post(
        "/graphs/g/mutate",
        json!({"query": INSERT_PERSON, "params": {"name": "Cy", "age": 1}}),
    )
    .await
    .expect(421);

    // The holder goes away (its leases released): the reader writes, and sees the last commit.
    holder.shutdown().await;
    assert!(
        b.insert_person_within("g", "Cy", 32, Duration::from_secs(20))
            .await
    );
    assert_eq!(age_of(&b, "g", "main", "Ben").await, Some(31));
    assert_eq!(age_of(&b, "g", "main", "Cy").await, Some(32));
    assert_eq!(b.count_people("g", "main").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_branches_and_graphs_never_come_back_from_the_cache() {
    let Some(s3) = s3_backend().await else { return };
    let node = TestNode::start_s3(&s3, "recreate", QUIET).await;
    let client = node.client();
    client.create_graph("g").await;
    client.insert_person("g", "Ann", 30).await.expect(200);

    // A branch deleted and created again starts from main, not from the old branch.
    client.create_branch("g", "feature").await;
    let ben =
        json!({"query": INSERT_PERSON, "params": {"name": "Ben", "age": 3}, "branch": "feature"});
    client.post("/graphs/g/mutate", ben).await.expect(200);
    assert_eq!(age_of(&client, "g", "feature", "Ben").await, Some(3));
    client
        .delete("/graphs/g/branches/feature")
        .await
        .expect(200);
    client.create_branch("g", "feature").await;
    assert_eq!(age_of(&client, "g", "feature", "Ben").await, None);
    assert_eq!(client.count_people("g", "feature").await, 1);

    // A graph deleted and created again with the same id holds only what was written since.
    client.delete("/graphs/g").await.expect(200);
    client.create_graph("g").await;
    client.insert_person("g", "Cy", 40).await.expect(200);
    assert_eq!(age_of(&client, "g", "main", "Ann").await, None);
    assert_eq!(age_of(&client, "g", "main", "Cy").await, Some(40));
    assert_eq!(client.count_people("g", "main").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_missing_cache_directory_never_changes_an_answer() {
    let root = tempfile::tempdir().unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "{QUIET}[cache]\ndir = {:?}\nmemory_bytes = 16777216\ndisk_bytes = 268435456\n",
        cache_dir.path().display().to_string()
    );
    let mut node = TestNode::start_on(root.path(), &toml).await;
    let client = node.client();
    client.create_graph("g").await;
    client.load("g", &example("team.jsonl"), "overwrite").await;
    let expected = everyone(&client).await;
    node.shutdown().await;

    // Every byte of the disk tier overwritten: the node starts, and answers as before.
    let mut damaged = 0;
    for entry in walk(cache_dir.path()) {
        let len = std::fs::metadata(&entry).unwrap().len() as usize;
        std::fs::write(&entry, vec![0xA5; len]).unwrap();
        damaged += 1;
    }
    assert!(damaged > 0, "the disk tier holds files");
    let node = TestNode::start_on(root.path(), &toml).await;
    let client = node.client();
    assert_eq!(everyone(&client).await, expected);

    // The directory removed while the node runs: still the same answers.
    std::fs::remove_dir_all(cache_dir.path()).unwrap();
    assert_eq!(everyone(&client).await, expected);
    client.insert_person("g", "Zed", 99).await.expect(200);
    assert_eq!(age_of(&client, "g", "main", "Zed").await, Some(99));
}

/// Every person's name and age, sorted: a read that touches every data page.
pub(crate) async fn everyone(client: &Client) -> Vec<(String, i64)> {
    let query = "query all() { match { $p: Person } return { $p.name, $p.age } }";
    let body = client
        .post("/graphs/g/query", json!({"query": query}))
        .await
        .expect(200);
    let mut people: Vec<(String, i64)> = body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row: &Value| {
            let name = row["p.name"].as_str().expect("name");
            (name.to_string(), row["p.age"].as_i64().expect("age"))
        })
        .collect();
    people.sort();
    assert!(!people.is_empty(), "the example has people");
    people
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_can_be_turned_off() {
    let node = TestNode::start_with(&format!("{QUIET}[cache]\nenabled = false\n")).await;
    let client = node.client();
    client.create_graph("g").await;
    client.insert_person("g", "Ann", 30).await.expect(200);
    for _ in 0..3 {
        assert_eq!(age_of(&client, "g", "main", "Ann").await, Some(30));
    }
    for tier in ["memory", "disk", "authority"] {
        let sample = format!("omnigraph_cache_hits_total{{tier=\"{tier}\"}}");
        assert_eq!(
            client.metric_value(&sample).await.unwrap_or(0.0),
            0.0,
            "{tier}"
        );
    }
    let gets = "omnigraph_engine_store_requests_total{op=\"get\",tenant=\"default\",graph=\"g\"}";
    assert!(client.metric(gets).await > 0.0, "reads are still counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_node_becomes_the_authority_again() {
    let Some(s3) = s3_backend().await else { return };
    let mut node = TestNode::start_s3(&s3, "restart", QUIET).await;
    let client = node.client();
    client.create_graph("g").await;
    client.load("g", &example("team.jsonl"), "overwrite").await;
    node.shutdown().await;

    // The restarted node's worker may be compacting the graph (its backlog was handed over at
    // shutdown) when the first request activates it: then the claim waits for a later try.
    let node = TestNode::start_s3(&s3, "restart", QUIET).await;
    let client = node.client();
    assert_eq!(age_of(&client, "g", "main", "Ada").await, Some(36));
    let free = eventually(Duration::from_secs(30), || async {
        assert_eq!(age_of(&client, "g", "main", "Ada").await, Some(36));
        s3.proxy.reset_stats();
        assert_eq!(age_of(&client, "g", "main", "Ada").await, Some(36));
        requests(&s3.proxy.stats(), "g") == 0
    })
    .await;
    assert!(
        free,
        "repeat queries still reach the store: {:?}",
        s3.proxy.stats().by_graph
    );
}

/// Every request the engine made for `graph` by operation, as the cache tier counted them.
/// Deletions are left out: S3 deletes in batches (one POST for many keys, which the proxy
/// cannot attribute to a graph).
async fn engine_requests(client: &Client, graph: &str) -> BTreeMap<String, f64> {
    let text = client.metrics().await.text;
    let label = format!("graph=\"{graph}\"");
    let mut by_op = BTreeMap::new();
    for line in text.lines() {
        let Some(labels) = line.strip_prefix("omnigraph_engine_store_requests_total{") else {
            continue;
        };
        let (Some(op), Some(value)) = (
            labels.split('"').nth(1),
            line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()),
        ) else {
            continue;
        };
        if line.contains(&label) && op != "delete" {
            *by_op.entry(op.to_string()).or_default() += value;
        }
    }
    by_op
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_of_a_warm_insert_passes_through_the_cache_tier() {
    let Some(s3) = s3_backend().await else { return };
    let node = TestNode::start_s3(&s3, "seams", QUIET).await;
    let client = node.client();
    client.create_graph("g").await;
    client.insert_person("g", "Ann", 1).await.expect(200);

    let before = engine_requests(&client, "g").await;
    s3.proxy.reset_stats();
    for i in 0..5 {
        client
            .insert_person("g", &format!("p{i}"), i)
            .await
            .expect(200);
        assert_eq!(
            age_of(&client, "g", "main", &format!("p{i}")).await,
            Some(i)
        );
    }
    let after = engine_requests(&client, "g").await;
    let seen_by_the_cache: BTreeMap<String, f64> = after
        .iter()
        .map(|(op, n)| (op.clone(), n - before.get(op).copied().unwrap_or(0.0)))
        .filter(|(_, n)| *n > 0.0)
        .collect();
    let seen_by_the_store: BTreeMap<String, f64> = s3.proxy.stats().by_graph["default/g"]
        .iter()
        .map(|(op, n)| (format!("{op:?}").to_lowercase(), *n as f64))
        .collect();
    assert_eq!(
        seen_by_the_cache, seen_by_the_store,
        "the engine reached the store around the cache tier"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_budget_and_the_resident_memory_are_on_metrics() {
    let node = TestNode::start_with("[node]\nmemory_budget = 1073741824\n").await;
    let client = node.client();
    assert_eq!(
        client.metric("omnigraph_node_memory_budget_bytes").await,
        1073741824.0
    );
    let sampled = eventually(Duration::from_secs(10), || async {
        client
            .metric_value("omnigraph_process_resident_bytes")
            .await
            .is_some_and(|bytes| bytes > 0.0)
    })
    .await;
    assert!(sampled, "the resident memory is sampled");
}

/// A compaction runs on the authority without disabling the cache: every write it makes
/// passes through the cache tier (so each drops what it affects), which this checks against
/// the store's own count of PUTs. After it, the authority serves the compacted graph, right
/// and from memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_of_a_compaction_passes_through_the_cache_tier() {
    let Some(s3) = s3_backend().await else { return };
    let config = "[maintenance]\ninterval = \"1h\"\ntrigger_versions = 4\nkeep_for = \"1h\"\n";
    let node = TestNode::start_s3(&s3, "compaction-seams", config).await;
    let client = node.client();
    client.create_graph("g").await;
    client.insert_person("g", "p0", 0).await.expect(200);

    let puts = |by_op: &BTreeMap<String, f64>| by_op.get("put").copied().unwrap_or(0.0);
    // Both counts start together: the proxy's first, then the cache's, with the graph quiet
    // (nothing in flight after the acknowledged insert; maintenance waits for 4 versions).
    s3.proxy.reset_stats();
    let before = puts(&engine_requests(&client, "g").await);
    for i in 1..5 {
        client
            .insert_person("g", &format!("p{i}"), i)
            .await
            .expect(200);
    }
    let compacted = "omnigraph_maintenance_runs_total{job=\"compaction\",outcome=\"done\"}";
    let cleaned = "omnigraph_maintenance_runs_total{job=\"cleanup\",outcome=\"done\"}";
    assert!(
        eventually(Duration::from_secs(60), || async {
            client.metric_value(compacted).await.unwrap_or(0.0) >= 1.0
                && client.metric_value(cleaned).await.unwrap_or(0.0) >= 1.0
        })
        .await,
        "a compaction and its cleanup ran"
    );
    // Whatever maintenance follows (index builds) is over once the graph's keys are quiet.
    assert!(
        eventually(Duration::from_secs(30), || async {
            let before = requests(&s3.proxy.stats(), "g");
            tokio::time::sleep(Duration::from_millis(500)).await;
            requests(&s3.proxy.stats(), "g") == before
        })
        .await,
        "maintenance settles"
    );
    let seen_by_the_cache = puts(&engine_requests(&client, "g").await) - before;
    let seen_by_the_store = s3.proxy.stats().by_graph["default/g"]
        .get(&Op::Put)
        .copied()
        .unwrap_or(0) as f64;
    assert_eq!(
        seen_by_the_cache, seen_by_the_store,
        "a write of the inserts or the compaction reached the store around the cache tier"
    );

    for i in 0..5 {
        assert_eq!(
            age_of(&client, "g", "main", &format!("p{i}")).await,
            Some(i),
            "every row, after the compaction"
        );
    }
    s3.proxy.reset_stats();
    assert_eq!(age_of(&client, "g", "main", "p3").await, Some(3));
    let stats = s3.proxy.stats();
    assert_eq!(
        requests(&stats, "g"),
        0,
        "the authority serves the compacted graph from memory: {:?}",
        stats.by_graph
    );
}
