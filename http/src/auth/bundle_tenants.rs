//! Tenants in a signed bundle, as a control plane publishes them: each tenant's state and its
//! tokens, by SHA-256 only. A node verifies them like its configured static tokens, and
//! refuses every request of a suspended tenant (docs/control-plane.md).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use jsonwebtoken::jwk::JwkSet;

use omnigraph_cloud_config::{ActorId, StorageRoot, TenantId};
use serde::{Deserialize, Serialize};

use super::bound::BoundIssuer;
use super::jwks::{VerifyKey, parse_jwk_set};
use super::static_tokens::{HashedToken, StaticTokens};

/// One tenant in a bundle.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleTenant {
    #[serde(default)]
    pub state: TenantState,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<BundleToken>,
    /// A storage root of the tenant's own (`s3://bucket[/prefix]` or `file:///abs/path`) for
    /// its graphs, leases and usage; absent, the node's root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_root: Option<String>,
    /// The tenant's own identity provider: tokens it signs act in this tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<BundleIssuer>,
}

/// An issuer bound to one tenant, with its keys: nodes verify its tokens offline, against
/// these keys only (re-bind to rotate them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleIssuer {
    /// Must equal the token's `iss` exactly.
    pub issuer: String,
    /// The token's `aud` must name one of these.
    pub audiences: Vec<String>,
    pub jwks: JwkSet,
    /// A claim holding the actor's policy groups; the actor is `sub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_claim: Option<String>,
}

impl BundleIssuer {
    /// Checks the issuer as a node will, and returns its keys.
    pub(crate) fn compile(&self) -> Result<HashMap<String, Arc<VerifyKey>>, String> {
        if self.issuer.trim().is_empty() {
            return Err("issuer is empty".into());
        }
        if self.audiences.is_empty() || self.audiences.iter().any(|aud| aud.trim().is_empty()) {
            return Err("audiences must name at least one audience, none empty".into());
        }
        let keys = parse_jwk_set(self.jwks.clone())?;
        if keys.is_empty() {
            return Err("jwks holds no signing key".into());
        }
        Ok(keys)
    }

