//! Admission: whether the node takes a request at all, decided after authentication and
//! before any engine work (docs/operations.md#limits).
//!
//! Each tenant has a token bucket of requests per second, a bound on its requests in flight
//! and one on their body bytes; past any of them its request is a 429 that names the limit and
//! says when to retry. Below them sit the node's own bounds on requests and bytes in flight,
//! shared by every tenant, past which the node sheds load with 503 before it is itself at risk.
//!
//! Reads then take one of the node's read slots, shared fairly between tenants
//! ([`crate::fair`]), within their deadline.
//!
//! A request forwarded by another node was admitted where it entered the cluster and is not
//! counted again. The permits a request holds are released when its answer has been sent in
//! full, so a streamed export counts until its last byte.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::Method;
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use omnigraph_cloud_config::{TenantId, TenantLimits};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use omnigraph_cloud_actors::RepoKey;
use omnigraph_cloud_actors::usage::UsageMeter;
use omnigraph_cloud_config::GraphId;

use crate::auth::TokenVerifier;
use crate::deadline::Deadline;
use crate::error::ApiError;
use crate::fair::FairShare;
use crate::forward::{FORWARDED_HEADER, is_read_route};
use crate::limits::{BodyLimits, LiveLimits};

/// The node's admission: its limits and the state of every tenant seen since it started.
pub struct Admission {
    /// The limits in force; `None`: admit everything.
    limits: Option<Arc<LiveLimits>>,
    node_requests: Arc<Semaphore>,
    node_bytes: Arc<Semaphore>,
    /// The node's read slots; `None` without limits.
    reads: Option<Arc<FairShare>>,
    tenants: Mutex<HashMap<TenantId, Arc<TenantGate>>>,
    pub(crate) metrics: AdmissionMetrics,
}

/// One tenant's bucket and bounds on this node.
struct TenantGate {
    limits: TenantLimits,
    rate: Option<DefaultDirectRateLimiter>,
    requests: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
}

/// What an admitted request holds until its answer is sent.
pub(crate) struct Admitted {
    _permits: [OwnedSemaphorePermit; 4],
    inflight: Gauge,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.inflight.dec();
    }
}

impl Admission {
    /// Admission that admits everything (until [`Admission::new`] replaces it).
    pub(crate) fn unlimited(metrics: AdmissionMetrics) -> Admission {
        Admission {
            limits: None,
            node_requests: Arc::new(Semaphore::new(0)),
            node_bytes: Arc::new(Semaphore::new(0)),
            reads: None,
            tenants: Mutex::default(),
            metrics,
        }
    }

    /// Admission under `limits`; the node's own bounds are read once, here (a bundle sets
    /// tenants' limits only).
    pub(crate) fn new(limits: Arc<LiveLimits>, metrics: AdmissionMetrics) -> Admission {
        let node = limits.current().node;
        Admission {
            node_requests: Arc::new(Semaphore::new(node.max_concurrent_requests)),
            node_bytes: Arc::new(Semaphore::new(node.max_inflight_bytes)),
            reads: Some(FairShare::new(node.max_concurrent_reads)),
            limits: Some(limits),
            tenants: Mutex::default(),
            metrics,
        }
    }

    /// The limits of `tenant` in force, when any are configured.
    pub(crate) fn tenant_limits(&self, tenant: &TenantId) -> Option<TenantLimits> {
        self.limits
            .as_ref()
            .map(|limits| *limits.current().for_tenant(tenant))
    }

    /// The tenant's gate under `limits`: made anew when its limits changed (a new bundle;
    /// requests admitted under the old ones finish under them).
    fn gate(&self, tenant: &TenantId, limits: &TenantLimits) -> Arc<TenantGate> {
        let mut tenants = self.tenants.lock().expect("admission lock");
        if tenants
            .get(tenant)
            .is_some_and(|gate| gate.limits != *limits)
        {
            tenants.remove(tenant);
        }
        let gate = tenants.entry(tenant.clone()).or_insert_with(|| {
            let rate = limits.requests_per_second.map(|rate| {
                let rate = NonZeroU32::new(rate).expect("a configured rate is positive");
                let burst = NonZeroU32::new(limits.burst).expect("a burst is at least 1");
                RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
            });
            Arc::new(TenantGate {
                limits: *limits,
                rate,
                requests: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
                bytes: Arc::new(Semaphore::new(limits.max_inflight_bytes)),
            })
        });
        Arc::clone(gate)
    }

