//! Schema and the stored-query catalog.

use axum::extract::{Path, State};
use omnigraph_cloud_config::BranchName;

use crate::dto::{
    ErrorOutput, QueriesCatalogOutput, SchemaApplyOutput, SchemaApplyRequest, SchemaOutput,
    graph_uri,
};
use crate::error::ApiError;
use crate::extract::{Json, Repo};
use crate::nesting::check_nesting;
use crate::policy::{Access, Action};
use crate::query_name::{QUERY_NAME_PATTERN, is_query_name};
use crate::state::AppState;

#[utoipa::path(get, path = "/graphs/{graph_id}/schema", tag = "schema",
    params(("graph_id" = String, Path)),
    responses((status = 200, body = SchemaOutput), (status = "4XX", body = ErrorOutput)),
    security(("bearer" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    repo: Repo,
) -> Result<axum::Json<SchemaOutput>, ApiError> {
    state.authorize(
        &repo.principal,
        Access::graph(Action::Read, &repo.key.graph),
    )?;
    let lease = state.registry.repo(&repo.key).await?;
    Ok(axum::Json(SchemaOutput {
        schema_source: lease.schema_source().await?,
    }))
}

/// Applies a new schema. Needs a graph with only `main`; drops are soft unless
/// `allow_data_loss`. Declared indexes are built in the background afterwards.
#[utoipa::path(post, path = "/graphs/{graph_id}/schema/apply", tag = "schema",
    params(("graph_id" = String, Path)), request_body = SchemaApplyRequest,
    responses((status = 200, body = SchemaApplyOutput), (status = "4XX", body = ErrorOutput)),
    security(("bearer" = [])))]
pub(crate) async fn apply(
    State(state): State<AppState>,
    repo: Repo,
    Json(request): Json<SchemaApplyRequest>,
) -> Result<axum::Json<SchemaApplyOutput>, ApiError> {
    check_nesting("schema_source", &request.schema_source)?;
    state.authorize(
        &repo.principal,
        Access::graph(Action::SchemaApply, &repo.key.graph).targeting(&BranchName::main()),
    )?;
    let lease = state.registry.repo(&repo.key).await?;
    let result = lease
        .apply_schema(
            request.schema_source,
            request.allow_data_loss,
            repo.principal.actor,
        )
        .await?;
    let steps = result
        .steps
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| {
            ApiError::bad_request(format!("schema plan could not be rendered: {err}"))
        })?;
    Ok(axum::Json(SchemaApplyOutput {
        uri: graph_uri(&repo.key.graph),
        supported: result.supported,
        applied: result.applied,
        step_count: steps.len(),
        manifest_version: result.manifest_version,
        steps,
    }))
}

/// The stored-query catalog. Stored queries are not supported yet, so it is always empty.
#[utoipa::path(get, path = "/graphs/{graph_id}/queries", tag = "queries",
    params(("graph_id" = String, Path)),
    responses((status = 200, body = QueriesCatalogOutput), (status = "4XX", body = ErrorOutput)),
    security(("bearer" = [])))]
pub(crate) async fn catalog(
    State(state): State<AppState>,
    repo: Repo,
) -> Result<axum::Json<QueriesCatalogOutput>, ApiError> {
    state.authorize(
        &repo.principal,
        Access::graph(Action::Read, &repo.key.graph).on_branch(&BranchName::main()),
    )?;
    // Resolve the graph so that an unknown graph is a 404, as on every per-graph route.
    state.registry.repo(&repo.key).await?;
    Ok(axum::Json(QueriesCatalogOutput {
        queries: Vec::new(),
    }))
}

/// Invokes a stored query. With no stored queries, every name is unknown (404).
#[utoipa::path(post, path = "/graphs/{graph_id}/queries/{name}", tag = "queries",
    params(("graph_id" = String, Path), ("name" = String, Path)),
    responses((status = "4XX", body = ErrorOutput)),
    security(("bearer" = [])))]
pub(crate) async fn invoke(
    State(state): State<AppState>,
    repo: Repo,
    Path(path): Path<(String, String)>,
) -> Result<axum::Json<QueriesCatalogOutput>, ApiError> {
    // A stored query's name is an identifier of the query language.
    let name = path.1;
    if !is_query_name(&name) {
        return Err(ApiError::bad_request(format!(
            "name: invalid stored query name {name:?}: must match {QUERY_NAME_PATTERN}"
        )));
    }
    state.authorize(
        &repo.principal,
        Access::graph(Action::InvokeQuery, &repo.key.graph),
    )?;
    state.registry.repo(&repo.key).await?;
    Err(ApiError::not_found("stored query not found"))
}
