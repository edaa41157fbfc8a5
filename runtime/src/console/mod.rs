//! The operator console: a page at `/console` (its HTML, script and style embedded in the
//! binary; nothing is fetched from elsewhere) over one JSON document,
//! `/console/api/overview`, behind an operator's bearer token (no cookies). Served wherever
//! `control.operator_tokens_file` is set: on the control plane, and on a single node
//! (docs/control-plane.md#the-console).

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use omnigraph_cloud_actors::usage::{UsageQuery, fold, fold::series, read_records_for};
use omnigraph_cloud_actors::{Registry, RepoError};
use omnigraph_cloud_config::TenantId;
use omnigraph_cloud_http::ApiError;
use serde_json::{Value, json};

use crate::control::{Operators, directory};

const INDEX: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("app.css");

/// How far back the usage charts go.
const USAGE_WINDOW_S: u64 = 15 * 60;

pub(crate) struct Console {
    pub(crate) registry: Registry,
    pub(crate) operators: Operators,
    pub(crate) roles: Vec<&'static str>,
    pub(crate) members: Option<Arc<omnigraph_cloud_cluster::membership::Membership>>,
}

pub(crate) fn router(console: Arc<Console>) -> Router {
    let api = Router::new()
        .route("/console/api/overview", get(overview))
        .layer(axum::middleware::from_fn_with_state(
            console.operators.clone(),
            crate::control::operator_only,
        ));
    Router::new()
        .route("/console", get(|| file("text/html; charset=utf-8", INDEX)))
        .route(
            "/console/app.js",
            get(|| file("text/javascript; charset=utf-8", SCRIPT)),
        )
        .route(
            "/console/app.css",
            get(|| file("text/css; charset=utf-8", STYLE)),
        )
        .merge(api)
        .with_state(console)
}

async fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")],
        body,
    )
        .into_response()
}

fn unavailable(err: RepoError) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("the storage root could not be read: {err}"),
    )
}

async fn overview(State(console): State<Arc<Console>>) -> Result<Json<Value>, ApiError> {
    let store = console.registry.store();
    let records = directory::load_all(store).await.map_err(unavailable)?;
    let mut tenants = Vec::new();
    // The tenants with a folder here, and those whose graphs live in a root of their own.
    let mut names = store.list_folders("tenants").await.map_err(unavailable)?;
    names.extend(store.tenants_with_own_root().iter().map(|t| t.to_string()));
    names.sort();
    names.dedup();
    for name in names {
        let Ok(id) = TenantId::new(&name) else {
            continue;
        };
        let record = records.iter().find(|record| record.tenant == name);
        let state = record.map_or_else(|| json!("active"), |record| json!(record.state));
        if state == "deleted" {
            continue;
        }
        let graphs: Vec<String> = store
            .list_graphs(&id)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|graph| graph.to_string())
            .collect();
        tenants.push(json!({
            "tenant": name, "state": state, "graphs": graphs,
            "tokens": record.map(|record| record.tokens.len()),
        }));
    }
    let holder = console.registry.holder_id().to_string();
    let warm: Vec<Value> = console
        .registry
        .warm_overview()
        .into_iter()
        .map(|graph| {
            json!({
                "tenant": graph.tenant, "graph": graph.graph,
                "writer": graph.writer_epoch.map(|epoch| json!({"holder": holder, "epoch": epoch})),
                "backlog_versions": graph.backlog_versions,
                "last_maintenance_ms": graph.last_maintenance_ms,
            })
        })
        .collect();
    let members = match &console.members {
        Some(membership) => membership
            .view()
            .members
            .iter()
            .map(|member| {
                json!({"node": member.node, "state": member.state.as_str(),
                       "roles": member.roles, "address": member.http})
            })
            .collect(),
        None => Vec::new(),
    };
    let to = store_clock_now_s(&console.registry) + 1;
    let from = to.saturating_sub(USAGE_WINDOW_S);
    let window = UsageQuery {
        from_s: Some(from),
        to_s: Some(to),
        ..UsageQuery::default()
    };
    let usage_records = read_records_for(store, &window)
        .await
        .map_err(unavailable)?;
    let totals = fold(&usage_records, &window);
    let mut usage = Vec::new();
    for tenant in totals
        .iter()
        .map(|t| t.tenant.clone())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let query = UsageQuery {
            tenant: Some(tenant.clone()),
            ..window.clone()
        };
        let mut summed = omnigraph_cloud_actors::usage::Totals::default();
        for total in totals.iter().filter(|t| t.tenant == tenant) {
            summed.active_seconds += total.active_seconds;
            summed.counts.add(&total.counts);
        }
        let points: Vec<Value> = series(&usage_records, &query)
            .into_iter()
            .map(|(second, (_, counts))| {
                json!({"second": second, "requests": counts.requests.values().sum::<u64>()})
            })
            .collect();
        usage.push(json!({"tenant": tenant, "totals": {
            "active_seconds": summed.active_seconds, "requests": summed.counts.requests,
            "store_requests": summed.counts.store_requests, "store_bytes": summed.counts.store_bytes,
        }, "series": points}));
    }
    Ok(Json(json!({
        "node": {"holder": holder, "roles": console.roles, "version": env!("CARGO_PKG_VERSION")},
        "tenants": tenants,
        "warm": warm,
        "members": members,
        "usage": {"from": from, "to": to, "tenants": usage},
    })))
}

fn store_clock_now_s(registry: &Registry) -> u64 {
    registry.lease_store().clock().wall_ms() / 1000
}
