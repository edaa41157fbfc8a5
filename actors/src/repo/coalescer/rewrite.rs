//! Turning a batch into one engine call: the combined mutation with each request's
//! parameters renamed, a node-insert batch as one merge load, loads concatenated.

use std::collections::HashMap;

use omnigraph::loader::LoadMode;
use omnigraph_compiler::catalog::Catalog;
use omnigraph_compiler::query::ast::{MatchValue, Mutation};
use omnigraph_compiler::{Literal, ParamMap};

use super::queue::Pending;
use crate::repo::messages::WriteOp;

pub(super) const COMBINED_QUERY_NAME: &str = "coalesced_inserts";

/// The records of a batch of loads, as one load.
pub(super) fn concatenated_load(batch: &[Pending]) -> (LoadMode, String) {
    let mut mode = LoadMode::Merge;
    let mut data = String::new();
    for pending in batch {
        if let WriteOp::Load {
            data: own,
            mode: own_mode,
            ..
        } = &pending.op
        {
            mode = *own_mode;
            data.push_str(own);
            data.push('\n');
        }
    }
    (mode, data)
}

/// The batch as one NDJSON load, when every statement is a node insert with parameter values
/// only and no node key appears twice (a load would fold those into one row, where separate
/// inserts apply one after the other).
pub(super) fn node_load(batch: &[Pending], catalog: &Catalog) -> Option<String> {
    let mut keys = std::collections::HashSet::new();
    let mut ndjson = String::new();
    for pending in batch {
        let (Some(plan), WriteOp::Mutate { params, .. }) = (&pending.plan, &pending.op) else {
            return None;
        };
        for mutation in &plan.decl.mutations {
            let Mutation::Insert(insert) = mutation else {
                return None;
            };
            let node_type = catalog.node_types.get(&insert.type_name)?;
            let mut data = serde_json::Map::new();
            for assignment in &insert.assignments {
                let MatchValue::Variable(variable) = &assignment.value else {
                    return None;
                };
                let value = literal_json(params.get(variable).unwrap_or(&Literal::Null))?;
                data.insert(assignment.property.clone(), value);
            }
            if let Some(key) = node_type.key_property() {
                // The loader keys nodes by string; other key types stay on the mutation path.
                let value = data.get(key)?.as_str()?.to_string();
                if !keys.insert((insert.type_name.clone(), value)) {
                    return None;
                }
            }
            let record = serde_json::json!({"type": insert.type_name, "data": data});
            ndjson.push_str(&record.to_string());
            ndjson.push('\n');
        }
    }
    Some(ndjson)
}

pub(super) fn literal_json(literal: &Literal) -> Option<serde_json::Value> {
    use serde_json::Value;
    Some(match literal {
        Literal::Null => Value::Null,
        Literal::String(text) | Literal::Date(text) | Literal::DateTime(text) => {
            Value::String(text.clone())
        }
        Literal::Integer(number) => Value::from(*number),
        Literal::Float(number) => Value::from(serde_json::Number::from_f64(*number)?),
        Literal::Bool(flag) => Value::Bool(*flag),
        Literal::List(items) => {
            Value::Array(items.iter().map(literal_json).collect::<Option<_>>()?)
        }
    })
}

/// One mutation holding every statement of the batch, with parameters renamed per request.
pub(super) fn combine(batch: &[Pending]) -> (String, ParamMap) {
    let mut declarations = Vec::new();
    let mut statements = Vec::new();
    let mut params: ParamMap = HashMap::new();
    for (index, pending) in batch.iter().enumerate() {
        let (Some(plan), WriteOp::Mutate { params: own, .. }) = (&pending.plan, &pending.op) else {
            continue;
        };
        let rename = |name: &str| format!("r{index}_{name}");
        for param in &plan.decl.params {
            let optional = if param.nullable { "?" } else { "" };
            declarations.push(format!(
                "${}: {}{optional}",
                rename(&param.name),
                param.type_name
            ));
            let value = own.get(&param.name).cloned().unwrap_or(Literal::Null);
            params.insert(rename(&param.name), value);
        }
        for mutation in &plan.decl.mutations {
            let Mutation::Insert(insert) = mutation else {
                continue;
            };
            let assignments: Vec<String> = insert
                .assignments
                .iter()
                .map(|assignment| match &assignment.value {
                    MatchValue::Variable(variable) => {
                        format!("{}: ${}", assignment.property, rename(variable))
                    }
                    MatchValue::Now => format!("{}: now()", assignment.property),
                    MatchValue::Literal(_) => unreachable!("plans never hold literal values"),
                })
                .collect();
            statements.push(format!(
                "    insert {} {{ {} }}",
                insert.type_name,
                assignments.join(", ")
            ));
        }
    }
    let source = format!(
        "query {COMBINED_QUERY_NAME}({}) {{\n{}\n}}\n",
        declarations.join(", "),
        statements.join("\n")
    );
    (source, params)
}
