//! Static bearer tokens: checking token entries, from `[[auth.tokens]]` or a tokens file,
//! into [`StaticTokenConfig`]s.

use super::raw::TokenEntry;
use super::{StaticTokenConfig, TokenSecret};
use crate::parse::non_blank_list;
use crate::{ConfigError, TenantId};

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

fn is_sha256_hex(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}