    /// Admits a request of `tenant` carrying `bytes` of body, or says which limit refused it.
    /// `None`: no limits are configured.
    pub(crate) fn admit(
        &self,
        tenant: &TenantId,
        bytes: usize,
    ) -> Result<Option<Admitted>, ApiError> {
        let Some(live) = &self.limits else {
            return Ok(None);
        };
        let limits = live.current();
        let gate = self.gate(tenant, limits.for_tenant(tenant));
        let refuse = |reason: &'static str, err: ApiError| {
            self.metrics.refused(tenant, reason);
            err
        };
        // Bytes are counted whole: a request larger than what is free waits for no one.
        let bytes = u32::try_from(bytes.max(1)).unwrap_or(u32::MAX);
        let tenant_requests = Arc::clone(&gate.requests)
            .try_acquire_owned()
            .map_err(|_| {
                refuse(
                    "concurrency",
                    too_many(format!(
                        "tenant '{tenant}' has {} requests in flight on this node, its limit \
                     (limits.max_concurrent_requests)",
                        gate.limits.max_concurrent_requests
                    )),
                )
            })?;
        let tenant_bytes = Arc::clone(&gate.bytes)
            .try_acquire_many_owned(bytes)
            .map_err(|_| {
                refuse(
                    "bytes",
                    too_many(format!(
                        "tenant '{tenant}' has request bodies in flight on this node near its \
                         limit of {} bytes (limits.max_inflight_bytes); this one has {bytes}",
                        gate.limits.max_inflight_bytes
                    )),
                )
            })?;
        if let Some(rate) = &gate.rate
            && let Err(not_until) = rate.check()
        {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(refuse(
                "rate",
                ApiError::too_many_requests(format!(
                    "tenant '{tenant}' is over its rate of {} requests per second, burst {} \
                     (limits.requests_per_second)",
                    gate.limits.requests_per_second.unwrap_or_default(),
                    gate.limits.burst
                ))
                .with_retry_after(whole_seconds(wait)),
            ));
        }
        let node_requests = Arc::clone(&self.node_requests)
            .try_acquire_owned()
            .map_err(|_| {
                refuse(
                    "node_concurrency",
                    ApiError::unavailable(format!(
                        "this node has {} requests in flight, its limit \
                         (limits.node.max_concurrent_requests); retry, here or on another node",
                        limits.node.max_concurrent_requests
                    )),
                )
            })?;
        let node_bytes = Arc::clone(&self.node_bytes)
            .try_acquire_many_owned(bytes)
            .map_err(|_| {
                refuse(
                    "node_bytes",
                    ApiError::unavailable(format!(
                        "this node has request bodies in flight near its limit of {} bytes \
                         (limits.node.max_inflight_bytes); retry, here or on another node",
                        limits.node.max_inflight_bytes
                    )),
                )
            })?;
        let inflight = self
            .metrics
            .inflight
            .get_or_create(&TenantLabel::of(tenant));
        inflight.inc();
        Ok(Some(Admitted {
            _permits: [tenant_requests, tenant_bytes, node_requests, node_bytes],
            inflight: inflight.clone(),
        }))
    }
}

/// A 429 that asks for a retry after a second.
fn too_many(message: String) -> ApiError {
    ApiError::too_many_requests(message).with_retry_after(1)
}

/// `wait` in whole seconds, at least one (`Retry-After` has no finer unit).
fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(u64::from(wait.is_zero()))
}

/// What the admission middleware needs of the node.
#[derive(Clone)]
pub(crate) struct Gate {
    pub(crate) admission: Arc<Admission>,
    pub(crate) auth: Arc<TokenVerifier>,
    pub(crate) limits: BodyLimits,
    pub(crate) usage: Option<Arc<UsageMeter>>,
}

/// Middleware over the data routes: authenticates the caller, admits the request or refuses
/// it, bounds a read by its deadline (`crate::deadline`), and keeps the request's permits
/// until its answer has been sent. A caller that does not authenticate gets its 401 here.
pub(crate) async fn admit(State(state): State<Gate>, request: Request, next: Next) -> Response {
    if request.headers().contains_key(FORWARDED_HEADER) {
        // Admitted, and bounded by its deadline, at the node where it entered, which waits
        // for this answer. The forwarding layer refuses a forged header (403), and the
        // handler authenticates the caller again.
        return next.run(request).await;
    }
    let header = match request.headers().get(AUTHORIZATION).map(|v| v.to_str()) {
        None => None,
        Some(Ok(value)) => Some(value),
        Some(Err(_)) => return ApiError::unauthorized("invalid bearer token").into_response(),
    };
    let principal = match state.auth.verify(header) {
        Ok(principal) => principal,
        Err(unauthorized) => return unauthorized.into_response(),
    };
    let bytes = declared_bytes(&request, state.limits);
    let admitted = match state.admission.admit(&principal.tenant, bytes) {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal.into_response(),
    };
    if let Some(usage) = &state.usage {
        count_usage(usage, &principal.tenant, &request);
    }
    let deadline = match state.admission.tenant_limits(&principal.tenant) {
        Some(limits) if is_read_route(request.method(), request.uri().path()) => {
            match Deadline::of(&request, limits.query_timeout) {
                Ok(deadline) => Some(deadline),
                Err(err) => return err.into_response(),
            }
        }
        _ => None,
    };
    let tenant = principal.tenant.clone();
    let mut request = request;
    request.extensions_mut().insert(principal);
    let response = match deadline {
        None => next.run(request).await,
        Some(deadline) => match deadline
            .run(read(state.admission.clone(), tenant.clone(), request, next))
            .await
        {
            Ok(response) => response,
            Err(exceeded) => {
                state.admission.metrics.deadline_expired(&tenant);
                return exceeded.into_response();
            }
        },
    };
    match admitted {
        // An answer already in memory (every one but an export's) releases them now.
        Some(admitted) if response.body().size_hint().exact().is_none() => response.map(|body| {
            Body::from_stream(body.into_data_stream().map(move |chunk| {
                let _held = &admitted;
                chunk
            }))
        }),
        _ => response,
    }
}

