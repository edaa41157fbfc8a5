//! The `[auth]` section: how bearer tokens are verified (static, OIDC or both), where
//! per-tenant policies come from, and the optional signed bundle.
//!
//! This file owns the validated types the rest of the workspace sees. The section as written
//! in the file is in `raw`; `validate` turns it into [`AuthConfig`], with static token
//! entries checked by `tokens` (also used for tokens files).

mod raw;
mod tokens;
mod validate;

use std::path::PathBuf;
use std::time::Duration;

use crate::TenantId;

pub(crate) use raw::AuthSection;
pub use raw::TokenEntry;
pub use tokens::validate_token_entries;
pub(crate) use validate::validate_auth;

#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    pub mode: AuthMode,
    /// Static tokens declared inline in the config file.
    pub tokens: Vec<StaticTokenConfig>,
    /// A JSON file holding more static tokens: `[{"token","actor","tenant"}, ...]`.
    pub tokens_file: Option<PathBuf>,
    /// Trusted OIDC issuers, tried by the token's `iss` claim.
    pub oidc: Vec<OidcIssuerConfig>,
    /// Tolerance on `exp` and `nbf`.
    pub clock_skew: Duration,
    /// How often JWKS sources (files and URLs) are refreshed, in the background.
    pub jwks_cache_ttl: Duration,
    /// How long keys stay usable after their source last refreshed successfully.
    pub jwks_stale_max: Duration,
    /// Directory of per-tenant policies: `<tenant>.cedar` or `<tenant>.yaml`, and
    /// `_default.cedar` / `_default.yaml` for tenants without their own.
    pub policy_dir: Option<PathBuf>,
    pub bundle: Option<BundleConfig>,
}

/// How requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Static bearer tokens, hashed at load and compared in constant time.
    Static,
    /// OIDC JWTs verified offline against cached JWKS.
    Oidc,
    /// A static token first, then a JWT.
    Hybrid,
    /// No authentication; every request acts in tenant `default`, with every permission.
    /// Only ever chosen explicitly, or implicitly on a loopback bind with no identity source.
    None,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Static => "static",
            AuthMode::Oidc => "oidc",
            AuthMode::Hybrid => "hybrid",
            AuthMode::None => "none",
        }
    }

    pub fn uses_static(self) -> bool {
        matches!(self, AuthMode::Static | AuthMode::Hybrid)
    }

    pub fn uses_oidc(self) -> bool {
        matches!(self, AuthMode::Oidc | AuthMode::Hybrid)
    }
}

/// One static bearer token and the identity it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticTokenConfig {
    pub secret: TokenSecret,
    pub actor: String,
    pub tenant: TenantId,
    /// Policy groups the actor belongs to, besides those its tenant's policy declares.
    pub groups: Vec<String>,
}

/// A token as written in configuration: either the plaintext (hashed at load and dropped)
/// or its lowercase hex SHA-256, so that config files need not hold secrets.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenSecret {
    Plain(String),
    Sha256Hex(String),
}

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSecret::Plain(_) => f.write_str("Plain(<redacted>)"),
            TokenSecret::Sha256Hex(hex) => write!(f, "Sha256Hex({hex})"),
        }
    }
}

/// One trusted token issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIssuerConfig {
    /// Must equal the token's `iss` claim exactly.
    pub issuer: String,
    /// The token's `aud` must contain one of these.
    pub audiences: Vec<String>,
    /// Fetched in the background every `jwks_cache_ttl`; never on the request path.
    pub jwks_url: Option<String>,
    /// Read at start and re-read every `jwks_cache_ttl` (air-gapped pre-seed).
    pub jwks_file: Option<PathBuf>,
    /// The claim naming the actor. Default `sub`.
    pub actor_claim: String,
    pub tenant: TenantSource,
    /// A claim holding the actor's policy groups (a string or an array of strings).
    pub groups_claim: Option<String>,
    pub algorithms: Vec<JwtAlgorithm>,
    /// When set, only these actors are accepted from this issuer.
    pub allowed_actors: Option<Vec<String>>,
}

/// Where a verified token's tenant comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantSource {
    /// A claim of the token, e.g. `org_id`: for an issuer the service operates.
    Claim(String),
    /// A fixed tenant: for a customer's own IdP, which must never name another tenant.
    Fixed(TenantId),
}

/// Asymmetric JWS algorithms a token may be signed with. Symmetric (`HS*`) algorithms are
/// never accepted: whoever holds a shared secret could mint tokens for anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwtAlgorithm {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Es256,
    Es384,
    EdDsa,
}

impl JwtAlgorithm {
    pub const ALL: [JwtAlgorithm; 7] = [
        JwtAlgorithm::Rs256,
        JwtAlgorithm::Rs384,
        JwtAlgorithm::Rs512,
        JwtAlgorithm::Ps256,
        JwtAlgorithm::Es256,
        JwtAlgorithm::Es384,
        JwtAlgorithm::EdDsa,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::Rs256 => "RS256",
            JwtAlgorithm::Rs384 => "RS384",
            JwtAlgorithm::Rs512 => "RS512",
            JwtAlgorithm::Ps256 => "PS256",
            JwtAlgorithm::Es256 => "ES256",
            JwtAlgorithm::Es384 => "ES384",
            JwtAlgorithm::EdDsa => "EdDSA",
        }
    }

    pub fn parse(name: &str) -> Option<JwtAlgorithm> {
        JwtAlgorithm::ALL
            .into_iter()
            .find(|alg| alg.as_str() == name)
    }
}

/// The optional signed bundle `{jwks, policies, actor allowlist}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleConfig {
    pub source: BundleSource,
    /// The raw 32-byte Ed25519 public key the bundle must be signed with.
    pub public_key: [u8; 32],
    pub sync_interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleSource {
    Url(String),
    File(PathBuf),
    /// `{root}/_system/auth/bundle.json`, where a control plane publishes it (`"root"`).
    Root,
}

/// Where a bundle published to the storage root lives, relative to the root.
pub const ROOT_BUNDLE_PATH: &str = "_system/auth/bundle.json";
