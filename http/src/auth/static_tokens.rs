//! Authentication: resolving a bearer token to an actor and the tenant it acts in.
//!
//! Static tokens are hashed with SHA-256 when loaded and the plaintext is dropped; a presented
//! token is hashed and compared with every entry in constant time, so neither the position of
//! a match nor a common prefix shows in the timing. The tenant comes from the token only.

//! Static bearer tokens. They are hashed with SHA-256 when loaded and the plaintext is
//! dropped. A presented token is hashed and looked up by its digest, then the match is
//! confirmed with a constant-time compare. The lookup's timing depends only on digest bytes,
//! which a caller cannot steer toward a stored digest without a SHA-256 preimage, so it tells
//! nothing about the tokens; and it stays O(1) however many tokens are configured.

use std::collections::HashMap;
use std::path::Path;

use omnigraph_cloud_config::{
    AuthConfig, ConfigError, StaticTokenConfig, TenantId, TokenEntry, TokenSecret,
    validate_token_entries,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{IdentitySource, Principal};

/// The node's static token set.
#[derive(Debug, Default)]
pub(crate) struct StaticTokens {
    entries: HashMap<[u8; 32], HashedToken>,
}

#[derive(Debug)]
pub(crate) struct HashedToken {
    pub(crate) digest: [u8; 32],
    pub(crate) actor: String,
    pub(crate) tenant: TenantId,
    pub(crate) groups: Vec<String>,
}

impl StaticTokens {
    /// Builds the set from config, reading `auth.tokens_file` if set. Duplicate tokens are
    /// refused: one token must mean one identity.
    pub(crate) fn from_config(auth: &AuthConfig) -> Result<StaticTokens, ConfigError> {
        let mut configured = auth.tokens.clone();
        if let Some(path) = &auth.tokens_file {
            configured.extend(read_tokens_file(path)?);
        }
        let mut entries: HashMap<[u8; 32], HashedToken> = HashMap::with_capacity(configured.len());
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
            if entries.contains_key(&digest) {
                return Err(ConfigError::invalid(
                    "auth.tokens",
                    &format!("<token of actor {}>", token.actor),
                    "each token to be unique",
                ));
            }
            entries.insert(
                digest,
                HashedToken {
                    digest,
                    actor: token.actor,
                    tenant: token.tenant,
                    groups: token.groups,
                },
            );
        }
        Ok(StaticTokens { entries })
    }

    /// A set of tokens already hashed (a bundle's); a digest listed twice is refused, naming
    /// its second actor.
    pub(crate) fn from_hashed(tokens: Vec<HashedToken>) -> Result<StaticTokens, String> {
        let mut entries = HashMap::with_capacity(tokens.len());
        for token in tokens {
            if entries.contains_key(&token.digest) {
                return Err(token.actor);
            }
            entries.insert(token.digest, token);
        }
        Ok(StaticTokens { entries })
    }

    /// The identity `token` grants, if it is one of ours.
    pub(crate) fn verify(&self, token: &str) -> Option<Principal> {
        let presented = sha256(token.as_bytes());
        let entry = self
            .entries
            .get(&presented)
            .filter(|entry| bool::from(entry.digest.ct_eq(&presented)))?;
        Some(Principal {
            actor: Some(entry.actor.clone()),
            tenant: entry.tenant.clone(),
            groups: entry.groups.clone(),
            source: IdentitySource::Static,
        })
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

/// The lowercase hex SHA-256 of a token: what `token_sha256` takes, so config files need
/// not hold secrets (`omnigraph-cloud auth hash-token`).
pub fn sha256_hex(token: &str) -> String {
    hex::encode(sha256(token.trim().as_bytes()))
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnigraph_cloud_config::AuthMode;

    fn tokens(tokens_json: &str) -> Result<StaticTokens, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        std::fs::write(&path, tokens_json).unwrap();
        let mut config = omnigraph_cloud_config::NodeConfig::default_config().auth;
        config.mode = AuthMode::Static;
        config.tokens_file = Some(path);
        StaticTokens::from_config(&config)
    }

    #[test]
    fn resolves_actor_and_tenant_from_the_token_only() {
        let hashed = hex::encode(sha256(b"t-bob"));
        let tokens = tokens(&format!(
            r#"[{{"token":"t-alice","actor":"alice","tenant":"acme","groups":["team"]}},
               {{"token_sha256":"{hashed}","actor":"bob","tenant":"globex"}}]"#
        ))
        .unwrap();
        let alice = tokens.verify("t-alice").unwrap();
        assert_eq!(alice.actor.as_deref(), Some("alice"));
        assert_eq!(alice.tenant.as_str(), "acme");
        assert_eq!(alice.groups, vec!["team".to_string()]);
        assert_eq!(tokens.verify("t-bob").unwrap().tenant.as_str(), "globex");
        assert!(tokens.verify("nope").is_none());
        assert!(tokens.verify("t-alic").is_none());
    }

    #[test]
    fn refuses_duplicate_tokens_and_bad_files() {
        let err = tokens(
            r#"[{"token":"x","actor":"a","tenant":"t"},{"token":"x","actor":"b","tenant":"t"}]"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unique"), "{err}");
        let err = tokens(r#"{"a":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("auth.tokens_file"), "{err}");
        let err = tokens(r#"[{"token":"x","actor":"a","tenant":"bad_tenant"}]"#).unwrap_err();
        assert!(err.to_string().contains("tenant"), "{err}");
    }
}
