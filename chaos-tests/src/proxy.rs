//! A fault-injecting S3 proxy.
//!
//! It listens on loopback and forwards every request unchanged — method, path, query, headers
//! (the `Host` header included, so SigV4 signatures still verify) and body — to a real S3
//! server, and on the way it can add per-operation latency with jitter, answer S3 errors
//! (500, 503, `SlowDown`) at a rate or for a key pattern, drop connections, partition the
//! store entirely, and strip conditional-write headers (to impersonate a store that ignores
//! them), and hold requests (a network that delays a request, then delivers it). Faults are
//! switched at run time through `/__proxy/faults`; request counts per operation and per
//! tenant/graph are at `/__proxy/stats`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderName};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The kind of S3 operation a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Get,
    Put,
    List,
    Head,
    Delete,
    /// Multipart upload steps and batch deletes.
    Post,
}

/// The faults in force. Every field defaults to "no fault".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added latency per operation.
    pub latency: BTreeMap<Op, Latency>,
    /// Error answers; the first rule that matches and fires wins.
    pub errors: Vec<ErrorRule>,
    /// Fraction of requests whose connection is dropped without an answer.
    pub drop_rate: f64,
    /// Every request's connection is dropped: the store is unreachable.
    pub partition: bool,
    /// Removes `If-Match` and `If-None-Match` before forwarding.
    pub strip_conditional_headers: bool,
    /// Requests held back until the rule is removed (a later `PUT /__proxy/faults` without
    /// it), then forwarded, whether or not their client still waits for the answer.
    pub holds: Vec<HoldRule>,
}

/// Holds matching requests. A held request is forwarded once no rule in force holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldRule {
    /// Operations it applies to; empty means all.
    #[serde(default)]
    pub ops: Vec<Op>,
    /// Applies only to keys containing this text.
    #[serde(default)]
    pub key_contains: Option<String>,
    /// Holds at most this many requests (counted over the rule's life); later matching
    /// requests pass. Unset: every matching request is held.
    #[serde(default)]
    pub max_held: Option<u64>,
}

/// Latency drawn uniformly from `p50_ms ± jitter_ms` (so its median is `p50_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    pub p50_ms: u64,
    #[serde(default)]
    pub jitter_ms: u64,
}

/// Answers an S3 error instead of forwarding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorRule {
    /// Operations it applies to; empty means all.
    #[serde(default)]
    pub ops: Vec<Op>,
    /// Applies only to keys containing this text.
    #[serde(default)]
    pub key_contains: Option<String>,
    /// Probability of firing for a matching request, 0.0 to 1.0.
    pub rate: f64,
    /// HTTP status: 500 (`InternalError`), 503 (`ServiceUnavailable`) or 503 with
    /// `code = "SlowDown"`.
    pub status: u16,
    #[serde(default)]
    pub code: Option<String>,
}

/// Requests seen by the proxy (before faults are applied), by operation and by graph.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub by_op: BTreeMap<Op, u64>,
    /// Keyed `tenant/graph`, for keys under `tenants/{tenant}/graphs/{graph}.omni/`.
    pub by_graph: BTreeMap<String, BTreeMap<Op, u64>>,
    pub injected_errors: u64,
    pub dropped: u64,
    /// Requests held by a hold rule, released or not.
    pub held: u64,
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    faults: RwLock<Faults>,
    stats: Mutex<Stats>,
    /// Woken whenever the faults change, for held requests to look again.
    faults_changed: tokio::sync::Notify,
    /// Requests held so far per hold rule (by its position), for `max_held`.
    held_per_rule: Mutex<Vec<u64>>,
}

/// A running proxy; dropping it stops accepting connections.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

/// A request whose connection is to be dropped without an answer.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DropConnection {}

