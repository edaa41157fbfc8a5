//! Running a unit on the engine and answering every caller: publishes under the writer's
//! fence, retries of lost races, splitting a failed batch until each failure is its own, and
//! outcome-unknown answers where a publish may have landed.

use omnigraph::error::OmniError;
use omnigraph::loader::{LoadMode, LoadResult};
use omnigraph_compiler::MutationResult;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::queue::{Pending, Unit, batch_key, plan_counts};
use super::rewrite::{combine, concatenated_load, node_load};
use super::target::{Publication, Publisher};
use crate::maintenance::Fence;
use crate::metrics::CoalescerMetrics;
use crate::repo::messages::{WriteOutcome, Written};
use crate::stamp::Stamp;
use crate::{ErrorKind, RepoError};

/// How many times a combined publish that lost a race to another writer is re-planned.
pub(super) const CONFLICT_RETRIES: usize = 3;

/// How many times the version a publish reached is read before its write is acknowledged
/// without one.
const STAMP_READS: usize = 2;

/// Runs a unit on the engine and answers every caller in it.
///
/// Returns whether a schema change was applied, so that its declared indexes get built.
pub(crate) async fn execute(
    target: &impl Publisher,
    unit: Unit,
    metrics: &CoalescerMetrics,
    fence: &mut Fence,
) -> bool {
    let started = Instant::now();
    match unit {
        Unit::Alone(pending) => {
            let branch = pending.op.branch().to_string();
            let result = under_fence(fence, target.alone(pending.op))
                .await
                .map_err(unacknowledged);
            let schema_changed =
                matches!(&result, Ok(WriteOutcome::SchemaApplied(applied)) if applied.applied);
            let _ = pending
                .reply
                .send(stamped(target, fence, &branch, result).await);
            metrics
                .publish_seconds
                .observe(started.elapsed().as_secs_f64());
            schema_changed
        }
        Unit::Batch(batch) => {
            run_batch(target, batch, metrics, fence).await;
            false
        }
    }
}

/// Publishes a batch of insert-only mutations as one, splitting it on failure. The halves
/// are kept in a work list rather than recursed into: the engine's futures are large, and
/// nesting them for every split would exhaust a worker thread's stack.
pub(super) async fn run_batch(
    target: &impl Publisher,
    batch: Vec<Pending>,
    metrics: &CoalescerMetrics,
    fence: &mut Fence,
) {
    let mut work = vec![batch];
    while let Some(batch) = work.pop() {
        if let Some((first, second)) = publish(target, batch, metrics, fence).await {
            metrics.splits.inc();
            work.push(second);
            work.push(first); // the earlier half goes first
        }
    }
}

