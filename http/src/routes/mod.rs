//! The router: every upstream omnigraph-server 0.8 route under `/graphs/{graph_id}/...`,
//! plus graph management and node routes, and the OpenAPI document ([`ApiDoc`]) that lists
//! them.

pub(crate) mod admin;
pub(crate) mod branches;
pub(crate) mod data;
pub(crate) mod graphs;
pub(crate) mod schema;
pub(crate) mod system;

use std::any::Any;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use crate::error::ApiError;
use crate::metrics;
use crate::openapi::{BearerAuth, NameRules, Unavailable};
use crate::state::AppState;

/// The OpenAPI document, generated from the handlers' annotations and completed by the
/// modifiers of `crate::openapi`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "omnigraph-cloud",
        description = "Managed OmniGraph data plane. Wire-compatible with omnigraph-server 0.8 \
                       under /graphs/{graph_id}/..., plus graph management. The tenant is \
                       resolved from the bearer token."
    ),
    paths(
        system::healthz, system::readyz, system::openapi,
        graphs::list, graphs::create, graphs::delete, graphs::warm,
        data::snapshot, data::query, data::read, data::mutate, data::change,
        data::load, data::ingest, data::export,
        schema::get, schema::apply, schema::catalog, schema::invoke,
        branches::list, branches::create, branches::delete, branches::merge,
        branches::commits, branches::commit,
        admin::maintenance, admin::cluster,
    ),
    components(schemas(crate::dto::ErrorOutput)),
    modifiers(&BearerAuth, &NameRules, &Unavailable),
)]
pub struct ApiDoc;

/// Builds the HTTP API of a node.
pub fn router(state: AppState) -> Router {
    let limits = state.limits;
    let node = Router::new()
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/openapi.json", get(system::openapi))
        .route(
            "/admin/repos/{tenant}/{graph_id}/maintenance",
            get(admin::maintenance),
        )
        .route("/admin/cluster", get(admin::cluster));
    let routes = if state.serves_data {
        let data = data_routes(limits)
            .layer(middleware::from_fn(crate::stamp::headers))
            .layer(middleware::from_fn_with_state(
                std::sync::Arc::clone(&state.forwarding),
                crate::forward::writes,
            ))
            .layer(middleware::from_fn_with_state(
                crate::admission::Gate {
                    admission: std::sync::Arc::clone(&state.admission),
                    auth: std::sync::Arc::clone(&state.auth),
                    limits: state.limits,
                    usage: state.usage.clone(),
                },
                crate::admission::admit,
            ));
        node.merge(data)
            .fallback(|| async { ApiError::not_found("no such route") })
    } else {
        node.fallback(|| async {
            ApiError::not_found(
                "no such route: this node runs the worker role only and serves no data API",
            )
        })
    };
    routes
        .layer(DefaultBodyLimit::max(limits.default))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The operator listener's router: `GET /metrics` and nothing else. It is served on
/// `server.metrics_bind` (loopback by default), never on the public listener, because its
/// series name tenants and graphs.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(system::metrics))
        .fallback(|| async {
            ApiError::not_found("no such route: this listener serves /metrics only")
        })
        .with_state(state)
}

/// The data API: upstream's routes and graph management.
fn data_routes(limits: crate::limits::BodyLimits) -> Router<AppState> {
    let load_limit = DefaultBodyLimit::max(limits.load);
    Router::new()
        .route("/graphs", get(graphs::list).post(graphs::create))
        .route("/graphs/{graph_id}", delete(graphs::delete))
        .route("/graphs/{graph_id}/warm", post(graphs::warm))
        .route("/graphs/{graph_id}/snapshot", get(data::snapshot))
        .route("/graphs/{graph_id}/query", post(data::query))
        .route("/graphs/{graph_id}/read", post(data::read))
        .route("/graphs/{graph_id}/mutate", post(data::mutate))
        .route("/graphs/{graph_id}/change", post(data::change))
        .route(
            "/graphs/{graph_id}/load",
            post(data::load).layer(load_limit),
        )
        .route(
            "/graphs/{graph_id}/ingest",
            post(data::ingest).layer(load_limit),
        )
        .route("/graphs/{graph_id}/export", post(data::export))
        .route("/graphs/{graph_id}/schema", get(schema::get))
        .route("/graphs/{graph_id}/schema/apply", post(schema::apply))
        .route("/graphs/{graph_id}/queries", get(schema::catalog))
        .route("/graphs/{graph_id}/queries/{name}", post(schema::invoke))
        .route(
            "/graphs/{graph_id}/branches",
            get(branches::list).post(branches::create),
        )
        .route("/graphs/{graph_id}/branches/merge", post(branches::merge))
        .route(
            "/graphs/{graph_id}/branches/{branch}",
            delete(branches::delete),
        )
        .route("/graphs/{graph_id}/commits", get(branches::commits))
        .route(
            "/graphs/{graph_id}/commits/{commit_id}",
            get(branches::commit),
        )
}

/// A handler panic is a bug: answer a 500 in the usual error shape instead of dropping the
/// connection.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = detail, "request handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error; the cause is in the server log",
    )
    .into_response()
}

/// A response from a deprecated route: adds `Deprecation: true` and a `Link` to the
/// successor route, as upstream does.
pub(crate) struct Deprecated<T> {
    inner: T,
    successor: &'static str,
}

impl<T> Deprecated<T> {
    pub(crate) fn new(inner: T, successor: &'static str) -> Deprecated<T> {
        Deprecated { inner, successor }
    }
}

impl<T: IntoResponse> IntoResponse for Deprecated<T> {
    fn into_response(self) -> Response {
        let mut response = self.inner.into_response();
        let headers = response.headers_mut();
        headers.insert("deprecation", HeaderValue::from_static("true"));
        let link = format!("<{}>; rel=\"successor-version\"", self.successor);
        if let Ok(link) = HeaderValue::from_str(&link) {
            headers.insert("link", link);
        }
        response
    }
}
