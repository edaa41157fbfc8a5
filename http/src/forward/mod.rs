//! Forwarding: a write that reaches a node without the graph's writer lease is sent on, one
//! hop, to the node that holds it, and its answer is streamed back (docs/cluster.md).
//!
//! The local handler runs first: it authenticates and authorizes the caller, and the graph's
//! actor checks the writer lease. Only its 421 (nothing written) carries the holder's address,
//! read from the lease record in object storage, never from gossip: the caller's credential
//! only ever travels to a node that could write to the store. The forwarded request carries
//! the caller's own `Authorization`, which the holder verifies again, and a header signed with
//! the cluster secret ([`signature`]) that marks it as forwarded: a node never forwards such a
//! request again, and answers 421 itself when it does not hold the lease either.
//!
//! The request body is recorded as the local handler reads it (after authentication, within
//! the route's body limit), so that it can be sent on; the answer is streamed. A write the holder
//! certainly did not make (it could not be reached, or answered 421, or 503 with
//! `Retry-After`) is tried again for a few seconds, run here again first: a draining holder
//! answers so while it releases its leases, and this node, or the next holder, then takes
//! the write. Each try is one hop; a forwarded request is never sent on by its receiver.

mod metrics;
mod request;
mod signature;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use bytes::BytesMut;
use http_body_util::{BodyExt, Limited};
use omnigraph_cloud_actors::Clock;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::error::{ApiError, WriterAt};

pub(crate) use metrics::ForwardMetrics;
pub(crate) use request::is_read_route;
use request::{is_hop_by_hop, is_read_with_body, path_and_query, relay, retry_after};
pub(crate) use signature::HEADER as FORWARDED_HEADER;
pub use signature::MIN_SECRET_BYTES;
use signature::{ClusterKey, HEADER, Refused, Signed};

/// A client that wants the 421 naming the holder, not a forwarded answer, sends this header
/// with the value `never`.
pub(crate) const OPT_OUT_HEADER: &str = "x-omnigraph-forward";
/// On a forwarded answer: the lease holder that produced it.
pub(crate) const FORWARDED_TO_HEADER: &str = "x-omnigraph-forwarded-to";

/// How long a write the holder did not make (it could not be reached, or answered that it
/// wrote nothing) is tried again, here and then wherever the lease is, and how long between
/// tries: a draining holder releases its leases within moments; a dead one's has to lapse.
const UNREACHABLE_RETRY_FOR: Duration = Duration::from_secs(5);
const UNREACHABLE_PAUSE: Duration = Duration::from_millis(200);

/// What a node needs to forward writes.
pub struct ForwardSetup {
    /// The cluster's shared secret, at least [`MIN_SECRET_BYTES`] long.
    pub secret: Vec<u8>,
    /// This node's lease holder id, named in the signed header.
    pub node: String,
    /// This node's own advertised address: a lease naming it is never forwarded to.
    pub address: String,
    /// The longest a forwarded request may take.
    pub timeout: Duration,
    /// Send reads to the graph's placement owner (`cluster.reads = "owner"`).
    pub reads_to_owner: bool,
}

/// How this node forwards writes, and checks the ones forwarded to it.
pub struct Forwarding {
    /// `None`: forwarding is off, and a forwarded request is refused.
    outgoing: Option<Outgoing>,
    pub(crate) metrics: ForwardMetrics,
}

struct Outgoing {
    key: ClusterKey,
    node: String,
    address: String,
    timeout: Duration,
    client: reqwest::Client,
    reads_to_owner: bool,
    reads: ReadRouting,
}

/// What routing a read with a body (`/query`, `/read`, `/export`) needs: its body is read
/// before the handler decides where it goes, so the caller is authenticated first, and the
/// body bounded by the route's limit.
pub(crate) struct ReadRouting {
    pub(crate) verifier: Arc<crate::auth::TokenVerifier>,
    pub(crate) body_limit: usize,
}

/// A request extension: this request was forwarded here by another node (verified), so it
/// is answered here, never sent on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ForwardedIn;

/// A request extension: answer this read here (its owner could not).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServeLocally;

impl Forwarding {
    pub(crate) fn disabled(metrics: ForwardMetrics) -> Forwarding {
        Forwarding {
            outgoing: None,
            metrics,
        }
    }

    /// Forwarding with `setup`; an error names what is wrong with it.
    pub(crate) fn new(
        setup: ForwardSetup,
        metrics: ForwardMetrics,
        reads: ReadRouting,
    ) -> Result<Forwarding, String> {
        let key = ClusterKey::new(&setup.secret).ok_or_else(|| {
            format!(
                "the cluster secret has {} bytes; at least {MIN_SECRET_BYTES} are needed",
                setup.secret.len()
            )
        })?;
        let client = reqwest::Client::builder()
            // Node-to-node traffic never goes through a proxy from the environment.
            .no_proxy()
            // A fresh connection per forward: a pooled one the holder closed (a drain) or lost
            // (a crash) fails only once the request is written, when it is unknown whether
            // the write was applied; a refused connection proves it was not.
            .pool_max_idle_per_host(0)
            // A node answers; it never redirects a forwarded request elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|err| format!("the forwarding client could not be built: {err}"))?;
        Ok(Forwarding {
            outgoing: Some(Outgoing {
                key,
                node: setup.node,
                address: setup.address,
                timeout: setup.timeout,
                client,
                reads_to_owner: setup.reads_to_owner,
                reads,
            }),
            metrics,
        })
    }

