//! `GET /control/v1/usage`: usage folded from every root's records, per tenant and graph, in
//! total or second by second.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use omnigraph_cloud_actors::usage::{UsageQuery, fold, fold::series, read_records_for};
use omnigraph_cloud_http::ApiError;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Control, internal};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UsageParams {
    tenant: Option<String>,
    graph: Option<String>,
    /// Unix seconds, inclusive.
    from: Option<u64>,
    /// Unix seconds, exclusive.
    to: Option<u64>,
    /// `total` (default) or `second`.
    resolution: Option<String>,
}

pub(super) async fn usage(
    State(control): State<Arc<Control>>,
    Query(params): Query<UsageParams>,
) -> Result<Json<Value>, ApiError> {
    let query = UsageQuery {
        from_s: params.from,
        to_s: params.to,
        tenant: params.tenant,
        graph: params.graph,
    };
    control.load_tenant_roots().await.map_err(internal)?;
    let records = read_records_for(&control.store, &query)
        .await
        .map_err(internal)?;
    match params.resolution.as_deref().unwrap_or("total") {
        "total" => Ok(Json(json!({ "totals": fold(&records, &query) }))),
        "second" => {
            let points: Vec<Value> = series(&records, &query)
                .into_iter()
                .map(|(second, (warm, counts))| json!({"second": second, "warm_graphs": warm, "counts": counts}))
                .collect();
            Ok(Json(json!({ "seconds": points })))
        }
        other => Err(ApiError::bad_request(format!(
            "resolution: '{other}' is not 'total' or 'second'"
        ))),
    }
}
