//! Federated auth over real HTTP: OIDC JWTs checked offline against cached JWKS, hybrid mode,
//! degraded JWKS refresh, Cedar decisions per tenant, signed bundles, hostile headers.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use omnigraph_cloud_http::bundle;
use omnigraph_cloud_http::signing::{KeyKind, SigningKey};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{INSERT_PERSON, PERMIT_ALL, TestNode, eventually};

const ISSUER: &str = "https://idp.test";
const OTHER_ISSUER: &str = "https://customer-idp.test";

fn now() -> i64 {
    (omnigraph_cloud_cluster::Clock::system().wall_ms() / 1000) as i64
}

/// A token issuer for tests: its keys by kid, and their JWKS.
struct Idp {
    issuer: &'static str,
    keys: Vec<(String, SigningKey)>,
}

impl Idp {
    fn new(issuer: &'static str, kinds: &[KeyKind]) -> Idp {
        let keys = kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| (format!("k{i}"), SigningKey::generate(*kind).unwrap()))
            .collect();
        Idp { issuer, keys }
    }

    fn jwks(&self) -> Value {
        json!({"keys": self.keys.iter().map(|(kid, key)| key.public_jwk(kid)).collect::<Vec<_>>()})
    }

    fn write_jwks(&self, dir: &Path) -> String {
        let name: String = self
            .issuer
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let path = dir.join(format!("jwks-{name}.json"));
        std::fs::write(&path, self.jwks().to_string()).unwrap();
        path.display().to_string()
    }

    fn claims(&self, sub: &str, tenant: &str) -> Value {
        json!({"iss": self.issuer, "aud": "omnigraph", "sub": sub, "org_id": tenant,
               "iat": now(), "nbf": now() - 5, "exp": now() + 600})
    }

    /// A token signed by key `index`, with `edit` applied to the claims first.
    fn token_with(&self, index: usize, sub: &str, edit: impl FnOnce(&mut Value)) -> String {
        let mut claims = self.claims(sub, "acme");
        edit(&mut claims);
        let (kid, key) = &self.keys[index];
        key.mint_jwt(kid, &claims).unwrap()
    }

    fn token(&self, sub: &str) -> String {
        self.token_with(0, sub, |_| {})
    }
}

