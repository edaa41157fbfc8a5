//! The control plane (docs/control-plane.md): provisioning a tenant end to end through the
//! bundle it publishes to the root, and the data plane going on without it. Also several
//! control-plane processes at once ([`concurrent`]) and tenants' own IdPs ([`identity`]).

use std::time::Duration;

use omnigraph_cloud_http::signing::{KeyKind, SigningKey};
use serde_json::json;
use tempfile::TempDir;

use crate::support::{Client, PERMIT_ALL, TestNode, eventually, policy_dir};

mod concurrent;
mod identity;

pub(crate) const OPERATOR: &str = "operator-secret";

/// What a control plane and its data nodes are configured with: the bundle key, the operator
/// tokens file, and a permissive policy for the data nodes.
pub(crate) struct ControlFiles {
    _files: TempDir,
    _policies: TempDir,
    /// `[node] roles = ["control"]` and its `[control]` files.
    pub(crate) control_toml: String,
    /// Static tokens from the bundle the control plane publishes to the root, synced every
    /// 200 ms; usage flushed every second.
    pub(crate) data_toml: String,
}

impl ControlFiles {
    pub(crate) fn new() -> ControlFiles {
        let files = TempDir::new().unwrap();
        let key = SigningKey::generate(KeyKind::Ed25519).unwrap();
        let key_path = files.path().join("bundle-key.pem");
        std::fs::write(&key_path, key.to_pkcs8_pem().unwrap()).unwrap();
        let operators = files.path().join("operators.sha256");
        std::fs::write(
            &operators,
            format!(
                "# operators\n{}\n",
                omnigraph_cloud_http::sha256_hex(OPERATOR)
            ),
        )
        .unwrap();
        let control_toml = format!(
            "[node]\nroles = [\"control\"]\n[control]\noperator_tokens_file = {:?}\n\
             bundle_key_file = {:?}\n",
            operators.display().to_string(),
            key_path.display().to_string()
        );
        let policies = policy_dir(&[("_default.cedar", PERMIT_ALL)]);
        let data_toml = format!(
            "auth.mode = \"static\"\nauth.policy_dir = {:?}\n[auth.bundle]\nsource = \"root\"\n\
             public_key = \"{}\"\nsync_interval = \"200ms\"\n[usage]\nflush_interval = \"1s\"\n",
            policies.path().display().to_string(),
            key.ed25519_public_base64().unwrap()
        );
        ControlFiles {
            _files: files,
            _policies: policies,
            control_toml,
            data_toml,
        }
    }
}

/// Whether the control plane's usage query shows `writes` writes to `tenant`'s `graph` within
/// 10 s (usage records are flushed every second).
pub(crate) async fn usage_shows_writes(
    operator: &Client,
    tenant: &str,
    graph: &str,
    writes: u64,
) -> bool {
    eventually(Duration::from_secs(10), || {
        let operator = operator.clone();
        let path = format!("/control/v1/usage?tenant={tenant}");
        async move {
            let usage = operator.get(&path).await.json;
            usage["totals"]
                .as_array()
                .and_then(|totals| totals.iter().find(|t| t["graph"] == graph))
                .is_some_and(|g| g["requests"]["write"] == writes)
        }
    })
    .await
}

/// A control node and a data node on one root.
pub(crate) struct Plane {
    pub(crate) files: ControlFiles,
    pub(crate) root: TempDir,
    pub(crate) data: TestNode,
}

impl Plane {
    pub(crate) async fn start() -> (Plane, TestNode) {
        let files = ControlFiles::new();
        let root = TempDir::new().unwrap();
        let control = TestNode::start_on(root.path(), &files.control_toml).await;
        let data = TestNode::start_on(root.path(), &files.data_toml).await;
        (Plane { files, root, data }, control)
    }

    /// Another data node on the plane's root.
    async fn start_data(&self) -> TestNode {
        TestNode::start_on(self.root.path(), &self.files.data_toml).await
    }
}

