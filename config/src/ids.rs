//! Identifier newtypes shared by every layer: tenants and graphs.

use std::fmt;

use thiserror::Error;

/// Why an identifier was refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("invalid {what} '{value}': must match ^[a-zA-Z0-9-]{{1,64}}$ and not start with '_'")]
pub struct IdError {
    pub what: &'static str,
    pub value: String,
}

fn is_valid_id(value: &str) -> bool {
    (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: &str) -> Result<$name, IdError> {
                if is_valid_id(value) {
                    Ok($name(value.to_string()))
                } else {
                    Err(IdError { what: $what, value: value.to_string() })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A tenant: the owner of a set of graphs. Resolved from the caller's token, never from the
    /// request. Same syntax as a graph id.
    TenantId,
    "tenant id"
);
id_type!(
    /// A graph's id within its tenant, as in `/graphs/{graph_id}`: `^[a-zA-Z0-9-]{1,64}$`.
    /// (The syntax already excludes a leading `_`, which names system objects.)
    GraphId,
    "graph id"
);

impl TenantId {
    /// The tenant used when authentication is off.
    pub fn default_tenant() -> TenantId {
        TenantId("default".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_refuses_graph_ids() {
        for ok in ["a", "production", "Graph-1", &"x".repeat(64)] {
            assert!(GraphId::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "_system",
            "a_b",
            "a/b",
            "a.b",
            " a",
            &"x".repeat(65),
            "é",
        ] {
            let err = GraphId::new(bad).unwrap_err();
            assert_eq!(err.value, bad);
        }
    }
}
