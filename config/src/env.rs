//! `OMNIGRAPH_CLOUD_<SECTION>__<KEY>` environment overrides.
//!
//! The variable name after the prefix is lower-cased and split on `__` into a key path, so
//! `OMNIGRAPH_CLOUD_SERVER__BIND` sets `server.bind`. The value is read as a TOML value when it
//! parses as one (numbers, booleans, arrays) and as a string otherwise. Unknown keys are then
//! refused by the same `deny_unknown_fields` check as the file.

use crate::ConfigError;

pub const ENV_PREFIX: &str = "OMNIGRAPH_CLOUD_";

/// Variables with the prefix that are not configuration keys.
const NOT_KEYS: &[&str] = &["OMNIGRAPH_CLOUD_CONFIG"];

pub(crate) fn apply_overrides(
    document: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let mut overrides: Vec<(String, String)> = env
        .into_iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX) && !NOT_KEYS.contains(&name.as_str()))
        .collect();
    overrides.sort();
    for (name, raw) in overrides {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .to_ascii_lowercase()
            .split("__")
            .map(str::to_string)
            .collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::invalid(
                &name,
                &raw,
                "a variable named OMNIGRAPH_CLOUD_<SECTION>__<KEY>",
            ));
        }
        set_path(document, &path, parse_value(&raw), &name)?;
    }
    Ok(())
}

fn parse_value(raw: &str) -> toml::Value {
    let wrapped = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&wrapped) {
        Ok(mut table) => table
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

fn set_path(
    table: &mut toml::Table,
    path: &[String],
    value: toml::Value,
    variable: &str,
) -> Result<(), ConfigError> {
    let (last, parents) = path.split_last().expect("path is never empty");
    let mut current = table;
    for segment in parents {
        let entry = current
            .entry(segment.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().ok_or_else(|| {
            ConfigError::invalid(variable, segment, "a path through configuration sections")
        })?;
    }
    current.insert(last.clone(), value);
    Ok(())
}
