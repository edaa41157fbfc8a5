//! OIDC JWT verification, entirely offline: the signature against the cached JWKS, then
//! `iss`, `aud`, `exp`/`nbf` (with a bounded clock skew), the actor, tenant and group claims
//! and the allowlists. Nothing here performs I/O; an unknown `kid` only nudges the
//! background refresher.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use omnigraph_cloud_config::{ActorId, JwtAlgorithm, OidcIssuerConfig, TenantId, TenantSource};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::Notify;

use super::jwks::{KeyCache, KeyFamily, LookupError, VerifyKey};
use super::{IdentitySource, Principal, Rejection};

pub(crate) struct OidcVerifier {
    issuers: HashMap<String, IssuerRules>,
    pub(crate) keys: Arc<KeyCache>,
    skew: Duration,
    /// The signed bundle's actor allowlist, when one is in force.
    pub(crate) bundle_allowlist: ArcSwapOption<HashSet<String>>,
}

pub(super) struct IssuerRules {
    pub(super) issuer: Arc<str>,
    pub(super) audiences: Vec<String>,
    pub(super) actor_claim: String,
    pub(super) tenant: TenantSource,
    pub(super) groups_claim: Option<String>,
    pub(super) algorithms: Vec<JwtAlgorithm>,
    pub(super) allowed_actors: Option<HashSet<String>>,
    /// Wakes the issuer's refresher early, e.g. on an unknown `kid`.
    pub(crate) nudge: Arc<Notify>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
}

impl OidcVerifier {
    pub(crate) fn new(
        issuers: &[OidcIssuerConfig],
        skew: Duration,
        stale_max: Duration,
    ) -> OidcVerifier {
        let keys = Arc::new(KeyCache::new(
            issuers.iter().map(|issuer| issuer.issuer.as_str()),
            stale_max,
        ));
        OidcVerifier {
            issuers: issuers
                .iter()
                .map(|config| {
                    (
                        config.issuer.clone(),
                        IssuerRules {
                            issuer: Arc::from(config.issuer.as_str()),
                            audiences: config.audiences.clone(),
                            actor_claim: config.actor_claim.clone(),
                            tenant: config.tenant.clone(),
                            groups_claim: config.groups_claim.clone(),
                            algorithms: config.algorithms.clone(),
                            allowed_actors: config
                                .allowed_actors
                                .as_ref()
                                .map(|actors| actors.iter().cloned().collect()),
                            nudge: Arc::new(Notify::new()),
                        },
                    )
                })
                .collect(),
            keys,
            skew,
            bundle_allowlist: ArcSwapOption::empty(),
        }
    }

    pub(crate) fn nudge(&self, issuer: &str) -> Option<Arc<Notify>> {
        self.issuers.get(issuer).map(|rules| rules.nudge.clone())
    }

    /// Whether `token` has the shape of a compact JWS (three base64url segments).
    pub(crate) fn looks_like_jwt(token: &str) -> bool {
        let mut parts = token.split('.');
        let shaped = parts.by_ref().take(3).all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        shaped && token.matches('.').count() == 2
    }

    pub(crate) fn verify(&self, token: &str) -> Result<Principal, Rejection> {
        verify_with(self, token, self.skew)
    }

    fn lookup_rejection(&self, rules: &IssuerRules, err: LookupError) -> Rejection {
        match err {
            LookupError::NoKeys => Rejection::new(
                "no_keys",
                format!(
                    "invalid token: no signing keys are loaded for issuer '{}' yet",
                    rules.issuer
                ),
            ),
            LookupError::UnknownKid(kid) => {
                rules.nudge.notify_one();
                Rejection::new(
                    "unknown_kid",
                    format!(
                        "invalid token: unknown signing key id '{}' for issuer '{}'",
                        clip(&kid),
                        rules.issuer
                    ),
                )
            }
            LookupError::NoKid(count) => Rejection::new(
                "unknown_kid",
                format!(
                    "invalid token: no kid in the header, and issuer '{}' has {count} keys",
                    rules.issuer
                ),
            ),
            LookupError::Stale { source, age } => Rejection::new(
                "stale_keys",
                format!(
                    "token refused: the signing keys of issuer '{}' are stale (its {} source last \
                     refreshed {} ago, past auth.jwks_stale_max = {}); the node keeps failing to \
                     refresh them",
                    rules.issuer,
                    source.as_str(),
                    humantime::format_duration(Duration::from_secs(age.as_secs())),
                    humantime::format_duration(self.keys.stale_max()),
                ),
            ),
        }
    }
}

