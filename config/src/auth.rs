//! The `[auth]` section: how bearer tokens are verified (static, OIDC or both), where
//! per-tenant policies come from, and the optional signed bundle.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::file::{duration, is_sha256_hex};
use crate::{ConfigError, TenantId};

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
}

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

/// Validates token entries; `key` is the path used in error messages, e.g. `auth.tokens`.
pub fn validate_token_entries(
    key: &str,
    entries: Vec<TokenEntry>,
) -> Result<Vec<StaticTokenConfig>, ConfigError> {
    let mut tokens = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let at = |field: &str| format!("{key}[{index}].{field}");
        let secret = match (entry.token, entry.token_sha256) {
            (Some(token), None) if !token.trim().is_empty() => {
                TokenSecret::Plain(token.trim().to_string())
            }
            (None, Some(hex)) if is_sha256_hex(&hex) => {
                TokenSecret::Sha256Hex(hex.to_ascii_lowercase())
            }
            (None, Some(hex)) => {
                return Err(ConfigError::invalid(
                    &at("token_sha256"),
                    &hex,
                    "64 hex digits",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    &at("token"),
                    "<redacted>",
                    "exactly one of token or token_sha256, not both",
                ));
            }
            _ => {
                return Err(ConfigError::invalid(
                    &at("token"),
                    "",
                    "a non-blank token, or token_sha256",
                ));
            }
        };
        let actor = crate::ActorId::new(&entry.actor)
            .map_err(|_| ConfigError::invalid(&at("actor"), &entry.actor, crate::ACTOR_ID_RULE))?
            .as_str()
            .to_string();
        let tenant = TenantId::new(&entry.tenant)
            .map_err(|err| ConfigError::invalid(&at("tenant"), &entry.tenant, &err.to_string()))?;
        let groups = non_blank_list(&at("groups"), entry.groups)?;
        tokens.push(StaticTokenConfig {
            secret,
            actor,
            tenant,
            groups,
        });
    }
    Ok(tokens)
}

pub(crate) fn validate_auth(
    section: AuthSection,
    bind: SocketAddr,
) -> Result<AuthConfig, ConfigError> {
    let tokens = validate_token_entries("auth.tokens", section.tokens)?;
    let has_static = !tokens.is_empty() || section.tokens_file.is_some();
    let bundle = section.bundle.map(validate_bundle).transpose()?;
    let oidc = section
        .oidc
        .into_iter()
        .enumerate()
        .map(|(index, issuer)| validate_issuer(index, issuer, bundle.is_some()))
        .collect::<Result<Vec<_>, _>>()?;
    for (index, issuer) in oidc.iter().enumerate() {
        if oidc[..index]
            .iter()
            .any(|other| other.issuer == issuer.issuer)
        {
            return Err(ConfigError::invalid(
                &format!("auth.oidc[{index}].issuer"),
                &issuer.issuer,
                "each issuer to be listed once",
            ));
        }
    }
    let has_oidc = !oidc.is_empty();
    let need = |mode: &str, what: &str| {
        Err(ConfigError::invalid(
            "auth.mode",
            mode,
            &format!("{what} when mode is {mode}"),
        ))
    };
    let mode = match section.mode.as_deref() {
        Some("static") if !has_static => {
            return need(
                "static",
                "at least one token in auth.tokens or an auth.tokens_file",
            );
        }
        Some("static") => AuthMode::Static,
        Some("oidc") if !has_oidc => return need("oidc", "at least one [[auth.oidc]] issuer"),
        Some("oidc") => AuthMode::Oidc,
        Some("hybrid") if !(has_static && has_oidc) => {
            return need(
                "hybrid",
                "static tokens and at least one [[auth.oidc]] issuer",
            );
        }
        Some("hybrid") => AuthMode::Hybrid,
        Some("none") => AuthMode::None,
        Some(other) => {
            return Err(ConfigError::invalid(
                "auth.mode",
                other,
                "\"static\", \"oidc\", \"hybrid\" or \"none\"",
            ));
        }
        None if has_static && has_oidc => AuthMode::Hybrid,
        None if has_static => AuthMode::Static,
        None if has_oidc => AuthMode::Oidc,
        None if bind.ip().is_loopback() => AuthMode::None,
        None => {
            return Err(ConfigError::invalid(
                "auth.mode",
                "<unset>",
                "tokens (auth.tokens or auth.tokens_file) or [[auth.oidc]] issuers, or \
                 auth.mode = \"none\" to serve a non-loopback address without authentication",
            ));
        }
    };
    let jwks_cache_ttl = duration("auth.jwks_cache_ttl", &section.jwks_cache_ttl, true)?;
    let jwks_stale_max = duration("auth.jwks_stale_max", &section.jwks_stale_max, true)?;
    if jwks_stale_max < jwks_cache_ttl {
        return Err(ConfigError::invalid(
            "auth.jwks_stale_max",
            &section.jwks_stale_max,
            "a duration no shorter than auth.jwks_cache_ttl",
        ));
    }
    Ok(AuthConfig {
        mode,
        tokens,
        tokens_file: section.tokens_file,
        oidc,
        clock_skew: duration("auth.clock_skew", &section.clock_skew, false)?,
        jwks_cache_ttl,
        jwks_stale_max,
        policy_dir: section.policy_dir,
        bundle,
    })
}