/// Publishes one batch and answers its callers, or returns its two halves when something in
/// it is wrong (nothing was published then).
pub(super) async fn publish(
    target: &impl Publisher,
    batch: Vec<Pending>,
    metrics: &CoalescerMetrics,
    fence: &mut Fence,
) -> Option<(Vec<Pending>, Vec<Pending>)> {
    let started = Instant::now();
    if batch.len() == 1 {
        // Alone, a write runs with its own text: its result and its error are its own.
        let pending = batch.into_iter().next().expect("one write");
        let branch = pending.op.branch().to_string();
        let result = under_fence(fence, target.alone(pending.op))
            .await
            .map_err(unacknowledged);
        let _ = pending
            .reply
            .send(stamped(target, fence, &branch, result).await);
        metrics.batches.inc();
        metrics.batch_writes.observe(1.0);
        metrics
            .publish_seconds
            .observe(started.elapsed().as_secs_f64());
        return None;
    }
    let (_, branch, actor) = batch_key(&batch[0].op);
    // Commit times are microseconds; milliseconds err on the side of "maybe published". Read
    // on the clock the commits are stamped with.
    let publish_began_us = target.wall_us();
    let publication = if batch[0].load.is_some() {
        let (mode, data) = concatenated_load(&batch);
        Publication::Load { data, mode }
    } else if let Some(data) = node_load(&batch, &target.catalog()) {
        Publication::Load {
            data,
            mode: LoadMode::Merge,
        }
    } else {
        let (source, params) = combine(&batch);
        Publication::Mutation { source, params }
    };
    let outcome = fence
        .run(retrying_lost_races(
            target,
            metrics,
            &branch,
            &publication,
            actor.as_deref(),
        ))
        .await;
    metrics
        .publish_seconds
        .observe(started.elapsed().as_secs_f64());
    // `None`: cut short by the fence; `Some(err)`: the engine's own failure.
    let outcome = match outcome {
        Some(Ok(())) => Ok(()),
        Some(Err(err)) => Err(Some(err)),
        None => Err(None),
    };
    match outcome {
        Ok(()) => {
            metrics.batches.inc();
            metrics.batch_writes.observe(batch.len() as f64);
            debug!(writes = batch.len(), "coalesced publish");
            let stamp = stamp_of(target, fence, &branch).await;
            for pending in batch {
                let outcome = own_outcome(&pending, &branch);
                let _ = pending.reply.send(Ok(Written { outcome, stamp }));
            }
            None
        }
        Err(err) => {
            let err = match err {
                Some(err) => target.explain(&branch, err).await,
                None => fenced(),
            };
            match batch_wide_copies(&err, batch.len()) {
                // The batch's branch, the store or the lease: every member's own answer is
                // this one (and none may be retried, when the publish may have landed).
                Some(copies) => {
                    for (pending, copy) in batch.into_iter().zip(copies) {
                        let _ = pending.reply.send(Err(copy));
                    }
                    None
                }
                // A failure of the store or the engine itself may come after the commit: if the
                // branch has a commit since this publish began, it landed (writes of the graph
                // are this actor's alone), and re-running halves would apply it twice.
                None if err.kind() == ErrorKind::Internal
                    && !target
                        .nothing_published_since(&branch, publish_began_us)
                        .await =>
                {
                    for pending in batch {
                        let _ = pending.reply.send(Err(maybe_applied(&err)));
                    }
                    None
                }
                // Anything else may be one member's doing (nothing was published): split
                // until each write runs alone and gets its own answer.
                None => {
                    let mut first = batch;
                    let second = first.split_off(first.len() / 2);
                    Some((first, second))
                }
            }
        }
    }
}

/// A write's result with where it landed (see [`stamp_of`]).
async fn stamped(
    target: &impl Publisher,
    fence: &mut Fence,
    branch: &str,
    result: Result<WriteOutcome, RepoError>,
) -> Result<Written, RepoError> {
    let outcome = result?;
    let stamp = stamp_of(target, fence, branch).await;
    Ok(Written { outcome, stamp })
}

/// Where a publish on `branch` landed: the branch's version right after it and the lease
/// epoch it ran under. The actor is its graph's only writer while its fence is open, so no
/// other publish comes between; the version is kept only if the fence is still open once the
/// read has answered. A read served later (a straggler, a pause) may have seen the next
/// writer's versions, so the write is then acknowledged without a version rather than with
/// one another epoch published (found by the simulation, docs/chaos.md).
async fn stamp_of(target: &impl Publisher, fence: &mut Fence, branch: &str) -> Stamp {
    let mut version = None;
    for _ in 0..STAMP_READS {
        version = fence.run(target.version(branch)).await.flatten();
        if version.is_some() || !fence.open() {
            break;
        }
    }
    Stamp {
        manifest_version: version.filter(|_| fence.open()),
        lease_epoch: Some(fence.epoch()),
        ..Stamp::default()
    }
}

/// `work` (a write on the engine), cut short with `OutcomeUnknown` once the writer lease's
/// fence is passed: it may have landed or not, and another node may write the graph now.
pub(super) async fn under_fence<T>(
    fence: &mut Fence,
    work: impl Future<Output = Result<T, RepoError>>,
) -> Result<T, RepoError> {
    fence.run(work).await.unwrap_or_else(|| Err(fenced()))
}

