//! Whether a write can share a publish: an insert-only mutation parsed and typechecked with
//! its own counts known in advance, or a load with its rows per table and its node keys.

use std::collections::HashMap;

use omnigraph::loader::LoadMode;
use omnigraph_compiler::catalog::Catalog;
use omnigraph_compiler::query::ast::{MatchValue, Mutation, QueryDecl};
use omnigraph_compiler::query::parser::parse_query;
use omnigraph_compiler::query::typecheck::typecheck_query_decl;

use crate::repo::messages::WriteOp;

/// An insert-only mutation, parsed, with its own affected counts known in advance.
pub(super) struct InsertPlan {
    pub(super) decl: QueryDecl,
    pub(super) nodes: usize,
    pub(super) edges: usize,
}

/// An append or merge load without `from`, with its own rows per table known in advance and
/// the node keys it writes (loads that write the same key never share a publish).
pub(super) struct LoadPlan {
    pub(super) nodes: HashMap<String, usize>,
    pub(super) edges: HashMap<String, usize>,
    pub(super) keys: std::collections::HashSet<(String, String)>,
}

/// Reads an append or merge load to the existing branch (no `from`) and decides whether it can
/// share a publish: every record of a known type, no node key twice within it.
pub(super) fn load_plan(op: &WriteOp, catalog: &Catalog) -> Option<LoadPlan> {
    let WriteOp::Load {
        data,
        from: None,
        mode: LoadMode::Append | LoadMode::Merge,
        ..
    } = op
    else {
        return None;
    };
    let mut plan = LoadPlan {
        nodes: HashMap::new(),
        edges: HashMap::new(),
        keys: std::collections::HashSet::new(),
    };
    for record in serde_json::Deserializer::from_str(data).into_iter::<serde_json::Value>() {
        let record = record.ok()?;
        if let Some(type_name) = record.get("type").and_then(|t| t.as_str()) {
            let node_type = catalog.node_types.get(type_name)?;
            if let Some(key) = node_type.key_property() {
                let value = record.get("data")?.get(key)?.to_string();
                if !plan.keys.insert((type_name.to_string(), value)) {
                    return None;
                }
            }
            *plan.nodes.entry(type_name.to_string()).or_default() += 1;
        } else if let Some(edge) = record.get("edge").and_then(|e| e.as_str()) {
            let canonical = match catalog.edge_types.get_key_value(edge) {
                Some((name, _)) => name.clone(),
                None => catalog.edge_name_index.get(&edge.to_lowercase())?.clone(),
            };
            *plan.edges.entry(canonical).or_default() += 1;
        } else {
            return None;
        }
    }
    Some(plan)
}

/// Parses a mutation and decides whether it can share a publish: every statement an insert
/// of a known type whose values are parameters or `now()`.
pub(super) fn insert_plan(op: &WriteOp, catalog: &Catalog) -> Option<InsertPlan> {
    let WriteOp::Mutate {
        source,
        name,
        params,
        ..
    } = op
    else {
        return None;
    };
    let decl = parse_query(source)
        .ok()?
        .queries
        .into_iter()
        .find(|query| &query.name == name)?;
    if decl.mutations.is_empty() || !decl.match_clause.is_empty() {
        return None;
    }
    // Only writes the engine would accept share a publish: a batch published as a load
    // would not type-check them (the loader nulls a value of the wrong type).
    typecheck_query_decl(catalog, &decl).ok()?;
    // A missing value must fail as the engine fails it, not become a null in a batch.
    let complete = decl
        .params
        .iter()
        .all(|param| param.nullable || params.contains_key(&param.name));
    if !complete {
        return None;
    }
    let (mut nodes, mut edges) = (0, 0);
    for mutation in &decl.mutations {
        let Mutation::Insert(insert) = mutation else {
            return None;
        };
        let literal = insert
            .assignments
            .iter()
            .any(|a| matches!(a.value, MatchValue::Literal(_)));
        if literal {
            return None;
        }
        if catalog.node_types.contains_key(&insert.type_name) {
            nodes += 1;
        } else if catalog.edge_types.contains_key(&insert.type_name)
            || catalog
                .edge_name_index
                .contains_key(&insert.type_name.to_lowercase())
        {
            edges += 1;
        } else {
            return None; // unknown type: let it run alone and fail with its own error
        }
    }
    Some(InsertPlan { decl, nodes, edges })
}