fn validate_issuer(
    index: usize,
    section: OidcSection,
    has_bundle: bool,
) -> Result<OidcIssuerConfig, ConfigError> {
    let at = |field: &str| format!("auth.oidc[{index}].{field}");
    if section.issuer.trim().is_empty() {
        return Err(ConfigError::invalid(
            &at("issuer"),
            &section.issuer,
            "the issuer URL tokens carry in `iss`",
        ));
    }
    let audiences = non_blank_list(&at("audiences"), section.audiences)?;
    if audiences.is_empty() {
        return Err(ConfigError::invalid(
            &at("audiences"),
            "[]",
            "at least one audience (a token minted for another service must not be accepted)",
        ));
    }
    if let Some(url) = &section.jwks_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(ConfigError::invalid(
            &at("jwks_url"),
            url,
            "an http:// or https:// URL",
        ));
    }
    if section.jwks_url.is_none() && section.jwks_file.is_none() && !has_bundle {
        return Err(ConfigError::invalid(
            &at("jwks_url"),
            "<unset>",
            "a jwks_url, a jwks_file, or an [auth.bundle] carrying this issuer's keys",
        ));
    }
    let tenant = match (section.tenant_claim, section.tenant) {
        (Some(claim), None) if !claim.trim().is_empty() => TenantSource::Claim(claim),
        (None, Some(tenant)) => TenantSource::Fixed(
            TenantId::new(&tenant)
                .map_err(|err| ConfigError::invalid(&at("tenant"), &tenant, &err.to_string()))?,
        ),
        _ => {
            return Err(ConfigError::invalid(
                &at("tenant_claim"),
                "",
                "exactly one of tenant_claim (e.g. \"org_id\") or a fixed tenant",
            ));
        }
    };
    let algorithms = match section.algorithms {
        None => vec![
            JwtAlgorithm::Rs256,
            JwtAlgorithm::Es256,
            JwtAlgorithm::EdDsa,
        ],
        Some(names) if names.is_empty() => {
            return Err(ConfigError::invalid(
                &at("algorithms"),
                "[]",
                "at least one algorithm",
            ));
        }
        Some(names) => names
            .iter()
            .map(|name| {
                JwtAlgorithm::parse(name).ok_or_else(|| {
                    ConfigError::invalid(
                        &at("algorithms"),
                        name,
                        "one of RS256, RS384, RS512, PS256, ES256, ES384, EdDSA \
                         (symmetric HS* algorithms are never accepted)",
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let allowed_actors = section
        .allowed_actors
        .map(|actors| non_blank_list(&at("allowed_actors"), actors))
        .transpose()?;
    Ok(OidcIssuerConfig {
        issuer: section.issuer,
        audiences,
        jwks_url: section.jwks_url,
        jwks_file: section.jwks_file,
        actor_claim: section.actor_claim.unwrap_or_else(|| "sub".into()),
        tenant,
        groups_claim: section.groups_claim,
        algorithms,
        allowed_actors,
    })
}

fn validate_bundle(section: BundleSection) -> Result<BundleConfig, ConfigError> {
    use base64::Engine as _;
    let source = if section.source.starts_with("https://") || section.source.starts_with("http://")
    {
        BundleSource::Url(section.source)
    } else if section.source.trim().is_empty() {
        return Err(ConfigError::invalid(
            "auth.bundle.source",
            "",
            "a URL or a local path",
        ));
    } else {
        BundleSource::File(PathBuf::from(
            section
                .source
                .strip_prefix("file://")
                .unwrap_or(&section.source),
        ))
    };
    let public_key = base64::engine::general_purpose::STANDARD
        .decode(section.public_key.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| {
            ConfigError::invalid(
                "auth.bundle.public_key",
                &section.public_key,
                "base64 of a 32-byte Ed25519 public key (`omnigraph-cloud bundle keygen`)",
            )
        })?;
    Ok(BundleConfig {
        source,
        public_key,
        sync_interval: duration("auth.bundle.sync_interval", &section.sync_interval, true)?,
    })
}

fn non_blank_list(key: &str, values: Vec<String>) -> Result<Vec<String>, ConfigError> {
    values
        .into_iter()
        .map(|value| {
            let trimmed = value.trim();
            if trimmed.is_empty() {
                Err(ConfigError::invalid(key, &value, "non-blank entries"))
            } else {
                Ok(trimmed.to_string())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::{AuthMode, NodeConfig, TenantSource};

    fn load(toml: &str) -> Result<NodeConfig, String> {
        NodeConfig::load(Some(toml), std::iter::empty()).map_err(|err| err.to_string())
    }

    const ISSUER: &str = "[[auth.oidc]]\nissuer = \"https://idp\"\naudiences = [\"og\"]\n\
                          jwks_file = \"k.json\"\ntenant_claim = \"org_id\"\n";
    const TOKEN: &str = "[[auth.tokens]]\ntoken = \"t\"\nactor = \"a\"\ntenant = \"acme\"\n";

    #[test]
    fn the_mode_follows_what_is_configured() {
        assert_eq!(load(TOKEN).unwrap().auth.mode, AuthMode::Static);
        assert_eq!(load(ISSUER).unwrap().auth.mode, AuthMode::Oidc);
        let both = load(&format!("{TOKEN}{ISSUER}")).unwrap().auth;
        assert_eq!(both.mode, AuthMode::Hybrid);
        assert_eq!(both.oidc[0].tenant, TenantSource::Claim("org_id".into()));
        let err = load(&format!("auth.mode = \"hybrid\"\n{TOKEN}")).unwrap_err();
        assert!(err.contains("static tokens and at least one"), "{err}");
    }

    #[test]
    fn issuers_and_bundles_are_checked() {
        for (toml, needle) in [
            (
                ISSUER.replace("audiences = [\"og\"]", "audiences = []"),
                "at least one audience",
            ),
            (
                ISSUER.replace("tenant_claim = \"org_id\"", ""),
                "exactly one of tenant_claim",
            ),
            (
                ISSUER.replace(
                    "jwks_file = \"k.json\"",
                    "jwks_file = \"k.json\"\nalgorithms = [\"HS256\"]",
                ),
                "symmetric HS* algorithms are never accepted",
            ),
            (
                ISSUER.replace("jwks_file = \"k.json\"", ""),
                "a jwks_url, a jwks_file",
            ),
            (format!("{ISSUER}{ISSUER}"), "each issuer to be listed once"),
            (
                format!("{ISSUER}[auth.bundle]\nsource = \"b.json\"\npublic_key = \"short\"\n"),
                "auth.bundle.public_key",
            ),
            (
                format!("auth.jwks_cache_ttl = \"1h\"\nauth.jwks_stale_max = \"1m\"\n{ISSUER}"),
                "no shorter than auth.jwks_cache_ttl",
            ),
        ] {
            let err = load(&toml).unwrap_err();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }
}
