//! Executes one write on the warm engine handle, inside the repo's actor.
//!
//! Writes of one repo run one at a time here, so the existence checks below cannot race
//! another write of this node. They turn engine errors that upstream answers with a 500 into
//! precise ones (unknown branch: 404, existing branch: 409).

use std::sync::Arc;

use futures::future::BoxFuture;

use omnigraph::db::{Omnigraph, ReadTarget, SchemaApplyOptions};
use tracing::warn;

use super::branches::{self, MAIN};
use super::messages::{WriteOp, WriteOutcome};
use crate::RepoError;

/// Runs `op`. Boxed: the engine's write futures are large, and the callers wrap this one
/// (in the writer lease's fence); a boxed future moves as a pointer, not as a stack copy.
pub(crate) fn execute(
    engine: &Arc<Omnigraph>,
    op: WriteOp,
) -> BoxFuture<'_, Result<WriteOutcome, RepoError>> {
    Box::pin(execute_op(engine, op))
}

async fn execute_op(engine: &Arc<Omnigraph>, op: WriteOp) -> Result<WriteOutcome, RepoError> {
    match op {
        WriteOp::Mutate {
            branch,
            source,
            name,
            params,
            actor,
        } => {
            let result = engine
                .mutate_as(&branch, &source, &name, &params, actor.as_deref())
                .await;
            match result {
                Ok(result) => Ok(WriteOutcome::Mutated(result)),
                Err(err) => Err(branches::explain_error(engine, &branch, err).await),
            }
        }
        WriteOp::Load {
            branch,
            from,
            data,
            mode,
            actor,
        } => {
            let (base, creates_branch) =
                ensure_load_target(engine, &branch, from.as_deref()).await?;
            match engine
                .load_as(&branch, base, &data, mode, actor.as_deref())
                .await
            {
                Ok(result) => Ok(WriteOutcome::Loaded(result)),
                Err(err) => {
                    let err = RepoError::from(err);
                    if creates_branch {
                        undo_branch_of_failed_load(engine, &branch, &err).await;
                    }
                    Err(err)
                }
            }
        }
        WriteOp::ApplySchema {
            source,
            allow_data_loss,
            actor,
        } => {
            super::schema_guard::refuse_reused_type_names(engine, &source).await?;
            let options = SchemaApplyOptions { allow_data_loss };
            let result = engine
                .apply_schema_as(&source, options, actor.as_deref())
                .await?;
            Ok(WriteOutcome::SchemaApplied(result))
        }
        WriteOp::CreateBranch { from, name, actor } => {
            let existing = engine.branch_list().await?;
            if branches::contains(&existing, &name) {
                return Err(RepoError::BranchExists { branch: name });
            }
            branches::refuse_folder_clash(&existing, &name)?;
            if !branches::contains(&existing, &from) {
                return Err(RepoError::BranchNotFound {
                    branch: from,
                    hint: "",
                });
            }
            engine
                .branch_create_from_as(ReadTarget::branch(from.as_str()), &name, actor.as_deref())
                .await?;
            Ok(WriteOutcome::BranchCreated)
        }
        WriteOp::DeleteBranch { name, actor } => {
            engine.branch_delete_as(&name, actor.as_deref()).await?;
            Ok(WriteOutcome::BranchDeleted)
        }
        WriteOp::Merge {
            source,
            target,
            actor,
        } => {
            let existing = engine.branch_list().await?;
            for branch in [&source, &target] {
                if !branches::contains(&existing, branch) {
                    return Err(RepoError::BranchNotFound {
                        branch: branch.clone(),
                        hint: "",
                    });
                }
            }
            merge_with_stale_version_retry(engine, &source, &target, actor.as_deref()).await
        }
    }
}

/// Merges `source` into `target`, working around a defect of engine 0.8.0: a merge can fail
/// with "Concurrent modification: table version N already exists" when the handle's view of
/// the target table is behind its storage (see docs/known-engine-issues.md). Such a failure
/// happens before the manifest publish, so nothing is visible; the handle is refreshed and
/// the merge tried once more. If it fails again the caller gets a precise 409.
async fn merge_with_stale_version_retry(
    engine: &Omnigraph,
    source: &str,
    target: &str,
    actor: Option<&str>,
) -> Result<WriteOutcome, RepoError> {
    match engine.branch_merge_as(source, target, actor).await {
        Ok(outcome) => return Ok(WriteOutcome::Merged(outcome)),
        Err(err) if !crate::classify::is_stale_table_version(&err) => return Err(err.into()),
        Err(err) => {
            warn!(source, target, error = %err, "merge hit a stale table version; refreshing and retrying once")
        }
    }
    engine.refresh().await?;
    match engine.branch_merge_as(source, target, actor).await {
        Ok(outcome) => Ok(WriteOutcome::Merged(outcome)),
        Err(err) if crate::classify::is_stale_table_version(&err) => Err(RepoError::Conflict {
            message: format!(
                "merging '{source}' into '{target}' hit a known engine 0.8.0 defect ({err}); nothing was \
                 merged. Retry the merge; if it fails again, create a new branch from '{target}', \
                 re-apply the changes of '{source}' there and merge that branch"
            ),
        }),
        Err(err) => Err(err.into()),
    }
}

/// The engine forks a load's new branch before it reads the records, so a load that fails
/// (records that do not parse or fit the schema) would leave the branch behind. It was created
/// by this write alone (writes of a graph run one at a time here): remove it, unless the
/// failure leaves the outcome unknown.
async fn undo_branch_of_failed_load(engine: &Omnigraph, branch: &str, err: &RepoError) {
    use crate::ErrorKind;
    // Only failures of the input itself, which the engine reports before it commits; any
    // other (a storage or internal failure) may have come after the records were committed.
    if !matches!(err.kind(), ErrorKind::Invalid | ErrorKind::Conflict) {
        return;
    }
    let Ok(existing) = engine.branch_list().await else {
        return;
    };
    if branches::contains(&existing, branch)
        && let Err(undo) = engine.branch_delete(branch).await
    {
        warn!(branch, error = %undo, "could not remove the branch a failed load created");
    }
}

/// Checks the branch a load writes to, as upstream does: a missing branch needs `from`.
/// Returns the base to pass the engine, and whether the load creates the branch.
async fn ensure_load_target<'a>(
    engine: &Omnigraph,
    branch: &str,
    from: Option<&'a str>,
) -> Result<(Option<&'a str>, bool), RepoError> {
    if branch == MAIN && from.is_none() {
        return Ok((None, false));
    }
    let existing = engine.branch_list().await?;
    if branches::contains(&existing, branch) {
        return Ok((from, false));
    }
    match from {
        None => Err(RepoError::BranchNotFound {
            branch: branch.to_string(),
            hint: "; pass `from` to create it",
        }),
        Some(base) if !branches::contains(&existing, base) => Err(RepoError::BranchNotFound {
            branch: base.to_string(),
            hint: "",
        }),
        Some(base) => {
            branches::refuse_folder_clash(&existing, branch)?;
            Ok((Some(base), true))
        }
    }
}
