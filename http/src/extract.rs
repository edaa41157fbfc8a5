//! Extractors that answer bad requests in the error JSON rather than axum's plain text:
//! the caller's [`Principal`] (from the bearer token), JSON bodies, the addressed repo, and
//! the names a request carries.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use omnigraph_cloud_actors::RepoKey;
use omnigraph_cloud_config::{BranchName, CommitId, GraphId};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::forward::{ForwardedIn, ServeLocally};
use crate::principal::Principal;
use crate::state::AppState;

/// The caller, authenticated from the `Authorization` header by the node's verifier (by the
/// admission middleware, on the data routes).
impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Principal, ApiError> {
        // Admission authenticated the caller already.
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .map(|value| {
                value
                    .to_str()
                    .map_err(|_| ApiError::unauthorized("invalid bearer token"))
            })
            .transpose()?;
        state.auth.verify(header)
    }
}

/// `axum::Json` with rejections in our error body: 415 without a JSON content type, 400 for
/// malformed JSON, 422 for a missing field or a wrong type, 413 past the body limit.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Json<T>, ApiError> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable_entity",
        StatusCode::BAD_REQUEST => "bad_request",
        _ => "bad_request",
    };
    ApiError::new(status, code, rejection.body_text())
}

/// The repo a per-graph route addresses: the caller's tenant and the `{graph_id}` of the
/// path. Authentication runs first, so a bad token is a 401 whatever the graph id.
pub struct Repo {
    pub principal: Principal,
    pub key: RepoKey,
}

impl FromRequestParts<AppState> for Repo {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Repo, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|err| ApiError::bad_request(err.body_text()))?;
        let raw = params
            .iter()
            .find(|(name, _)| name == "graph_id")
            .map(|(_, value)| value.as_str())
            .ok_or_else(|| ApiError::bad_request("missing graph id in path"))?;
        let graph = parse_graph_id(raw)?;
        let key = RepoKey::new(principal.tenant.clone(), graph);
        if is_routed_read(parts, state)
            && let Some((node, address)) = state.registry.read_owner(&key).await
        {
            return Err(ApiError::read_elsewhere(node, address));
        }
        Ok(Repo { principal, key })
    }
}

/// Whether this request is a read that follows placement (`cluster.reads = "owner"`): not
/// forwarded here, not already sent back here by the forwarding middleware, and a read route
/// (a GET, or a query, read or export).
fn is_routed_read(parts: &Parts, state: &AppState) -> bool {
    crate::forward::is_read_route(&parts.method, parts.uri.path())
        && state.forwarding.reads_to_owner()
        && parts.extensions.get::<ForwardedIn>().is_none()
        && parts.extensions.get::<ServeLocally>().is_none()
}

pub(crate) fn parse_graph_id(raw: &str) -> Result<GraphId, ApiError> {
    GraphId::new(raw).map_err(|err| ApiError::bad_request(err.to_string()))
}

/// The branch a request names in `field`, or `main` when it names none. A name that is not
/// canonical is refused (400, naming the field and the rule), never trimmed or rewritten.
pub(crate) fn branch_or_main(field: &str, raw: Option<&str>) -> Result<BranchName, ApiError> {
    raw.map_or_else(|| Ok(BranchName::main()), |raw| branch(field, raw))
}

/// The branch a request names in `field` (see [`branch_or_main`]).
pub(crate) fn branch(field: &str, raw: &str) -> Result<BranchName, ApiError> {
    BranchName::new(raw).map_err(|err| ApiError::bad_request(format!("{field}: {err}")))
}

/// The graph commit id a request names in `field`.
pub(crate) fn commit_id(field: &str, raw: &str) -> Result<CommitId, ApiError> {
    CommitId::new(raw).map_err(|err| ApiError::bad_request(format!("{field}: {err}")))
}
