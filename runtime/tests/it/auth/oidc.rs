//! OIDC and hybrid authentication: good tokens, each failed check named, hostile headers.

use super::*;

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
