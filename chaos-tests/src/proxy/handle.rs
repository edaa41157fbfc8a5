//! One request's way through the proxy: control routes aside, it is counted, then the faults
//! in force apply in order (drop or partition, latency, error answer, hold), and what is left
//! is forwarded upstream.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};

use super::control::control;
use super::faults::{draw, fires, s3_error};
use super::forward::{DropConnection, forward};
use super::request::{classify, object_key};
use super::state::Shared;

pub(super) async fn handle(
    shared: &Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    if request.uri().path().starts_with("/__proxy/") {
        return Ok(control(shared, request).await);
    }
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map_err(|_| DropConnection)?.to_bytes();
    let op = classify(&parts.method, parts.uri.path(), parts.uri.query());
    let key = object_key(parts.uri.path(), parts.uri.query());
    let bucket = parts
        .uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    shared.record(op, bucket, &key);
    tracing::debug!(target: "og_s3_proxy", ?op, %key, "request");
    let faults = shared.faults.read().expect("faults lock").clone();

    if faults.partition || (faults.drop_rate > 0.0 && fastrand::f64() < faults.drop_rate) {
        shared.stats.lock().expect("stats lock").dropped += 1;
        return Err(DropConnection);
    }
    if let Some(latency) = faults.latency.get(&op) {
        tokio::time::sleep(draw(latency)).await;
    }
    if let Some(rule) = faults.errors.iter().find(|rule| fires(rule, op, &key)) {
        shared.stats.lock().expect("stats lock").injected_errors += 1;
        return Ok(s3_error(rule));
    }
    if shared.take_hold(&faults, op, &key) {
        shared.stats.lock().expect("stats lock").held += 1;
        // Delivered later even if the client gave up: the forwarding runs on its own task.
        let shared = Arc::clone(shared);
        let forwarded = tokio::spawn(async move {
            shared.wait_for_release(&faults).await;
            let faults = shared.faults.read().expect("faults lock").clone();
            forward(&shared, &faults, parts, body).await
        });
        return forwarded.await.map_err(|_| DropConnection)?;
    }
    forward(shared, &faults, parts, body).await
}