/// A read, in one of the node's read slots (held until its answer's head).
async fn read(
    admission: Arc<Admission>,
    tenant: TenantId,
    request: Request,
    next: Next,
) -> Response {
    let _slot = match &admission.reads {
        Some(reads) => Some(reads.acquire(&tenant).await),
        None => None,
    };
    next.run(request).await
}

/// Counts an admitted request as its tenant's usage: for the graph it names (none for the
/// graph listing and creation), by kind.
fn count_usage(usage: &UsageMeter, tenant: &TenantId, request: &Request) {
    let path = request.uri().path();
    let mut segments = path.trim_matches('/').split('/');
    let graph = match (segments.next(), segments.next()) {
        (Some("graphs"), Some(graph)) => match GraphId::new(graph) {
            Ok(graph) => Some(graph),
            // A bad name is refused with 400 before any work.
            Err(_) => return,
        },
        _ => None,
    };
    let route = segments.next();
    let kind = if is_read_route(request.method(), path) || request.method() == Method::GET {
        "read"
    } else if route.is_none() || route == Some("warm") {
        "manage"
    } else {
        "write"
    };
    match graph {
        Some(graph) => usage.request(&RepoKey::new(tenant.clone(), graph), kind),
        None => usage.tenant_request(tenant, kind),
    }
}

/// The body bytes a request will hold: its `Content-Length`, or its route's body limit when it
/// does not say (the body limit refuses anything longer).
fn declared_bytes(request: &Request, limits: BodyLimits) -> usize {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    let path = request.uri().path();
    let limit = if path.ends_with("/load") || path.ends_with("/ingest") {
        limits.load
    } else {
        limits.default
    };
    declared.map_or(limit, |bytes| bytes.min(limit))
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TenantLabel {
    tenant: String,
}

impl TenantLabel {
    fn of(tenant: &TenantId) -> TenantLabel {
        TenantLabel {
            tenant: tenant.as_str().to_string(),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    tenant: String,
    reason: &'static str,
}

#[derive(Clone)]
pub(crate) struct AdmissionMetrics {
    refused: Family<RefusalLabels, Counter>,
    inflight: Family<TenantLabel, Gauge>,
    pub(crate) deadlines: Family<TenantLabel, Counter>,
}

impl AdmissionMetrics {
    pub(crate) fn register(registry: &mut Registry) -> AdmissionMetrics {
        let metrics = AdmissionMetrics {
            refused: Family::default(),
            inflight: Family::default(),
            deadlines: Family::default(),
        };
        registry.register(
            "omnigraph_admission_refused",
            "Requests refused at admission, by tenant and the limit that refused them (rate, \
             concurrency, bytes: 429; node_concurrency, node_bytes: 503)",
            metrics.refused.clone(),
        );
        registry.register(
            "omnigraph_admission_inflight",
            "Admitted requests in flight, by tenant",
            metrics.inflight.clone(),
        );
        registry.register(
            "omnigraph_deadline_expired",
            "Reads cancelled at their deadline, by tenant",
            metrics.deadlines.clone(),
        );
        metrics
    }

    fn refused(&self, tenant: &TenantId, reason: &'static str) {
        let labels = RefusalLabels {
            tenant: tenant.as_str().to_string(),
            reason,
        };
        self.refused.get_or_create(&labels).inc();
    }

    pub(crate) fn deadline_expired(&self, tenant: &TenantId) {
        self.deadlines.get_or_create(&TenantLabel::of(tenant)).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(2)), 2);
        assert_eq!(whole_seconds(Duration::from_millis(2_001)), 3);
    }
}
