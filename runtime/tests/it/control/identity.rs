//! A tenant's own identity provider, bound by the control plane
//! (docs/control-plane.md#a-tenants-own-identity-provider).

use omnigraph_cloud_http::signing::{KeyKind, SigningKey};
use serde_json::json;

use super::{OPERATOR, Plane, status_within};

/// A tenant's own identity provider, bound by the control plane: its tokens act in that
/// tenant (whatever tenant they claim) on a data node in static mode, tokens signed by any
/// other key are refused, and unbinding it refuses them all within a sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_identity_provider_signs_in_to_its_tenant_only() {
    let (plane, control) = Plane::start().await;
    let operator = control.client_with_token(OPERATOR);
    for tenant in ["acme", "globex"] {
        operator
            .post("/control/v1/tenants", json!({"tenant": tenant}))
            .await
            .expect(201);
    }
    let issuer = "https://idp.acme.test";
    let key = SigningKey::generate(KeyKind::Ed25519).unwrap();
    let jwks = json!({"keys": [key.public_jwk("k1")]});
    let binding = json!({"issuer": issuer, "audiences": ["omnigraph"], "jwks": jwks});
    // What a node could not use is refused here.
    for (bad, needle) in [
        (
            json!({"issuer": issuer, "audiences": [], "jwks": jwks}),
            "audiences",
        ),
        (
            json!({"issuer": issuer, "audiences": ["omnigraph"],
                   "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
            "symmetric",
        ),
    ] {
        operator
            .put("/control/v1/tenants/acme/oidc", bad)
            .await
            .expect_error(400, "bad_request", needle);
    }
    let bound = operator
        .put("/control/v1/tenants/acme/oidc", binding.clone())
        .await
        .expect(200);
    assert_eq!(bound["oidc"]["issuer"], issuer);
    operator
        .put("/control/v1/tenants/globex/oidc", binding)
        .await
        .expect_error(409, "conflict", "bound to tenant 'acme'");

    let now = (omnigraph_cloud_cluster::Clock::system().wall_ms() / 1000) as i64;
    let claims = |sub: &str| {
        json!({"iss": issuer, "aud": "omnigraph", "sub": sub, "org_id": "globex",
               "iat": now, "nbf": now - 5, "exp": now + 600})
    };
    let ann = plane
        .data
        .client_with_token(&key.mint_jwt("k1", &claims("ann")).unwrap());
    assert!(status_within(&ann, "/graphs", 200).await);
    ann.create_graph("g").await;
    // It acted in acme, the bound tenant, not in the tenant its token claims.
    let issued = operator
        .post("/control/v1/tenants/acme/tokens", json!({"actor": "ops"}))
        .await
        .expect(201);
    let acme = plane
        .data
        .client_with_token(issued["token"].as_str().unwrap());
    assert!(status_within(&acme, "/graphs", 200).await);
    assert_eq!(
        acme.get("/graphs").await.expect(200)["graphs"][0]["graph_id"],
        "g"
    );
    // Another key, claiming the same issuer: refused.
    let forger = SigningKey::generate(KeyKind::Ed25519).unwrap();
    plane
        .data
        .client_with_token(&forger.mint_jwt("k1", &claims("mallory")).unwrap())
        .get("/graphs")
        .await
        .expect_error(401, "unauthorized", "signature");
    // Unbound: its tokens stop working at the next sync.
    operator
        .delete("/control/v1/tenants/acme/oidc")
        .await
        .expect(200);
    assert!(status_within(&ann, "/graphs", 401).await);
}
