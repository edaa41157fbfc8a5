//! Turning the raw `[auth]` section into [`AuthConfig`]: the mode (given or inferred), OIDC
//! issuers, the signed bundle and the JWKS timings. Every error names the key.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::raw::{AuthSection, BundleSection, OidcSection};
use super::tokens::validate_token_entries;
use super::{
    AuthConfig, AuthMode, BundleConfig, BundleSource, JwtAlgorithm, OidcIssuerConfig, TenantSource,
};
use crate::parse::{duration, non_blank_list};
use crate::{ConfigError, TenantId};

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
        // A bundle may carry tenants' tokens (by hash), published by a control plane.
        Some("static") if !has_static && bundle.is_none() => {
            return need(
                "static",
                "at least one token in auth.tokens, an auth.tokens_file or an [auth.bundle]",
            );
        }
        Some("static") => AuthMode::Static,
        Some("oidc") if !has_oidc => return need("oidc", "at least one [[auth.oidc]] issuer"),
        Some("oidc") => AuthMode::Oidc,
        Some("hybrid") if !((has_static || bundle.is_some()) && has_oidc) => {
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
        None if bundle.is_some() => AuthMode::Static,
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
    } else if section.source.trim() == "root" {
        BundleSource::Root
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
