//! Reading and writing graph data: snapshot, query, read, mutate, change, load, ingest,
//! export.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use omnigraph_cloud_actors::engine::{LoadMode, ReadTarget, SnapshotId};
use omnigraph_cloud_config::BranchName;
use serde_json::Value;

use crate::dto::{
    BranchQuery, ChangeOutput, ChangeRequest, ErrorOutput, ExportRequest, IngestOutput,
    IngestRequest, IngestTableOutput, QueryRequest, ReadOutput, ReadRequest, ReadTargetOutput,
    SnapshotOutput, SnapshotTableOutput, graph_uri,
};
use crate::error::ApiError;
use crate::extract::{Json, Repo, branch_or_main, commit_id};
use crate::nesting::check_nesting;
use crate::policy::{Access, Action};
use crate::query_input::resolve_query;
use crate::routes::Deprecated;
use crate::state::AppState;

#[utoipa::path(get, path = "/graphs/{graph_id}/snapshot", tag = "data",
    params(("graph_id" = String, Path), BranchQuery),
    responses((status = 200, body = SnapshotOutput), (status = "4XX", body = ErrorOutput)),
    security(("bearer" = [])))]
pub(crate) async fn snapshot(
    State(state): State<AppState>,
    repo: Repo,
    Query(query): Query<BranchQuery>,
) -> Result<axum::Json<SnapshotOutput>, ApiError> {
    let branch = branch_or_main("branch", query.branch.as_deref())?;
    state.authorize(
        &repo.principal,
        Access::graph(Action::Read, &repo.key.graph).on_branch(&branch),
    )?;
    let lease = state.registry.repo(&repo.key).await?;
    let snapshot = lease.snapshot(&branch).await?;
    Ok(axum::Json(SnapshotOutput {
        branch: branch.into_string(),
        manifest_version: snapshot.manifest_version,
        internal_schema_version: snapshot.internal_schema_version,
        tables: snapshot
            .tables
            .into_iter()
            .map(|table| SnapshotTableOutput {
                table_key: table.table_key,
                table_path: table.table_path,
                table_version: table.table_version,
                table_branch: table.table_branch,
                row_count: table.row_count,
            })
            .collect(),
    }))
}

#[utoipa::path(post, path = "/graphs/{graph_id}/query", tag = "data",
    params(("graph_id" = String, Path)), request_body = QueryRequest,
    responses((status = 200, body = ReadOutput), (status = "4XX", body = ErrorOutput)),
    security(("bearer" = [])))]
pub(crate) async fn query(
    State(state): State<AppState>,
    repo: Repo,
    Json(request): Json<QueryRequest>,
) -> Result<axum::Json<ReadOutput>, ApiError> {
    let read = ReadArgs {
        source: request.query,
        name: request.name,
        params: request.params,
        branch: request.branch,
        snapshot: request.snapshot,
    };
    run_read(&state, &repo, read, true).await.map(axum::Json)
}

/// Deprecated alias of `/query` with upstream's legacy field names; does not refuse
/// mutation queries (as upstream).
#[utoipa::path(post, path = "/graphs/{graph_id}/read", tag = "data",
    params(("graph_id" = String, Path)), request_body = ReadRequest,
    responses((status = 200, body = ReadOutput), (status = "4XX", body = ErrorOutput)),
    security(("bearer" = [])))]
pub(crate) async fn read(
    State(state): State<AppState>,
    repo: Repo,
    Json(request): Json<ReadRequest>,
) -> Result<Deprecated<axum::Json<ReadOutput>>, ApiError> {
    let read = ReadArgs {
        source: request.query_source,
        name: request.query_name,
        params: request.params,
        branch: request.branch,
        snapshot: request.snapshot,
    };
    let output = run_read(&state, &repo, read, false).await?;
    Ok(Deprecated::new(axum::Json(output), "query"))
}

struct ReadArgs {
    source: String,
    name: Option<String>,
    params: Option<Value>,
    branch: Option<String>,
    snapshot: Option<String>,
}

