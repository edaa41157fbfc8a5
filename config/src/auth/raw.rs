//! The `[auth]` section as read from the TOML file (and from tokens files), before any check.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    pub mode: Option<String>,
    pub tokens: Vec<TokenEntry>,
    pub tokens_file: Option<PathBuf>,
    pub oidc: Vec<OidcSection>,
    pub clock_skew: String,
    pub jwks_cache_ttl: String,
    pub jwks_stale_max: String,
    pub policy_dir: Option<PathBuf>,
    pub bundle: Option<BundleSection>,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            mode: None,
            tokens: Vec::new(),
            tokens_file: None,
            oidc: Vec::new(),
            clock_skew: "60s".into(),
            jwks_cache_ttl: "5m".into(),
            jwks_stale_max: "24h".into(),
            policy_dir: None,
            bundle: None,
        }
    }
}

/// One token entry, in the config file or in a tokens file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_sha256: Option<String>,
    pub actor: String,
    pub tenant: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSection {
    pub issuer: String,
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default)]
    pub jwks_url: Option<String>,
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    #[serde(default)]
    pub actor_claim: Option<String>,
    #[serde(default)]
    pub tenant_claim: Option<String>,
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub groups_claim: Option<String>,
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    #[serde(default)]
    pub allowed_actors: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BundleSection {
    /// `https://…`, `http://…`, or a local path.
    pub source: String,
    /// Base64 of the raw 32-byte Ed25519 public key (`omnigraph-cloud bundle keygen`).
    pub public_key: String,
    #[serde(default = "default_sync_interval")]
    pub sync_interval: String,
}

fn default_sync_interval() -> String {
    "1m".into()
}
