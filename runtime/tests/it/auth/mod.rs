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

mod bundles;
mod jwks;
mod oidc;
mod policy;
