//! Object storage: the boot-time probe, S3 behind the fault-injecting proxy, restarts on S3,
//! request accounting.

use std::collections::BTreeMap;
use std::time::Duration;

use omnigraph_cloud::NodeError;
use omnigraph_cloud_chaos::{ErrorRule, Faults, Latency, Op};
use tokio::time::Instant;

use crate::support::{TestNode, s3_backend};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_passes_on_s3_and_refuses_a_store_that_ignores_conditions() {
    let Some(s3) = s3_backend().await else { return };
    // Passes on the real server (every S3 test's node start runs it too).
    let node = TestNode::start_s3(&s3, "probe-ok", "").await;
    assert!(
        node.client()
            .metric(
                "omnigraph_object_store_requests_total{op=\"Put\",tenant=\"_system\",graph=\"\"}"
            )
            .await
            >= 10.0
    );

    // A store that ignores If-None-Match/If-Match: the node refuses to start, saying why.
    s3.proxy.set_faults(Faults {
        strip_conditional_headers: true,
        ..Faults::default()
    });
    let refused = match TestNode::try_start_uri(&format!("s3://{}/probe-bad", s3.bucket), "").await
    {
        Ok(_) => panic!("a node started on a store that ignores conditional writes"),
        Err(err) => err,
    };
    assert!(matches!(refused, NodeError::Probe { .. }), "{refused}");
    let message = refused.to_string();
    assert!(
        message.contains("create-if-absent") && message.contains("skip_probe"),
        "{message}"
    );

    // An operator who knows better can skip it, loudly.
    TestNode::try_start_uri(
        &format!("s3://{}/probe-bad", s3.bucket),
        "[storage]\nskip_probe = true\n",
    )
    .await
    .map(|_| ())
    .unwrap_or_else(|err| panic!("skip_probe must start: {err}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_s3_keeps_data_and_branches() {
    let Some(s3) = s3_backend().await else { return };
    let mut node = TestNode::start_s3(&s3, "restart", "").await;
    node.client().seed_kept_graph().await;
    node.shutdown().await;

    let node = TestNode::start_s3(&s3, "restart", "").await;
    node.client().assert_kept_graph().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_latency_shows_in_request_latency() {
    let Some(s3) = s3_backend().await else { return };
    let node = TestNode::start_s3(&s3, "latency", "").await;
    let client = node.client();
    client.create_graph("g").await;
    client.insert_person("g", "Ann", 1).await.expect(200);

    s3.proxy.reset_stats();
    let started = Instant::now();
    client.insert_person("g", "Ben", 2).await.expect(200);
    let baseline = started.elapsed();
    let puts = s3.proxy.stats().by_graph["default/g"]
        .get(&Op::Put)
        .copied()
        .unwrap_or(0);
    assert!(puts >= 1, "an insert writes to the store");

    let injected = Duration::from_millis(150);
    let latency = Latency {
        p50_ms: 150,
        jitter_ms: 0,
    };
    s3.proxy.set_faults(Faults {
        latency: BTreeMap::from([(Op::Put, latency)]),
        ..Faults::default()
    });
    let started = Instant::now();
    client.insert_person("g", "Cy", 3).await.expect(200);
    let slowed = started.elapsed();
    assert!(
        slowed >= injected,
        "{slowed:?} < {injected:?}: PUT latency not seen"
    );
    assert!(slowed > baseline, "{slowed:?} vs {baseline:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_errors_and_partitions_are_clean_503s_and_the_node_recovers() {
    let Some(s3) = s3_backend().await else { return };
    let node = TestNode::start_s3(&s3, "faults", "").await;
    let client = node.client();
    client.create_graph("g").await;
    client.insert_person("g", "Ann", 1).await.expect(200);

    let every_request_503 = Faults {
        errors: vec![ErrorRule {
            ops: vec![],
            key_contains: None,
            rate: 1.0,
            status: 503,
            code: Some("SlowDown".into()),
        }],
        ..Faults::default()
    };
    for faults in [
        every_request_503,
        Faults {
            partition: true,
            ..Faults::default()
        },
    ] {
        s3.proxy.set_faults(faults.clone());
        let started = Instant::now();
        let failed = client.insert_person("g", "Lost", 9).await;
        assert!(started.elapsed() < Duration::from_secs(60), "no hang");
        // The write may have committed before the store went away: no invitation to retry.
        assert!(failed.headers.get("retry-after").is_none());
        let body = failed.expect(503);
        assert_eq!(body["code"], "unavailable", "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("check its effect"),
            "{body}"
        );
        // The node's own requests (listing graphs, activating a cold one) too; reads may retry.
        let listed = client.get("/graphs").await;
        assert_eq!(listed.status, 503, "{}", listed.text);
        assert_eq!(listed.headers["retry-after"], "1");
        client.get("/graphs/cold/snapshot").await.expect(503);
        s3.proxy.set_faults(Faults::default());
        // Recovery: the same graph serves writes again once the store is back.
        client
            .insert_person("g", &format!("after-{}", faults.partition), 2)
            .await
            .expect(200);
    }
    assert_eq!(
        client.count_people("g", "main").await,
        3,
        "the failed writes left nothing behind"
    );
    assert!(s3.proxy.stats().injected_errors > 0);
    assert!(s3.proxy.stats().dropped > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_object_store_requests_are_counted_per_graph() {
    let node = TestNode::start().await;
    let client = node.client();
    client.create_graph("g").await;
    client.insert_person("g", "Ann", 1).await.expect(200);
    client.get("/graphs").await.expect(200);
    let head = client
        .metric("omnigraph_object_store_requests_total{op=\"Head\",tenant=\"default\",graph=\"g\"}")
        .await;
    assert!(head >= 1.0, "activation checks existence: {head}");
    let list = client
        .metric("omnigraph_object_store_requests_total{op=\"List\",tenant=\"default\",graph=\"\"}")
        .await;
    assert_eq!(list, 1.0);
}
