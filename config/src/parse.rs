//! Parsers for single values as written in the configuration (durations, sizes, lists),
//! shared by every section. Each error names the key, the value and what is allowed.

use std::time::Duration;

use crate::ConfigError;

/// A duration such as `30s` or `10m`; zero is refused when `must_be_positive`.
pub(crate) fn duration(
    key: &str,
    value: &str,
    must_be_positive: bool,
) -> Result<Duration, ConfigError> {
    let parsed = humantime::parse_duration(value).map_err(|_| {
        ConfigError::invalid(key, value, "a duration such as \"30s\", \"10m\" or \"1h\"")
    })?;
    if must_be_positive && parsed.is_zero() {
        return Err(ConfigError::invalid(
            key,
            value,
            "a duration greater than zero",
        ));
    }
    Ok(parsed)
}

/// A byte count: positive and addressable.
pub(crate) fn positive_size(key: &str, value: u64) -> Result<usize, ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(
            key,
            &value.to_string(),
            "a positive number of bytes",
        ));
    }
    usize::try_from(value).map_err(|_| {
        ConfigError::invalid(
            key,
            &value.to_string(),
            "a number of bytes that fits in memory",
        )
    })
}

/// Every entry trimmed; a blank entry is refused.
pub(crate) fn non_blank_list(key: &str, values: Vec<String>) -> Result<Vec<String>, ConfigError> {
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
