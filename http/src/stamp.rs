//! The headers that say where a request's reads and writes landed (see
//! `omnigraph_cloud_actors::stamp`): `x-omnigraph-manifest-version` on every 2xx answer that
//! read or wrote a branch, and `x-omnigraph-lease-epoch` on writes.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use omnigraph_cloud_actors::stamp;

pub(crate) const MANIFEST_VERSION_HEADER: &str = "x-omnigraph-manifest-version";
pub(crate) const LEASE_EPOCH_HEADER: &str = "x-omnigraph-lease-epoch";

/// Middleware over the data routes.
pub(crate) async fn headers(request: Request, next: Next) -> Response {
    let (mut response, stamp) = stamp::collect(next.run(request)).await;
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
