//! Authentication: resolving a presented bearer token to `{actor, tenant, source}`.
//!
//! The [`TokenVerifier`] is the seam. In `static` mode it checks hashed tokens; in `oidc`
//! mode it verifies a JWT against cached JWKS; in `hybrid` mode it tries a static token
//! first, then a JWT. Nothing on this path performs I/O: keys are refreshed and bundles
//! synced by background tasks ([`AuthTasks`]). A refusal is a 401 whose message names the
//! failed check and never echoes the token. The tenant comes from the token only.

mod bound;
pub mod bundle;
pub mod bundle_tenants;
mod jwks;
mod metrics;
mod oidc;
mod refresh;
pub mod signing;
mod static_tokens;

use std::sync::Arc;

use omnigraph_cloud_config::{AuthConfig, AuthMode, ConfigError, TenantId};
use prometheus_client::registry::Registry;

use crate::error::ApiError;
use crate::policy::PolicyStore;

pub use crate::principal::{IdentitySource, Principal};
pub use refresh::{AuthTasks, fetch_client, read_bundle};
pub use static_tokens::sha256_hex;

pub(crate) use metrics::AuthMetrics;
use oidc::OidcVerifier;
use static_tokens::StaticTokens;

/// Why a credential was refused: a metric label from a small fixed set, and the message.
#[derive(Debug)]
pub(crate) struct Rejection {
    pub(crate) reason: &'static str,
    pub(crate) message: String,
}

impl Rejection {
    pub(crate) fn new(reason: &'static str, message: impl Into<String>) -> Rejection {
        Rejection {
            reason,
            message: message.into(),
        }
    }
}

/// Verifies bearer tokens. Cheap to share; every method is synchronous and I/O-free.
pub struct TokenVerifier {
    mode: AuthMode,
    static_tokens: StaticTokens,
    /// Tenants' tokens and states from the signed bundle in force.
    bundle_tenants: arc_swap::ArcSwap<bundle_tenants::CompiledTenants>,
    oidc: Option<OidcVerifier>,
    /// How far `exp` and `nbf` may be off, for tenants' own issuers too.
    clock_skew: std::time::Duration,
    metrics: AuthMetrics,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Builds the verifier from config: reads `auth.tokens_file`, and loads every issuer's
    /// `jwks_file` (a file that cannot be read or parsed at start is a configuration error).
    /// URLs and bundles are loaded by [`AuthTasks::start`], never here.
    pub fn from_config(
        auth: &AuthConfig,
        metrics: &mut Registry,
    ) -> Result<TokenVerifier, ConfigError> {
        let static_tokens = if auth.mode.uses_static() {
            StaticTokens::from_config(auth)?
        } else {
            StaticTokens::default()
        };
        let oidc = auth
            .mode
            .uses_oidc()
            .then(|| OidcVerifier::new(&auth.oidc, auth.clock_skew, auth.jwks_stale_max));
        if let Some(oidc) = &oidc {
            for (index, issuer) in auth.oidc.iter().enumerate() {
                if let Some(path) = &issuer.jwks_file {
                    let keys = refresh::read_jwks_file(path).map_err(|err| {
                        ConfigError::invalid(
                            &format!("auth.oidc[{index}].jwks_file"),
                            &path.display().to_string(),
                            &format!("a readable JWKS file ({err})"),
                        )
                    })?;
                    oidc.keys
                        .replace(&issuer.issuer, jwks::KeySource::File, keys);
                }
            }
        }
        Ok(TokenVerifier {
            mode: auth.mode,
            static_tokens,
            bundle_tenants: arc_swap::ArcSwap::default(),
            oidc,
            clock_skew: auth.clock_skew,
            metrics: AuthMetrics::register(metrics),
        })
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Resolves the `Authorization` header value (if any) to a principal.
    pub fn verify(&self, authorization: Option<&str>) -> Result<Principal, ApiError> {
        let principal = self.verify_inner(authorization).map_err(|rejection| {
            self.metrics.rejected(rejection.reason);
            ApiError::unauthorized(rejection.message)
        })?;
        if self
            .bundle_tenants
            .load()
            .suspended
            .contains(&principal.tenant)
        {
            self.metrics.rejected("suspended");
            return Err(ApiError::forbidden(format!(
                "tenant '{}' is suspended",
                principal.tenant
            )));
        }
        Ok(principal)
    }

    /// Swaps in the tenants of a signed bundle (their tokens and states).
    pub(crate) fn install_tenants(&self, tenants: bundle_tenants::CompiledTenants) {
        self.bundle_tenants.store(std::sync::Arc::new(tenants));
    }

    fn verify_inner(&self, authorization: Option<&str>) -> Result<Principal, Rejection> {
        if self.mode == AuthMode::None {
            return Ok(Principal {
                actor: None,
                tenant: TenantId::default_tenant(),
                groups: Vec::new(),
                source: IdentitySource::Anonymous,
            });
        }
        let token = authorization
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| Rejection::new("missing", "missing bearer token"))?;
        if self.mode.uses_static() {
            let bundle = self.bundle_tenants.load();
            if let Some(principal) = self
                .static_tokens
                .verify(token)
                .or_else(|| bundle.tokens.verify(token))
            {
                return Ok(principal);
            }
        }
        // A tenant's own issuer, bound by the bundle in force, in any mode that takes tokens.
        if OidcVerifier::looks_like_jwt(token)
            && let Some(issuer) = bound::issuer_of(token)
            && let Some(bound) = self.bundle_tenants.load().issuers.get(&issuer).cloned()
        {
            return bound.verify(token, self.clock_skew);
        }
        match &self.oidc {
            Some(oidc) if OidcVerifier::looks_like_jwt(token) => oidc.verify(token),
            Some(_) if self.mode == AuthMode::Oidc => {
                Err(Rejection::new("malformed", "invalid token: not a JWT"))
            }
            _ => Err(Rejection::new("invalid", "invalid bearer token")),
        }
    }

    pub(crate) fn oidc(&self) -> Option<&OidcVerifier> {
        self.oidc.as_ref()
    }

    pub(crate) fn metrics(&self) -> &AuthMetrics {
        &self.metrics
    }
}

/// Everything auth-related a node runs: the verifier, the policy store and the background
/// tasks that keep their keys, policies and allowlists fresh.
pub struct Auth {
    pub verifier: Arc<TokenVerifier>,
    pub policy: Arc<PolicyStore>,
    pub tasks: AuthTasks,
}

impl Auth {
    /// Builds the verifier and policy store from config and starts their background tasks.
    /// `limits`: the tenant limits a signed bundle may set (`None` where nothing admits).
    /// `root`: the storage root, for a bundle published there.
    pub async fn start(
        config: &AuthConfig,
        metrics: &mut Registry,
        limits: Option<Arc<crate::limits::LiveLimits>>,
        root: Option<omnigraph_cloud_actors::GraphStore>,
    ) -> Result<Auth, ConfigError> {
        let verifier = Arc::new(TokenVerifier::from_config(config, metrics)?);
        let policy = Arc::new(PolicyStore::load(
            config.policy_dir.as_deref(),
            config.mode != AuthMode::None,
            Some(verifier.metrics().policy().clone()),
        )?);
        let tasks =
            AuthTasks::start(config, verifier.clone(), policy.clone(), limits, root).await?;
        Ok(Auth {
            verifier,
            policy,
            tasks,
        })
    }
}
