//! Branches and commits.

use axum::extract::{Path, Query, State};
use omnigraph_cloud_actors::engine::{GraphCommit, MergeOutcome};

use crate::dto::{
    BranchCreateOutput, BranchCreateRequest, BranchDeleteOutput, BranchListOutput,
    BranchMergeOutput, BranchMergeRequest, BranchQuery, CommitListOutput, CommitOutput,
    ErrorOutput, graph_uri,
};
use crate::error::ApiError;
use crate::extract::{Json, Repo, branch, branch_or_main, commit_id};
use crate::policy::{Access, Action};
use crate::state::AppState;

#[utoipa::path(get, path = "/graphs/{graph_id}/branches", tag = "branches",
    params(("graph_id" = String, Path)),
    responses((status = 200, body = BranchListOutput), (status = "4XX", body = ErrorOutput)),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    repo: Repo,
) -> Result<axum::Json<BranchListOutput>, ApiError> {
    state.authorize(
        &repo.principal,
        Access::graph(Action::Read, &repo.key.graph),
    )?;
    let lease = state.registry.repo(&repo.key).await?;
    Ok(axum::Json(BranchListOutput {
        branches: lease.branches().await?,
    }))
}

#[utoipa::path(post, path = "/graphs/{graph_id}/branches", tag = "branches",
    params(("graph_id" = String, Path)), request_body = BranchCreateRequest,
    responses((status = 200, body = BranchCreateOutput), (status = "4XX", body = ErrorOutput)),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    repo: Repo,
    Json(request): Json<BranchCreateRequest>,
) -> Result<axum::Json<BranchCreateOutput>, ApiError> {
    let name = branch("name", &request.name)?;
    let from = branch_or_main("from", request.from.as_deref())?;
    state.authorize(
        &repo.principal,
        Access::graph(Action::BranchCreate, &repo.key.graph)
            .on_branch(&from)
            .targeting(&name),
    )?;
    let actor = repo.principal.actor;
    let lease = state.registry.repo(&repo.key).await?;
    lease
        .create_branch(from.clone(), name.clone(), actor.clone())
        .await?;
    Ok(axum::Json(BranchCreateOutput {
        uri: graph_uri(&repo.key.graph),
        from: from.into_string(),
        name: name.into_string(),
        actor_id: actor,
    }))
}

/// Deletes a branch. A name with `/` is sent as one percent-encoded segment (`a%2Fb`).
#[utoipa::path(delete, path = "/graphs/{graph_id}/branches/{branch}", tag = "branches",
    params(("graph_id" = String, Path), ("branch" = String, Path)),
    responses((status = 200, body = BranchDeleteOutput), (status = "4XX", body = ErrorOutput)),
    security(("bearer" = [])))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    repo: Repo,
    Path(path): Path<(String, String)>,
) -> Result<axum::Json<BranchDeleteOutput>, ApiError> {
    let branch = branch("branch", &path.1)?;
    state.authorize(
        &repo.principal,
        Access::graph(Action::BranchDelete, &repo.key.graph).targeting(&branch),
    )?;
    let actor = repo.principal.actor;
    let lease = state.registry.repo(&repo.key).await?;
    lease.delete_branch(branch.clone(), actor.clone()).await?;
    Ok(axum::Json(BranchDeleteOutput {
        uri: graph_uri(&repo.key.graph),
        name: branch.into_string(),
        actor_id: actor,
    }))
}

#[utoipa::path(post, path = "/graphs/{graph_id}/branches/merge", tag = "branches",
    params(("graph_id" = String, Path)), request_body = BranchMergeRequest,
    responses((status = 200, body = BranchMergeOutput), (status = "4XX", body = ErrorOutput)),
    security(("bearer" = [])))]
pub(crate) async fn merge(
    State(state): State<AppState>,
    repo: Repo,
    Json(request): Json<BranchMergeRequest>,
) -> Result<axum::Json<BranchMergeOutput>, ApiError> {
    let source = branch("source", &request.source)?;
    let target = branch_or_main("target", request.target.as_deref())?;
    state.authorize(
        &repo.principal,
        Access::graph(Action::BranchMerge, &repo.key.graph)
            .on_branch(&source)
            .targeting(&target),
    )?;
    let actor = repo.principal.actor;
    let lease = state.registry.repo(&repo.key).await?;
    let outcome = lease
        .merge(source.clone(), target.clone(), actor.clone())
        .await?;
    let outcome = match outcome {
        MergeOutcome::AlreadyUpToDate => "already_up_to_date",
        MergeOutcome::FastForward => "fast_forward",
        MergeOutcome::Merged => "merged",
    };
    Ok(axum::Json(BranchMergeOutput {
        source: source.into_string(),
        target: target.into_string(),
        outcome: outcome.to_string(),
        actor_id: actor,
    }))
}

/// Commits of a branch, oldest first (upstream 0.8's order).
#[utoipa::path(get, path = "/graphs/{graph_id}/commits", tag = "commits",
    params(("graph_id" = String, Path), BranchQuery),
    responses((status = 200, body = CommitListOutput), (status = "4XX", body = ErrorOutput)),
    security(("bearer" = [])))]
pub(crate) async fn commits(
    State(state): State<AppState>,
    repo: Repo,
    Query(query): Query<BranchQuery>,
) -> Result<axum::Json<CommitListOutput>, ApiError> {
    let branch = query
        .branch
        .as_deref()
        .map(|raw| branch("branch", raw))
        .transpose()?;
    let access = Access::graph(Action::Read, &repo.key.graph);
    match &branch {
        Some(branch) => state.authorize(&repo.principal, access.on_branch(branch))?,
        None => state.authorize(&repo.principal, access)?,
    }
    let lease = state.registry.repo(&repo.key).await?;
    let commits = lease.commits(branch.as_ref()).await?;
    Ok(axum::Json(CommitListOutput {
        commits: commits.into_iter().map(commit_output).collect(),
    }))
}

#[utoipa::path(get, path = "/graphs/{graph_id}/commits/{commit_id}", tag = "commits",
    params(("graph_id" = String, Path), ("commit_id" = String, Path)),
    responses((status = 200, body = CommitOutput), (status = "4XX", body = ErrorOutput)),
    security(("bearer" = [])))]
pub(crate) async fn commit(
    State(state): State<AppState>,
    repo: Repo,
    Path(path): Path<(String, String)>,
) -> Result<axum::Json<CommitOutput>, ApiError> {
    let commit_id = commit_id("commit_id", &path.1)?;
    state.authorize(
        &repo.principal,
        Access::graph(Action::Read, &repo.key.graph),
    )?;
    let lease = state.registry.repo(&repo.key).await?;
    Ok(axum::Json(commit_output(lease.commit(&commit_id).await?)))
}

fn commit_output(commit: GraphCommit) -> CommitOutput {
    CommitOutput {
        graph_commit_id: commit.graph_commit_id,
        manifest_branch: commit.manifest_branch,
        manifest_version: commit.manifest_version,
        parent_commit_id: commit.parent_commit_id,
        merged_parent_commit_id: commit.merged_parent_commit_id,
        actor_id: commit.actor_id,
        created_at: commit.created_at,
    }
}
