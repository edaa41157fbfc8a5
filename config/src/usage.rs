//! `[usage]`: metering of what each tenant uses, written as records under the root
//! (docs/control-plane.md#usage-records).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::parse::duration;

#[derive(Debug, Clone, PartialEq)]
pub struct UsageConfig {
    /// Whether the node meters usage and writes records. Default true.
    pub enabled: bool,
    /// How often the node writes a record of what it counted (and at shutdown). Default 60s.
    pub flush_interval: Duration,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsageSection {
    pub enabled: bool,
    pub flush_interval: String,
}

impl Default for UsageSection {
    fn default() -> Self {
        UsageSection {
            enabled: true,
            flush_interval: "60s".into(),
        }
    }
}

pub(crate) fn validate_usage(section: UsageSection) -> Result<UsageConfig, ConfigError> {
    let flush_interval = duration("usage.flush_interval", &section.flush_interval, true)?;
    if flush_interval < Duration::from_secs(1) {
        return Err(ConfigError::invalid(
            "usage.flush_interval",
            &section.flush_interval,
            "at least 1s (usage is counted by the second)",
        ));
    }
    Ok(UsageConfig {
        enabled: section.enabled,
        flush_interval,
    })
}
