//! Picking the query to run out of a `.gq` source and typing its JSON parameters.

use omnigraph_compiler::query::parser::parse_query;
use omnigraph_compiler::{JsonParamMode, ParamMap, json_params_to_param_map};
use serde_json::Value;

use crate::error::ApiError;

pub(crate) struct ResolvedQuery {
    pub(crate) name: String,
    pub(crate) params: ParamMap,
    pub(crate) is_mutation: bool,
}

/// Parses `source`, selects the query `name` (optional when the source holds exactly one)
/// and converts `params` to the engine's typed parameters. Every failure is a 400 that says
/// what to change.
pub(crate) fn resolve_query(
    source: &str,
    name: Option<&str>,
    params: Option<&Value>,
) -> Result<ResolvedQuery, ApiError> {
    let file = parse_query(source).map_err(|err| ApiError::bad_request(err.to_string()))?;
    let mut queries = file.queries;
    let decl = match name {
        Some(name) => queries
            .into_iter()
            .find(|query| query.name == name)
            .ok_or_else(|| ApiError::bad_request(format!("query '{name}' not found")))?,
        None if queries.len() == 1 => queries.remove(0),
        None if queries.is_empty() => {
            return Err(ApiError::bad_request("query source contains no queries"));
        }
        None => {
            return Err(ApiError::bad_request(
                "query file contains multiple queries; pass --name",
            ));
        }
    };
    let params = json_params_to_param_map(params, &decl.params, JsonParamMode::Standard)
        .map_err(|err| ApiError::bad_request(err.to_string()))?;
    Ok(ResolvedQuery {
        is_mutation: !decl.mutations.is_empty(),
        name: decl.name,
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "query a() { match { $p: Person } return { $p.name } }\n\
                       query b($name: String) { insert Person { name: $name } }";

    #[test]
    fn selects_by_name_or_the_only_query() {
        let only = resolve_query(
            "query a() { match { $p: Person } return { $p.name } }",
            None,
            None,
        )
        .unwrap();
        assert_eq!(only.name, "a");
        assert!(!only.is_mutation);
        let b = resolve_query(TWO, Some("b"), Some(&serde_json::json!({"name": "x"}))).unwrap();
        assert!(b.is_mutation);
        assert_eq!(b.params.len(), 1);
    }

    #[test]
    fn explains_each_failure() {
        let err = |source, name, params: Option<Value>| {
            resolve_query(source, name, params.as_ref())
                .err()
                .unwrap()
                .status()
        };
        assert_eq!(err(TWO, None, None), 400);
        assert_eq!(err(TWO, Some("c"), None), 400);
        assert_eq!(err("query broken(", None, None), 400);
        assert_eq!(err(TWO, Some("b"), Some(serde_json::json!([1]))), 400);
    }
}
