//! Tenants in a signed bundle, as a control plane publishes them: each tenant's state and its
//! tokens, by SHA-256 only. A node verifies them like its configured static tokens, and
//! refuses every request of a suspended tenant (docs/control-plane.md).

use std::collections::{BTreeMap, HashSet};

use omnigraph_cloud_config::{ActorId, TenantId};
use serde::{Deserialize, Serialize};

use super::static_tokens::{HashedToken, StaticTokens};

/// One tenant in a bundle.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleTenant {
    #[serde(default)]
    pub state: TenantState,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<BundleToken>,
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
}

/// Checks every tenant of a bundle: valid tenant and actor names, 64 hex digits per token, no
/// token twice. Any failure refuses the whole bundle.
pub(crate) fn compile(tenants: &BTreeMap<String, BundleTenant>) -> Result<CompiledTenants, String> {
    let mut hashed = Vec::new();
    let mut suspended = HashSet::new();
    for (name, tenant) in tenants {
        let id = TenantId::new(name).map_err(|err| format!("tenant '{name}': {err}"))?;
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
    let tokens = StaticTokens::from_hashed(hashed)
        .map_err(|actor| format!("a token of actor '{actor}' is listed twice"))?;
    Ok(CompiledTenants { tokens, suspended })
}