    /// Whether reads should go to the graph's placement owner.
    pub(crate) fn reads_to_owner(&self) -> bool {
        self.outgoing
            .as_ref()
            .is_some_and(|outgoing| outgoing.reads_to_owner)
    }

    /// The node a valid forwarded header names, `None` without the header.
    fn check_incoming(&self, request: &Request) -> Result<Option<String>, ApiError> {
        let Some(value) = request.headers().get(HEADER) else {
            return Ok(None);
        };
        let refuse = |why: &str| {
            self.metrics.refused_incoming();
            ApiError::forbidden(format!(
                "the request carries {HEADER}, which only nodes of this cluster may send, and \
                 {why}"
            ))
        };
        let Some(outgoing) = &self.outgoing else {
            return Err(refuse("this node has no cluster secret"));
        };
        let value = value
            .to_str()
            .map_err(|_| refuse("its value is not text"))?;
        let authorization = request.headers().get(header::AUTHORIZATION);
        let signed = Signed {
            method: request.method().as_str(),
            path_and_query: path_and_query(request.uri()),
            authorization: authorization.map(HeaderValue::as_bytes),
        };
        match outgoing.key.verify(value, now_ms(), &signed) {
            Ok(node) => Ok(Some(node)),
            Err(Refused::Malformed) => Err(refuse("its value is malformed")),
            Err(Refused::Expired) => Err(refuse(
                "its time is more than a minute off this node's clock",
            )),
            Err(Refused::BadSignature) => Err(refuse("its signature does not verify")),
        }
    }
}

/// Middleware over the data routes: runs the request here, and sends a write this node may
/// not make on to the lease holder. State: the node's [`Forwarding`].
pub(crate) async fn writes(
    State(forwarding): State<Arc<Forwarding>>,
    request: Request,
    next: Next,
) -> Response {
    let from = match forwarding.check_incoming(&request) {
        Ok(from) => from,
        Err(err) => return err.into_response(),
    };
    if let Some(from) = from {
        forwarding.metrics.received();
        let mut request = request;
        request.extensions_mut().insert(ForwardedIn);
        let response = omnigraph_cloud_actors::origin::forwarded(next.run(request)).await;
        if response.status() == StatusCode::MISDIRECTED_REQUEST {
            debug!(%from, "a forwarded write reached a node without the lease: answered 421, not forwarded again");
            forwarding.metrics.not_forwarded_again();
        }
        return response;
    }
    let Some(outgoing) = &forwarding.outgoing else {
        return next.run(request).await;
    };
    let opted_out = request
        .headers()
        .get(OPT_OUT_HEADER)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"never"));
    let read = matches!(*request.method(), Method::GET | Method::HEAD);
    if opted_out || (read && !outgoing.reads_to_owner) {
        return next.run(request).await;
    }
    // The body is recorded as the local handler reads it: after it has authenticated the
    // caller, and within its route's limit. A write it refuses to make is then sent on whole.
    // A read that may go to its owner is decided before its body is read, so that body is
    // read here first, once the caller is authenticated.
    let (parts, body) = request.into_parts();
    let recorded = Arc::new(Mutex::new(BytesMut::new()));
    let (mut unread, mut body) = if outgoing.reads_to_owner && is_read_with_body(&parts) {
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|value| value.to_str().unwrap_or_default());
        if let Err(err) = outgoing.reads.verifier.verify(authorization) {
            return err.into_response();
        }
        let limit = outgoing.reads.body_limit;
        match Limited::new(body, limit).collect().await {
            Ok(collected) => (None, Some(collected.to_bytes())),
            Err(_) => {
                return ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("the request body is larger than this route's limit of {limit} bytes"),
                )
                .into_response();
            }
        }
    } else {
        let recorded = Arc::clone(&recorded);
        let tee = body.map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                recorded
                    .lock()
                    .expect("body record")
                    .extend_from_slice(data);
            }
            frame
        });
        (Some(Body::new(tee)), None)
    };
    let arrived = Instant::now();
    loop {
        let request = match unread.take() {
            Some(first) => Request::from_parts(parts.clone(), first),
            None => {
                Request::from_parts(parts.clone(), Body::from(body.clone().unwrap_or_default()))
            }
        };
        let local = next.clone().run(request).await;
        let Some(holder) = local.extensions().get::<WriterAt>().cloned() else {
            return local;
        };
        let body = body
            .get_or_insert_with(|| {
                std::mem::take(&mut *recorded.lock().expect("body record")).freeze()
            })
            .clone();
        if holder.read {
            // A read sent to the graph's placement owner for its warm caches; answered here
            // when the owner does not answer.
            drop(local);
            let started = Instant::now();
            let answer = outgoing.send(&parts, body.clone(), &holder, 1).await;
            forwarding
                .metrics
                .forwarded(answer.outcome, started.elapsed());
            if matches!(answer.outcome, Outcome::Answered) {
                return answer.response;
            }
            let mut request = Request::from_parts(parts.clone(), Body::from(body.clone()));
            request.extensions_mut().insert(ServeLocally);
            return next.clone().run(request).await;
        }
        if holder.address == outgoing.address {
            // A lease of this node's own address (an earlier process of it): nowhere better
            // to go.
            return local;
        }
        // The 421's Retry-After: when the holder's lease lapses unless renewed.
        let lapses_in = retry_after(&local).unwrap_or(1);
        drop(local);
        let started = Instant::now();
        let answer = outgoing
            .send(&parts, body.clone(), &holder, lapses_in)
            .await;
        forwarding
            .metrics
            .forwarded(answer.outcome, started.elapsed());
        // A holder that is handing over (a drain) answers that it wrote nothing, then
        // stops listening: run the write here again, where it then takes the released lease,
        // or finds the next holder.
        if answer.nothing_written() && arrived.elapsed() + UNREACHABLE_PAUSE < UNREACHABLE_RETRY_FOR
        {
            tokio::time::sleep(UNREACHABLE_PAUSE).await;
            continue;
        }
        return answer.response;
    }
}

