//! Reading a request for forwarding: which routes are reads, which headers belong to one
//! connection, the target of a request, and relaying the holder's answer.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header};
use axum::response::Response;

use super::FORWARDED_TO_HEADER;

/// A read route with a body: `POST /graphs/{graph_id}/query`, `/read` or `/export`.
pub(super) fn is_read_with_body(parts: &axum::http::request::Parts) -> bool {
    parts.method == Method::POST && is_read_route(&parts.method, parts.uri.path())
}

/// A per-graph read: any GET, or a POST to `/graphs/{graph_id}/query`, `/read` or `/export`.
pub(crate) fn is_read_route(method: &Method, path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let per_graph = segments.len() >= 2 && segments[0] == "graphs";
    per_graph
        && (*method == Method::GET
            || (*method == Method::POST
                && segments.len() == 3
                && matches!(segments[2], "query" | "read" | "export")))
}

/// The holder's answer as this node's, its body streamed.
pub(super) fn relay(answer: reqwest::Response, holder: &str) -> Response {
    let status = answer.status();
    let mut headers = HeaderMap::with_capacity(answer.headers().len() + 1);
    for (name, value) in answer.headers() {
        if !is_hop_by_hop(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Ok(holder) = HeaderValue::from_str(holder) {
        headers.insert(FORWARDED_TO_HEADER, holder);
    }
    let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

pub(super) fn retry_after(response: &Response) -> Option<u64> {
    response
        .headers()
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

pub(super) fn path_and_query(uri: &Uri) -> &str {
    uri.path_and_query().map_or("/", |target| target.as_str())
}

/// Headers that describe one connection, not the request (RFC 9110, 7.6.1).
pub(super) fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_gets_and_the_three_read_posts_of_a_graph() {
        for (method, path) in [
            (Method::GET, "/graphs/g/snapshot"),
            (Method::GET, "/graphs/g/commits/abc"),
            (Method::POST, "/graphs/g/query"),
            (Method::POST, "/graphs/g/read"),
            (Method::POST, "/graphs/g/export"),
        ] {
            assert!(is_read_route(&method, path), "{method} {path}");
        }
        for (method, path) in [
            (Method::POST, "/graphs/g/mutate"),
            (Method::POST, "/graphs/g/queries/query"),
            (Method::POST, "/graphs/query"),
            (Method::DELETE, "/graphs/g"),
            (Method::GET, "/admin/cluster"),
        ] {
            assert!(!is_read_route(&method, path), "{method} {path}");
        }
    }
}
