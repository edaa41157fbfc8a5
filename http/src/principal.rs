//! Who is calling: the identity authentication resolves a credential to, and that the
//! policy decides on.

use std::sync::Arc;

use omnigraph_cloud_config::TenantId;

/// Who is calling: the authenticated actor (none when authentication is off), its tenant,
/// the policy groups its credential carries, and how it was authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub actor: Option<String>,
    pub tenant: TenantId,
    pub groups: Vec<String>,
    pub source: IdentitySource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// Authentication is off.
    Anonymous,
    Static,
    Oidc {
        issuer: Arc<str>,
    },
}
