//! Operator routes under `/admin`. Each needs the `admin` action, on its graph or its
//! tenant, in the caller's own tenant.

use axum::extract::{Path, State};
use omnigraph_cloud_actors::RepoKey;
use omnigraph_cloud_actors::{MaintenanceReport, WarmGraph};
use omnigraph_cloud_cluster::membership::Member;
use omnigraph_cloud_config::TenantId;
use serde::Serialize;

use crate::auth::Principal;
use crate::dto::ErrorOutput;
use crate::error::ApiError;
use crate::extract::parse_graph_id;
use crate::policy::{Access, Action};
use crate::state::AppState;

/// A graph's maintenance: lease holders and epochs, the last recovery, compaction and
/// cleanup, the backlog since, and fragment, version and file counts per table.
///
/// Another tenant's graph answers 404, as if it did not exist.
#[utoipa::path(get, path = "/admin/repos/{tenant}/{graph_id}/maintenance", tag = "admin",
    params(("tenant" = String, Path), ("graph_id" = String, Path)),
    responses((status = 200, description = "The maintenance report", body = Object),
        (status = "4XX", body = ErrorOutput)),
    security(("bearer" = [])))]
pub(crate) async fn maintenance(
    State(state): State<AppState>,
    principal: Principal,
    Path((tenant, graph_id)): Path<(String, String)>,
) -> Result<axum::Json<MaintenanceReport>, ApiError> {
    let tenant = TenantId::new(&tenant).map_err(|err| ApiError::bad_request(err.to_string()))?;
    let graph = parse_graph_id(&graph_id)?;
    state.authorize(&principal, Access::graph(Action::Admin, &graph))?;
    if tenant != principal.tenant {
        return Err(ApiError::not_found(format!("graph '{graph_id}' not found")));
    }
    let key = RepoKey::new(principal.tenant, graph);
    Ok(axum::Json(state.registry.maintenance_report(&key).await?))
}

/// `GET /admin/cluster`.
#[derive(Debug, Serialize)]
pub(crate) struct ClusterOutput {
    /// This node's lease holder id.
    node: String,
    /// The address it writes into the leases it takes (others forward writes there).
    address: Option<String>,
    /// What `/readyz` says of it.
    state: &'static str,
    /// Whether it takes part in a gossip membership (`[cluster] gossip_bind`).
    gossip: bool,
    /// The live members as its gossip last saw them (itself included), sorted by id.
    members: Vec<Member>,
    /// The caller's tenant's graphs warm on this node, and which of them it writes.
    warm: Vec<WarmGraph>,
}

/// This node and the cluster as it sees it: its gossip members with their addresses, roles
/// and states, and which of the caller's tenant's graphs it holds warm and writes.
#[utoipa::path(get, path = "/admin/cluster", tag = "admin",
    responses((status = 200, description = "This node's view of the cluster", body = Object),
        (status = "4XX", body = ErrorOutput)),
    security(("bearer" = [])))]
pub(crate) async fn cluster(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<axum::Json<ClusterOutput>, ApiError> {
    state.authorize(&principal, Access::tenant(Action::Admin))?;
    let members = state
        .membership
        .as_ref()
        .map(|membership| membership.view().members.clone())
        .unwrap_or_default();
    Ok(axum::Json(ClusterOutput {
        node: state.registry.holder_id().to_string(),
        address: state.registry.lease_store().address().map(str::to_string),
        state: state.readiness.status(&state.registry).as_str(),
        gossip: state.membership.is_some(),
        members,
        warm: state.registry.warm_graphs(&principal.tenant),
    }))
}