/// What a verification needs of the issuers it trusts.
pub(super) trait Trusted {
    fn rules(&self, issuer: &str) -> Option<&IssuerRules>;
    fn key(&self, rules: &IssuerRules, kid: Option<&str>) -> Result<Arc<VerifyKey>, Rejection>;
    /// Actors accepted from any issuer, when restricted.
    fn allowlist(&self) -> Option<Arc<HashSet<String>>>;
}

impl Trusted for OidcVerifier {
    fn rules(&self, issuer: &str) -> Option<&IssuerRules> {
        self.issuers.get(issuer)
    }

    fn key(&self, rules: &IssuerRules, kid: Option<&str>) -> Result<Arc<VerifyKey>, Rejection> {
        self.keys
            .lookup(&rules.issuer, kid)
            .map_err(|err| self.lookup_rejection(rules, err))
    }

    fn allowlist(&self) -> Option<Arc<HashSet<String>>> {
        self.bundle_allowlist.load_full()
    }
}

/// Verifies `token` against the issuers `trusted` knows: the signature, then the claims.
pub(super) fn verify_with(
    trusted: &impl Trusted,
    token: &str,
    skew: Duration,
) -> Result<Principal, Rejection> {
    // Each segment is decoded once: the claims parsed here are the ones checked below,
    // after the signature over `header.payload` has been verified.
    let Some((signing_input, signature)) = token.rsplit_once('.') else {
        return Err(Rejection::new("malformed", "invalid token: not a JWT"));
    };
    let Some((header, payload)) = signing_input.split_once('.') else {
        return Err(Rejection::new("malformed", "invalid token: not a JWT"));
    };
    let header: RawHeader = decode_segment(header).ok_or_else(|| {
        Rejection::new(
            "malformed",
            "invalid token: the JWT header is not base64url JSON",
        )
    })?;
    let alg = header
        .alg
        .ok_or_else(|| Rejection::new("algorithm", "invalid token: the JWT header has no alg"))?;
    if alg.eq_ignore_ascii_case("none") {
        return Err(Rejection::new(
            "algorithm",
            "invalid token: unsigned tokens (alg 'none') are never accepted",
        ));
    }
    if alg.starts_with("HS") {
        return Err(Rejection::new(
            "algorithm",
            format!(
                "invalid token: symmetric algorithm '{}' is never accepted",
                clip(&alg)
            ),
        ));
    }
    let algorithm = JwtAlgorithm::parse(&alg).ok_or_else(|| {
        Rejection::new(
            "algorithm",
            format!("invalid token: unsupported algorithm '{}'", clip(&alg)),
        )
    })?;
    let claims: Map<String, Value> = decode_segment(payload).ok_or_else(|| {
        Rejection::new(
            "malformed",
            "invalid token: the JWT payload is not base64url JSON",
        )
    })?;
    let issuer = match claims.get("iss") {
        Some(Value::String(iss)) => iss,
        _ => return Err(Rejection::new("issuer", "invalid token: missing iss claim")),
    };
    let rules = trusted.rules(issuer).ok_or_else(|| {
        Rejection::new(
            "issuer",
            format!("invalid token: untrusted issuer '{}'", clip(issuer)),
        )
    })?;
    if !rules.algorithms.contains(&algorithm) {
        return Err(Rejection::new(
            "algorithm",
            format!(
                "invalid token: algorithm '{}' is not allowed for issuer '{}'",
                algorithm.as_str(),
                rules.issuer
            ),
        ));
    }
    let key = trusted.key(rules, header.kid.as_deref())?;
    let family_matches = matches!(
        (algorithm, key.family),
        (
            JwtAlgorithm::Rs256 | JwtAlgorithm::Rs384 | JwtAlgorithm::Rs512 | JwtAlgorithm::Ps256,
            KeyFamily::Rsa
        ) | (JwtAlgorithm::Es256 | JwtAlgorithm::Es384, KeyFamily::Ec)
            | (JwtAlgorithm::EdDsa, KeyFamily::Okp)
    );
    if !family_matches
        || key
            .alg
            .as_deref()
            .is_some_and(|own| own != algorithm.as_str())
    {
        return Err(Rejection::new(
            "algorithm",
            format!(
                "invalid token: algorithm '{}' does not match the signing key",
                algorithm.as_str()
            ),
        ));
    }
    let verified = jsonwebtoken::crypto::verify(
        signature,
        signing_input.as_bytes(),
        &key.key,
        jwt_algorithm(algorithm),
    )
    .map_err(|_| Rejection::new("malformed", "invalid token: malformed JWT"))?;
    if !verified {
        return Err(Rejection::new(
            "signature",
            "invalid token: signature verification failed",
        ));
    }
    check_time_and_audience(rules, &claims, skew)?;

    let actor = match claims.get(&rules.actor_claim) {
        Some(Value::String(actor)) => match ActorId::new(actor) {
            Ok(actor) => actor.as_str().to_string(),
            Err(err) => {
                return Err(Rejection::new(
                    "claims",
                    format!("invalid token: actor claim '{}': {err}", rules.actor_claim),
                ));
            }
        },
        _ => {
            return Err(Rejection::new(
                "claims",
                format!("invalid token: missing actor claim '{}'", rules.actor_claim),
            ));
        }
    };
    let allowed = rules
        .allowed_actors
        .as_ref()
        .is_none_or(|allowed| allowed.contains(&actor))
        && trusted
            .allowlist()
            .is_none_or(|allowed| allowed.contains(&actor));
    if !allowed {
        return Err(Rejection::new(
            "allowlist",
            format!("actor '{}' is not in the allowlist", clip(&actor)),
        ));
    }
    let tenant = match &rules.tenant {
        TenantSource::Fixed(tenant) => tenant.clone(),
        TenantSource::Claim(claim) => match claims.get(claim) {
            Some(Value::String(value)) => TenantId::new(value).map_err(|_| {
                Rejection::new(
                    "claims",
                    format!("invalid token: tenant claim '{claim}' is not a valid tenant id"),
                )
            })?,
            _ => {
                return Err(Rejection::new(
                    "claims",
                    format!("invalid token: missing tenant claim '{claim}'"),
                ));
            }
        },
    };
    let groups = match rules
        .groups_claim
        .as_ref()
        .and_then(|claim| claims.get(claim))
    {
        Some(Value::String(group)) => vec![group.clone()],
        Some(Value::Array(groups)) => groups
            .iter()
            .filter_map(|group| group.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    Ok(Principal {
        actor: Some(actor),
        tenant,
        groups,
        source: IdentitySource::Oidc {
            issuer: rules.issuer.clone(),
        },
    })
}

/// `exp` (required) and `nbf` within the clock skew; `aud` (required) naming one of ours.
fn check_time_and_audience(
    rules: &IssuerRules,
    claims: &Map<String, Value>,
    skew: Duration,
) -> Result<(), Rejection> {
    let now = jsonwebtoken::get_current_timestamp() as f64;
    let skew = skew.as_secs_f64();
    let time = |name: &str| match claims.get(name) {
        None => Ok(None),
        Some(value) => value.as_f64().map(Some).ok_or_else(|| {
            Rejection::new("claims", format!("invalid token: malformed {name} claim"))
        }),
    };
    match time("exp")? {
        None => return Err(Rejection::new("claims", "invalid token: missing exp claim")),
        Some(exp) if exp + skew < now => {
            return Err(Rejection::new("expired", "invalid token: expired"));
        }
        Some(_) => {}
    }
    if time("nbf")?.is_some_and(|nbf| nbf - skew > now) {
        return Err(Rejection::new(
            "not_yet_valid",
            "invalid token: not yet valid (nbf)",
        ));
    }
    let ours = |aud: &Value| {
        aud.as_str()
            .is_some_and(|aud| rules.audiences.iter().any(|ours| ours == aud))
    };
    match claims.get("aud") {
        None => Err(Rejection::new("claims", "invalid token: missing aud claim")),
        Some(Value::Array(auds)) if auds.iter().any(ours) => Ok(()),
        Some(aud) if ours(aud) => Ok(()),
        Some(_) => Err(Rejection::new(
            "audience",
            format!(
                "invalid token: audience does not match (expected one of: {})",
                rules.audiences.join(", ")
            ),
        )),
    }
}

pub(super) fn decode_segment<T: for<'de> Deserialize<'de>>(segment: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn jwt_algorithm(algorithm: JwtAlgorithm) -> Algorithm {
    match algorithm {
        JwtAlgorithm::Rs256 => Algorithm::RS256,
        JwtAlgorithm::Rs384 => Algorithm::RS384,
        JwtAlgorithm::Rs512 => Algorithm::RS512,
        JwtAlgorithm::Ps256 => Algorithm::PS256,
        JwtAlgorithm::Es256 => Algorithm::ES256,
        JwtAlgorithm::Es384 => Algorithm::ES384,
        JwtAlgorithm::EdDsa => Algorithm::EdDSA,
    }
}

/// Caps untrusted strings quoted back in error messages.
pub(super) fn clip(value: &str) -> String {
    const MAX: usize = 80;
    if value.chars().count() <= MAX {
        value.to_string()
    } else {
        format!("{}…", value.chars().take(MAX).collect::<String>())
    }
}