impl FaultProxy {
    /// Listens on `listen` (use port 0 for any) and forwards to `upstream` (`http://host:port`).
    pub async fn start(listen: SocketAddr, upstream: &str) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client,
            faults: RwLock::new(Faults::default()),
            stats: Mutex::new(Stats::default()),
            faults_changed: tokio::sync::Notify::new(),
            held_per_rule: Mutex::new(Vec::new()),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(FaultProxy {
            addr,
            shared,
            accept,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, to use as the S3 endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_faults(&self, faults: Faults) {
        self.shared.set_faults(faults);
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats.lock().expect("stats lock").clone()
    }

    pub fn reset_stats(&self) {
        *self.shared.stats.lock().expect("stats lock") = Stats::default();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { handle(&shared, request).await }
            });
            // An error here is a dropped connection, injected or not: nothing to report.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl Shared {
    fn set_faults(&self, faults: Faults) {
        let mut current = self.faults.write().expect("faults lock");
        // A hold rule's count lives as long as the rule: changing other faults keeps it.
        if current.holds != faults.holds {
            *self.held_per_rule.lock().expect("hold lock") = vec![0; faults.holds.len()];
        }
        *current = faults;
        drop(current);
        self.faults_changed.notify_waiters();
    }

    /// Whether a hold rule takes this request (counting it against the rule's `max_held`).
    fn take_hold(&self, faults: &Faults, op: Op, key: &str) -> bool {
        let mut held = self.held_per_rule.lock().expect("hold lock");
        held.resize(faults.holds.len(), 0);
        for (index, rule) in faults.holds.iter().enumerate() {
            let matches = (rule.ops.is_empty() || rule.ops.contains(&op))
                && rule
                    .key_contains
                    .as_deref()
                    .is_none_or(|needle| key.contains(needle));
            if matches && rule.max_held.is_none_or(|max| held[index] < max) {
                held[index] += 1;
                return true;
            }
        }
        false
    }

    /// Waits until the faults change so that `rule` (what held the request) is gone.
    async fn wait_for_release(&self, rule: &Faults) {
        loop {
            let changed = self.faults_changed.notified();
            if self.faults.read().expect("faults lock").holds != rule.holds {
                return;
            }
            changed.await;
        }
    }
}

async fn handle(
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
    record(shared, op, &key);
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

/// Sends the request upstream and relays the answer.
async fn forward(
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

async fn control(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    let json = |status: StatusCode, body: String| {
        Response::builder()
            .status(status)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("static response")
    };
    match (method, path.as_str()) {
        (Method::GET, "/__proxy/faults") => {
            let faults = shared.faults.read().expect("faults lock").clone();
            json(
                StatusCode::OK,
                serde_json::to_string(&faults).expect("faults serialize"),
            )
        }
        (Method::PUT, "/__proxy/faults") => {
            let Ok(body) = request.into_body().collect().await else {
                return json(
                    StatusCode::BAD_REQUEST,
                    "{\"error\":\"unreadable body\"}".into(),
                );
            };
            match serde_json::from_slice::<Faults>(&body.to_bytes()) {
                Ok(faults) => {
                    shared.set_faults(faults.clone());
                    json(
                        StatusCode::OK,
                        serde_json::to_string(&faults).expect("faults serialize"),
                    )
                }
                Err(err) => json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"error": err.to_string()}).to_string(),
                ),
            }
        }
        (Method::GET, "/__proxy/stats") => {
            let stats = shared.stats.lock().expect("stats lock").clone();
            json(
                StatusCode::OK,
                serde_json::to_string(&stats).expect("stats serialize"),
            )
        }
        (Method::POST, "/__proxy/stats/reset") => {
            *shared.stats.lock().expect("stats lock") = Stats::default();
            json(StatusCode::OK, "{}".into())
        }
        _ => json(
            StatusCode::NOT_FOUND,
            "{\"error\":\"unknown control route\"}".into(),
        ),
    }
}