async fn run_read(
    state: &AppState,
    repo: &Repo,
    read: ReadArgs,
    refuse_mutations: bool,
) -> Result<ReadOutput, ApiError> {
    if read.branch.is_some() && read.snapshot.is_some() {
        return Err(ApiError::bad_request(
            "request may specify branch or snapshot, not both",
        ));
    }
    let snapshot = read
        .snapshot
        .as_deref()
        .map(|raw| commit_id("snapshot", raw))
        .transpose()?;
    let branch = branch_or_main("branch", read.branch.as_deref())?;
    check_nesting("query", &read.source)?;
    let resolved = resolve_query(&read.source, read.name.as_deref(), read.params.as_ref())?;
    if refuse_mutations && resolved.is_mutation {
        return Err(ApiError::bad_request(format!(
            "query '{}' contains mutations (insert/update/delete); use POST /mutate for write queries",
            resolved.name
        )));
    }
    // A read of a snapshot is authorized without a branch: rules scoped to some branches
    // do not cover it, only rules for any branch do.
    let access = Access::graph(Action::Read, &repo.key.graph);
    let (target, target_output) = match snapshot {
        Some(snapshot) => {
            state.authorize(&repo.principal, access)?;
            (
                ReadTarget::Snapshot(SnapshotId::new(snapshot.as_str())),
                ReadTargetOutput {
                    branch: None,
                    snapshot: Some(snapshot.as_str().to_string()),
                },
            )
        }
        None => {
            state.authorize(&repo.principal, access.on_branch(&branch))?;
            (
                ReadTarget::branch(branch.as_str()),
                ReadTargetOutput {
                    branch: Some(branch.into_string()),
                    snapshot: None,
                },
            )
        }
    };
    let lease = state.registry.repo(&repo.key).await?;
    let result = lease
        .query(target, &read.source, &resolved.name, &resolved.params)
        .await?;
    Ok(ReadOutput {
        query_name: resolved.name,
        target: target_output,
        row_count: result.num_rows(),
        columns: result
            .schema()
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .collect(),
        rows: result.to_rust_json(),
    })
}

#[utoipa::path(post, path = "/graphs/{graph_id}/mutate", tag = "data",
    params(("graph_id" = String, Path)), request_body = ChangeRequest,
    responses((status = 200, body = ChangeOutput), (status = "4XX", body = ErrorOutput)),
    security(("bearer" = [])))]
pub(crate) async fn mutate(
    State(state): State<AppState>,
    repo: Repo,
    Json(request): Json<ChangeRequest>,
) -> Result<axum::Json<ChangeOutput>, ApiError> {
    run_mutate(&state, repo, request).await.map(axum::Json)
}

/// Deprecated alias of `/mutate`.
#[utoipa::path(post, path = "/graphs/{graph_id}/change", tag = "data",
    params(("graph_id" = String, Path)), request_body = ChangeRequest,
    responses((status = 200, body = ChangeOutput), (status = "4XX", body = ErrorOutput)),
    security(("bearer" = [])))]
pub(crate) async fn change(
    State(state): State<AppState>,
    repo: Repo,
    Json(request): Json<ChangeRequest>,
) -> Result<Deprecated<axum::Json<ChangeOutput>>, ApiError> {
    let output = run_mutate(&state, repo, request).await?;
    Ok(Deprecated::new(axum::Json(output), "mutate"))
}

async fn run_mutate(
    state: &AppState,
    repo: Repo,
    request: ChangeRequest,
) -> Result<ChangeOutput, ApiError> {
    let branch = branch_or_main("branch", request.branch.as_deref())?;
    check_nesting("query", &request.query)?;
    let resolved = resolve_query(
        &request.query,
        request.name.as_deref(),
        request.params.as_ref(),
    )?;
    state.authorize(
        &repo.principal,
        Access::graph(Action::Change, &repo.key.graph).on_branch(&branch),
    )?;
    let actor = repo.principal.actor;
    let lease = state.registry.repo(&repo.key).await?;
    let result = lease
        .mutate(
            branch.clone(),
            request.query,
            resolved.name.clone(),
            resolved.params,
            actor.clone(),
        )
        .await?;
    Ok(ChangeOutput {
        branch: branch.into_string(),
        query_name: resolved.name,
        affected_nodes: result.affected_nodes,
        affected_edges: result.affected_edges,
        actor_id: actor,
    })
}