pub(super) fn fenced() -> RepoError {
    RepoError::OutcomeUnknown {
        message: "this node's writer lease ran out (it could not be renewed in time) while the \
                  write was being published, so the publish was cancelled; the write may or may \
                  not have been applied, check its effect before retrying"
            .into(),
    }
}

/// Publishes, and again after a refresh when it lost a race to another writer, at most
/// `CONFLICT_RETRIES` more times. Inserts and append/merge loads do not depend on what they
/// read, so re-running them is safe.
pub(super) async fn retrying_lost_races(
    target: &impl Publisher,
    metrics: &CoalescerMetrics,
    branch: &str,
    publication: &Publication,
    actor: Option<&str>,
) -> Result<(), OmniError> {
    let mut outcome = target.publish(branch, publication, actor).await;
    for _ in 0..CONFLICT_RETRIES {
        match &outcome {
            Err(err) if is_lost_race(err) => {
                metrics.retries.inc();
                if let Err(refresh) = target.refresh().await {
                    warn!(error = %refresh, "refresh before retrying a coalesced publish failed");
                }
                outcome = target.publish(branch, publication, actor).await;
            }
            _ => break,
        }
    }
    outcome
}

/// What a member of a published batch would have got alone.
pub(super) fn own_outcome(pending: &Pending, branch: &str) -> WriteOutcome {
    if let Some(load) = &pending.load {
        return WriteOutcome::Loaded(LoadResult {
            branch: branch.to_string(),
            base_branch: None,
            branch_created: false,
            nodes_loaded: load.nodes.clone(),
            edges_loaded: load.edges.clone(),
        });
    }
    let (affected_nodes, affected_edges) = plan_counts(pending);
    WriteOutcome::Mutated(MutationResult {
        affected_nodes,
        affected_edges,
    })
}

/// A write that failed because the store became unreachable may still have committed (the
/// connection can break after the conditional PUT landed): its caller is told the outcome is
/// unknown, so that it checks before retrying, rather than invited to retry blindly.
pub(super) fn unacknowledged(err: RepoError) -> RepoError {
    match err.kind() {
        ErrorKind::Unavailable => maybe_applied(&err),
        _ => err,
    }
}

/// `OutcomeUnknown` for a write that failed with `cause` after it may have landed.
pub(super) fn maybe_applied(cause: &dyn std::fmt::Display) -> RepoError {
    RepoError::OutcomeUnknown {
        message: format!(
            "{cause}; the write may or may not have been applied, check its effect before retrying"
        ),
    }
}

/// `count` copies of a batch's error when it is the answer of every member alike: the
/// batch's branch is missing, the store failed mid-publish (the outcome is unknown: the
/// publish may have landed, so no half is retried), or the node may not write or queue.
/// `None` when the failure may be one member's doing.
pub(super) fn batch_wide_copies(err: &RepoError, count: usize) -> Option<Vec<RepoError>> {
    let copy = || -> Option<RepoError> {
        Some(match err {
            RepoError::BranchNotFound { branch, hint } => RepoError::BranchNotFound {
                branch: branch.clone(),
                hint,
            },
            RepoError::NotWriter {
                graph,
                holder,
                epoch,
                expires_in_ms,
                address,
            } => RepoError::NotWriter {
                graph: graph.clone(),
                holder: holder.clone(),
                epoch: *epoch,
                expires_in_ms: *expires_in_ms,
                address: address.clone(),
            },
            RepoError::Overloaded { message } => RepoError::Overloaded {
                message: message.clone(),
            },
            RepoError::OutcomeUnknown { message } => RepoError::OutcomeUnknown {
                message: message.clone(),
            },
            _ if err.kind() == ErrorKind::Unavailable => maybe_applied(err),
            _ => return None,
        })
    };
    (0..count).map(|_| copy()).collect()
}

pub(super) fn is_lost_race(err: &OmniError) -> bool {
    matches!(err, OmniError::Manifest(manifest) if manifest.kind == omnigraph::error::ManifestErrorKind::Conflict
        && manifest.details.is_some())
}
