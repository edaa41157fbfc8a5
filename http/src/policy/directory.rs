//! Loading `auth.policy_dir`: one policy file per tenant, compiled at start.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use omnigraph_cloud_config::{ConfigError, TenantId};

use super::tenant_policy::{DEFAULT_POLICY, PolicyText, TenantPolicy};

/// Reads `<tenant>.cedar` / `<tenant>.yaml` (or `.yml`) files; `_default.*` applies to
/// tenants without their own. Any unreadable, unparsable or ambiguous file is an error.
pub(super) fn load_dir(dir: &Path) -> Result<HashMap<String, Arc<TenantPolicy>>, ConfigError> {
    let key = "auth.policy_dir";
    let shown = dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|err| {
        ConfigError::invalid(key, &shown, &format!("a readable directory ({err})"))
    })?;
    let mut texts: HashMap<String, (PolicyText, String)> = HashMap::new();
    for entry in entries {
        let path = entry
            .map_err(|err| {
                ConfigError::invalid(key, &shown, &format!("a readable directory ({err})"))
            })?
            .path();
        let (Some(stem), Some(extension)) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        let file = path.display().to_string();
        let read = || {
            std::fs::read_to_string(&path).map_err(|err| {
                ConfigError::invalid(key, &file, &format!("a readable file ({err})"))
            })
        };
        let text = match extension {
            "cedar" => PolicyText::Cedar(read()?),
            "yaml" | "yml" => PolicyText::Yaml(read()?),
            _ => continue,
        };
        if stem != DEFAULT_POLICY && TenantId::new(stem).is_err() {
            return Err(ConfigError::invalid(
                key,
                &file,
                "policy files named <tenant>.cedar, <tenant>.yaml or _default.*",
            ));
        }
        if let Some((_, other)) = texts.insert(stem.to_string(), (text, file.clone())) {
            return Err(ConfigError::invalid(
                key,
                &file,
                &format!("one policy file per tenant ({other} is the same tenant)"),
            ));
        }
    }
    texts
        .into_iter()
        .map(|(tenant, (text, file))| {
            TenantPolicy::compile(&text, file.clone())
                .map(|policy| (tenant, Arc::new(policy)))
                .map_err(|err| ConfigError::invalid(key, &file, &format!("a valid policy: {err}")))
        })
        .collect()
}
