//! Operator routes under `/admin`. Each needs the `admin` action on its graph, in the
//! caller's own tenant.

use axum::extract::{Path, State};
use omnigraph_cloud_actors::MaintenanceReport;
use omnigraph_cloud_actors::RepoKey;
use omnigraph_cloud_config::TenantId;

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
