//! The JWKS cache: degraded mode on cached keys, and no request waiting on the JWKS URL.

use super::*;

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