/// A hand-assembled compact JWS: `header.payload.signature`.
fn raw_jwt(header: Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

fn issuer_toml(issuer: &str, jwks: &str, extra: &str) -> String {
    format!(
        "[[auth.oidc]]\nissuer = \"{issuer}\"\naudiences = [\"omnigraph\"]\n{jwks}\n\
         algorithms = [\"RS256\", \"ES256\", \"EdDSA\"]\n{extra}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_accepts_good_tokens_and_names_each_failed_check() {
    let idp = Idp::new(ISSUER, &[KeyKind::Ed25519, KeyKind::Es256, KeyKind::Rs256]);
    let dir = TempDir::new().unwrap();
    let jwks = format!("jwks_file = {:?}", idp.write_jwks(dir.path()));
    let toml = format!(
        "auth.mode = \"oidc\"\n{}",
        issuer_toml(
            ISSUER,
            &jwks,
            "tenant_claim = \"org_id\"\nallowed_actors = [\"alice\", \"bob\", \"nosub\"]"
        )
    );
    let node = TestNode::start_with_policies(&toml, &[("_default.cedar", PERMIT_ALL)]).await;

    // Each algorithm, and the actor from `sub` stamped on the write.
    for index in 0..3 {
        let client = node.client_with_token(&idp.token_with(index, "alice", |_| {}));
        client.get("/graphs").await.expect(200);
    }
    let alice = node.client_with_token(&idp.token("alice"));
    alice.create_graph("g").await;
    let body = alice.insert_person("g", "Ann", 3).await.expect(200);
    assert_eq!(body["actor_id"], "alice");

    let refused = |token: String, needle: &'static str| {
        let client = node.client_with_token(&token);
        async move {
            let resp = client.get("/graphs").await;
            assert!(
                !resp.text.contains(&token),
                "a refusal never echoes the token"
            );
            resp.expect_error(401, "unauthorized", needle);
        }
    };
    refused(
        idp.token_with(0, "alice", |c| c["exp"] = json!(now() - 3600)),
        "expired",
    )
    .await;
    refused(
        idp.token_with(0, "alice", |c| c["nbf"] = json!(now() + 3600)),
        "not yet valid",
    )
    .await;
    refused(
        idp.token_with(0, "alice", |c| c["aud"] = json!("another-service")),
        "audience does not match",
    )
    .await;
    refused(
        idp.token_with(0, "alice", |c| c["iss"] = json!("https://evil.test")),
        "untrusted issuer 'https://evil.test'",
    )
    .await;
    refused(
        idp.token_with(1, "alice", |c| {
            c.as_object_mut().unwrap().remove("sub");
        }),
        "missing actor claim 'sub'",
    )
    .await;
    refused(
        idp.token_with(0, "carol", |_| {}),
        "actor 'carol' is not in the allowlist",
    )
    .await;
    refused(
        idp.token_with(0, "bob", |c| {
            c.as_object_mut().unwrap().remove("org_id");
        }),
        "missing tenant claim 'org_id'",
    )
    .await;

    // Bad signature: the right kid, signed by a different key of the same type.
    let impostor = SigningKey::generate(KeyKind::Ed25519).unwrap();
    refused(
        impostor
            .mint_jwt("k0", &idp.claims("alice", "acme"))
            .unwrap(),
        "signature verification failed",
    )
    .await;
    // Unknown kid: refused at once (the refresh it triggers runs in the background).
    refused(
        impostor
            .mint_jwt("rotated-key", &idp.claims("alice", "acme"))
            .unwrap(),
        "unknown signing key id 'rotated-key'",
    )
    .await;
    // alg none, and an HMAC token keyed with the public RSA key (algorithm confusion).
    let claims = idp.claims("alice", "acme");
    refused(
        raw_jwt(json!({"alg": "none", "kid": "k0"}), &claims, b"x"),
        "alg 'none'",
    )
    .await;
    let public_n = idp.keys[2].1.public_jwk("k2")["n"]
        .as_str()
        .unwrap()
        .to_string();
    let hmac = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, public_n.as_bytes()),
        b"whatever",
    );
    refused(
        raw_jwt(json!({"alg": "HS256", "kid": "k2"}), &claims, hmac.as_ref()),
        "symmetric algorithm 'HS256' is never accepted",
    )
    .await;
    // An RS256 header over the Ed25519 key's kid: the key decides the algorithm.
    let ed_signature = idp.keys[0].1.sign(b"anything").unwrap();
    refused(
        raw_jwt(json!({"alg": "RS256", "kid": "k0"}), &claims, &ed_signature),
        "does not match the signing key",
    )
    .await;
    refused("not-a-jwt".into(), "not a JWT").await;
    node.client()
        .get("/graphs")
        .await
        .expect_error(401, "unauthorized", "missing bearer token");
    let text = node.client().metrics().await.text;
    assert!(
        text.contains("omnigraph_auth_rejections_total{reason=\"expired\"} 1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_mode_takes_static_tokens_and_two_issuers_and_a_fixed_tenant_holds() {
    let cloud = Idp::new(ISSUER, &[KeyKind::Es256]);
    let customer = Idp::new(OTHER_ISSUER, &[KeyKind::Ed25519]);
    let dir = TempDir::new().unwrap();
    let toml = format!(
        "[[auth.tokens]]\ntoken = \"static-secret\"\nactor = \"ops\"\ntenant = \"acme\"\n{}{}",
        issuer_toml(
            ISSUER,
            &format!("jwks_file = {:?}", cloud.write_jwks(dir.path())),
            "tenant_claim = \"org_id\""
        ),
        issuer_toml(
            OTHER_ISSUER,
            &format!("jwks_file = {:?}", customer.write_jwks(dir.path())),
            "tenant = \"globex\""
        ),
    );
    let node = TestNode::start_with_policies(&toml, &[("_default.cedar", PERMIT_ALL)]).await;

    let ops = node.client_with_token("static-secret");
    let cloud_user = node.client_with_token(&cloud.token("alice"));
    // The customer's IdP claims org_id "acme"; its tenant is fixed to globex regardless.
    let customer_user = node.client_with_token(&customer.token("carl"));
    ops.create_graph("shared").await;
    customer_user.create_graph("mine").await;
    assert_eq!(
        cloud_user.get("/graphs").await.expect(200)["graphs"][0]["graph_id"],
        "shared",
        "static token and cloud issuer resolve to acme"
    );
    let listed = customer_user.get("/graphs").await.expect(200);
    assert_eq!(listed["graphs"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["graphs"][0]["graph_id"], "mine");
    customer_user
        .get("/graphs/shared/snapshot")
        .await
        .expect_error(404, "not_found", "shared");
    // A static token that is not ours is neither a static match nor a JWT.
    node.client_with_token("static-secreT")
        .get("/graphs")
        .await
        .expect_error(401, "unauthorized", "invalid bearer token");
}

/// A JWKS endpoint whose behaviour the test switches: serve, fail with 500, or hang.
struct JwksServer {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    hanging: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

const SERVE: u8 = 0;
const FAIL: u8 = 1;
const HANG: u8 = 2;

impl JwksServer {
    async fn start(jwks: Value) -> JwksServer {
        let mode = Arc::new(AtomicU8::new(SERVE));
        let hanging = Arc::new(AtomicUsize::new(0));
        let (m, h) = (mode.clone(), hanging.clone());
        let app = Router::new().route(
            "/jwks.json",
            get(move || {
                let (mode, hanging, jwks) = (m.clone(), h.clone(), jwks.clone());
                async move {
                    match mode.load(Ordering::SeqCst) {
                        SERVE => (StatusCode::OK, jwks.to_string()),
                        FAIL => (StatusCode::INTERNAL_SERVER_ERROR, "down".to_string()),
                        _ => {
                            hanging.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            (StatusCode::OK, String::new())
                        }
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        JwksServer {
            addr,
            mode,
            hanging,
            task,
        }
    }

    /// A permissive OIDC node whose one issuer fetches its keys from this server every
    /// second; `extra` holds more top-level `auth.*` keys.
    async fn node(&self, extra: &str) -> TestNode {
        let toml = format!(
            "auth.mode = \"oidc\"\nauth.jwks_cache_ttl = \"1s\"\n{extra}{}",
            issuer_toml(
                ISSUER,
                &format!("jwks_url = \"http://{}/jwks.json\"", self.addr),
                "tenant_claim = \"org_id\""
            )
        );
        TestNode::start_with_policies(&toml, &[("_default.cedar", PERMIT_ALL)]).await
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn degraded_jwks_keeps_serving_on_cached_keys_then_fails_closed() {
    let idp = Idp::new(ISSUER, &[KeyKind::Ed25519]);
    let server = JwksServer::start(idp.jwks()).await;
    let node = server.node("auth.jwks_stale_max = \"4s\"\n").await;
    let user = node.client_with_token(&idp.token("alice"));
    user.get("/graphs").await.expect(200);

    server.set(FAIL);
    let metrics = node.client();
    let degraded = format!("omnigraph_auth_jwks_degraded{{issuer=\"{ISSUER}\"}} 1");
    assert!(
        eventually(Duration::from_secs(5), || {
            let metrics = metrics.clone();
            let degraded = degraded.clone();
            async move { metrics.metrics().await.text.contains(&degraded) }
        })
        .await,
        "the failed refresh shows as degraded"
    );
    user.get("/graphs").await.expect(200);

    assert!(
        eventually(Duration::from_secs(10), || {
            let user = user.clone();
            async move { user.get("/graphs").await.status == 401 }
        })
        .await,
        "past jwks_stale_max the keys are refused"
    );
    user.get("/graphs").await.expect_error(
        401,
        "unauthorized",
        "signing keys of issuer 'https://idp.test' are stale",
    );

    server.set(SERVE);
    assert!(
        eventually(Duration::from_secs(10), || {
            let user = user.clone();
            async move { user.get("/graphs").await.status == 200 }
        })
        .await,
        "a successful refresh restores service"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_waits_on_the_jwks_url() {
    let idp = Idp::new(ISSUER, &[KeyKind::Es256]);
    let server = JwksServer::start(idp.jwks()).await;
    let node = server.node("").await;
    let user = node.client_with_token(&idp.token("alice"));
    user.get("/graphs").await.expect(200);

    server.set(HANG);
    let hanging = server.hanging.clone();
    assert!(
        eventually(Duration::from_secs(5), || {
            let hanging = hanging.clone();
            async move { hanging.load(Ordering::SeqCst) > 0 }
        })
        .await,
        "the refresher is stuck in a fetch"
    );
    // While that fetch hangs, known keys verify and an unknown kid is refused at once.
    let stuck = server.hanging.load(Ordering::SeqCst);
    for _ in 0..5 {
        user.get("/graphs").await.expect(200);
    }
    let stranger = SigningKey::generate(KeyKind::Es256).unwrap();
    node.client_with_token(
        &stranger
            .mint_jwt("new-kid", &idp.claims("alice", "acme"))
            .unwrap(),
    )
    .get("/graphs")
    .await
    .expect_error(401, "unauthorized", "unknown signing key id 'new-kid'");
    assert_eq!(
        server.hanging.load(Ordering::SeqCst),
        stuck,
        "no request started a fetch of its own"
    );
}

/// Upstream's policy shape: a team, admins, main protected.
const TEAM_POLICY: &str = r#"
version: 1
groups:
  team: [act-andrew, act-bruno, act-ragnor]
  admins: [act-ragnor]
protected_branches: [main]
rules:
  - id: team-read
    allow: { actors: { group: team }, actions: [read], branch_scope: any }
  - id: team-change-unprotected
    allow: { actors: { group: team }, actions: [change], branch_scope: unprotected }
  - id: team-branch
    allow: { actors: { group: team }, actions: [branch_create], target_branch_scope: unprotected }
  - id: admins-export
    allow: { actors: { group: admins }, actions: [export, change], branch_scope: any }
  - id: admins-protected
    allow: { actors: { group: admins }, actions: [branch_merge, branch_delete, schema_apply], target_branch_scope: any }
  - id: admins-graphs
    allow: { actors: { group: admins }, actions: [graph_create, graph_delete, graph_list] }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cedar_matrix_of_actors_actions_and_branches() {
    let tokens = ["act-andrew", "act-ragnor", "act-zed"]
        .iter()
        .map(|actor| {
            format!(
                "[[auth.tokens]]\ntoken = \"t-{actor}\"\nactor = \"{actor}\"\ntenant = \"acme\"\n"
            )
        })
        .collect::<String>()
        + "[[auth.tokens]]\ntoken = \"t-beta\"\nactor = \"bea\"\ntenant = \"beta\"\n";
    let node = TestNode::start_with_policies(&tokens, &[("acme.yaml", TEAM_POLICY)]).await;
    let andrew = node.client_with_token("t-act-andrew");
    let ragnor = node.client_with_token("t-act-ragnor");
    let zed = node.client_with_token("t-act-zed");

    andrew
        .post(
            "/graphs",
            json!({"graph_id": "g", "schema_source": crate::support::schema()}),
        )
        .await
        .expect_error(
            403,
            "forbidden",
            "policy denied action 'graph_create' for actor 'act-andrew'",
        );
    ragnor.create_graph("g").await;
    andrew
        .post(
            "/graphs/g/branches",
            json!({"name": "feature", "from": "main"}),
        )
        .await
        .expect(200);

    let insert = |branch: &str, name: &str| json!({"query": INSERT_PERSON, "params": {"name": name, "age": 1}, "branch": branch});
    let query = |branch: &str| json!({"query": crate::support::COUNT_PEOPLE, "branch": branch});
    let export = |branch: &str| json!({"branch": branch});
    // (actor, method path, body, expected status, message fragment)
    let cases: Vec<(&str, &str, Value, u16, &str)> = vec![
        ("act-andrew", "/graphs/g/query", query("main"), 200, ""),
        ("act-andrew", "/graphs/g/query", query("feature"), 200, ""),
        (
            "act-andrew",
            "/graphs/g/mutate",
            insert("feature", "A1"),
            200,
            "",
        ),
        (
            "act-andrew",
            "/graphs/g/mutate",
            insert("main", "A2"),
            403,
            "policy denied action 'change' on branch 'main' for actor 'act-andrew'",
        ),
        (
            "act-andrew",
            "/graphs/g/export",
            export("feature"),
            403,
            "action 'export'",
        ),
        (
            "act-andrew",
            "/graphs/g/branches/merge",
            json!({"source": "feature", "target": "main"}),
            403,
            "policy denied action 'branch_merge' on branch 'feature' targeting branch 'main'",
        ),
        (
            "act-andrew",
            "/graphs/g/branches",
            json!({"name": "main2", "from": "main"}),
            200,
            "",
        ),
        (
            "act-andrew",
            "/graphs/g/schema/apply",
            json!({"schema_source": crate::support::schema()}),
            403,
            "action 'schema_apply'",
        ),
        (
            "act-ragnor",
            "/graphs/g/mutate",
            insert("main", "R1"),
            200,
            "",
        ),
        ("act-ragnor", "/graphs/g/export", export("main"), 200, ""),
        (
            "act-ragnor",
            "/graphs/g/branches/merge",
            json!({"source": "feature", "target": "main"}),
            200,
            "",
        ),
        (
            "act-zed",
            "/graphs/g/query",
            query("main"),
            403,
            "policy denied action 'read' for unknown actor 'act-zed'",
        ),
    ];
    for (actor, path, body, status, needle) in cases {
        let client = node.client_with_token(&format!("t-{actor}"));
        let resp = client.post(path, body).await;
        if status == 200 {
            assert_eq!(resp.status, 200, "{actor} {path}: {}", resp.text);
        } else {
            resp.expect_error(status, "forbidden", needle);
        }
    }
    andrew
        .delete("/graphs/g/branches/main2")
        .await
        .expect_error(
            403,
            "forbidden",
            "action 'branch_delete' targeting branch 'main2'",
        );
    ragnor.delete("/graphs/g/branches/main2").await.expect(200);
    zed.get("/graphs/g/snapshot").await.expect(403);
    // The merge by the admin brought andrew's feature insert into main.
    assert_eq!(ragnor.count_people("g", "main").await, 2);

    // A tenant without a policy: reads pass (here: to a 404), nothing else.
    let bea = node.client_with_token("t-beta");
    bea.get("/graphs/g/snapshot")
        .await
        .expect_error(404, "not_found", "g");
    bea.post(
        "/graphs",
        json!({"graph_id": "b", "schema_source": crate::support::schema()}),
    )
    .await
    .expect_error(
        403,
        "forbidden",
        "tenant 'beta' has no policy: authenticated actors may only read",
    );
    let text = node.client().metrics().await.text;
    assert!(
        text.contains("omnigraph_auth_policy_denials_total{action=\"change\"} 1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_cannot_grant_another_tenants_resources() {
    // acme's policy tries to reach globex by name; globex's own actors have no policy.
    let greedy = "permit (principal, action, resource);\n\
                  permit (principal, action, resource in Omnigraph::Tenant::\"globex\");";
    let tokens = "[[auth.tokens]]\ntoken = \"t-ann\"\nactor = \"ann\"\ntenant = \"acme\"\n\
                  [[auth.tokens]]\ntoken = \"t-gus\"\nactor = \"gus\"\ntenant = \"globex\"\n";
    let node = TestNode::start_with_policies(
        tokens,
        &[("acme.cedar", greedy), ("globex.cedar", PERMIT_ALL)],
    )
    .await;
    let ann = node.client_with_token("t-ann");
    let gus = node.client_with_token("t-gus");
    gus.create_graph("vault").await;
    gus.insert_person("vault", "Secret", 1).await.expect(200);
    ann.get("/graphs/vault/snapshot")
        .await
        .expect_error(404, "not_found", "vault");
    ann.delete("/graphs/vault").await.expect(404);
    assert!(
        ann.get("/graphs").await.expect(200)["graphs"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(gus.count_people("vault", "main").await, 1);
}

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
async fn hostile_authorization_headers_never_give_a_5xx() {
    let idp = Idp::new(ISSUER, &[KeyKind::Rs256]);
    let dir = TempDir::new().unwrap();
    let toml = format!(
        "[[auth.tokens]]\ntoken = \"static\"\nactor = \"a\"\ntenant = \"acme\"\n{}",
        issuer_toml(
            ISSUER,
            &format!("jwks_file = {:?}", idp.write_jwks(dir.path())),
            "tenant_claim = \"org_id\""
        )
    );
    let node = TestNode::start_with_policies(&toml, &[("_default.cedar", PERMIT_ALL)]).await;
    let http = reqwest::Client::new();
    let url = format!("{}/graphs", node.base);
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let b64 = |rng: &mut fastrand::Rng, max: usize| {
        let len = rng.usize(0..max);
        let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        URL_SAFE_NO_PAD.encode(bytes)
    };
    let valid = idp.token("alice");
    for round in 0..300 {
        let header: Vec<u8> = match round % 6 {
            0 => (0..rng.usize(0..200)).map(|_| rng.u8(0x20..0x7f)).collect(),
            1 => format!("Bearer {}", b64(&mut rng, 300)).into_bytes(),
            2 => format!(
                "Bearer {}.{}.{}",
                b64(&mut rng, 60),
                b64(&mut rng, 200),
                b64(&mut rng, 300)
            )
            .into_bytes(),
            3 => {
                // A real token with one byte changed somewhere.
                let mut bytes = format!("Bearer {valid}").into_bytes();
                let at = rng.usize(7..bytes.len());
                bytes[at] = rng.u8(0x21..0x7f);
                bytes
            }
            4 => {
                // Valid base64url segments holding odd JSON.
                let header = [
                    json!({"alg": rng.u32(..)}),
                    json!([1, 2]),
                    json!({"alg": "RS256", "kid": null}),
                    json!({"alg": "RS256", "kid": "k0", "crit": ["x"]}),
                ][rng.usize(0..4)]
                .clone();
                let claims = [
                    json!({"iss": 5}),
                    json!({"iss": ISSUER, "exp": "soon"}),
                    json!(null),
                    json!({"iss": ISSUER, "aud": [1], "exp": 1e300}),
                ][rng.usize(0..4)]
                .clone();
                format!("Bearer {}", raw_jwt(header, &claims, b"sig")).into_bytes()
            }
            _ => {
                let mut bytes = b"Bearer ".to_vec();
                bytes.extend((0..rng.usize(1..64)).map(|_| rng.u8(0x80..=0xff)));
                bytes
            }
        };
        let Ok(value) = reqwest::header::HeaderValue::from_bytes(&header) else {
            continue;
        };
        let status = http
            .get(&url)
            .header(reqwest::header::AUTHORIZATION, value)
            .send()
            .await
            .unwrap()
            .status();
        assert!(
            status.is_client_error() || status.is_success(),
            "round {round}: {status} for {:?}",
            String::from_utf8_lossy(&header)
        );
    }
    let huge = format!("Bearer {}", "a".repeat(64 * 1024));
    let status = http
        .get(&url)
        .header(reqwest::header::AUTHORIZATION, huge)
        .send()
        .await
        .map(|resp| resp.status().as_u16())
        .unwrap_or(431);
    assert!((400..500).contains(&status), "{status}");
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