/// How a forward ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    /// The holder answered (whatever its status).
    Answered,
    /// The holder could not be reached: nothing was sent.
    Unreachable,
    /// The request was sent but no answer came back: its outcome is unknown.
    Failed,
}

struct Answer {
    outcome: Outcome,
    response: Response,
}

impl Answer {
    /// Whether the write was certainly not applied, so that running it again is safe: the
    /// holder was unreachable, or it answered 421 (it no longer holds the lease) or 503 with
    /// `Retry-After` (which this API sends only when nothing was written).
    fn nothing_written(&self) -> bool {
        match self.outcome {
            Outcome::Unreachable => true,
            Outcome::Failed => false,
            Outcome::Answered => {
                let status = self.response.status();
                status == StatusCode::MISDIRECTED_REQUEST
                    || (status == StatusCode::SERVICE_UNAVAILABLE
                        && self.response.headers().contains_key(header::RETRY_AFTER))
            }
        }
    }
}

impl Outgoing {
    async fn send(
        &self,
        request: &axum::http::request::Parts,
        body: Bytes,
        holder: &WriterAt,
        lapses_in: u64,
    ) -> Answer {
        let target = path_and_query(&request.uri);
        let url = format!("http://{}{target}", holder.address);
        let mut headers = HeaderMap::with_capacity(request.headers.len() + 1);
        for (name, value) in &request.headers {
            if !is_hop_by_hop(name) && name != header::HOST {
                headers.append(name.clone(), value.clone());
            }
        }
        let signed = Signed {
            method: request.method.as_str(),
            path_and_query: target,
            authorization: request
                .headers
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
        };
        let mark = self.key.sign(&self.node, now_ms(), &signed);
        let Ok(mark) = HeaderValue::from_str(&mark) else {
            // Never sent unsigned: the receiver could send it on again.
            let refusal = ApiError::unavailable(format!(
                "this node's id '{}' cannot be sent in a header, so the write was not forwarded; \
                 nothing was written",
                self.node
            ));
            return Answer {
                outcome: Outcome::Unreachable,
                response: refusal.into_response(),
            };
        };
        headers.insert(HEADER, mark);
        let sent = self
            .client
            .request(request.method.clone(), url)
            .headers(headers)
            .body(body)
            .timeout(self.timeout)
            .send()
            .await;
        match sent {
            Ok(answer) => Answer {
                outcome: Outcome::Answered,
                response: relay(answer, &holder.holder),
            },
            Err(err) if err.is_connect() => {
                warn!(holder = %holder.holder, address = %holder.address, error = %err, "the writer-lease holder could not be reached");
                let refusal = ApiError::unavailable(format!(
                    "this node may not write the graph, and the node that may ('{}' at {}) \
                     could not be reached ({err}); nothing was written: retry, and once its \
                     lease lapses another node takes the graph over",
                    holder.holder, holder.address
                ));
                Answer {
                    outcome: Outcome::Unreachable,
                    response: refusal.with_retry_after(lapses_in).into_response(),
                }
            }
            Err(err) => {
                warn!(holder = %holder.holder, address = %holder.address, error = %err, "a forwarded write got no answer");
                // 503 without Retry-After: the write may have been applied.
                let failed = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!(
                        "the write was forwarded to '{}' at {}, which holds the graph's writer \
                         lease, but no answer came back ({err}); it may or may not have been \
                         applied: read before retrying",
                        holder.holder, holder.address
                    ),
                );
                Answer {
                    outcome: Outcome::Failed,
                    response: failed.into_response(),
                }
            }
        }
    }
}

fn now_ms() -> u64 {
    Clock::system().wall_ms()
}
