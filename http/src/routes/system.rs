//! Node-level routes: health and the OpenAPI document on the public listener, metrics on the
//! operator listener. None needs a token.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use omnigraph_cloud_actors::engine::INTERNAL_MANIFEST_SCHEMA_VERSION;
use utoipa::OpenApi;

use super::ApiDoc;
use crate::dto::{HealthOutput, ReadyOutput};
use crate::state::{AppState, NodeState};

/// The engine release this node embeds (pinned exactly in the workspace manifest).
const ENGINE_VERSION: &str = "0.8.0";

#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, body = HealthOutput)))]
pub(crate) async fn healthz() -> axum::Json<HealthOutput> {
    axum::Json(HealthOutput {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        engine_version: ENGINE_VERSION.into(),
        internal_schema_version: INTERNAL_MANIFEST_SCHEMA_VERSION,
    })
}

/// Readiness, for load balancers and orchestrators (`/healthz` is liveness).
#[utoipa::path(get, path = "/readyz", tag = "system", responses(
    (status = 200, body = ReadyOutput, description = "Ready for requests"),
    (status = 503, body = ReadyOutput, description = "Starting or draining: send requests elsewhere"),
))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let status = state.readiness.status(&state.registry);
    let code = match status {
        NodeState::Ready => axum::http::StatusCode::OK,
        NodeState::Starting | NodeState::Draining => axum::http::StatusCode::SERVICE_UNAVAILABLE,
    };
    let body = ReadyOutput {
        status: status.as_str().into(),
    };
    (code, axum::Json(body)).into_response()
}

#[utoipa::path(get, path = "/openapi.json", tag = "system", responses((status = 200, description = "This document")))]
pub(crate) async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

/// Prometheus metrics in the OpenMetrics text format, on the operator listener only.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = String::new();
    if let Err(err) = prometheus_client::encoding::text::encode(&mut text, &state.metrics_registry)
    {
        return (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            err.to_string(),
        )
            .into_response();
    }
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
