//! Authentication: resolving a bearer token to an actor and the tenant it acts in.
//!
//! Static tokens are hashed with SHA-256 when loaded and the plaintext is dropped; a presented
//! token is hashed and compared with every entry in constant time, so neither the position of
//! a match nor a common prefix shows in the timing. The tenant comes from the token only.

use std::path::Path;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use omnigraph_cloud_config::{
    AuthConfig, AuthMode, ConfigError, StaticTokenConfig, TenantId, TokenEntry, TokenSecret,
    validate_token_entries,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

/// Who is calling: the authenticated actor (none when authentication is off) and its tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub actor: Option<String>,
    pub tenant: TenantId,
}

/// Verifies bearer tokens against the node's static token set.
#[derive(Debug)]
pub struct TokenVerifier {
    mode: AuthMode,
    entries: Vec<HashedToken>,
}

#[derive(Debug)]
struct HashedToken {
    digest: [u8; 32],
    actor: String,
    tenant: TenantId,
}

impl TokenVerifier {
    /// Builds the verifier from config, reading `auth.tokens_file` if set. Duplicate tokens
    /// are refused: one token must mean one identity.
    pub fn from_config(auth: &AuthConfig) -> Result<TokenVerifier, ConfigError> {
        let mut configured = auth.tokens.clone();
        if let Some(path) = &auth.tokens_file {
            configured.extend(read_tokens_file(path)?);
        }
        let mut entries: Vec<HashedToken> = Vec::with_capacity(configured.len());
        for token in configured {
            let digest = match &token.secret {
                TokenSecret::Plain(plain) => sha256(plain.as_bytes()),
                TokenSecret::Sha256Hex(hex_digest) => {
                    let mut digest = [0u8; 32];
                    hex::decode_to_slice(hex_digest, &mut digest).map_err(|_| {
                        ConfigError::invalid("auth.tokens", hex_digest, "64 hex digits")
                    })?;
                    digest
                }
            };
            if entries.iter().any(|existing| existing.digest == digest) {
                return Err(ConfigError::invalid(
                    "auth.tokens",
                    &format!("<token of actor {}>", token.actor),
                    "each token to be unique",
                ));
            }
            entries.push(HashedToken {
                digest,
                actor: token.actor,
                tenant: token.tenant,
            });
        }
        Ok(TokenVerifier {
            mode: auth.mode,
            entries,
        })
    }

    /// A verifier that authenticates nobody and lets everyone act in tenant `default`.
    pub fn open() -> TokenVerifier {
        TokenVerifier {
            mode: AuthMode::None,
            entries: Vec::new(),
        }
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Resolves the `Authorization` header value (if any) to a principal.
    pub fn verify(&self, authorization: Option<&str>) -> Result<Principal, ApiError> {
        if self.mode == AuthMode::None {
            return Ok(Principal {
                actor: None,
                tenant: TenantId::default_tenant(),
            });
        }
        let token = authorization
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
        let presented = sha256(token.as_bytes());
        let mut found: Option<&HashedToken> = None;
        for entry in &self.entries {
            // Every entry is compared; the branch below does not depend on secret bytes.
            if bool::from(entry.digest.ct_eq(&presented)) {
                found = Some(entry);
            }
        }
        let entry = found.ok_or_else(|| ApiError::unauthorized("invalid bearer token"))?;
        Ok(Principal {
            actor: Some(entry.actor.clone()),
            tenant: entry.tenant.clone(),
        })
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Principal, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .map(|value| {
                value
                    .to_str()
                    .map_err(|_| ApiError::unauthorized("invalid bearer token"))
            })
            .transpose()?;
        state.auth.verify(header)
    }
}

fn read_tokens_file(path: &Path) -> Result<Vec<StaticTokenConfig>, ConfigError> {
    let key = "auth.tokens_file";
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|err| ConfigError::invalid(key, &shown, &format!("a readable file ({err})")))?;
    let entries: Vec<TokenEntry> = serde_json::from_str(&text).map_err(|err| {
        ConfigError::invalid(
            key,
            &shown,
            &format!("a JSON array of {{\"token\",\"actor\",\"tenant\"}} objects ({err})"),
        )
    })?;
    validate_token_entries(&format!("{key} {shown}"), entries)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(tokens_json: &str) -> Result<TokenVerifier, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        std::fs::write(&path, tokens_json).unwrap();
        TokenVerifier::from_config(&AuthConfig {
            mode: AuthMode::Static,
            tokens: Vec::new(),
            tokens_file: Some(path),
        })
    }

    #[test]
    fn resolves_actor_and_tenant_from_the_token_only() {
        let hashed = hex::encode(sha256(b"t-bob"));
        let verifier = verifier(&format!(
            r#"[{{"token":"t-alice","actor":"alice","tenant":"acme"}},
               {{"token_sha256":"{hashed}","actor":"bob","tenant":"globex"}}]"#
        ))
        .unwrap();
        let alice = verifier.verify(Some("Bearer t-alice")).unwrap();
        assert_eq!(alice.actor.as_deref(), Some("alice"));
        assert_eq!(alice.tenant.as_str(), "acme");
        assert_eq!(
            verifier
                .verify(Some("Bearer t-bob"))
                .unwrap()
                .tenant
                .as_str(),
            "globex"
        );
        assert_eq!(verifier.verify(None).unwrap_err().status(), 401);
        assert_eq!(
            verifier.verify(Some("Basic t-alice")).unwrap_err().status(),
            401
        );
        assert_eq!(
            verifier.verify(Some("Bearer nope")).unwrap_err().status(),
            401
        );
    }

    #[test]
    fn refuses_duplicate_tokens_and_bad_files() {
        let err = verifier(
            r#"[{"token":"x","actor":"a","tenant":"t"},{"token":"x","actor":"b","tenant":"t"}]"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unique"), "{err}");
        let err = verifier(r#"{"a":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("auth.tokens_file"), "{err}");
        let err = verifier(r#"[{"token":"x","actor":"a","tenant":"bad_tenant"}]"#).unwrap_err();
        assert!(err.to_string().contains("tenant"), "{err}");
    }
}
