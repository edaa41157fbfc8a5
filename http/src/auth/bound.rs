//! A tenant's own identity providers, bound to it by the signed bundle (the control plane's
//! `PUT /control/v1/tenants/{tenant}/oidc`). Verified like a configured issuer
//! ([`super::oidc`]), against the keys the bundle carries, with the tenant fixed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use omnigraph_cloud_config::{JwtAlgorithm, TenantId, TenantSource};
use serde_json::{Map, Value};
use tokio::sync::Notify;

use super::jwks::VerifyKey;
use super::oidc::{IssuerRules, Trusted, clip, decode_segment, verify_with};
use super::{Principal, Rejection};

/// A tenant's own identity provider, bound to it by the signed bundle: its tokens act in that
/// tenant and no other, verified against the keys the bundle carries (nothing is fetched).
pub(crate) struct BoundIssuer {
    rules: IssuerRules,
    keys: HashMap<String, Arc<VerifyKey>>,
}

impl std::fmt::Debug for BoundIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundIssuer")
            .field("issuer", &self.rules.issuer)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl BoundIssuer {
    pub(crate) fn new(
        issuer: &str,
        audiences: Vec<String>,
        groups_claim: Option<String>,
        tenant: TenantId,
        keys: HashMap<String, Arc<VerifyKey>>,
    ) -> BoundIssuer {
        BoundIssuer {
            rules: IssuerRules {
                issuer: Arc::from(issuer),
                audiences,
                actor_claim: "sub".into(),
                tenant: TenantSource::Fixed(tenant),
                groups_claim,
                // Any asymmetric algorithm; the key's family and `alg` must still match.
                algorithms: JwtAlgorithm::ALL.to_vec(),
                allowed_actors: None,
                nudge: Arc::new(Notify::new()),
            },
            keys,
        }
    }

    pub(crate) fn verify(&self, token: &str, skew: Duration) -> Result<Principal, Rejection> {
        verify_with(self, token, skew)
    }
}

impl Trusted for BoundIssuer {
    fn rules(&self, issuer: &str) -> Option<&IssuerRules> {
        (*self.rules.issuer == *issuer).then_some(&self.rules)
    }

    fn key(&self, rules: &IssuerRules, kid: Option<&str>) -> Result<Arc<VerifyKey>, Rejection> {
        let found = match kid {
            Some(kid) => self.keys.get(kid),
            None if self.keys.len() == 1 => self.keys.values().next(),
            None => None,
        };
        found.cloned().ok_or_else(|| {
            Rejection::new(
                "unknown_kid",
                format!(
                    "invalid token: no signing key {} among the {} keys the bundle binds to \
                     issuer '{}'",
                    kid.map_or_else(|| "without a kid".into(), |kid| format!("'{}'", clip(kid))),
                    self.keys.len(),
                    rules.issuer
                ),
            )
        })
    }

    /// The bundle's actor allowlist is for the issuers the service configures, not for a
    /// tenant's own.
    fn allowlist(&self) -> Option<Arc<HashSet<String>>> {
        None
    }
}

/// The `iss` claim of a token, unverified: which issuer to verify it against.
pub(crate) fn issuer_of(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let claims: Map<String, Value> = decode_segment(payload)?;
    claims.get("iss")?.as_str().map(str::to_string)
}
