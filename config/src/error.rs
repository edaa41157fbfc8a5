use thiserror::Error;

/// Why a configuration was refused. Messages name the key, the bad value and what is allowed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The document is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("invalid configuration: {message}")]
    Parse { message: String },
    /// A key holds a value outside what it allows.
    #[error("invalid value for `{key}`: `{value}` (expected {expected})")]
    Invalid {
        key: String,
        value: String,
        expected: String,
    },
}

impl ConfigError {
    pub fn invalid(key: &str, value: &str, expected: &str) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }
}
