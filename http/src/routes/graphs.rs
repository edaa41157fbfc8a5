//! Graph management, scoped to the caller's tenant: list, create, delete, pre-warm.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use omnigraph_cloud_actors::{RepoError, RepoKey};

use crate::auth::Principal;
use crate::dto::{
    CreateGraphOutput, CreateGraphRequest, DeleteGraphOutput, ErrorOutput, GraphListItem,
    GraphListResponse, WarmGraphOutput, graph_uri,
};
use crate::error::ApiError;
use crate::extract::{Json, parse_graph_id};
use crate::nesting::check_nesting;
use crate::policy::{Access, Action};
use crate::state::AppState;

/// The caller's graphs, sorted by id. Other tenants' graphs are never listed.
#[utoipa::path(get, path = "/graphs", tag = "graphs",
    responses((status = 200, body = GraphListResponse), (status = "4XX", body = ErrorOutput)),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<axum::Json<GraphListResponse>, ApiError> {
    state.authorize(&principal, Access::tenant(Action::GraphList))?;
    let graphs = state.registry.list_graphs(&principal.tenant).await?;
    Ok(axum::Json(GraphListResponse {
        graphs: graphs
            .into_iter()
            .map(|graph| GraphListItem {
                uri: graph_uri(&graph),
                graph_id: graph.to_string(),
            })
            .collect(),
    }))
}

/// Creates a graph with a schema. 409 if the caller's tenant already has one by that id.
#[utoipa::path(post, path = "/graphs", tag = "graphs", request_body = CreateGraphRequest,
    responses((status = 201, body = CreateGraphOutput), (status = "4XX", body = ErrorOutput)),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Json(request): Json<CreateGraphRequest>,
) -> Result<(StatusCode, axum::Json<CreateGraphOutput>), ApiError> {
    let graph = parse_graph_id(&request.graph_id)?;
    check_nesting("schema_source", &request.schema_source)?;
    state.authorize(&principal, Access::graph(Action::GraphCreate, &graph))?;
    let key = RepoKey::new(principal.tenant, graph);
    state
        .registry
        .create_graph(&key, &request.schema_source)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreateGraphOutput {
            uri: graph_uri(&key.graph),
            graph_id: request.graph_id,
        }),
    ))
}

/// Deletes a graph and all its data. Requests in flight on it finish first.
#[utoipa::path(delete, path = "/graphs/{graph_id}", tag = "graphs",
    params(("graph_id" = String, Path)),
    responses((status = 200, body = DeleteGraphOutput), (status = "4XX", body = ErrorOutput)),
    security(("bearer" = [])))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(graph_id): Path<String>,
) -> Result<axum::Json<DeleteGraphOutput>, ApiError> {
    let graph = parse_graph_id(&graph_id)?;
    state.authorize(&principal, Access::graph(Action::GraphDelete, &graph))?;
    state
        .registry
        .delete_graph(&RepoKey::new(principal.tenant, graph))
        .await?;
    Ok(axum::Json(DeleteGraphOutput { graph_id }))
}

/// Opens a graph on this node before it is asked for (docs/cache.md): answers at once, and
/// the graph is activated in the background. Idempotent; cheap when the graph is warm.
#[utoipa::path(post, path = "/graphs/{graph_id}/warm", tag = "graphs",
    params(("graph_id" = String, Path)),
    responses((status = 202, body = WarmGraphOutput), (status = "4XX", body = ErrorOutput)),
    security(("bearer" = [])))]
pub(crate) async fn warm(
    State(state): State<AppState>,
    principal: Principal,
    Path(graph_id): Path<String>,
) -> Result<(StatusCode, axum::Json<WarmGraphOutput>), ApiError> {
    let graph = parse_graph_id(&graph_id)?;
    state.authorize(&principal, Access::graph(Action::Read, &graph))?;
    let key = RepoKey::new(principal.tenant, graph);
    if !state.registry.is_warm(&key) && !state.registry.store().graph_exists(&key).await? {
        return Err(ApiError::from(RepoError::GraphNotFound {
            graph: key.graph,
        }));
    }
    let already_warm = state.registry.warm(key);
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(WarmGraphOutput {
            graph_id,
            already_warm,
        }),
    ))
}
