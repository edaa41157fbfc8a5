//! Identifier newtypes shared by every layer: tenants, graphs, branches, commits and actors.
//!
//! Every name that reaches policy or storage is parsed into one of these types once, at the
//! edge. A value of these types is canonical by construction: the rules refuse rather than
//! trim, so the policy engine and the storage engine always see the same string.

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

/// The graph-id rule as a regular expression, for the OpenAPI document.
pub const GRAPH_ID_PATTERN: &str = "^[a-zA-Z0-9-]{1,64}$";

/// The longest branch name, in bytes.
pub const BRANCH_NAME_MAX: usize = 128;

/// The branch-name rule, as error messages and the API description state it.
pub const BRANCH_NAME_RULE: &str = "1-128 ASCII characters, '/'-separated segments each \
     matching [A-Za-z0-9][A-Za-z0-9._-]* (no spaces, no leading or trailing '/', no '//', no \
     segment starting with '.', no '..', not ending in '.lock')";

/// The branch-name rule as a regular expression, for the OpenAPI document.
/// (The `.lock` ending is not expressible without look-around; such a name is answered 400.)
pub const BRANCH_NAME_PATTERN: &str = "^[A-Za-z0-9]([A-Za-z0-9_-]|\\.[A-Za-z0-9_-])*\\.?\
     (/[A-Za-z0-9]([A-Za-z0-9_-]|\\.[A-Za-z0-9_-])*\\.?)*$";

/// A branch of a graph: `main`, `feature`, `review/new-hires`.
///
/// Stricter than the engine, which trims and accepts any non-empty string: here no character
/// that could make two spellings name one branch (spaces, Unicode look-alikes, zero-width
/// characters) or name a path outside the branch (`..`, `//`) is accepted. Case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BranchName(String);

impl BranchName {
    pub const MAIN: &str = "main";

    pub fn new(value: &str) -> Result<BranchName, NameError> {
        let valid_segment = |segment: &str| {
            segment
                .as_bytes()
                .first()
                .is_some_and(u8::is_ascii_alphanumeric)
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        };
        // Lance's own ref rules refuse these too; refused here they are a 400, not a 500.
        let lance_refuses = value.contains("..") || value.ends_with(".lock");
        if (1..=BRANCH_NAME_MAX).contains(&value.len())
            && value.split('/').all(valid_segment)
            && !lance_refuses
        {
            Ok(BranchName(value.to_string()))
        } else {
            Err(NameError::new("branch name", value, BRANCH_NAME_RULE))
        }
    }

    /// `main`, every graph's first branch.
    pub fn main() -> BranchName {
        BranchName(BranchName::MAIN.into())
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The commit-id rule (the engine's commit ids are 26-character ULIDs).
pub const COMMIT_ID_RULE: &str = "1-64 ASCII letters and digits";

/// The commit-id rule as a regular expression, for the OpenAPI document.
pub const COMMIT_ID_PATTERN: &str = "^[A-Za-z0-9]{1,64}$";

/// A graph commit id, as `/commits/{commit_id}` and a read's `snapshot` name one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommitId(String);

impl CommitId {
    pub fn new(value: &str) -> Result<CommitId, NameError> {
        if (1..=64).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(CommitId(value.to_string()))
        } else {
            Err(NameError::new("commit id", value, COMMIT_ID_RULE))
        }
    }
}

/// The actor-id rule.
pub const ACTOR_ID_RULE: &str = "1-256 printable ASCII characters without spaces (e.g. 'alice', 'alice@example.com', 'auth0|42')";

/// Who acts: from a static token's `actor`, or a JWT's actor claim. Policy decides on it and
/// commits record it, so it is never trimmed or otherwise rewritten: a value with spaces or
/// non-ASCII characters is refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorId(String);

impl ActorId {
    pub fn new(value: &str) -> Result<ActorId, NameError> {
        if (1..=256).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(ActorId(value.to_string()))
        } else {
            Err(NameError::new("actor id", value, ACTOR_ID_RULE))
        }
    }
}

/// `as_str` and `Display` of a canonical-name newtype.
macro_rules! name_access {
    ($($name:ident),*) => {$(
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}

name_access!(BranchName, CommitId, ActorId);

/// Why a branch name, commit id or actor id was refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("invalid {what} {value:?}: must be {rule}")]
pub struct NameError {
    pub what: &'static str,
    /// The refused value, shortened to 80 characters for messages.
    pub value: String,
    pub rule: &'static str,
}

impl NameError {
    fn new(what: &'static str, value: &str, rule: &'static str) -> NameError {
        let value = if value.chars().count() > 80 {
            format!("{}...", value.chars().take(80).collect::<String>())
        } else {
            value.to_string()
        };
        NameError { what, value, rule }
    }
}

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

    #[test]
    fn branch_names_are_canonical_or_refused() {
        for ok in [
            "main",
            "feature",
            "review/new-hires",
            "v1.2_rc-3",
            "a/b/c",
            &"x".repeat(128),
        ] {
            assert_eq!(BranchName::new(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            " main",
            "main ",
            "ma in",
            "main\t",
            "main\u{a0}",
            "main\u{200b}",
            "\u{feff}main",
            "mаin", // Cyrillic a
            "/main",
            "main/",
            "a//b",
            "a/../b",
            "a..b",
            "sSG71/0zx3jM07H../Em",
            "feature.lock",
            "..",
            ".hidden",
            "a/.b",
            "_system",
            "__schema_apply_lock__",
            "-x",
            "a b",
            "a%20b",
            "a\\b",
            &"x".repeat(129),
        ] {
            let err = BranchName::new(bad).unwrap_err();
            assert_eq!(err.what, "branch name", "{bad:?}");
        }
    }

    #[test]
    fn commit_and_actor_ids() {
        assert!(CommitId::new("01JABCDEF0123456789ABCDEFG").is_ok());
        for bad in ["", " 01J", "01J ", "a-b", "../x", &"A".repeat(65)] {
            assert!(CommitId::new(bad).is_err(), "{bad:?}");
        }
        for ok in ["alice", "alice@example.com", "auth0|42", "svc:ci/deploy"] {
            assert_eq!(ActorId::new(ok).unwrap().as_str(), ok);
        }
        for bad in ["", " alice", "alice ", "al ice", "alicé", "a\u{200b}"] {
            assert!(ActorId::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn long_refused_values_are_shortened_in_messages() {
        let err = BranchName::new(&"é".repeat(200)).unwrap_err();
        assert_eq!(err.value.chars().count(), 83);
    }
}
