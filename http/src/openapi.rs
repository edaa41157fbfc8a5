//! What the OpenAPI document adds to the handlers' annotations: the bearer scheme, the name
//! rules the server enforces, and the 503 of every route that reaches storage. The document
//! itself, `ApiDoc`, is derived in `routes`, beside the router, from these modifiers and the
//! route handlers.

use omnigraph_cloud_config::{
    BRANCH_NAME_MAX, BRANCH_NAME_PATTERN, COMMIT_ID_PATTERN, GRAPH_ID_PATTERN,
};
use utoipa::Modify;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

use crate::query_name::QUERY_NAME_PATTERN;

/// Declares the `bearer` security scheme the routes require.
pub(crate) struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// A rule the server enforces on a name: a pattern and a length range.
#[derive(Clone, Copy)]
struct Rule {
    pattern: &'static str,
    max_length: usize,
}

const GRAPH_ID: Rule = Rule {
    pattern: GRAPH_ID_PATTERN,
    max_length: 64,
};
const BRANCH: Rule = Rule {
    pattern: BRANCH_NAME_PATTERN,
    max_length: BRANCH_NAME_MAX,
};
const COMMIT_ID: Rule = Rule {
    pattern: COMMIT_ID_PATTERN,
    max_length: 64,
};
const QUERY_NAME: Rule = Rule {
    pattern: QUERY_NAME_PATTERN,
    max_length: 128,
};

/// States in the document the name rules the server enforces (api.md, "Names"), from the
/// same constants the checks use, so that a client or a fuzzer knows what is refused.
pub(crate) struct NameRules;

impl NameRules {
    fn parameter(name: &str) -> Option<Rule> {
        match name {
            "graph_id" | "tenant" => Some(GRAPH_ID),
            "branch" => Some(BRANCH),
            "commit_id" => Some(COMMIT_ID),
            "name" => Some(QUERY_NAME),
            _ => None,
        }
    }

    /// Body fields that carry names, by component and property.
    fn field(component: &str, property: &str) -> Option<Rule> {
        match (component, property) {
            ("CreateGraphRequest", "graph_id") => Some(GRAPH_ID),
            (
                "QueryRequest" | "ReadRequest" | "ChangeRequest" | "IngestRequest"
                | "ExportRequest",
                "branch",
            )
            | ("IngestRequest" | "BranchCreateRequest", "from")
            | ("BranchCreateRequest", "name")
            | ("BranchMergeRequest", "source" | "target") => Some(BRANCH),
            ("QueryRequest" | "ReadRequest", "snapshot") => Some(COMMIT_ID),
            _ => None,
        }
    }
}

fn constrain(schema: &mut RefOr<Schema>, rule: Rule) {
    if let RefOr::T(Schema::Object(object)) = schema {
        object.pattern = Some(rule.pattern.to_string());
        object.min_length = Some(1);
        object.max_length = Some(rule.max_length);
    }
}

fn operations(
    openapi: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = (&String, &mut Operation)> {
    openapi.paths.paths.iter_mut().flat_map(|(path, item)| {
        [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        .map(move |operation| (path, operation))
    })
}

impl Modify for NameRules {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (_, operation) in operations(openapi) {
            for parameter in operation.parameters.iter_mut().flatten() {
                if let (Some(rule), Some(schema)) = (
                    NameRules::parameter(&parameter.name),
                    parameter.schema.as_mut(),
                ) {
                    constrain(schema, rule);
                }
            }
        }
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for (component, schema) in components.schemas.iter_mut() {
            if let RefOr::T(Schema::Object(object)) = schema {
                for (property, schema) in object.properties.iter_mut() {
                    if let Some(rule) = NameRules::field(component, property) {
                        constrain(schema, rule);
                    }
                }
            }
        }
    }
}

/// Every route that reaches storage can answer 503 (the store unreachable, the graph's actor
/// restarting, the node shutting down or at its limits, or a write's outcome unknown); every
/// data route 429 (the tenant over a limit, `crate::admission`); every read 504 (past its
/// deadline, `crate::deadline`).
pub(crate) struct Unavailable;

impl Modify for Unavailable {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorOutput")))
                            .build(),
                    )
                    .build(),
            )
        };
        let unavailable = error(
            "Unavailable: retry after `Retry-After`; without it, a write whose outcome is \
             unknown (check before retrying)",
        );
        let limited = error("Over a limit of the tenant or the graph: retry after `Retry-After`");
        let late = error("A read past its deadline, cancelled");
        let reads: Vec<String> = openapi
            .paths
            .paths
            .iter()
            .filter(|(path, item)| {
                item.get.is_some()
                    || ["/query", "/read", "/export"]
                        .iter()
                        .any(|end| path.ends_with(end))
            })
            .map(|(path, _)| path.clone())
            .collect();
        for (path, operation) in operations(openapi) {
            if ["/healthz", "/readyz", "/openapi.json"].contains(&path.as_str()) {
                continue;
            }
            let responses = &mut operation.responses.responses;
            responses
                .entry("503".into())
                .or_insert_with(|| unavailable.clone());
            if path.starts_with("/graphs") {
                responses
                    .entry("429".into())
                    .or_insert_with(|| limited.clone());
                if reads.contains(path) {
                    responses
                        .entry("504".into())
                        .or_insert_with(|| late.clone());
                }
            }
        }
    }
}
