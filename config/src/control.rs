//! `[control]`: the control-plane role (`node.roles = ["control"]`): who may call its API and
//! the key it signs the bundle with (docs/control-plane.md).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlConfig {
    /// Operators' bearer tokens, by SHA-256 (64 hex digits a line; `#` starts a comment).
    /// Separate from every tenant token. Required with the control role.
    pub operator_tokens_file: Option<PathBuf>,
    /// The Ed25519 key (PKCS#8 PEM, `omnigraph-cloud bundle keygen`) the published bundle is
    /// signed with; nodes check it with `auth.bundle.public_key`. Required with the role.
    pub bundle_key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlSection {
    pub operator_tokens_file: Option<String>,
    pub bundle_key_file: Option<String>,
}

pub(crate) fn validate_control(
    section: ControlSection,
    has_role: bool,
) -> Result<ControlConfig, ConfigError> {
    let config = ControlConfig {
        operator_tokens_file: section.operator_tokens_file.map(PathBuf::from),
        bundle_key_file: section.bundle_key_file.map(PathBuf::from),
    };
    if has_role {
        for (key, value) in [
            ("control.operator_tokens_file", &config.operator_tokens_file),
            ("control.bundle_key_file", &config.bundle_key_file),
        ] {
            if value.is_none() {
                return Err(ConfigError::invalid(
                    key,
                    "<unset>",
                    "a file, with node.roles including \"control\"",
                ));
            }
        }
    }
    Ok(config)
}
