//! A bound on how deeply query and schema text may nest, checked before the engine sees it.
//!
//! The engine's compiler recurses once per nesting level while type checking, lowering and
//! executing a query; its parser alone bounds nothing useful (it accepts thousands of nested
//! `not { }` blocks), and a deep enough query overflows a worker thread's stack, which aborts
//! the whole process. Every recursive rule of the query grammar opens a bracket (`not { }`,
//! list literals `[ ]`, calls `f( )`), so counting open brackets bounds every recursion at
//! once, in one pass over the bytes and without parsing.

use crate::error::ApiError;

/// The deepest bracket nesting accepted in query, mutation and schema text. A query's own
/// `query q() { match { ... } }` frame takes two levels. See docs/api.md.
///
/// Measured in a debug build on a 2 MiB worker stack (the test suite's): a chain of 38 `not`
/// blocks runs, 46 overflow; release frames are smaller and the node's workers have 8 MiB.
pub const MAX_NESTING: usize = 32;

/// Refuses `text` (the request's `field`) when its `{`, `[` and `(` nest deeper than
/// [`MAX_NESTING`], not counting brackets inside string literals and comments.
pub(crate) fn check_nesting(field: &str, text: &str) -> Result<(), ApiError> {
    match nesting_depth_exceeds(text, MAX_NESTING) {
        None => Ok(()),
        Some(offset) => Err(ApiError::bad_request(format!(
            "{field}: brackets nest deeper than {MAX_NESTING} levels (at byte {offset}); \
             the limit keeps one request from exhausting the server's stack"
        ))),
    }
}

/// The byte offset of the first bracket that opens level `limit + 1`, if any.
fn nesting_depth_exceeds(text: &str, limit: usize) -> Option<usize> {
    #[derive(Clone, Copy)]
    enum State {
        Code,
        Str,
        StrEscape,
        LineComment,
        BlockComment,
    }
    let bytes = text.as_bytes();
    let mut state = State::Code;
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        state = match state {
            State::Code => match b {
                b'"' => State::Str,
                b'/' if next == Some(b'/') => {
                    i += 1;
                    State::LineComment
                }
                b'/' if next == Some(b'*') => {
                    i += 1;
                    State::BlockComment
                }
                b'{' | b'[' | b'(' => {
                    depth += 1;
                    if depth > limit {
                        return Some(i);
                    }
                    State::Code
                }
                // Unbalanced closers are the parser's business; never go below zero.
                b'}' | b']' | b')' => {
                    depth = depth.saturating_sub(1);
                    State::Code
                }
                _ => State::Code,
            },
            State::Str => match b {
                b'\\' => State::StrEscape,
                b'"' => State::Code,
                _ => State::Str,
            },
            State::StrEscape => State::Str,
            State::LineComment if b == b'\n' => State::Code,
            State::LineComment => State::LineComment,
            State::BlockComment if b == b'*' && next == Some(b'/') => {
                i += 1;
                State::Code
            }
            State::BlockComment => State::BlockComment,
        };
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}{}", "{".repeat(depth), "}".repeat(depth))
    }

    #[test]
    fn counts_every_bracket_kind_up_to_the_limit() {
        assert_eq!(nesting_depth_exceeds(&nested(3), 3), None);
        assert_eq!(nesting_depth_exceeds(&nested(4), 3), Some(3));
        assert_eq!(nesting_depth_exceeds("([{x}])", 3), None);
        assert_eq!(nesting_depth_exceeds("([{[x]}])", 3), Some(3));
        // Siblings do not add up.
        assert_eq!(nesting_depth_exceeds("{}{}{}{}{}", 1), None);
    }

    #[test]
    fn ignores_brackets_in_strings_and_comments() {
        assert_eq!(nesting_depth_exceeds(r#"{ "{{{{[[((" }"#, 1), None);
        assert_eq!(nesting_depth_exceeds(r#"{ "a\"{{{" }"#, 1), None);
        assert_eq!(nesting_depth_exceeds("{ // {{{{\n }", 1), None);
        assert_eq!(nesting_depth_exceeds("{ /* {{{{ */ }", 1), None);
        // ... but counts what follows them.
        assert_eq!(nesting_depth_exceeds("{ /* x */ { } }", 1), Some(10));
        assert_eq!(nesting_depth_exceeds("{ \"x\" { } }", 1), Some(6));
    }

    #[test]
    fn unbalanced_or_unterminated_input_is_left_to_the_parser() {
        assert_eq!(nesting_depth_exceeds("}}}}{", 1), None);
        assert_eq!(nesting_depth_exceeds("{ \"{{{{", 1), None);
        assert_eq!(nesting_depth_exceeds("{ /* {{{{", 1), None);
        assert_eq!(nesting_depth_exceeds("", 0), None);
    }

    #[test]
    fn the_error_names_the_field_and_the_limit() {
        let err = check_nesting("query", &nested(MAX_NESTING + 1)).unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(format!("{err:?}").contains("query: brackets nest deeper than 32"));
    }
}
