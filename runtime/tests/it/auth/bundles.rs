//! Signed policy bundles: swapped in when good, refused when not, kept when the source is down.

use super::*;

/// A bundle signing key, and a helper that writes signed (or mangled) bundles.
struct Signer {
    key: SigningKey,
    path: std::path::PathBuf,
}

impl Signer {
    fn public(&self) -> String {
        self.key.ed25519_public_base64().unwrap()
    }

    fn write(&self, payload: &Value) {
        let signed = bundle::sign(payload.to_string().as_bytes(), &self.key).unwrap();
        std::fs::write(&self.path, signed).unwrap();
    }

    fn write_raw(&self, contents: &str) {
        std::fs::write(&self.path, contents).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_bundles_swap_in_and_bad_ones_are_refused() {
    let idp = Idp::new(ISSUER, &[KeyKind::Ed25519]);
    let dir = TempDir::new().unwrap();
    let signer = Signer {
        key: SigningKey::generate(KeyKind::Ed25519).unwrap(),
        path: dir.path().join("bundle.json"),
    };
    let read_only = "permit (principal, action == Omnigraph::Action::\"read\", resource);\n\
                     permit (principal, action == Omnigraph::Action::\"graph_create\", resource);";
    // Serial 1: the issuer's keys, read-only policy for acme, alice allowed.
    signer.write(&json!({"version": 1, "serial": 1,
        "jwks": {ISSUER: idp.jwks()},
        "policies": {"acme": {"cedar": read_only}},
        "actor_allowlist": ["alice"]}));
    let toml = format!(
        "auth.mode = \"oidc\"\n{}[auth.bundle]\nsource = {:?}\npublic_key = \"{}\"\nsync_interval = \"200ms\"\n",
        issuer_toml(ISSUER, "", "tenant_claim = \"org_id\""),
        signer.path.display().to_string(),
        signer.public()
    );
    let node = TestNode::start_with(&toml).await;
    let alice = node.client_with_token(&idp.token("alice"));
    alice.create_graph("g").await;
    alice
        .insert_person("g", "Ann", 1)
        .await
        .expect_error(403, "forbidden", "action 'change'");
    node.client_with_token(&idp.token("bob"))
        .get("/graphs")
        .await
        .expect_error(401, "unauthorized", "not in the allowlist");

    // Serial 2 grants everything and admits bob.
    signer.write(&json!({"version": 1, "serial": 2,
        "jwks": {ISSUER: idp.jwks()},
        "policies": {"acme": {"cedar": PERMIT_ALL}},
        "actor_allowlist": ["alice", "bob"]}));
    assert!(
        eventually(Duration::from_secs(10), || {
            let alice = alice.clone();
            async move { alice.insert_person("g", "Ann", 1).await.status == 200 }
        })
        .await,
        "the new bundle is swapped in"
    );
    node.client_with_token(&idp.token("bob"))
        .get("/graphs")
        .await
        .expect(200);

    // Each bad bundle is refused and serial 2 stays in force.
    let envelope: Value =
        serde_json::from_str(&std::fs::read_to_string(&signer.path).unwrap()).unwrap();
    let revoke_all =
        json!({"version": 1, "serial": 9, "jwks": {ISSUER: idp.jwks()}, "policies": {}});
    let mut tampered = envelope.clone();
    tampered["payload"] = json!(STANDARD.encode(revoke_all.to_string()));
    let wrong_key = Signer {
        key: SigningKey::generate(KeyKind::Ed25519).unwrap(),
        path: dir.path().join("other.json"),
    };
    let wrongly_signed = bundle::sign(revoke_all.to_string().as_bytes(), &wrong_key.key).unwrap();
    let old = bundle::sign(
        json!({"version": 1, "serial": 1, "jwks": {ISSUER: idp.jwks()}, "policies": {}})
            .to_string()
            .as_bytes(),
        &signer.key,
    )
    .unwrap();
    for (reason, contents) in [
        ("bad_signature", tampered.to_string()),
        ("unsigned", revoke_all.to_string()),
        ("bad_signature", wrongly_signed),
        ("rollback", old),
    ] {
        let sample = format!("omnigraph_auth_bundle_rejections_total{{reason=\"{reason}\"}}");
        let before = node.client().metric_value(&sample).await.unwrap_or(0.0);
        signer.write_raw(&contents);
        assert!(
            eventually(Duration::from_secs(10), || {
                let sample = sample.clone();
                let node = &node;
                async move { node.client().metric_value(&sample).await.unwrap_or(0.0) > before }
            })
            .await,
            "{reason} bundle is refused"
        );
        alice.insert_person("g", "Still", 1).await.expect(200);
        assert_eq!(
            node.client()
                .metric_value("omnigraph_auth_bundle_serial")
                .await
                .unwrap_or(0.0),
            2.0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_from_a_url_survives_its_source_going_down() {
    let signer = Signer {
        key: SigningKey::generate(KeyKind::Ed25519).unwrap(),
        path: std::path::PathBuf::new(),
    };
    let signed = |serial: u64, cedar: &str| {
        bundle::sign(
            json!({"version": 1, "serial": serial, "policies": {"acme": {"cedar": cedar}}})
                .to_string()
                .as_bytes(),
            &signer.key,
        )
        .unwrap()
    };
    let body = Arc::new(std::sync::Mutex::new(Some(signed(1, PERMIT_ALL))));
    let served = body.clone();
    let app = Router::new().route(
        "/bundle.json",
        get(move || {
            let body = served.lock().unwrap().clone();
            async move {
                match body {
                    Some(body) => (StatusCode::OK, body),
                    None => (StatusCode::SERVICE_UNAVAILABLE, "down".to_string()),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let toml = format!(
        "[[auth.tokens]]\ntoken = \"t\"\nactor = \"ann\"\ntenant = \"acme\"\n\
         [auth.bundle]\nsource = \"http://{addr}/bundle.json\"\npublic_key = \"{}\"\nsync_interval = \"200ms\"\n",
        signer.public()
    );
    let node = TestNode::start_with(&toml).await;
    let ann = node.client_with_token("t");
    ann.create_graph("g").await;

    *body.lock().unwrap() = None;
    let unavailable = "omnigraph_auth_bundle_rejections_total{reason=\"unavailable\"}";
    assert!(
        eventually(Duration::from_secs(10), || async {
            node.client().metric_value(unavailable).await.unwrap_or(0.0) >= 2.0
        })
        .await,
        "the failing source is counted"
    );
    ann.insert_person("g", "Ann", 1).await.expect(200);

    *body.lock().unwrap() = Some(signed(
        2,
        "permit (principal, action == Omnigraph::Action::\"read\", resource);",
    ));
    assert!(
        eventually(Duration::from_secs(10), || async {
            // 404 while everything is permitted, 403 once only reads are.
            ann.delete("/graphs/absent").await.status == 403
        })
        .await,
        "serial 2 (read-only) replaces serial 1"
    );
    ann.insert_person("g", "Ben", 1)
        .await
        .expect_error(403, "forbidden", "action 'change'");
    assert_eq!(ann.count_people("g", "main").await, 1);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_sets_tenant_limits_and_a_bad_one_changes_nothing() {
    let dir = TempDir::new().unwrap();
    let signer = Signer {
        key: SigningKey::generate(KeyKind::Ed25519).unwrap(),
        path: dir.path().join("bundle.json"),
    };
    // Serial 1: acme may send one request a second, no burst.
    signer.write(&json!({"version": 1, "serial": 1,
        "limits": {"acme": {"requests_per_second": 1, "burst": 1}}}));
    let toml = format!(
        "{}[auth.bundle]\nsource = {:?}\npublic_key = \"{}\"\nsync_interval = \"200ms\"\n",
        crate::support::TWO_TENANTS,
        signer.path.display().to_string(),
        signer.public()
    );
    let node = TestNode::start_permissive(&toml).await;
    let acme = node.client_with_token("acme-token");
    let globex = node.client_with_token("globex-token");
    acme.get("/graphs").await.expect(200);
    let refused = acme.get("/graphs").await;
    assert!(refused.headers.contains_key("retry-after"));
    refused.expect_error(429, "too_many_requests", "rate of 1 requests per second");
    for _ in 0..5 {
        globex.get("/graphs").await.expect(200);
    }

    // A bundle whose limits do not check is refused whole: acme stays at one a second.
    signer.write(&json!({"version": 1, "serial": 2,
        "limits": {"acme": {"burst": 0}}}));
    let invalid = "omnigraph_auth_bundle_rejections_total{reason=\"invalid\"}";
    assert!(
        eventually(Duration::from_secs(10), || {
            let acme = acme.clone();
            async move { acme.metric_value(invalid).await.unwrap_or(0.0) >= 1.0 }
        })
        .await,
        "the bad bundle is refused"
    );
    assert_eq!(acme.get("/graphs").await.status, 429);

    // Serial 3 sets no limits: acme is back to the configured ones.
    signer.write(&json!({"version": 1, "serial": 3}));
    assert!(
        eventually(Duration::from_secs(10), || {
            let acme = acme.clone();
            async move {
                let mut statuses = Vec::new();
                for _ in 0..5 {
                    statuses.push(acme.get("/graphs").await.status.as_u16());
                }
                statuses.iter().all(|status| *status == 200)
            }
        })
        .await,
        "the configured limits are back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_published_to_the_root_are_served_and_suspended_within_a_sync() {
    let dir = TempDir::new().unwrap();
    let key = SigningKey::generate(KeyKind::Ed25519).unwrap();
    let key_path = dir.path().join("bundle-key.pem");
    std::fs::write(&key_path, key.to_pkcs8_pem().unwrap()).unwrap();
    let toml = format!(
        "auth.mode = \"static\"\n[auth.bundle]\nsource = \"root\"\npublic_key = \"{}\"\n\
         sync_interval = \"200ms\"\n",
        key.ed25519_public_base64().unwrap()
    );
    // Nothing is published yet: the node starts, and refuses every token.
    let node = TestNode::start_permissive(&toml).await;
    let acme = node.client_with_token("acme-secret");
    acme.get("/graphs").await.expect(401);

    // `omnigraph-cloud bundle publish`, as an operator (or a control plane) would.
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!("[storage]\nroot = \"file://{}\"\n", node.root.display()),
    )
    .unwrap();
    let publish = |serial: u64, tenants: Value| {
        let payload = dir.path().join(format!("payload-{serial}.json"));
        let body = json!({"version": 1, "serial": serial, "tenants": tenants});
        std::fs::write(&payload, body.to_string()).unwrap();
        std::process::Command::new(crate::process::BIN)
            .args(["bundle", "publish", "--key"])
            .arg(&key_path)
            .arg("--config")
            .arg(&config)
            .arg(&payload)
            .output()
            .unwrap()
    };
    let token =
        json!([{"sha256": omnigraph_cloud_http::sha256_hex("acme-secret"), "actor": "ann"}]);
    assert!(
        publish(1, json!({"acme": {"tokens": token}}))
            .status
            .success()
    );
    let served = eventually(Duration::from_secs(10), || {
        let acme = acme.clone();
        async move { acme.get("/graphs").await.status == 200 }
    })
    .await;
    assert!(served, "the published token is taken within a sync");
    acme.create_graph("g").await;

    // Suspended: refused within one sync interval, whatever the request.
    assert!(
        publish(2, json!({"acme": {"state": "suspended", "tokens": token}}))
            .status
            .success()
    );
    let refused = eventually(Duration::from_secs(10), || {
        let acme = acme.clone();
        async move { acme.get("/graphs/g/snapshot").await.status == 403 }
    })
    .await;
    assert!(refused);
    acme.get("/graphs")
        .await
        .expect_error(403, "forbidden", "tenant 'acme' is suspended");
    // A serial that does not grow is refused before it is written.
    let stale = publish(2, json!({}));
    assert!(!stale.status.success());
    assert!(String::from_utf8_lossy(&stale.stderr).contains("not above"));

    // Gone from the bundle: its token means nothing.
    assert!(publish(3, json!({})).status.success());
    let gone = eventually(Duration::from_secs(10), || {
        let acme = acme.clone();
        async move { acme.get("/graphs").await.status == 401 }
    })
    .await;
    assert!(gone);
}
