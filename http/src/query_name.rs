//! The stored-query name rule (an identifier of the query language): the check the route
//! applies and the pattern its message and the OpenAPI document state.

/// The stored-query name rule, for messages and the OpenAPI document.
pub(crate) const QUERY_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]{0,127}$";

/// Whether `name` matches [`QUERY_NAME_PATTERN`].
pub(crate) fn is_query_name(name: &str) -> bool {
    name.len() <= 128
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