/// Classifies a path-style S3 request (`/bucket/key...`).
fn classify(method: &Method, path: &str, query: Option<&str>) -> Op {
    let has_key = path
        .trim_start_matches('/')
        .split_once('/')
        .is_some_and(|(_, key)| !key.is_empty());
    match *method {
        Method::GET
            if !has_key
                || query.is_some_and(|q| q.contains("list-type") || q.contains("prefix=")) =>
        {
            Op::List
        }
        Method::GET => Op::Get,
        Method::PUT => Op::Put,
        Method::HEAD => Op::Head,
        Method::DELETE => Op::Delete,
        _ => Op::Post,
    }
}

/// The object key, or the listed prefix for a LIST.
fn object_key(path: &str, query: Option<&str>) -> String {
    let key = path
        .trim_start_matches('/')
        .split_once('/')
        .map(|(_, key)| key)
        .unwrap_or("");
    if !key.is_empty() {
        return percent_decode(key);
    }
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("prefix="))
        .map(percent_decode)
        .unwrap_or_default()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(value) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(value);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `tenant/graph` for keys under `tenants/{tenant}/graphs/{graph}.omni`.
fn graph_of(key: &str) -> Option<String> {
    let rest = &key[key.find("tenants/")? + "tenants/".len()..];
    let (tenant, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("graphs/")?;
    let graph = rest.split('/').next()?.strip_suffix(".omni")?;
    Some(format!("{tenant}/{graph}"))
}

fn record(shared: &Shared, op: Op, key: &str) {
    let mut stats = shared.stats.lock().expect("stats lock");
    *stats.by_op.entry(op).or_default() += 1;
    if let Some(graph) = graph_of(key) {
        *stats
            .by_graph
            .entry(graph)
            .or_default()
            .entry(op)
            .or_default() += 1;
    }
}

fn fires(rule: &ErrorRule, op: Op, key: &str) -> bool {
    (rule.ops.is_empty() || rule.ops.contains(&op))
        && rule
            .key_contains
            .as_deref()
            .is_none_or(|needle| key.contains(needle))
        && fastrand::f64() < rule.rate
}

fn draw(latency: &Latency) -> Duration {
    let low = latency.p50_ms.saturating_sub(latency.jitter_ms);
    let high = latency.p50_ms + latency.jitter_ms;
    Duration::from_millis(fastrand::u64(low..=high))
}

fn s3_error(rule: &ErrorRule) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(rule.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let code = rule.code.clone().unwrap_or_else(|| match rule.status {
        500 => "InternalError".into(),
        _ => "ServiceUnavailable".into(),
    });
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>\
         <Message>injected by og-s3-proxy</Message></Error>"
    );
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/xml")
        .body(Full::new(Bytes::from(body)))
        .expect("static response")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_path_style_requests() {
        assert_eq!(classify(&Method::GET, "/b/tenants/t/x", None), Op::Get);
        assert_eq!(
            classify(&Method::GET, "/b", Some("list-type=2&prefix=a")),
            Op::List
        );
        assert_eq!(classify(&Method::GET, "/b/", None), Op::List);
        assert_eq!(classify(&Method::PUT, "/b/k", None), Op::Put);
        assert_eq!(classify(&Method::HEAD, "/b/k", None), Op::Head);
        assert_eq!(classify(&Method::DELETE, "/b/k", None), Op::Delete);
        assert_eq!(classify(&Method::POST, "/b", Some("delete")), Op::Post);
    }

    #[test]
    fn attributes_keys_and_prefixes_to_graphs() {
        assert_eq!(
            graph_of("root/tenants/acme/graphs/g1.omni/_schema.pg"),
            Some("acme/g1".into())
        );
        assert_eq!(
            graph_of(&object_key(
                "/b",
                Some("list-type=2&prefix=tenants%2Facme%2Fgraphs%2Fg2.omni%2F")
            )),
            Some("acme/g2".into())
        );
        assert_eq!(graph_of("_system/probe/x"), None);
    }

    #[test]
    fn latency_stays_within_its_band() {
        let latency = Latency {
            p50_ms: 100,
            jitter_ms: 20,
        };
        for _ in 0..1000 {
            let drawn = draw(&latency).as_millis();
            assert!((80..=120).contains(&drawn), "{drawn}");
        }
    }
}
