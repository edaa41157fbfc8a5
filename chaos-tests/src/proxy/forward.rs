//! Forwarding a request to the upstream S3 server and relaying its answer, or dropping the
//! connection when that fails.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::header::HeaderName;

use super::faults::Faults;
use super::state::Shared;

/// A request whose connection is to be dropped without an answer.
#[derive(Debug)]
pub(super) struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DropConnection {}

/// Sends the request upstream and relays the answer.
pub(super) async fn forward(
    shared: &Shared,
    faults: &Faults,
    parts: hyper::http::request::Parts,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    let url = format!(
        "{}{}",
        shared.upstream,
        parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/")
    );
    let mut forward = shared.client.request(parts.method.clone(), url).body(body);
    for (name, value) in &parts.headers {
        // The client recomputes Content-Length from the body it sends.
        let recomputed = name == hyper::header::CONTENT_LENGTH;
        if recomputed
            || is_hop_by_hop(name)
            || (faults.strip_conditional_headers && is_conditional(name))
        {
            continue;
        }
        forward = forward.header(name, value);
    }
    let upstream = forward.send().await.map_err(|_| DropConnection)?;
    let mut response = Response::builder().status(upstream.status());
    // Content-Length is kept: a HEAD answer has no body to derive it from.
    for (name, value) in upstream.headers() {
        if !is_hop_by_hop(name) {
            response = response.header(name, value);
        }
    }
    let bytes = upstream.bytes().await.map_err(|_| DropConnection)?;
    response.body(Full::new(bytes)).map_err(|_| DropConnection)
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
    )
}

fn is_conditional(name: &HeaderName) -> bool {
    matches!(name.as_str(), "if-match" | "if-none-match")
}
