//! A tenant on a storage root of its own (docs/control-plane.md#a-tenant-on-its-own-storage-root):
//! provisioned by the control plane into a second bucket, its graphs, leases, maintenance
//! status and usage land only there, and another tenant's requests never reach that bucket.

use std::time::Duration;

use omnigraph_cloud_actors::usage::{UsageQuery, fold, read_records};
use omnigraph_cloud_actors::{GraphStore, StoreMetrics};
use omnigraph_cloud_cluster::lease::LeaseTiming;
use omnigraph_cloud_config::{StorageRoot, TenantId};
use serde_json::json;

use crate::control::{ControlFiles, OPERATOR, usage_shows_writes};
use crate::support::{TestNode, s3_backend};

fn store(bucket: &str, prefix: &str) -> GraphStore {
    let root = StorageRoot::S3 {
        bucket: bucket.into(),
        prefix: prefix.into(),
    };
    GraphStore::open(&root, StoreMetrics::unregistered()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_on_its_own_bucket_keeps_everything_there() {
    let Some(s3) = s3_backend().await else { return };
    let own_bucket = format!("og-own-{}", std::process::id());
    s3.create_bucket(&own_bucket).await;

    let files = ControlFiles::new();
    let mut control = TestNode::start_s3(&s3, "plane", &files.control_toml).await;
    let operator = control.client_with_token(OPERATOR);

    // Roots the nodes could not share, or that fail the probe, are refused up front.
    for (root, needle) in [
        ("memory://", "is not s3://"),
        ("file://./relative", "is not s3://"),
        (
            "s3://og-no-such-bucket",
            "failed the conditional-write probe",
        ),
    ] {
        operator
            .post(
                "/control/v1/tenants",
                json!({"tenant": "acme", "storage_root": root}),
            )
            .await
            .expect_error(400, "bad_request", needle);
    }
    let own_root = format!("s3://{own_bucket}/acme-data");
    let created = operator
        .post(
            "/control/v1/tenants",
            json!({"tenant": "acme", "storage_root": own_root}),
        )
        .await
        .expect(201);
    assert_eq!(created["storage_root"], own_root.as_str());
    operator
        .post("/control/v1/tenants", json!({"tenant": "globex"}))
        .await
        .expect(201);
    let mut tokens = Vec::new();
    for tenant in ["acme", "globex"] {
        let issued = operator
            .post(
                &format!("/control/v1/tenants/{tenant}/tokens"),
                json!({"actor": "ann"}),
            )
            .await
            .expect(201);
        tokens.push(issued["token"].as_str().unwrap().to_string());
    }

    let mut data = TestNode::start_s3(&s3, "plane", &files.data_toml).await;
    s3.proxy.reset_stats();
    let acme = data.client_with_token(&tokens[0]);
    let globex = data.client_with_token(&tokens[1]);
    acme.create_graph("g").await;
    globex.create_graph("h").await;
    for i in 0..3 {
        acme.insert_person("g", &format!("a{i}"), i)
            .await
            .expect(200);
        globex
            .insert_person("h", &format!("b{i}"), i)
            .await
            .expect(200);
    }
    assert_eq!(acme.count_people("g", "main").await, 3);
    assert_eq!(globex.count_people("h", "main").await, 3);
    // Each tenant lists its own graphs, wherever they live.
    assert_eq!(
        acme.get("/graphs").await.expect(200)["graphs"][0]["graph_id"],
        "g"
    );
    assert_eq!(
        globex.get("/graphs").await.expect(200)["graphs"][0]["graph_id"],
        "h"
    );
    data.shutdown().await;
    let seen = s3.proxy.stats();

    // The proxy's counts: in the own bucket only acme's objects (and unattributed requests,
    // such as usage records); in the shared bucket nothing of acme's.
    let own = seen.by_bucket.get(&own_bucket).cloned().unwrap_or_default();
    assert!(own.get("acme").copied().unwrap_or(0) > 0, "{own:?}");
    assert!(
        own.keys()
            .all(|tenant| tenant == "acme" || tenant.is_empty()),
        "another tenant's requests reached acme's bucket: {own:?}"
    );
    let shared = seen.by_bucket.get(&s3.bucket).cloned().unwrap_or_default();
    assert!(shared.get("globex").copied().unwrap_or(0) > 0, "{shared:?}");
    assert!(
        !shared.contains_key("acme"),
        "acme's objects were read or written in the shared bucket: {shared:?}"
    );

    // What is stored where, read back without any routing.
    let acme_id = TenantId::new("acme").unwrap();
    let globex_id = TenantId::new("globex").unwrap();
    let own_store = store(&own_bucket, "acme-data");
    let shared_store = store(&s3.bucket, "plane");
    assert_eq!(own_store.list_graphs(&acme_id).await.unwrap().len(), 1);
    assert!(shared_store.list_graphs(&acme_id).await.unwrap().is_empty());
    assert!(own_store.list_graphs(&globex_id).await.unwrap().is_empty());
    assert_eq!(shared_store.list_graphs(&globex_id).await.unwrap().len(), 1);
    let timing = LeaseTiming {
        ttl: Duration::from_secs(10),
        safety_margin: Duration::from_secs(2),
    };
    let leased = |store: &GraphStore| {
        let leases = store.leases(timing);
        async move {
            let listed = leases.list().await.unwrap();
            listed
                .iter()
                .map(|lease| lease.key.tenant.to_string())
                .collect::<Vec<_>>()
        }
    };
    let own_leases = leased(&own_store).await;
    assert!(own_leases.iter().any(|tenant| tenant == "acme"));
    assert!(own_leases.iter().all(|tenant| tenant == "acme"));
    assert!(!leased(&shared_store).await.iter().any(|t| t == "acme"));
    let tenants_in = |records: &[omnigraph_cloud_actors::usage::UsageRecord]| {
        let mut tenants: Vec<String> = records
            .iter()
            .flat_map(|record| record.graphs.iter().map(|graph| graph.tenant.clone()))
            .collect();
        tenants.sort();
        tenants.dedup();
        tenants
    };
    let own_usage = read_records(&own_store, None, None).await.unwrap();
    let shared_usage = read_records(&shared_store, None, None).await.unwrap();
    assert_eq!(tenants_in(&own_usage), ["acme"]);
    assert_eq!(tenants_in(&shared_usage), ["globex"]);

    // The control plane folds both roots together: acme's three writes are there.
    assert!(
        usage_shows_writes(&operator, "acme", "g", 3).await,
        "acme's usage in its own root reaches the control plane"
    );
    // The console lists acme's graph from its own root.
    let overview = operator.get("/console/api/overview").await.expect(200);
    let acme_row = overview["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|tenant| tenant["tenant"] == "acme")
        .cloned()
        .unwrap();
    assert_eq!(acme_row["graphs"], json!(["g"]));
    let all = fold(&[own_usage, shared_usage].concat(), &UsageQuery::default());
    assert!(all.iter().any(|t| t.tenant == "globex" && t.graph == "h"));
    control.shutdown().await;
}
