//! The headers that say where a request's reads and writes landed (see
//! `omnigraph_cloud_actors::stamp`): `x-omnigraph-manifest-version` on 2xx answers that read
//! or wrote a branch, and `x-omnigraph-lease-epoch` on writes.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use omnigraph_cloud_actors::stamp::{self, ReadVersions};

use crate::error::ApiError;

pub(crate) const MANIFEST_VERSION_HEADER: &str = "x-omnigraph-manifest-version";
pub(crate) const LEASE_EPOCH_HEADER: &str = "x-omnigraph-lease-epoch";

/// A read that needs its version wherever it runs (see [`ReadVersions::Confirm`]) sends this
/// header with the value `confirm`.
pub(crate) const READ_VERSION_HEADER: &str = "x-omnigraph-read-version";

/// Middleware over the data routes.
pub(crate) async fn headers(request: Request, next: Next) -> Response {
    let reads = match request.headers().get(READ_VERSION_HEADER) {
        None => ReadVersions::WhenFree,
        Some(value) if value.as_bytes().eq_ignore_ascii_case(b"confirm") => ReadVersions::Confirm,
        Some(_) => {
            return ApiError::bad_request(format!(
                "header {READ_VERSION_HEADER} takes one value, 'confirm'"
            ))
            .into_response();
        }
    };
    let (mut response, stamp) = stamp::collect(reads, next.run(request)).await;
    if response.status().is_success() {
        let headers = response.headers_mut();
        if let Some(version) = stamp.manifest_version {
            headers.insert(MANIFEST_VERSION_HEADER, HeaderValue::from(version));
        }
        if let Some(epoch) = stamp.lease_epoch {
            headers.insert(LEASE_EPOCH_HEADER, HeaderValue::from(epoch));
        }
    }
    response
}