#[utoipa::path(post, path = "/graphs/{graph_id}/load", tag = "data",
    params(("graph_id" = String, Path)), request_body = IngestRequest,
    responses((status = 200, body = IngestOutput), (status = "4XX", body = ErrorOutput)),
    security(("bearer" = [])))]
pub(crate) async fn load(
    State(state): State<AppState>,
    repo: Repo,
    Json(request): Json<IngestRequest>,
) -> Result<axum::Json<IngestOutput>, ApiError> {
    run_load(&state, repo, request).await.map(axum::Json)
}

/// Deprecated alias of `/load`.
#[utoipa::path(post, path = "/graphs/{graph_id}/ingest", tag = "data",
    params(("graph_id" = String, Path)), request_body = IngestRequest,
    responses((status = 200, body = IngestOutput), (status = "4XX", body = ErrorOutput)),
    security(("bearer" = [])))]
pub(crate) async fn ingest(
    State(state): State<AppState>,
    repo: Repo,
    Json(request): Json<IngestRequest>,
) -> Result<Deprecated<axum::Json<IngestOutput>>, ApiError> {
    let output = run_load(&state, repo, request).await?;
    Ok(Deprecated::new(axum::Json(output), "load"))
}

async fn run_load(
    state: &AppState,
    repo: Repo,
    request: IngestRequest,
) -> Result<IngestOutput, ApiError> {
    let mode = match request.mode.as_deref().unwrap_or("merge") {
        "merge" => LoadMode::Merge,
        "append" => LoadMode::Append,
        "overwrite" => LoadMode::Overwrite,
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid load mode '{other}': expected merge, append or overwrite"
            )));
        }
    };
    let branch = branch_or_main("branch", request.branch.as_deref())?;
    let from = request
        .from
        .as_deref()
        .map(|raw| crate::extract::branch("from", raw))
        .transpose()?;
    state.authorize(
        &repo.principal,
        Access::graph(Action::Load, &repo.key.graph).on_branch(&branch),
    )?;
    let lease = state.registry.repo(&repo.key).await?;
    if let Some(from) = &from
        && !lease
            .branches()
            .await?
            .iter()
            .any(|name| name == branch.as_str())
    {
        // The load creates the branch: that needs branch_create as well, as upstream.
        state.authorize(
            &repo.principal,
            Access::graph(Action::BranchCreate, &repo.key.graph)
                .on_branch(from)
                .targeting(&branch),
        )?;
    }
    let actor = repo.principal.actor;
    let result = lease
        .load(branch, from.clone(), request.data, mode, actor.clone())
        .await?;
    Ok(IngestOutput {
        uri: graph_uri(&repo.key.graph),
        tables: result
            .to_ingest_tables()
            .into_iter()
            .map(|table| IngestTableOutput {
                table_key: table.table_key,
                rows_loaded: table.rows_loaded,
            })
            .collect(),
        branch: result.branch,
        base_branch: from.map(BranchName::into_string),
        branch_created: result.branch_created,
        mode: mode.as_str().to_string(),
        actor_id: actor,
    })
}

/// Streams the branch as NDJSON, one record per line, in the format `/load` accepts.
#[utoipa::path(post, path = "/graphs/{graph_id}/export", tag = "data",
    params(("graph_id" = String, Path)), request_body = ExportRequest,
    responses((status = 200, content_type = "application/x-ndjson", body = String),
        (status = "4XX", body = ErrorOutput)),
    security(("bearer" = [])))]
pub(crate) async fn export(
    State(state): State<AppState>,
    repo: Repo,
    Json(request): Json<ExportRequest>,
) -> Result<Response, ApiError> {
    let branch = branch_or_main("branch", request.branch.as_deref())?;
    state.authorize(
        &repo.principal,
        Access::graph(Action::Export, &repo.key.graph).on_branch(&branch),
    )?;
    let lease = state.registry.repo(&repo.key).await?;
    let stream = lease
        .export(branch, request.type_names, request.table_keys)
        .await?;
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson; charset=utf-8"),
    );
    Ok(response)
}
