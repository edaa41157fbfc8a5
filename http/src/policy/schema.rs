//! The Cedar schema every policy is validated against, and the entity types and action ids
//! it declares, parsed once.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::OnceLock;

use cedar_policy::{EntityId, EntityTypeName, EntityUid, Schema};

use super::action::Action;

const SCHEMA: &str = r#"
namespace Omnigraph {
    type RequestContext = {
        has_branch: Bool,
        branch: String,
        has_target_branch: Bool,
        target_branch: String,
        branch_is_protected: Bool,
        target_branch_is_protected: Bool,
    };

    entity Group;
    entity Actor in [Group];
    entity Tenant;
    entity Graph in [Tenant];

    action "read", "export", "change", "load", "schema_apply", "branch_create",
           "branch_delete", "branch_merge", "graph_create", "graph_delete", "invoke_query"
        appliesTo { principal: Actor, resource: Graph, context: RequestContext };
    action "graph_list"
        appliesTo { principal: Actor, resource: Tenant, context: RequestContext };
    action "admin"
        appliesTo { principal: Actor, resource: [Graph, Tenant], context: RequestContext };
}
"#;

/// The Cedar schema every policy is validated against (documented in docs/auth.md).
pub fn schema_source() -> &'static str {
    SCHEMA
}

pub(super) fn schema() -> &'static Schema {
    static SCHEMA_CELL: OnceLock<Schema> = OnceLock::new();
    SCHEMA_CELL.get_or_init(|| {
        Schema::from_cedarschema_str(SCHEMA)
            .expect("the built-in schema parses")
            .0
    })
}

/// The schema's entity types, and the id of each [`Action`].
pub(super) struct Types {
    pub(super) actor: EntityTypeName,
    pub(super) group: EntityTypeName,
    pub(super) tenant: EntityTypeName,
    pub(super) graph: EntityTypeName,
    pub(super) actions: HashMap<Action, EntityUid>,
}

pub(super) fn types() -> &'static Types {
    static TYPES: OnceLock<Types> = OnceLock::new();
    TYPES.get_or_init(|| {
        let name = |n: &str| EntityTypeName::from_str(n).expect("valid type name");
        let action_type = name("Omnigraph::Action");
        Types {
            actor: name("Omnigraph::Actor"),
            group: name("Omnigraph::Group"),
            tenant: name("Omnigraph::Tenant"),
            graph: name("Omnigraph::Graph"),
            actions: Action::ALL
                .into_iter()
                .map(|action| {
                    (
                        action,
                        EntityUid::from_type_name_and_id(
                            action_type.clone(),
                            EntityId::new(action.as_str()),
                        ),
                    )
                })
                .collect(),
        }
    })
}