pub(crate) async fn status_within(client: &Client, path: &str, status: u16) -> bool {
    eventually(Duration::from_secs(10), || {
        let client = client.clone();
        let path = path.to_string();
        async move { client.get(&path).await.status.as_u16() == status }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_provisions_a_tenant_that_the_data_plane_serves_without_it() {
    let (mut plane, mut control) = Plane::start().await;
    let operator = control.client_with_token(OPERATOR);
    // Tenant tokens and strangers are not operators; the data API is not served here.
    control
        .client_with_token("someone")
        .get("/control/v1/tenants")
        .await
        .expect_error(401, "unauthorized", "not an operator token");
    control.client().get("/graphs").await.expect(404);

    let created = operator
        .post(
            "/control/v1/tenants",
            json!({"tenant": "acme", "quotas": {"requests_per_second": 100}}),
        )
        .await
        .expect(201);
    assert_eq!(created["state"], "active");
    operator
        .post("/control/v1/tenants", json!({"tenant": "acme"}))
        .await
        .expect_error(409, "conflict", "already exists");
    operator
        .post("/control/v1/tenants", json!({"tenant": "Not A Name"}))
        .await
        .expect(400);
    operator
        .put("/control/v1/tenants/acme/quotas", json!({"burst": 0}))
        .await
        .expect_error(400, "bad_request", "burst");
    let issued = operator
        .post("/control/v1/tenants/acme/tokens", json!({"actor": "ann"}))
        .await
        .expect(201);
    let token = issued["token"].as_str().unwrap().to_string();
    let listed = operator.get("/control/v1/tenants").await.expect(200);
    assert!(
        !listed.to_string().contains(&token),
        "a token is shown once"
    );
    assert!(
        !listed
            .to_string()
            .contains(&omnigraph_cloud_http::sha256_hex(&token)),
        "nor its hash"
    );

    // The data node takes the tenant from the bundle at its next sync.
    let acme = plane.data.client_with_token(&token);
    assert!(status_within(&acme, "/graphs", 200).await);
    acme.create_graph("g").await;
    acme.insert_person("g", "Ann", 30).await.expect(200);

    // Suspended: refused at the next sync; resumed: served again.
    operator
        .post("/control/v1/tenants/acme/suspend", json!({}))
        .await
        .expect(200);
    assert!(status_within(&acme, "/graphs/g/snapshot", 403).await);
    operator
        .post("/control/v1/tenants/acme/resume", json!({}))
        .await
        .expect(200);
    assert!(status_within(&acme, "/graphs/g/snapshot", 200).await);

    // Usage from the data node's records, through the control plane.
    assert!(
        usage_shows_writes(&operator, "acme", "g", 1).await,
        "the data node's usage records reach the control plane"
    );
    let seconds = operator
        .get("/control/v1/usage?tenant=acme&resolution=second")
        .await
        .expect(200);
    assert!(!seconds["seconds"].as_array().unwrap().is_empty());

    // Its state is the root: a new control process answers byte for byte the same.
    let before = operator.get("/control/v1/tenants").await.text;
    control.shutdown().await;
    // With the control plane down the data plane serves on.
    acme.insert_person("g", "Bob", 31).await.expect(200);
    assert_eq!(acme.count_people("g", "main").await, 2);
    // `control rebuild` reads the same state back from the root, and republishes it.
    let config = plane.root.path().join("control.toml");
    std::fs::write(
        &config,
        format!(
            "{}[storage]\nroot = \"file://{}\"\n",
            plane.files.control_toml,
            plane.root.path().display()
        ),
    )
    .unwrap();
    let rebuilt = std::process::Command::new(crate::process::BIN)
        .args(["control", "rebuild", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        rebuilt.status.success(),
        "{}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&rebuilt.stdout).unwrap();
    assert_eq!(summary["tenants"][0]["tenant"], "acme");
    assert_eq!(summary["tenants"][0]["tokens"], 1);
    let control = TestNode::start_on(plane.root.path(), &plane.files.control_toml).await;
    let operator = control.client_with_token(OPERATOR);
    assert_eq!(operator.get("/control/v1/tenants").await.text, before);

    // An active tenant is not deleted, nor a suspended one with graphs; a suspended one
    // without graphs is, and its token stops working.
    operator
        .delete("/control/v1/tenants/acme")
        .await
        .expect_error(409, "conflict", "suspend it first");
    operator
        .post("/control/v1/tenants/acme/suspend", json!({}))
        .await
        .expect(200);
    operator
        .delete("/control/v1/tenants/acme")
        .await
        .expect_error(409, "conflict", "still has 1 graphs");
    operator
        .post("/control/v1/tenants/acme/resume", json!({}))
        .await
        .expect(200);
    assert!(status_within(&acme, "/graphs/g/snapshot", 200).await);
    acme.delete("/graphs/g").await.expect(200);
    operator
        .post("/control/v1/tenants/acme/suspend", json!({}))
        .await
        .expect(200);
    operator
        .delete("/control/v1/tenants/acme")
        .await
        .expect(200);
    // Deleted: suspended on the nodes, without its token.
    assert!(status_within(&acme, "/graphs", 401).await);
    operator.get("/control/v1/tenants/acme").await.expect(404);
    plane.data.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_control_process_answers_byte_for_byte_from_the_root() {
    let (plane, mut control) = Plane::start().await;
    let operator = control.client_with_token(OPERATOR);
    for tenant in ["acme", "globex", "initech"] {
        operator
            .post("/control/v1/tenants", json!({"tenant": tenant}))
            .await
            .expect(201);
        operator
            .post(
                &format!("/control/v1/tenants/{tenant}/tokens"),
                json!({"actor": "ops"}),
            )
            .await
            .expect(201);
    }
    operator
        .post("/control/v1/tenants/globex/suspend", json!({}))
        .await
        .expect(200);
    // 10,000 usage records of 10 graphs over the three tenants, as nodes would write them.
    let usage_dir = plane.root.path().join("_system/usage/2026-11-28");
    std::fs::create_dir_all(&usage_dir).unwrap();
    let start = 1_764_300_000u64;
    for i in 0..10_000u64 {
        let tenant = ["acme", "globex", "initech"][(i % 3) as usize];
        let second = start + i;
        let record = json!({
            "format": "omnigraph-usage/1", "id": format!("n{}-1-{i:08}", i % 4),
            "node": format!("n{}", i % 4), "from_ms": second * 1000, "to_ms": second * 1000 + 999,
            "graphs": [{"tenant": tenant, "graph": format!("g{}", i % 10), "active": [[second, second]],
                        "seconds": {second.to_string(): {"requests": {"read": 1 + i % 5},
                                                          "store_requests": {"get": i % 7}}}}]
        });
        std::fs::write(
            usage_dir.join(format!("n{}-1-{i:08}.json", i % 4)),
            record.to_string(),
        )
        .unwrap();
    }
    let answers = |operator: crate::support::Client| async move {
        let mut texts = Vec::new();
        for path in [
            "/control/v1/tenants".to_string(),
            "/control/v1/usage".to_string(),
            format!(
                "/control/v1/usage?tenant=acme&from={start}&to={}",
                start + 600
            ),
            format!(
                "/control/v1/usage?tenant=globex&graph=g1&resolution=second&from={start}&to={}",
                start + 120
            ),
        ] {
            texts.push(operator.get(&path).await.expect(200).to_string());
        }
        texts
    };
    let before = answers(operator.clone()).await;
    let totals: serde_json::Value = serde_json::from_str(&before[1]).unwrap();
    let reads: u64 = totals["totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["requests"]["read"].as_u64().unwrap())
        .sum();
    assert_eq!(reads, (0..10_000u64).map(|i| 1 + i % 5).sum::<u64>());
    // The state wiped (the process gone) and rebuilt from the root by a new process.
    control.shutdown().await;
    let control = TestNode::start_on(plane.root.path(), &plane.files.control_toml).await;
    let after = answers(control.client_with_token(OPERATOR)).await;
    assert_eq!(before, after);
}

/// The control plane is off the request path: stopped for 60 s, every data node goes on
/// serving every tenant it provisioned (the whole data API suite, `workflow::full_workflow`,
/// on each node, at the start of the minute and at its end), a node started meanwhile
/// serves them too, and writes and reads go on throughout the minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_api_suite_passes_on_every_data_node_with_the_control_plane_stopped() {
    let (mut plane, mut control) = Plane::start().await;
    let operator = control.client_with_token(OPERATOR);
    let mut tokens = Vec::new();
    for tenant in ["acme", "globex", "initech", "umbrella"] {
        operator
            .post("/control/v1/tenants", json!({"tenant": tenant}))
            .await
            .expect(201);
        let issued = operator
            .post(
                &format!("/control/v1/tenants/{tenant}/tokens"),
                json!({"actor": "ops"}),
            )
            .await
            .expect(201);
        tokens.push(issued["token"].as_str().unwrap().to_string());
    }
    let mut second = plane.start_data().await;
    for node in [&plane.data, &second] {
        for token in &tokens {
            assert!(status_within(&node.client_with_token(token), "/graphs", 200).await);
        }
    }

    control.shutdown().await;
    let stopped = tokio::time::Instant::now();
    // The suite on each node, one tenant each.
    crate::workflow::full_workflow(&plane.data.client_with_token(&tokens[0])).await;
    crate::workflow::full_workflow(&second.client_with_token(&tokens[1])).await;
    // A node that starts while the control plane is down reads the tenants from the root.
    second.shutdown().await;
    let second = plane.start_data().await;
    // Both tenants read and write on both nodes until the control plane has been down for
    // a minute.
    let writers = [&plane.data, &second];
    let mut round = 0;
    while stopped.elapsed() < Duration::from_secs(60) {
        for (tenant, token) in tokens[..2].iter().enumerate() {
            for node in [&plane.data, &second] {
                let client = node.client_with_token(token);
                client.get("/graphs").await.expect(200);
                client.get("/graphs/knowledge/snapshot").await.expect(200);
            }
            // These nodes do not forward: a write goes to the node holding the graph's writer
            // lease, which a read may also have taken while it was free (421 names it).
            let name = format!("r{round}-{tenant}");
            let mut statuses = Vec::new();
            for node in [writers[tenant], writers[1 - tenant]] {
                let status = node
                    .client_with_token(token)
                    .insert_person("knowledge", &name, 1)
                    .await
                    .status
                    .as_u16();
                statuses.push(status);
                if status == 200 {
                    break;
                }
            }
            assert_eq!(statuses.last(), Some(&200), "round {round}: {statuses:?}");
        }
        round += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(round >= 30, "{round} rounds in the minute");
    // After the minute, the whole suite again on each node, for the two tenants not used yet.
    crate::workflow::full_workflow(&second.client_with_token(&tokens[2])).await;
    crate::workflow::full_workflow(&plane.data.client_with_token(&tokens[3])).await;
    plane.data.shutdown().await;
}
