//! The headers that say where a request's reads and writes landed (see
//! `omnigraph_cloud_actors::stamp`): `x-omnigraph-manifest-version` on 2xx answers that read
//! or wrote a branch, and `x-omnigraph-lease-epoch` on writes. Also where a read asks for
//! less than the latest: `x-omnigraph-consistency: stale-ok` (docs/api.md#consistency).

use std::time::Duration;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use omnigraph_cloud_actors::stamp::{self, ReadVersions};

use crate::error::ApiError;

pub(crate) const MANIFEST_VERSION_HEADER: &str = "x-omnigraph-manifest-version";
pub(crate) const LEASE_EPOCH_HEADER: &str = "x-omnigraph-lease-epoch";

/// A read that needs its version wherever it runs (see [`ReadVersions::Confirm`]) sends this
/// header with the value `confirm`.
pub(crate) const READ_VERSION_HEADER: &str = "x-omnigraph-read-version";

/// `strong` (the default) or `stale-ok`.
pub(crate) const CONSISTENCY_HEADER: &str = "x-omnigraph-consistency";
/// With `stale-ok`: the oldest snapshot accepted, in milliseconds.
pub(crate) const MAX_STALENESS_HEADER: &str = "x-omnigraph-max-staleness-ms";
/// On a stale-ok read's answer: the version read and how long ago it was confirmed latest.
pub(crate) const SNAPSHOT_VERSION_HEADER: &str = "x-omnigraph-snapshot-version";
pub(crate) const SNAPSHOT_AGE_HEADER: &str = "x-omnigraph-snapshot-age-ms";

/// A stale-ok read without `x-omnigraph-max-staleness-ms` accepts a snapshot this old.
pub(crate) const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(5);
/// The most a stale-ok read may accept.
const MOST_STALENESS: Duration = Duration::from_secs(3600);

/// Middleware over the data routes.
pub(crate) async fn headers(request: Request, next: Next) -> Response {
    let reads = match asked(&request) {
        Ok(reads) => reads,
        Err(err) => return err.into_response(),
    };
    let (mut response, stamp) = stamp::collect(reads, next.run(request)).await;
    if !response.status().is_success() {
        return response;
    }
    if let Some(age) = stamp.snapshot_age {
        let headers = response.headers_mut();
        if let Some(version) = stamp.manifest_version {
            headers.insert(SNAPSHOT_VERSION_HEADER, HeaderValue::from(version));
        }
        headers.insert(
            SNAPSHOT_AGE_HEADER,
            HeaderValue::from(age.as_millis() as u64),
        );
        return response;
    }
    {
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

/// What the request asks of its reads, from its headers.
fn asked(request: &Request) -> Result<ReadVersions, ApiError> {
    let headers = request.headers();
    let confirm = match headers.get(READ_VERSION_HEADER) {
        None => false,
        Some(value) if value.as_bytes().eq_ignore_ascii_case(b"confirm") => true,
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "header {READ_VERSION_HEADER} takes one value, 'confirm'"
            )));
        }
    };
    let stale_ok = match headers.get(CONSISTENCY_HEADER) {
        None => false,
        Some(value) if value.as_bytes().eq_ignore_ascii_case(b"strong") => false,
        Some(value) if value.as_bytes().eq_ignore_ascii_case(b"stale-ok") => true,
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "header {CONSISTENCY_HEADER} takes 'strong' (the default) or 'stale-ok'"
            )));
        }
    };
    let max_staleness = headers.get(MAX_STALENESS_HEADER);
    if !stale_ok {
        if max_staleness.is_some() {
            return Err(ApiError::bad_request(format!(
                "header {MAX_STALENESS_HEADER} applies only with {CONSISTENCY_HEADER}: stale-ok"
            )));
        }
        return Ok(if confirm {
            ReadVersions::Confirm
        } else {
            ReadVersions::WhenFree
        });
    }
    if confirm {
        return Err(ApiError::bad_request(format!(
            "{CONSISTENCY_HEADER}: stale-ok reads the last copy this node holds and cannot \
             confirm the latest version; drop one of it and {READ_VERSION_HEADER}"
        )));
    }
    if !reads_a_snapshot(request.method(), request.uri().path()) {
        return Err(ApiError::bad_request(format!(
            "{CONSISTENCY_HEADER}: stale-ok applies to reads only (query, read, snapshot, \
             export); {} {} is not one",
            request.method(),
            request.uri().path()
        )));
    }
    let max_staleness = match max_staleness {
        None => DEFAULT_MAX_STALENESS,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .map(Duration::from_millis)
            .filter(|max| *max <= MOST_STALENESS)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "header {MAX_STALENESS_HEADER}: milliseconds, an integer from 0 to {}",
                    MOST_STALENESS.as_millis()
                ))
            })?,
    };
    Ok(ReadVersions::StaleOk { max_staleness })
}

/// Whether `method path` is a route that may read a stale snapshot.
fn reads_a_snapshot(method: &Method, path: &str) -> bool {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let [graphs, _graph, route] = segments.as_slice() else {
        return false;
    };
    *graphs == "graphs"
        && matches!(
            (method, *route),
            (&Method::GET, "snapshot") | (&Method::POST, "query" | "read" | "export")
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_four_reads_take_stale_ok() {
        assert!(reads_a_snapshot(&Method::GET, "/graphs/g/snapshot"));
        assert!(reads_a_snapshot(&Method::POST, "/graphs/g/query"));
        assert!(reads_a_snapshot(&Method::POST, "/graphs/g/read"));
        assert!(reads_a_snapshot(&Method::POST, "/graphs/g/export"));
        assert!(!reads_a_snapshot(&Method::POST, "/graphs/g/mutate"));
        assert!(!reads_a_snapshot(&Method::POST, "/graphs/g/snapshot"));
        assert!(!reads_a_snapshot(&Method::GET, "/graphs/g/commits"));
        assert!(!reads_a_snapshot(&Method::POST, "/graphs/query/load"));
        assert!(!reads_a_snapshot(&Method::POST, "/graphs"));
    }
}
