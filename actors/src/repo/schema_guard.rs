//! Refuses, before anything is written, a schema change the engine 0.8 cannot apply: giving a
//! node or edge type a name whose table a dropped type left behind.
//!
//! The engine keeps each type's rows in a dataset at `nodes/<h>` or `edges/<h>`, where `<h>`
//! is the 64-bit FNV-1a hash of the type's name in hex. Dropping a type (soft or hard) only
//! retires its manifest entry; the dataset stays. Adding a type of that name again (or
//! renaming another type to it) then tries to create a dataset where one exists and fails
//! half-way with "Dataset already exists", on every later attempt too. See
//! docs/known-engine-issues.md. Two tests in `runtime/tests/it/input.rs` pin the path rule
//! (through the node) and the defect (on the engine alone).

use std::sync::Arc;

use omnigraph::db::Omnigraph;
use omnigraph::storage::{join_uri, storage_for_uri};
use omnigraph_compiler::{SchemaMigrationStep, SchemaTypeKind};

use crate::RepoError;

/// `Err(Conflict)` naming the type when `source` would (re)create a type whose table is still
/// in storage. One HEAD (or LIST) per added type; nothing when no type is added.
pub(crate) async fn refuse_reused_type_names(
    engine: &Arc<Omnigraph>,
    source: &str,
) -> Result<(), RepoError> {
    let plan = engine.plan_schema(source).await?;
    let added = plan.steps.iter().filter_map(|step| match step {
        SchemaMigrationStep::AddType { type_kind, name } => Some((*type_kind, name, None)),
        SchemaMigrationStep::RenameType {
            type_kind,
            from,
            to,
            ..
        } => Some((*type_kind, to, Some(from))),
        _ => None,
    });
    let mut storage = None;
    for (kind, name, renamed_from) in added {
        let Some(path) = table_path(kind, name) else {
            continue;
        };
        let storage = match &storage {
            Some(storage) => storage,
            None => storage.insert(storage_for_uri(engine.uri())?),
        };
        if storage.exists(&join_uri(engine.uri(), &path)).await? {
            let what = match renamed_from {
                Some(from) => format!("renaming type '{from}' to '{name}'"),
                None => format!("adding type '{name}'"),
            };
            return Err(RepoError::Conflict {
                message: format!(
                    "schema not applied, nothing was changed: {what} needs a new table at \
                     '{path}', but a type of that name existed before and its data is still \
                     there (dropped types keep their table; engine 0.8 cannot reuse it). Give \
                     the type another name. See docs/known-engine-issues.md"
                ),
            });
        }
    }
    Ok(())
}

/// Where the engine keeps the rows of the node or edge type `name`; `None` for interfaces,
/// which have no table.
fn table_path(kind: SchemaTypeKind, name: &str) -> Option<String> {
    let dir = match kind {
        SchemaTypeKind::Node => "nodes",
        SchemaTypeKind::Edge => "edges",
        SchemaTypeKind::Interface => return None,
    };
    Some(format!("{dir}/{:016x}", fnv1a_64(name.as_bytes())))
}

/// The 64-bit FNV-1a hash (Fowler, Noll and Vo's published parameters).
fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn interfaces_have_no_table() {
        assert_eq!(table_path(SchemaTypeKind::Interface, "Named"), None);
        assert!(
            table_path(SchemaTypeKind::Edge, "WorksAt")
                .unwrap()
                .starts_with("edges/")
        );
    }
}