    /// Whether a node would accept this issuer (what the provisioning API checks).
    pub fn check(&self) -> Result<(), String> {
        self.compile().map(|_| ())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantState {
    #[default]
    Active,
    /// Every request of the tenant is refused (403), whatever its credential.
    Suspended,
}

/// A token of a tenant: the SHA-256 of the secret (`omnigraph-cloud auth hash-token`), never
/// the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleToken {
    pub sha256: String,
    pub actor: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// A bundle's tenants, checked and ready to swap in.
#[derive(Debug, Default)]
pub(crate) struct CompiledTenants {
    pub(crate) tokens: StaticTokens,
    pub(crate) suspended: HashSet<TenantId>,
    /// The tenants with a storage root of their own.
    pub(crate) roots: BTreeMap<TenantId, StorageRoot>,
    /// Tenants' own identity providers, by issuer.
    pub(crate) issuers: HashMap<String, Arc<BoundIssuer>>,
}

/// A tenant's own storage root as a bundle or the provisioning API names it: S3, or an
/// absolute local directory (for a single node); never `memory://`, which no two processes
/// share, nor a relative path, which would depend on each node's working directory.
pub fn parse_tenant_root(value: &str) -> Result<StorageRoot, String> {
    let expected = "s3://bucket[/prefix] or file:///absolute/path";
    if !(value.starts_with("s3://") || value.starts_with("file:///")) {
        return Err(format!("'{value}' is not {expected}"));
    }
    StorageRoot::parse(value).map_err(|_| format!("'{value}' is not {expected}"))
}

/// Checks every tenant of a bundle: valid tenant and actor names, 64 hex digits per token, no
/// token twice. Any failure refuses the whole bundle.
pub(crate) fn compile(tenants: &BTreeMap<String, BundleTenant>) -> Result<CompiledTenants, String> {
    let mut hashed = Vec::new();
    let mut suspended = HashSet::new();
    let mut roots = BTreeMap::new();
    let mut bindings: HashMap<String, Vec<Arc<BoundIssuer>>> = HashMap::new();
    for (name, tenant) in tenants {
        let id = TenantId::new(name).map_err(|err| format!("tenant '{name}': {err}"))?;
        if let Some(bound) = &tenant.oidc {
            let keys = bound
                .compile()
                .map_err(|err| format!("tenant '{name}', oidc: {err}"))?;
            let issuer = BoundIssuer::new(
                &bound.issuer,
                bound.audiences.clone(),
                bound.groups_claim.clone(),
                id.clone(),
                keys,
            );
            bindings
                .entry(bound.issuer.clone())
                .or_default()
                .push(Arc::new(issuer));
        }
        if let Some(root) = &tenant.storage_root {
            let root = parse_tenant_root(root)
                .map_err(|err| format!("tenant '{name}', storage_root: {err}"))?;
            roots.insert(id.clone(), root);
        }
        if tenant.state == TenantState::Suspended {
            suspended.insert(id.clone());
        }
        for token in &tenant.tokens {
            ActorId::new(&token.actor)
                .map_err(|err| format!("tenant '{name}', actor '{}': {err}", token.actor))?;
            let mut digest = [0u8; 32];
            hex::decode_to_slice(token.sha256.trim(), &mut digest).map_err(|_| {
                format!(
                    "tenant '{name}', actor '{}': sha256 must be 64 hex digits",
                    token.actor
                )
            })?;
            hashed.push(HashedToken {
                digest,
                actor: token.actor.clone(),
                tenant: id.clone(),
                groups: token.groups.clone(),
            });
        }
    }
    // An issuer bound to two tenants (two control-plane processes binding it at once) is
    // bound to neither: refusing the whole bundle would stop every later revocation too.
    let mut issuers = HashMap::new();
    for (issuer, mut bound) in bindings {
        if bound.len() == 1 {
            issuers.insert(issuer, bound.remove(0));
        } else {
            tracing::error!(%issuer, tenants = bound.len(), "issuer bound to more than one tenant in the bundle: bound to none of them");
        }
    }
    let tokens = StaticTokens::from_hashed(hashed)
        .map_err(|actor| format!("a token of actor '{actor}' is listed twice"))?;
    Ok(CompiledTenants {
        tokens,
        suspended,
        roots,
        issuers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_root(root: &str) -> BTreeMap<String, BundleTenant> {
        let tenant = BundleTenant {
            storage_root: Some(root.into()),
            ..BundleTenant::default()
        };
        [("acme".to_string(), tenant)].into()
    }

    #[test]
    fn a_tenant_root_is_shared_storage_named_absolutely() {
        let compiled = compile(&with_root("s3://acme-graphs/prod")).unwrap();
        assert_eq!(
            compiled.roots[&TenantId::new("acme").unwrap()],
            StorageRoot::S3 {
                bucket: "acme-graphs".into(),
                prefix: "prod".into()
            }
        );
        for refused in ["memory://", "file://./data", "s3://A", "gs://bucket"] {
            let err = compile(&with_root(refused)).unwrap_err();
            assert!(err.contains("storage_root"), "{refused}: {err}");
        }
    }

    #[test]
    fn an_issuer_binds_one_tenant_or_none() {
        let key =
            crate::auth::signing::SigningKey::generate(crate::auth::signing::KeyKind::Ed25519)
                .unwrap();
        let issuer = BundleIssuer {
            issuer: "https://idp.test".into(),
            audiences: vec!["omnigraph".into()],
            jwks: serde_json::from_value(serde_json::json!({"keys": [key.public_jwk("k")]}))
                .unwrap(),
            groups_claim: None,
        };
        let bound = |tenants: &[&str]| -> BTreeMap<String, BundleTenant> {
            tenants
                .iter()
                .map(|tenant| {
                    let entry = BundleTenant {
                        oidc: Some(issuer.clone()),
                        ..BundleTenant::default()
                    };
                    (tenant.to_string(), entry)
                })
                .collect()
        };
        let compiled = compile(&bound(&["acme"])).unwrap();
        assert!(compiled.issuers.contains_key("https://idp.test"));
        // Bound twice: to neither, and the rest of the bundle stands.
        let compiled = compile(&bound(&["acme", "globex"])).unwrap();
        assert!(compiled.issuers.is_empty());
    }
}
